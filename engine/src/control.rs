//! The library's side of the on-demand snapshot protocol (the names and
//! the reasons for files are in `memscope_format::control`): advertising
//! that this image is traced, finding requests, answering them.
//!
//! Only the collector thread, a producer of a single-threaded image polling
//! (`collector_thread::poll_without_thread`), and an ending image withdrawing its
//! advertisement) comes here, always with memscope's guard held.

use crate::sys;
use memscope_format::control as proto;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Pid whose `<pid>.traced` file this image wrote (0: none).
static ADVERTISED: AtomicU32 = AtomicU32::new(0);

/// The control directory, created if needed; `None` (with one warning) when
/// it cannot be used safely.
fn dir() -> Option<&'static str> {
    static DIR: OnceLock<Option<String>> = OnceLock::new();
    DIR.get_or_init(|| {
        // SAFETY: no arguments, cannot fail.
        let uid = unsafe { libc::geteuid() };
        let dir = proto::dir_for(uid);
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0 => Some(dir),
            Ok(_) => {
                crate::warn!(
                    "{dir} is not a directory of this user with mode 0700; memscope-cli snapshot cannot reach this process"
                );
                None
            }
            Err(e) => {
                crate::warn!("cannot create {dir}: {e}; memscope-cli snapshot cannot reach this process");
                None
            }
        }
    })
    .as_deref()
}

/// Writes `name` in the control directory atomically (temporary, rename).
fn write_file(dir: &str, name: &str, content: &[u8]) -> std::io::Result<()> {
    let tmp = format!("{dir}/.{name}.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(content)?;
    drop(f);
    std::fs::rename(&tmp, format!("{dir}/{name}"))
}

/// This process's start time as `/proc/<pid>/stat` shows it.
fn start_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    proto::stat_start_time(&stat)
}

/// Says "this image is traced" (called by its collector thread); true
/// when it could.
pub fn advertise() -> bool {
    let pid = sys::getpid();
    let (Some(dir), Some(start)) = (dir(), start_time()) else {
        return false;
    };
    match write_file(dir, &proto::traced_name(pid), format!("{start}\n").as_bytes()) {
        Ok(()) => {
            ADVERTISED.store(pid, Ordering::Release);
            true
        }
        Err(e) => {
            crate::warn!("cannot write to {dir}: {e}; memscope-cli snapshot cannot reach this process");
            false
        }
    }
}

/// True while this image's advertisement stands (it is taken back before
/// an `exec`, which may fail and leave the image running).
pub fn advertised() -> bool {
    ADVERTISED.load(Ordering::Acquire) == sys::getpid()
}

/// Takes the advertisement back (the image ends or calls `exec`); pending
/// requests stay for the CLI to see unanswered and clean up.
pub fn withdraw() {
    let pid = sys::getpid();
    if ADVERTISED.load(Ordering::Acquire) != pid {
        return;
    }
    ADVERTISED.store(0, Ordering::Release);
    if let Some(dir) = dir() {
        let _ = std::fs::remove_file(format!("{dir}/{}", proto::traced_name(pid)));
    }
}

/// True when a request waits for this (advertised) image: its doorbell
/// file exists. One `access` call; the request stays for the collector.
pub fn requested() -> bool {
    let pid = sys::getpid();
    match dir().filter(|_| ADVERTISED.load(Ordering::Acquire) == pid) {
        Some(dir) => std::path::Path::new(&format!("{dir}/{}", proto::wake_name(pid))).exists(),
        None => false,
    }
}

/// A request from `memscope-cli snapshot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    /// Where the snapshot goes; empty: the default running-snapshot path.
    pub path: String,
    /// Only the aggregates (see `memscope_format::control::STATS_PREFIX`).
    pub light: bool,
}

/// The requests waiting for this image, each removed as it is read. Costs
/// one failing `unlink` when there are none.
pub fn take_requests() -> Vec<Request> {
    let pid = sys::getpid();
    let Some(dir) = dir().filter(|_| ADVERTISED.load(Ordering::Acquire) == pid) else {
        return Vec::new();
    };
    if std::fs::remove_file(format!("{dir}/{}", proto::wake_name(pid))).is_err() {
        return Vec::new();
    }
    let prefix = proto::request_prefix(pid);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix(&prefix) else { continue };
        let full = format!("{dir}/{name}");
        let content = std::fs::read(&full).unwrap_or_default();
        let _ = std::fs::remove_file(&full);
        if proto::valid_id(id) && content.len() <= 4096 {
            let text = String::from_utf8_lossy(&content);
            let text = text.trim_end_matches('\n');
            let (light, path) = match text.strip_prefix(proto::STATS_PREFIX) {
                Some(p) => (true, p),
                None => (false, text),
            };
            out.push(Request {
                id: id.to_string(),
                path: path.to_string(),
                light,
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Answers request `id`: the path written, or why not.
pub fn reply(id: &str, result: Result<&str, String>) {
    let Some(dir) = dir() else { return };
    let body = match result {
        Ok(path) => format!("ok\n{path}"),
        Err(msg) => format!("error\n{msg}"),
    };
    if let Err(e) = write_file(dir, &proto::done_name(sys::getpid(), id), body.as_bytes()) {
        crate::warn!("cannot answer a snapshot request in {dir}: {e}");
    }
}
