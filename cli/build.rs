//! Build facts baked into memscope-cli:
//!
//! - `MEMSCOPE_BUILD_COMMIT`: the git commit it was built from ("unknown"
//!   outside a git checkout), for `--version`.
//! - `$OUT_DIR/libmemscope.so` and `MEMSCOPE_EMBEDDED_LIB_HASH`: the preload
//!   library, built here by a nested `cargo build --release -p
//!   memscope-preload`, so that a CLI installed on its own (`cargo install
//!   --path cli`) carries the library it injects (`run/library.rs` writes it
//!   to a per-user cache). The CLI never links the malloc hooks: they are
//!   bytes it writes to a file, not code it runs.
//!
//! The nested build has its own target directory beside the outer one's
//! profile directories (`<target>/memscope-embed`), so it never waits on the
//! outer build's lock, and it is incremental: after the first build it only
//! recompiles what changed. It shares the outer build's jobserver (cargo
//! passes it to build scripts), so it does not oversubscribe the cores.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    commit();
    embed_library();
}

/// `git rev-parse --short=12 HEAD`, rerun when HEAD or the branch moves.
fn commit() {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if let (Some(dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        let mut watch = vec![Path::new(&dir).join("HEAD"), Path::new(&common).join("packed-refs")];
        if let Some(r) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]) {
            watch.push(Path::new(&common).join(r));
        }
        // A path that does not exist would rerun this script on every build.
        for p in watch.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    println!("cargo:rustc-env=MEMSCOPE_BUILD_COMMIT={commit}");
}

fn embed_library() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    // Everything the library is built from.
    for p in [
        "preload",
        "engine",
        "format",
        "symbols",
        "report",
        "sites",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(p).display());
    }

    // OUT_DIR is <target>/<profile>/build/memscope-cli-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .filter(|d| d.is_dir())
        .map(|d| d.join("memscope-embed"))
        .unwrap_or_else(|| out_dir.join("memscope-embed"));
    let target = std::env::var("TARGET").unwrap();
    let host = std::env::var("HOST").unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "memscope-preload",
        "--manifest-path",
    ])
    .arg(workspace.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir)
    .env_remove("CARGO_TARGET_DIR")
    .env_remove("CARGO_BUILD_TARGET_DIR");
    let mut built = target_dir.clone();
    if target != host {
        c.args(["--target", &target]);
        built.push(&target);
    }
    if std::env::var_os("CARGO_NET_OFFLINE").is_some_and(|v| v == "true") {
        c.arg("--offline");
    }
    let status = c
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build libmemscope.so: {e}"));
    assert!(
        status.success(),
        "building libmemscope.so to embed it failed ({status})"
    );
    let lib = built.join("release/libmemscope.so");
    let bytes = std::fs::read(&lib).unwrap_or_else(|e| panic!("cannot read {}: {e}", lib.display()));

    let dest = out_dir.join("libmemscope.so");
    // An unchanged copy keeps its mtime, so the CLI is not recompiled.
    if std::fs::read(&dest).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(&dest, &bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
    }
    println!("cargo:rustc-env=MEMSCOPE_EMBEDDED_LIB_HASH={:016x}", fnv1a(&bytes));
}

/// FNV-1a, 64 bits: names the cache directory after the library's content,
/// so two builds of the same version never share a file.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
