//! The snapshot of a `fork()` child that made no event of its own before it
//! ended or called `exec` (SPEC §2, `"inherited_only": true`): the usual
//! child of a launcher (a shell, cargo, make) between `fork` and `exec`.
//!
//! Its summary is the parent's at the fork, built from the collector's
//! totals alone — no record, call site or name of the parent's heap is
//! copied, symbolized or serialized. It is built when the child ends, and
//! only if the child made no event by then: at the fork only the moment
//! and the event counts are noted (most children of a shell allocate before
//! they `exec`, and building it at every fork cost each ~90 µs and 25 page
//! faults). Building allocates, and the ending may be a fatal signal's
//! handler: that is safe here because the child has made no allocator call
//! of its own that is still running — a signal that lands inside one (a
//! child's first `malloc`, before its event is recorded) or inside
//! memscope's code is deferred until it returns (see `signals`) — and it
//! is single-threaded (another thread's start allocates: an event). Once
//! built (an `exec`, which may fail, keeps it) it is written again without
//! allocating.

use crate::clock::{Anchor, Calibration};
use crate::config::{self, ExportFormat};
use crate::consumer::{self, EngineState, ENGINE};
use crate::image::{self, UNRECORDABLE};
use crate::lock::Locked;
use crate::process::ProcessInfo;
use crate::{handoff, paths, registry, snapshot, sys};
use memscope_format::{EndKind, Snapshot};
use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Everything the snapshot of a child without events of its own needs.
pub struct Prepared {
    snap: Snapshot,
    /// Room for the JSON, with margin for the ending's fields: allocated,
    /// not written (zeroing 16 KiB was half of a child's cost here, its
    /// pages faulted in by every child of a shell, most of which allocate
    /// and never write this snapshot).
    buf: Vec<u8>,
    /// The JSON's path and temporary file: the snapshot's path, or beside
    /// it when only HTML is asked for (written then only from a signal
    /// handler, where the report cannot be rendered).
    json: CString,
    tmp: CString,
    /// The report's path when one is asked for.
    html: Option<String>,
    manifest: Option<CString>,
    /// run's socket (`MEMSCOPE_HANDOFF`), tried before the file.
    handoff: Option<CString>,
    /// Ring slots reserved and unrecordable events at the fork: the child
    /// has had no event of its own while both are unchanged.
    reserved: u64,
    unrecordable: u64,
}

/// The prepared snapshot of this child (null when there is none).
static PREPARED: AtomicPtr<Prepared> = AtomicPtr::new(std::ptr::null_mut());

/// Slots reserved so far in every ring: a lock-free count of every event
/// recorded or being recorded.
fn reserved_total() -> u64 {
    registry::rings().map(|r| r.reserved()).sum()
}

/// What a child noted at its fork, until its snapshot is built.
#[derive(Clone, Copy)]
struct Forked {
    fork: Anchor,
    /// Ring slots reserved and unrecordable events at the fork.
    reserved: u64,
    unrecordable: u64,
}

static FORKED: Locked<Option<Forked>> = Locked::new(None);

/// Notes a child forked at `fork` (called by the fork handler with the
/// engine state adopted). Allocates nothing and frees nothing.
pub fn note_fork(fork: Anchor) {
    // What an ancestor prepared describes the ancestor: left, not freed
    // (freeing writes to heap pages shared with the parent).
    PREPARED.store(std::ptr::null_mut(), Ordering::Release);
    FORKED.reset_in_child();
    let noted = config::get().auto_export.then(|| Forked {
        fork,
        reserved: reserved_total(),
        unrecordable: UNRECORDABLE.load(Ordering::Relaxed),
    });
    FORKED.with(|f| *f = noted);
}

/// The child's snapshot, built now if it still has no event of its own
/// (None otherwise, or when there is nothing to build).
fn build_if_no_event() -> Option<Prepared> {
    let forked = FORKED.with(|f| f.take())?;
    if !unchanged(forked.reserved, forked.unrecordable) {
        return None;
    }
    ENGINE.with(|slot| {
        let st = consumer::state(slot);
        let process = st.process.as_ref()?;
        let path = crate::destination::snapshot_path(process);
        build(st, process, image::start_anchor(), forked, path)
    })
}

fn unchanged(reserved: u64, unrecordable: u64) -> bool {
    reserved_total() == reserved && UNRECORDABLE.load(Ordering::Relaxed) == unrecordable
}

fn build(st: &EngineState, process: &ProcessInfo, start: Anchor, forked: Forked, path: String) -> Option<Prepared> {
    let fork = forked.fork;
    let cfg = config::get();
    let cal = Calibration::of_clock(start, fork);
    // The ending's fields are set when it comes.
    let ending = snapshot::Ending {
        kind: EndKind::Exit,
        end_ticks: fork.ticks,
        exit_code: None,
        signal: None,
        process_ends: false,
        // Read when it is written (see `write`).
        resident: snapshot::Resident::default(),
    };
    let counts = snapshot::EngineCounts {
        events_dropped: st.inflight_lost + UNRECORDABLE.load(Ordering::Relaxed),
    };
    // Nothing reads /proc/self/status while it is only prepared (the name
    // cache's seccomp check would): it is read once, when it is written.
    let mut snap = crate::rss::with_reads_deferred(|| {
        snapshot::build(st.collector.inherited_only(), process, ending, &cal, cfg, counts)
    });
    snap.summary.live_at_exit_allocations = st.collector.live_count() as u64;
    // JSON escapes a byte into at most 6; the rest (keys, numbers) is small.
    let text: usize = process.argv.iter().map(String::len).sum::<usize>() + process.exe.len() + process.cwd.len();
    let html = (cfg.format != ExportFormat::Json).then(|| paths::with_extension(&path, "html"));
    let json = match cfg.format {
        ExportFormat::Html => paths::with_extension(&path, "json"),
        _ => path,
    };
    let (dir, name) = json.rsplit_once('/')?;
    let tmp = format!("{dir}/.{name}.{}.0.tmp", process.pid);
    let manifest = cfg.manifest.as_ref().and_then(|m| CString::new(m.as_str()).ok());
    let handoff = cfg.handoff.as_ref().and_then(|h| CString::new(h.as_str()).ok());
    Some(Prepared {
        snap,
        buf: Vec::with_capacity(16_384 + 6 * text),
        json: CString::new(json).ok()?,
        tmp: CString::new(tmp).ok()?,
        html,
        manifest,
        handoff,
        reserved: forked.reserved,
        unrecordable: forked.unrecordable,
    })
}

/// How the image ended.
#[derive(Clone, Copy)]
pub struct End {
    pub kind: EndKind,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Not the final ending (`exec`, which may fail): keep what was prepared.
    pub keep: bool,
    /// In a fatal signal's handler: write nothing that allocates.
    pub in_signal: bool,
    /// The end's clock reading when it was taken already (an ending
    /// finished by a helper, see [`crate::detach`]); else read when written.
    pub at: Option<u64>,
}

/// True while this image has made no event of its own (a fork child still
/// as it was at the fork, or an image with no event at all): no allocator
/// call of its own is running then, so its snapshot can be written from
/// any thread, a fatal signal's handler too (see the module's notes).
pub fn no_event_of_its_own() -> bool {
    if let Some(f) = FORKED.with(|f| *f) {
        return unchanged(f.reserved, f.unrecordable);
    }
    // SAFETY: PREPARED is only freed by the thread that swaps it out.
    match unsafe { PREPARED.load(Ordering::Acquire).as_ref() } {
        Some(prep) => unchanged(prep.reserved, prep.unrecordable),
        None => reserved_total() == 0,
    }
}

/// Writes this image's snapshot if it is a fork child that has made no
/// event of its own, and says so (else the caller writes the full one).
pub fn write_if_inherited_only(end: End) -> bool {
    let mut p = PREPARED.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if p.is_null() {
        match build_if_no_event() {
            Some(prep) => p = Box::into_raw(Box::new(prep)),
            None => return false,
        }
    }
    // SAFETY: PREPARED held the only pointer to it, and now this call does.
    let Some(prep) = (unsafe { p.as_mut() }) else {
        return false;
    };
    if !unchanged(prep.reserved, prep.unrecordable) {
        // The child had events: its full snapshot is written instead. Not
        // freed in a signal handler (free could deadlock there), else freed.
        if !end.in_signal {
            // SAFETY: from Box::into_raw in `prepare`, reachable nowhere else.
            drop(unsafe { Box::from_raw(p) });
        }
        return false;
    }
    write(prep, end);
    if end.keep {
        PREPARED.store(p, Ordering::Release);
    }
    true
}

fn write(prep: &mut Prepared, end: End) {
    let t0 = crate::clock::monotonic_ns();
    let s = &mut prep.snap;
    let end_unix = match end.at {
        Some(ticks) => Calibration::until_now(image::start_anchor()).unix_ns(ticks),
        None => Anchor::take().unix_ns,
    }
    .max(s.process.start_unix_ns);
    s.process.end = end.kind;
    s.process.exit_code = end.exit_code;
    s.process.signal = end.signal;
    s.process.end_unix_ns = end_unix;
    let (rss_now, rss_peak) = crate::rss::now_and_peak();
    if let Some(last) = s.timeline.last_mut() {
        last.0 = end_unix;
        last.2 = rss_now;
    }
    s.summary.peak_rss_bytes = rss_peak;
    let json = prep.json.to_str().unwrap_or("");
    if prep.html.is_none() || end.in_signal {
        prep.buf.clear();
        let r = match s.write_json(&mut Bounded(&mut prep.buf)) {
            Ok(()) => {
                let bytes = &prep.buf[..];
                let handed = prep.html.is_none()
                    && prep
                        .handoff
                        .as_deref()
                        .is_some_and(|h| handoff::send_bytes(h, &prep.json, bytes));
                if handed {
                    crate::info!("handed {json} (inherited only) over to memscope-cli run");
                    return;
                }
                write_atomic(&prep.json, &prep.tmp, bytes)
            }
            Err(e) => Err(std::io::Error::from(e)),
        };
        note(r, json, prep.manifest.as_deref(), t0, end.in_signal);
    }
    if let Some(html) = prep.html.as_deref().filter(|_| !end.in_signal) {
        let r = snapshot::write_atomic(html, |w| {
            memscope_report::write_html(std::slice::from_ref(&prep.snap), w)
        });
        note(r, html, prep.manifest.as_deref(), t0, false);
    }
}

fn note(r: std::io::Result<()>, path: &str, manifest: Option<&std::ffi::CStr>, t0: u64, in_signal: bool) {
    match r {
        Ok(()) => {
            let us = (crate::clock::monotonic_ns() - t0) / 1000;
            crate::info!("wrote {path} (inherited only) in {us} µs");
            if let Some(m) = manifest {
                append_line(m, path.as_bytes());
            }
        }
        // An OS error's text is built in a String: not in a signal handler.
        Err(e) => match e.raw_os_error().filter(|_| in_signal) {
            Some(code) => crate::warn!("cannot write the snapshot to {path}: os error {code}"),
            None => crate::warn!("cannot write the snapshot to {path}: {e}"),
        },
    }
}

/// Writes into a vector's spare capacity and never past it: no allocation
/// (the ending may be a signal handler's).
struct Bounded<'a>(&'a mut Vec<u8>);

impl std::io::Write for Bounded<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(self.0.capacity() - self.0.len());
        if n == 0 && !bytes.is_empty() {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.0.extend_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `snapshot::write_atomic` with system calls only: the same temporary file
/// (0600, never through a symlink) renamed over the target, which must not
/// be a device, fifo or directory. A temporary file left by a dead process
/// with this pid is removed first.
fn write_atomic(path: &std::ffi::CStr, tmp: &std::ffi::CStr, bytes: &[u8]) -> std::io::Result<()> {
    let err = std::io::Error::last_os_error;
    // SAFETY: NUL-terminated paths, a stat buffer on the stack, a
    // descriptor this function opens and closes.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::lstat(path.as_ptr(), &mut st) == 0 {
            let t = st.st_mode & libc::S_IFMT;
            if t != libc::S_IFREG && t != libc::S_IFLNK {
                return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
            }
        }
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let mut fd = libc::open(tmp.as_ptr(), flags, 0o600);
        if fd < 0 && err().raw_os_error() == Some(libc::EEXIST) {
            libc::unlink(tmp.as_ptr());
            fd = libc::open(tmp.as_ptr(), flags, 0o600);
        }
        if fd < 0 {
            return Err(err());
        }
        let mut r = sys::write_all(fd, bytes);
        if libc::close(fd) != 0 && r.is_ok() {
            r = Err(err());
        }
        if r.is_ok() && libc::rename(tmp.as_ptr(), path.as_ptr()) != 0 {
            r = Err(err());
        }
        if r.is_err() {
            libc::unlink(tmp.as_ptr());
        }
        r
    }
}

/// Appends `line` and a newline to `file` in one `write` (as
/// `snapshot::append_manifest` does), from a buffer on the stack.
fn append_line(file: &std::ffi::CStr, line: &[u8]) {
    let mut buf = [0u8; 4096];
    if line.len() >= buf.len() {
        return;
    }
    buf[..line.len()].copy_from_slice(line);
    buf[line.len()] = b'\n';
    // SAFETY: a NUL-terminated path; the descriptor is closed right after.
    unsafe {
        let fd = libc::open(
            file.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
            0o600,
        );
        if fd >= 0 {
            let _ = sys::write_all(fd, &buf[..=line.len()]);
            libc::close(fd);
        }
    }
}
