//! `run cargo run|test|bench …`: which directory cargo runs the user's
//! programs from, so that by default only they are traced (not rustup,
//! cargo, rustc, linkers or build scripts).
//!
//! The target directory is found without running cargo (`cargo metadata`
//! would cost a second cargo start and may touch the network): the
//! command's `--target-dir`, else `CARGO_TARGET_DIR`, else
//! `CARGO_BUILD_TARGET_DIR`, else `target/` beside the workspace's root
//! manifest (the outermost `Cargo.toml` with a `[workspace]` table above the
//! `--manifest-path` or the working directory, else the nearest
//! `Cargo.toml`). A `build.target-dir` set in `.cargo/config.toml` is not
//! read: there, `--only` or `--target-dir` says it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Cargo subcommands that run what they build.
const RUNNING: [&str; 5] = ["run", "r", "test", "t", "bench"];
/// Cargo's global options that take a separate value.
const GLOBAL_WITH_VALUE: [&str; 4] = ["--config", "-Z", "-C", "--color"];

/// The cargo subcommand of `command` when it runs what it builds (`run`,
/// `test`, `bench`), with the arguments after it. `cargo +nightly run` (the
/// rustup proxy's toolchain choice) counts too.
pub fn running_subcommand(command: &[OsString]) -> Option<(&str, &[OsString])> {
    let exe = Path::new(command.first()?);
    if exe.file_name()? != "cargo" {
        return None;
    }
    let mut i = 1;
    while let Some(a) = command.get(i).and_then(|a| a.to_str()) {
        if a.starts_with('+') || (a.starts_with('-') && !GLOBAL_WITH_VALUE.contains(&a)) {
            i += 1;
        } else if GLOBAL_WITH_VALUE.contains(&a) {
            i += 2;
        } else {
            return RUNNING.iter().find(|s| **s == a).map(|s| (*s, &command[i + 1..]));
        }
    }
    None
}

/// The value of `--name VALUE` or `--name=VALUE` among cargo's own
/// arguments (those before `--`).
fn option<'a>(args: &'a [OsString], name: &str) -> Option<&'a std::ffi::OsStr> {
    let mut it = args.iter().take_while(|a| a.as_os_str() != "--");
    while let Some(a) = it.next() {
        let b = a.as_bytes();
        if b == name.as_bytes() {
            return it.next().map(|v| v.as_os_str());
        }
        if let Some(v) = b.strip_prefix(name.as_bytes()).and_then(|r| r.strip_prefix(b"=")) {
            return Some(std::ffi::OsStr::from_bytes(v));
        }
    }
    None
}

/// The target directory cargo will use (absolute, symlinks resolved as far
/// as it exists, since the library matches `/proc/self/exe`).
pub fn target_dir(args: &[OsString], cwd: &Path) -> PathBuf {
    let explicit = option(args, "--target-dir")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| {
            std::env::var_os("CARGO_BUILD_TARGET_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
    let dir = match explicit {
        Some(d) => cwd.join(d),
        None => {
            let start = option(args, "--manifest-path")
                .map(|m| cwd.join(m).parent().map(Path::to_path_buf).unwrap_or_default())
                .unwrap_or_else(|| cwd.to_path_buf());
            workspace_root(&start).unwrap_or(start).join("target")
        }
    };
    resolve(&dir)
}

/// The outermost directory above `start` whose `Cargo.toml` has a
/// `[workspace]` table, else the nearest one with a `Cargo.toml`.
fn workspace_root(start: &Path) -> Option<PathBuf> {
    let mut nearest = None;
    let mut workspace = None;
    for dir in start.ancestors() {
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        nearest.get_or_insert_with(|| dir.to_path_buf());
        if text.lines().any(|l| l.trim() == "[workspace]") {
            workspace = Some(dir.to_path_buf());
        }
    }
    workspace.or(nearest)
}

/// `canonicalize` of the longest existing prefix, the rest appended.
fn resolve(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p;
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            return rest.iter().rev().fold(c, |acc: PathBuf, part| acc.join(part));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return p.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn finds_the_running_subcommands() {
        let c = args("cargo run --release -- out.json");
        let (sub, rest) = running_subcommand(&c).unwrap();
        assert_eq!((sub, rest.len()), ("run", 3));
        assert_eq!(
            running_subcommand(&args("/x/bin/cargo +nightly -q test")).unwrap().0,
            "test"
        );
        assert_eq!(
            running_subcommand(&args("cargo --config a=1 -Z x bench")).unwrap().0,
            "bench"
        );
        assert!(running_subcommand(&args("cargo build --release")).is_none());
        assert!(running_subcommand(&args("cargo-run run")).is_none());
        assert!(running_subcommand(&args("make run")).is_none());
    }

    #[test]
    fn target_dir_rules() {
        let ws = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(ws.path()).unwrap();
        std::fs::write(ws.join("Cargo.toml"), "[workspace]\nmembers = [\"a\"]\n").unwrap();
        std::fs::create_dir_all(ws.join("a/src")).unwrap();
        std::fs::write(ws.join("a/Cargo.toml"), "[package]\nname = \"a\"\n").unwrap();
        let a = ws.join("a");
        if std::env::var_os("CARGO_TARGET_DIR").is_none() && std::env::var_os("CARGO_BUILD_TARGET_DIR").is_none() {
            assert_eq!(target_dir(&args("--release"), &a.join("src")), ws.join("target"));
            let alone = tempfile::tempdir().unwrap();
            let alone = std::fs::canonicalize(alone.path()).unwrap();
            std::fs::write(alone.join("Cargo.toml"), "[package]\nname = \"b\"\n").unwrap();
            let m = format!("--manifest-path {}/Cargo.toml", alone.display());
            assert_eq!(target_dir(&args(&m), &a), alone.join("target"), "the nearest manifest");
        }
        assert_eq!(target_dir(&args("--target-dir t2 --release"), &a), a.join("t2"));
        assert_eq!(
            target_dir(&args("--target-dir=/tmp/../tmp/t3"), &a),
            Path::new("/tmp/t3")
        );
        assert_eq!(
            target_dir(&args("-- --target-dir t4"), &a).file_name().unwrap(),
            "target",
            "after -- it is the program's argument"
        );
    }
}
