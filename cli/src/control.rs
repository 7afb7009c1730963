//! Asking a traced process for a running snapshot (the protocol is
//! described in `memscope_format::control`): used by `snapshot` and `top`.

use crate::text::term;
use memscope_format::control as proto;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A process that is traced by memscope and ours to ask.
pub struct Target {
    pub pid: u32,
    dir: PathBuf,
    start_time: u64,
}

fn start_time_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    proto::stat_start_time(&stat)
}

/// The effective uid of process `pid`.
fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// True while process `pid` exists.
pub fn alive(pid: u32) -> bool {
    start_time_of(pid).is_some()
}

fn not_traced(pid: u32) -> String {
    format!(
        "process {pid} is not traced by memscope (start it with memscope-cli run, or with LD_PRELOAD=libmemscope.so)"
    )
}

/// Removes what processes that no longer exist left in the control
/// directory (a killed process cannot take back its `<pid>.traced`; requests
/// it never answered stay): files of a pid that is gone, or whose
/// `.traced` names another start time (the pid was reused). Only files a
/// minute old: a process that just ended may still be answered.
fn sweep(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let old = |e: &std::fs::DirEntry| {
        e.metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|a| a > Duration::from_secs(60)))
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let stale = match start_time_of(pid) {
            None => true,
            Some(now) => {
                name == proto::traced_name(pid)
                    && std::fs::read_to_string(e.path()).is_ok_and(|t| t.trim().parse::<u64>().ok() != Some(now))
            }
        };
        if stale && old(&e) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// True when libmemscope.so is mapped into `pid` (traced, but perhaps not
/// reachable yet).
fn preloaded(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains("/libmemscope.so"))
}

/// Why a traced process does not answer: memscope adds no thread to a
/// single-threaded program until it is asked while the program allocates.
fn unreachable(pid: u32) -> String {
    format!(
        "process {pid} is traced but cannot be asked now: memscope adds no thread to a single-threaded \
         program, which is reached only while it allocates; start it with MEMSCOPE_REACHABLE=1 \
         (or memscope-cli run --live / --every) to reach it at any time"
    )
}

impl Target {
    /// Checks that `pid` exists, is ours to ask and is traced (a process
    /// that started a moment ago gets a little time to say so).
    pub fn find(pid: u32) -> Result<Target, String> {
        let gone = || format!("no process with pid {pid}");
        if pid == 0 {
            return Err(gone());
        }
        let start_time = start_time_of(pid).ok_or_else(gone)?;
        let uid = uid_of(pid).ok_or_else(gone)?;
        // SAFETY: no arguments, cannot fail.
        let me = unsafe { libc::geteuid() };
        if uid != me && me != 0 {
            return Err(format!(
                "process {pid} belongs to another user (uid {uid}); ask as that user (or as root)"
            ));
        }
        let dir = PathBuf::from(proto::dir_for(uid));
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0 => {}
            _ => return Err(not_traced(pid)),
        }
        sweep(&dir);
        let traced = dir.join(proto::traced_name(pid));
        let deadline = Instant::now() + Duration::from_millis(300);
        loop {
            if let Ok(text) = std::fs::read_to_string(&traced) {
                // A file left by a killed process whose pid was reused
                // carries another start time.
                return match text.trim().parse::<u64>() {
                    Ok(t) if t == start_time => Ok(Target { pid, dir, start_time }),
                    _ => Err(not_traced(pid)),
                };
            }
            if Instant::now() >= deadline {
                return Err(if preloaded(pid) {
                    unreachable(pid)
                } else {
                    not_traced(pid)
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process is alive and still traced.
    fn still_traced(&self) -> bool {
        start_time_of(self.pid) == Some(self.start_time) && self.dir.join(proto::traced_name(self.pid)).exists()
    }

    /// Asks for a running snapshot written to `path` (empty: the process's
    /// default) and waits at most `timeout` for it; returns the path written.
    /// `light`: the aggregates only (see `STATS_PREFIX`).
    pub fn request(&self, path: &str, light: bool, timeout: Duration) -> Result<String, String> {
        if path.contains('\n') {
            return Err("the output path contains a line break".into());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let id = format!("{}-{}", std::process::id(), now.as_nanos());
        let pid = self.pid;
        let req = self.dir.join(format!("{}{id}", proto::request_prefix(pid)));
        let tmp = self.dir.join(format!(".{}{id}.tmp", proto::request_prefix(pid)));
        let io = |e: std::io::Error| {
            format!(
                "cannot write a request in {}: {}",
                term(&self.dir.display().to_string()),
                crate::load::io_reason(&e)
            )
        };
        let content = if light {
            format!("{}{path}", proto::STATS_PREFIX)
        } else {
            path.to_string()
        };
        std::fs::write(&tmp, content).map_err(io)?;
        std::fs::rename(&tmp, &req).map_err(io)?;
        std::fs::write(self.dir.join(proto::wake_name(pid)), b"").map_err(io)?;
        let done = self.dir.join(proto::done_name(pid, &id));
        let started = Instant::now();
        let mut checked = started;
        loop {
            if let Ok(answer) = std::fs::read_to_string(&done) {
                let _ = std::fs::remove_file(&done);
                return match answer.split_once('\n') {
                    Some(("ok", p)) => Ok(p.to_string()),
                    Some(("error", msg)) => Err(format!("process {pid} could not write the snapshot: {}", term(msg))),
                    _ => Err(format!("process {pid} gave an unreadable answer")),
                };
            }
            let waited = started.elapsed();
            if checked.elapsed() >= Duration::from_millis(100) {
                checked = Instant::now();
                if !self.still_traced() && !done.exists() {
                    let _ = std::fs::remove_file(&req);
                    if !alive(pid) {
                        // Nobody will take the doorbell down.
                        let _ = std::fs::remove_file(self.dir.join(proto::wake_name(pid)));
                    }
                    return Err(format!(
                        "process {pid} ended before it wrote the snapshot (its final snapshot is written as usual)"
                    ));
                }
            }
            if waited >= timeout {
                let _ = std::fs::remove_file(&req);
                return Err(format!(
                    "process {pid} did not answer within {:.0} s (is it stopped? a snapshot of a very large heap takes longer: try --timeout)",
                    timeout.as_secs_f64()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
