fn main() {
    println!("cargo:rerun-if-changed=csrc/execl.c");
    cc::Build::new()
        .file("csrc/execl.c")
        .warnings(true)
        .compile("memscope_execl");
    static_unwinder();
    text_order();
}

/// Links with `text_order.ld` (made by `scripts/text_order.py`): the code
/// a short process image runs, packed at the start of the library's text.
/// The kernel maps the 16 pages around each page of it a process touches,
/// and unmaps them all at exit: packed, a recording image has ~180 of the
/// text's pages mapped instead of ~275, and a traced `/bin/true` costs
/// ~160 µs less (scripts/bench/README.md). The script only defines the
/// `.text` output section (the packed code, then what the default layout
/// puts there; `INSERT AFTER .init`), which lld (rustc's default linker on
/// Linux) and GNU ld both accept; gold and mold would not, so a build that
/// asks for them goes without (as does a path `-Wl,` would split).
fn text_order() {
    println!("cargo:rerun-if-changed=text_order.ld");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let elf = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if !elf || flags.contains("fuse-ld=gold") || flags.contains("fuse-ld=mold") {
        return;
    }
    let script = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("text_order.ld");
    if script.is_file() && !script.to_string_lossy().contains(',') {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-T,{}", script.display());
    }
}

/// Links libgcc's unwinder (libgcc_eh.a, which gcc installs for static
/// links) into the library, so that it does not need libgcc_s.so.1: loading
/// that into a program that does not use it costs ~60 µs per process image
/// here, most of it its constructor's CPUID instructions, which trap to the
/// hypervisor in a VM. rustc's version script keeps the copy private: the
/// program's own unwinder is never interposed. Without libgcc_eh.a the
/// library simply keeps needing libgcc_s.so.1.
fn static_unwinder() {
    let Ok(out) = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !path.is_absolute() || !path.exists() {
        return;
    }
    if let Some(dir) = path.parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static=gcc_eh");
    }
}
