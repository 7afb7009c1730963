//! Helpers for the memscope-cli tests (`tests/tests/cli_*.rs`).

use crate::{c_program, cli_path};
use memscope_format::Snapshot;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `memscope-cli` in `dir`, with no memscope variables inherited from the
/// test's own environment.
pub fn command(dir: &Path) -> Command {
    command_of(&cli_path(), dir)
}

/// [`command`] for another copy of the CLI (an installed one).
pub fn command_of(cli: &Path, dir: &Path) -> Command {
    let mut c = Command::new(cli);
    c.current_dir(dir);
    for k in [
        "MEMSCOPE_EXPORT_PATH",
        "MEMSCOPE_EXPORT_FORMAT",
        "MEMSCOPE_MANIFEST",
        "MEMSCOPE_RUN_PPID",
        "MEMSCOPE_ROOT_PID",
        "MEMSCOPE_EXEC_SEQ",
        "MEMSCOPE_LIB",
        "MEMSCOPE_LOG",
        "MEMSCOPE_SYMBOLIZE",
        "MEMSCOPE_WRAPPERS",
        "MEMSCOPE_DEFAULT_EXPORT_PATH",
        "MEMSCOPE_ONLY",
        "MEMSCOPE_SKIP",
        "MEMSCOPE_SKIP_LOG",
        "LD_PRELOAD",
    ] {
        c.env_remove(k);
    }
    c
}

/// Runs `memscope-cli args…` in `dir`.
pub fn cli<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    command(dir).args(args).output().expect("run memscope-cli")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts the SPEC §4 rule for bad input: exit 2, exactly one line on
/// stderr, no panic. Returns the line.
#[track_caller]
pub fn assert_one_line_error(o: &Output, what: &str) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{what}: exit status {:?}, stderr {err:?}",
        o.status
    );
    assert_eq!(err.lines().count(), 1, "{what}: expected one line, got {err:?}");
    assert!(err.starts_with("memscope-cli: "), "{what}: {err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{what}: {err:?}"
    );
    err
}

/// The CLI tests' C program.
pub fn prog() -> PathBuf {
    c_program("cli_prog", &[])
}

/// Runs `memscope-cli run -o <dir>/<name>.json cli_prog args…` and returns
/// the snapshot's path, the snapshot and the CLI's output.
pub fn run_prog(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, Snapshot, Output) {
    let path = dir.join(format!("{name}.json"));
    let out = command(dir)
        .arg("run")
        .arg("-o")
        .arg(&path)
        .arg(prog())
        .args(args)
        .output()
        .expect("run memscope-cli");
    let snap = memscope_format::read_snapshot_file(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; stderr {}", path.display(), stderr(&out)));
    (path, snap, out)
}

/// Every snapshot `run` left in `dir` (its run file aside), read.
pub fn snapshots_in(dir: &Path) -> Vec<Snapshot> {
    json_files(dir)
        .iter()
        .map(|p| memscope_format::read_snapshot_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// Snapshot files in `dir` (`*.json` but not `run`'s `*.run.json`
/// manifest), sorted by name.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| !p.to_string_lossy().ends_with(".run.json"))
        .collect();
    v.sort();
    v
}
