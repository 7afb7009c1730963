//! Which libmemscope.so `run` injects, in this order:
//!
//! 1. `$MEMSCOPE_LIB` when set: an explicit choice wins.
//! 2. A library beside this executable, or in `<prefix>/lib` for
//!    `<prefix>/bin/memscope-cli`: the build tree (`target/release/`) or a
//!    packaged install.
//! 3. The copy embedded in this executable at build time (`build.rs`),
//!    written once to `$XDG_CACHE_HOME/memscope/<version>-<content
//!    hash>/libmemscope.so` (`~/.cache` without `XDG_CACHE_HOME`): what a
//!    CLI installed on its own with `cargo install` uses.
//!
//! The cache directory is created private (0700); the file is written under
//! a temporary name and renamed into place, so concurrent runs never see a
//! half-written library and a failed write leaves nothing behind. An
//! existing copy is used only when its bytes equal the embedded ones.

use crate::text::term;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The library built alongside this CLI (see `build.rs`).
static EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libmemscope.so"));

/// The cache subdirectory for this build's library.
pub const CACHE_SUBDIR: &str = concat!(env!("CARGO_PKG_VERSION"), "-", env!("MEMSCOPE_EMBEDDED_LIB_HASH"));

/// Finds (or writes) the library to inject; see the module comment.
pub fn find() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MEMSCOPE_LIB").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return match std::fs::canonicalize(&p) {
            Ok(abs) if abs.is_file() => Ok(abs),
            _ => Err(format!(
                "MEMSCOPE_LIB names {}, which is not a file",
                term(&p.display().to_string())
            )),
        };
    }
    if let Some(p) = beside_executable() {
        return Ok(p);
    }
    embedded()
}

fn beside_executable() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let dir = exe.parent()?;
    [dir.join("libmemscope.so"), dir.join("../lib/libmemscope.so")]
        .into_iter()
        .find(|c| c.is_file())
        .map(|c| std::fs::canonicalize(&c).unwrap_or(c))
}

/// `$XDG_CACHE_HOME/memscope`, else `$HOME/.cache/memscope` (the XDG base
/// directory rule: a relative `XDG_CACHE_HOME` is ignored).
pub fn cache_root() -> Result<PathBuf, String> {
    let abs = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(x) = abs(std::env::var_os("XDG_CACHE_HOME")) {
        return Ok(x.join("memscope"));
    }
    abs(std::env::var_os("HOME"))
        .map(|h| h.join(".cache/memscope"))
        .ok_or_else(|| {
            "no libmemscope.so beside memscope-cli and no cache directory to write its embedded copy to \
             (HOME and XDG_CACHE_HOME are unset); set MEMSCOPE_LIB or XDG_CACHE_HOME"
                .to_string()
        })
}

/// The embedded library's path in the cache, written there if needed.
fn embedded() -> Result<PathBuf, String> {
    let dir = cache_root()?.join(CACHE_SUBDIR);
    let path = dir.join("libmemscope.so");
    if std::fs::read(&path).is_ok_and(|b| b == EMBEDDED) {
        return Ok(path);
    }
    let fail = |what: &str, e: std::io::Error| {
        format!(
            "cannot {what} {} for the embedded libmemscope.so: {}; set MEMSCOPE_LIB or XDG_CACHE_HOME",
            term(&dir.display().to_string()),
            crate::load::io_reason(&e)
        )
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| fail("create", e))?;
    private_dir(&dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".libmemscope.so.")
        .tempfile_in(&dir)
        .map_err(|e| fail("write to", e))?;
    tmp.write_all(EMBEDDED)
        .and_then(|()| tmp.as_file().sync_all())
        .and_then(|()| tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o500)))
        .map_err(|e| fail("write to", e))?;
    // On failure the temporary file is removed as `tmp` drops.
    tmp.persist(&path).map_err(|e| fail("write to", e.error))?;
    Ok(path)
}

/// Refuses a cache directory someone else could swap the library in: it
/// must be ours and writable by nobody else.
fn private_dir(dir: &Path) -> Result<(), String> {
    let m = std::fs::metadata(dir).map_err(|e| {
        format!(
            "cannot read {}: {}",
            term(&dir.display().to_string()),
            crate::load::io_reason(&e)
        )
    })?;
    // SAFETY: a plain getter without arguments.
    let uid = unsafe { libc::geteuid() };
    if m.uid() != uid || m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} (for the embedded libmemscope.so) is not a private directory of this user; \
             remove it, or set MEMSCOPE_LIB or XDG_CACHE_HOME",
            term(&dir.display().to_string())
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_library_is_an_elf_shared_object() {
        let elf = super::super::target::parse_elf(&EMBEDDED[..EMBEDDED.len().min(64 << 10)]).unwrap();
        assert_eq!(elf.class64, cfg!(target_pointer_width = "64"));
        assert_eq!(&EMBEDDED[16..18], &3u16.to_le_bytes(), "ET_DYN");
        assert!(CACHE_SUBDIR.starts_with(env!("CARGO_PKG_VERSION")));
        assert_eq!(CACHE_SUBDIR.len(), env!("CARGO_PKG_VERSION").len() + 17);
    }
}
