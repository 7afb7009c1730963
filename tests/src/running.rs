//! A long-running traced program for the running-snapshot tests
//! (`tests/programs/running.c`): started, told what to hold, asked for
//! snapshots while it waits, and ended.

use crate::{c_program, cli::command, lib_path};
use memscope_format::Snapshot;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

pub fn program() -> PathBuf {
    c_program("running", &[])
}

/// A running `running.c`, traced, waiting for commands.
pub struct Live {
    pub child: Child,
    pub pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Every line the program printed.
    pub transcript: String,
}

/// Records listed by the live program's snapshots: room for every block
/// the tests hold (thousands), above the default cap.
const LISTED: &str = "20000";

impl Live {
    /// `running` with libmemscope.so preloaded, snapshots to `<dir>/snap.json`.
    /// The program is single-threaded and waits without allocating, so it
    /// is made reachable at any time (`MEMSCOPE_REACHABLE=1`) unless `env`
    /// says otherwise.
    pub fn preloaded(dir: &Path, env: &[(&str, &str)]) -> Live {
        let mut c = Command::new(program());
        c.current_dir(dir)
            .env("LD_PRELOAD", lib_path())
            .env("MEMSCOPE_EXPORT_PATH", dir.join("snap.json"))
            .env("MEMSCOPE_REACHABLE", "1")
            .env("MEMSCOPE_MAX_RECORDS", LISTED)
            .env_remove("MEMSCOPE_EVERY")
            .env_remove("MEMSCOPE_MANIFEST");
        for (k, v) in env {
            c.env(k, v);
        }
        Live::start(c)
    }

    /// `memscope-cli run ARGS… running` in `dir` (reachable at any time,
    /// as [`Live::preloaded`]).
    pub fn under_run(dir: &Path, args: &[&str]) -> Live {
        let mut c = command(dir);
        c.env("MEMSCOPE_REACHABLE", "1")
            .env("MEMSCOPE_MAX_RECORDS", LISTED)
            .arg("run")
            .args(args)
            .arg(program());
        Live::start(c)
    }

    fn start(mut c: Command) -> Live {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the running test program");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut live = Live {
            child,
            pid: 0,
            stdin,
            stdout,
            transcript: String::new(),
        };
        let ready = live.line();
        live.pid = ready
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("expected 'ready <pid>', got {ready:?}"));
        live
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        self.transcript.push_str(&l);
        l
    }

    /// Sends one command and returns (blocks, bytes) the program holds.
    pub fn send(&mut self, cmd: &str) -> (u64, u64) {
        self.start_command(cmd);
        self.reply(cmd)
    }

    /// Sends one command without waiting for its answer ([`Live::reply`]).
    pub fn start_command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The answer to the command sent last: (blocks, bytes) held.
    pub fn reply(&mut self, cmd: &str) -> (u64, u64) {
        let l = self.line();
        let v: Vec<u64> = l
            .strip_prefix("ok ")
            .unwrap_or_else(|| panic!("{cmd}: got {l:?}"))
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (v[0], v[1])
    }

    /// The number of threads the process has now.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid)).unwrap().count()
    }

    /// `memscope-cli snapshot PID [-o path]`.
    pub fn snapshot(&self, dir: &Path, out: Option<&Path>) -> Output {
        let mut c = command(dir);
        c.arg("snapshot").arg(self.pid.to_string());
        if let Some(o) = out {
            c.arg("-o").arg(o);
        }
        c.output().expect("run memscope-cli snapshot")
    }

    /// Takes a snapshot that must succeed; returns its path and contents.
    pub fn take(&self, dir: &Path, out: Option<&Path>) -> (PathBuf, Snapshot) {
        let o = self.snapshot(dir, out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "snapshot {}: {err}", self.pid);
        let path = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim_end());
        let s = memscope_format::read_snapshot_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (path, s)
    }

    /// Sends `quit` and waits; returns the exit output (stdout already read).
    pub fn quit(mut self) -> Output {
        writeln!(self.stdin, "quit").unwrap();
        drop(self.stdin);
        self.child.wait_with_output().unwrap()
    }
}

/// Live blocks of exactly `size` bytes listed in `s`.
pub fn live_of_size(s: &Snapshot, size: u64) -> Vec<&memscope_format::Allocation> {
    s.allocations
        .iter()
        .filter(|a| {
            a.size == size
                && a.timestamp_dealloc == s.process.end_unix_ns
                && a.lifetime_ns == a.timestamp_dealloc - a.timestamp_alloc
        })
        .filter(|a| s.process.end != memscope_format::EndKind::Running || !a.is_leaked)
        .collect()
}
