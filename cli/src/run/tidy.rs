//! Keeps memscope's cache directory from growing without end.
//!
//! Each build of memscope has parts of its own there: `names-<build id>`
//! (names and unwind rules, one per build of the library and of this CLI:
//! names are never taken from another build's) and `<version>-<hash>` (an
//! embedded library written out for `run`). Every upgrade — every rebuild,
//! for whoever works on memscope — left more behind: 82 MB in 176 parts on
//! one machine after a day.
//!
//! So at each `run`, the parts this run uses are marked used (their
//! modification time set to now; writing a file into one does the same),
//! and the others left unused for [`UNUSED_FOR`] are removed. Nothing else
//! in the directory is touched (a part is removed only when it holds
//! nothing but memscope's files), and a library that a `run` still going on
//! injects is never removed: such a run holds a shared lock on it
//! ([`hold`]), and removal needs the exclusive one. Best effort and silent:
//! a part that cannot be removed stays; removing any part is always safe
//! (what it held is found again, at the cost of finding it).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a part may go unused before a `run` removes it.
pub const UNUSED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// Marks the parts this run uses, then removes the stale others, under
/// each of `roots` (the name cache's and the embedded library's, usually
/// one directory). `used` are the names of the parts in use.
pub fn tidy(roots: &[PathBuf], used: &[String], now: SystemTime) {
    let mut seen: Vec<&Path> = Vec::new();
    for root in roots {
        if seen.contains(&root.as_path()) {
            continue;
        }
        seen.push(root);
        let Ok(entries) = std::fs::read_dir(root) else { continue };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(kind) = Part::of(name) else { continue };
            let path = e.path();
            if used.iter().any(|u| u == name) {
                mark_used(&path, now);
            } else if unused_since(&path, now).is_some_and(|d| d >= UNUSED_FOR) {
                remove(&path, kind);
            }
        }
    }
}

/// Holds a shared lock on `lib` for as long as this process lives, when it
/// lies in a part of the cache: a `run` of another build, tidying at the
/// same time, then leaves it (the processes this run starts still load it).
pub fn hold(lib: &Path) {
    if let Ok(f) = File::open(lib) {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            // Kept open (and locked) until the process ends; the descriptor
            // is close-on-exec, so the traced command does not inherit it.
            std::mem::forget(f);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// `names-<hex build id>`.
    Names,
    /// `<version>-<16 hex digits>`: an embedded library.
    Library,
}

impl Part {
    /// The kind of part a directory entry's name makes it, if any.
    fn of(name: &str) -> Option<Part> {
        let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some(id) = name.strip_prefix("names-") {
            return hex(id).then_some(Part::Names);
        }
        let (version, hash) = name.rsplit_once('-')?;
        let version_like = version.starts_with(|c: char| c.is_ascii_digit()) && version.contains('.');
        (version_like && hash.len() == 16 && hex(hash)).then_some(Part::Library)
    }
}

fn mark_used(dir: &Path, now: SystemTime) {
    if let Ok(f) = File::open(dir) {
        let _ = f.set_modified(now);
    }
}

/// How long ago `dir` was last marked used or written to (None: unknown,
/// or not a directory of its own).
fn unused_since(dir: &Path, now: SystemTime) -> Option<Duration> {
    let m = std::fs::symlink_metadata(dir).ok()?;
    if !m.is_dir() {
        return None;
    }
    now.duration_since(m.modified().ok()?).ok()
}

/// True when everything in `dir` is what memscope keeps in a part of
/// `kind` (a cache directory the user chose may be shared with others).
fn holds_only_ours(dir: &Path, kind: Part) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        // Temporary files of an atomic write start with a dot.
        is_file
            && match kind {
                Part::Names => name.starts_with('.') || name.ends_with(".names") || name.ends_with(".rules"),
                Part::Library => name == "libmemscope.so" || name.starts_with(".libmemscope.so."),
            }
    })
}

fn remove(dir: &Path, kind: Part) {
    if !holds_only_ours(dir, kind) {
        return;
    }
    // An embedded library another run injects is locked (see `hold`): the
    // exclusive lock, kept while the directory goes, tells.
    let _lock = match kind {
        Part::Library => match File::open(dir.join("libmemscope.so")) {
            // SAFETY: flock on a descriptor we own.
            Ok(f) if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 => return,
            Ok(f) => Some(f),
            Err(_) => None,
        },
        Part::Names => None,
    };
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_memscope_parts_are_recognized() {
        assert_eq!(
            Part::of("names-00aa43e2d8d6f21b093394d174f021bbffff157b"),
            Some(Part::Names)
        );
        assert_eq!(Part::of("0.1.0-2f3fa0c4cf58cf58"), Some(Part::Library));
        assert_eq!(Part::of("1.2.0-rc.1-2f3fa0c4cf58cf58"), Some(Part::Library));
        for other in [
            "names-",
            "names-xyz",
            "notes",
            "0.1.0-2f3fa0c4",
            "v0.1.0-2f3fa0c4cf58cf58",
            "0-2f3fa0c4cf58cf58",
            "0.1.0-2f3fa0c4cf58cf5g",
            "libmemscope.so",
        ] {
            assert_eq!(Part::of(other), None, "{other}");
        }
    }
}
