//! Which process images record (`MEMSCOPE_ONLY` / `MEMSCOPE_SKIP`, SPEC §2).
//!
//! Under `cargo run` the launchers (rustup, cargo, rustc, linkers) are not
//! what the user asked about, and tracing them costs more than the program
//! itself. A skipped image installs nothing: no ring, no collector thread,
//! no exit handler, no snapshot. It still carries `LD_PRELOAD` and the
//! `MEMSCOPE_*` variables to the programs it starts, so they are followed.
//!
//! Patterns are shell globs (`fnmatch(3)` without flags: `*` also matches
//! `/`), separated by `:` in the variable. A pattern with a `/` is matched
//! against the executable's full path (`/proc/self/exe`, symlinks
//! resolved), one without against its base name.

use std::sync::atomic::{AtomicU8, Ordering};

/// Patterns of images that record; when set, every other image is skipped.
pub const ONLY_VAR: &std::ffi::CStr = c"MEMSCOPE_ONLY";
/// Patterns of images that never record (wins over [`ONLY_VAR`]).
pub const SKIP_VAR: &std::ffi::CStr = c"MEMSCOPE_SKIP";
/// A file each skipped image appends its executable's path to (one line,
/// one `write`); set by `memscope-cli run` to tell which patterns matched.
pub const SKIP_LOG_VAR: &std::ffi::CStr = c"MEMSCOPE_SKIP_LOG";

/// True when glob `pattern` names the executable at `exe` (see the module
/// doc: full path for a pattern with `/`, else the base name).
pub fn matches(pattern: &[u8], exe: &[u8]) -> bool {
    if pattern.is_empty() {
        return false;
    }
    let subject = if pattern.contains(&b'/') {
        exe
    } else {
        exe.rsplit(|&b| b == b'/').next().unwrap_or(exe)
    };
    let (Ok(p), Ok(s)) = (std::ffi::CString::new(pattern), std::ffi::CString::new(subject)) else {
        return false;
    };
    // SAFETY: two valid C strings; fnmatch only reads them.
    unsafe { libc::fnmatch(p.as_ptr(), s.as_ptr(), 0) == 0 }
}

/// The patterns of one variable's value.
pub fn patterns(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b':').filter(|p| !p.is_empty())
}

/// Whether the image of executable `exe` records, given the variables'
/// values: not when a skip pattern matches; else, when `only` names any
/// pattern, only if one of them matches.
pub fn records(exe: &[u8], only: Option<&[u8]>, skip: Option<&[u8]>) -> bool {
    if skip.is_some_and(|s| patterns(s).any(|p| matches(p, exe))) {
        return false;
    }
    match only {
        Some(o) if patterns(o).next().is_some() => patterns(o).any(|p| matches(p, exe)),
        _ => true,
    }
}

const UNDECIDED: u8 = 0;
const RECORD: u8 = 1;
const SKIP: u8 = 2;
static DECISION: AtomicU8 = AtomicU8::new(UNDECIDED);

/// True when this image is skipped. Decided once, at the first call (the
/// first event's slow path or the library's constructor, whichever comes
/// first); a `fork()` child is the same executable and keeps the answer.
pub fn skipped() -> bool {
    match DECISION.load(Ordering::Relaxed) {
        RECORD => false,
        SKIP => true,
        _ => decide(),
    }
}

extern "C" {
    static environ: *const *const std::ffi::c_char;
}

#[cold]
fn decide() -> bool {
    // SAFETY: reading the pointer only. Before libc has set it up (an
    // event that early) nothing can be decided yet: record, ask again.
    if unsafe { environ }.is_null() {
        return false;
    }
    let only = crate::sys::getenv(ONLY_VAR);
    let skip = crate::sys::getenv(SKIP_VAR);
    if only.is_none() && skip.is_none() {
        DECISION.store(RECORD, Ordering::Relaxed);
        return false;
    }
    let mut buf = [0u8; 4096];
    let exe = own_exe(&mut buf);
    let skipped = !records(exe, only, skip);
    DECISION.store(if skipped { SKIP } else { RECORD }, Ordering::Relaxed);
    skipped
}

/// `/proc/self/exe` into `buf`, without allocating (empty if unreadable).
fn own_exe(buf: &mut [u8; 4096]) -> &[u8] {
    // SAFETY: readlink writes at most buf.len() bytes into buf.
    let n = unsafe { libc::readlink(c"/proc/self/exe".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    &buf[..usize::try_from(n).unwrap_or(0).min(buf.len())]
}

/// Appends this (skipped) image's executable path to the skip log, if
/// `memscope-cli run` asked for one: a single `O_APPEND` write, no heap.
pub fn note_skipped() {
    let Some(log) = crate::sys::getenv(SKIP_LOG_VAR) else {
        return;
    };
    let mut path = [0u8; 4096];
    let mut line = [0u8; 4096];
    if log.len() >= path.len() {
        return;
    }
    path[..log.len()].copy_from_slice(log);
    let exe = own_exe(&mut line);
    let n = exe.len().min(line.len() - 1);
    line[n] = b'\n';
    // SAFETY: path is NUL-terminated (zeroed past the copy); line[..=n] is ours.
    unsafe {
        let fd = libc::open(
            path.as_ptr().cast(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600,
        );
        if fd >= 0 {
            libc::write(fd, line.as_ptr().cast(), n + 1);
            libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(matches(b"cargo", b"/home/u/.rustup/toolchains/x/bin/cargo"));
        assert!(!matches(b"cargo", b"/usr/bin/cargo-clippy"));
        assert!(matches(b"cargo*", b"/usr/bin/cargo-clippy"));
        assert!(matches(b"/w/target/*", b"/w/target/release/deps/t-1234"));
        assert!(!matches(b"/w/target/*", b"/usr/bin/rustc"));
        assert!(matches(
            b"*/build/*/build-script-*",
            b"/w/target/release/build/x-1/build-script-build"
        ));
        assert!(!matches(b"", b"/bin/true"));
        assert!(matches(b"t?ue", b"/bin/true"));
    }

    #[test]
    fn skip_wins_over_only() {
        let exe = b"/w/target/release/build/x-1/build-script-build";
        assert!(records(exe, None, None));
        assert!(records(exe, Some(b"/w/target/*"), None));
        assert!(!records(exe, Some(b"/w/target/*"), Some(b"*/build/*")));
        assert!(!records(b"/usr/bin/cargo", Some(b"/w/target/*:seed"), None));
        assert!(records(b"/opt/seed", Some(b"/w/target/*:seed"), None));
        assert!(
            records(b"/opt/seed", Some(b"::"), None),
            "no pattern at all: no restriction"
        );
        assert!(!records(b"/usr/bin/cargo", None, Some(b"rustup:cargo")));
    }
}
