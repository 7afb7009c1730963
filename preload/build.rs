fn main() {
    println!("cargo:rerun-if-changed=csrc/execl.c");
    cc::Build::new()
        .file("csrc/execl.c")
        .warnings(true)
        .compile("memscope_execl");
    static_unwinder();
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
