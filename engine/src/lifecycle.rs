//! Start-up and every way an image can end (SPEC §2/§3 `process.end`).
//!
//! - return from `main` / `exit`: an `on_exit` handler registered from our
//!   constructor — registered before libc registers `_dl_fini`, so it runs
//!   after every other exit handler and destructor, and it gets the status;
//! - `_exit`/`_Exit`: hooked;
//! - fatal signals whose disposition is the default (including `abort`'s
//!   SIGABRT): a one-shot handler asks the collector thread to write the
//!   snapshot (the signal may have interrupted `malloc` on this thread;
//!   a single-threaded image starts its collector for this), then
//!   re-raises so the process dies as it would have; a signal that lands
//!   inside memscope's own code on that thread is handled when it ends;
//! - `exec`: the old image writes its snapshot first ([`before_exec`], called
//!   by the preload library's exec hooks);
//! - `fork`: the child keeps the parent's heap; it writes only the summary
//!   it inherited unless it makes events of its own ([`inherited`]), and
//!   gets its own collector thread at its first one.

use crate::clock::{self, Anchor, Calibration};
use crate::collector_thread;
use crate::config::{self, ExportFormat};
use crate::inherited;
use crate::lock::Locked;
use crate::process::ProcessInfo;
use crate::recorder::{self, Mode, ENABLED, ENGINE, PID};
use crate::snapshot::{self, Ending};
use crate::sys;
use crate::thread::{self, Guard};
use memscope_format::EndKind;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The first clock reading of this process lineage: taken by whatever runs
/// first in an image, and kept by a `fork()` child (its own start is in its
/// `ProcessInfo`), so that every event a snapshot shows, inherited ones
/// included, lies between this anchor and the snapshot's (see
/// [`Calibration`]).
static START: Locked<Option<Anchor>> = Locked::new(None);
/// Set once the final snapshot has been taken (or is being taken).
static FINISHED: AtomicBool = AtomicBool::new(false);

/// The first clock reading of this image, or of its parent's when it is a
/// `fork()` child.
pub fn start_anchor() -> Anchor {
    START.with(|s| *s.get_or_insert_with(Anchor::take))
}

extern "C" {
    fn on_exit(f: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
}

/// Who runs the engine: libmemscope.so (its own copy of std, its own panic
/// hook) or a program that links memscope-rs (whose std it shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Preload,
    InProcess,
}

static IN_PROCESS: AtomicBool = AtomicBool::new(false);

pub fn host() -> Host {
    if IN_PROCESS.load(Ordering::Relaxed) {
        Host::InProcess
    } else {
        Host::Preload
    }
}

/// Starts the engine: configuration, diagnostics, process facts, the exit,
/// fork and fatal-signal handlers (the collector thread comes later, see
/// `collector_thread`). Returns the facts about this image.
pub fn start(host: Host) -> ProcessInfo {
    let _g = Guard::enter();
    IN_PROCESS.store(host == Host::InProcess, Ordering::Relaxed);
    let pid = sys::getpid();
    PID.store(pid, Ordering::Relaxed);
    thread::verify_static_tls();
    let start = start_anchor();
    let cfg = config::get();
    crate::log::init(cfg.log);
    for w in config::warnings() {
        crate::warn!("{w}");
    }
    if host == Host::Preload {
        // Our own copy of std: this hook only ever sees memscope's panics.
        std::panic::set_hook(Box::new(|info| crate::warn!("internal error: {info}")));
    }
    let process = ProcessInfo::capture(start);
    crate::info!("tracing {} (pid {}), snapshot to {}", process.exe, pid, cfg.export_path);
    ENGINE.with(|slot| recorder::state(slot).process = Some(process.clone()));
    // SAFETY: registering plain C callbacks.
    unsafe {
        on_exit(on_exit_handler, std::ptr::null_mut());
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    install_signal_handlers();
    crate::unwind::enable(cfg.backtrace);
    // No collector thread yet, unless running snapshots were asked for up
    // front: see `collector_thread` (single-threaded programs stay
    // single-threaded).
    if collector_thread::wanted_at_start() {
        collector_thread::start_now();
    }
    process
}

extern "C" fn on_exit_handler(status: c_int, _: *mut c_void) {
    finish(EndKind::Exit, Some(status), None);
}

/// `_exit`/`_Exit`.
pub fn before_underscore_exit(status: c_int) {
    finish(EndKind::UnderscoreExit, Some(status), None);
}

/// Set by memscope-rs's panic hook: a process that then exits with Rust's
/// panic status (101) or aborts ended by a panic.
static PANICKED: AtomicBool = AtomicBool::new(false);

pub fn note_panic() {
    PANICKED.store(true, Ordering::Release);
}

/// Takes the final snapshot of this image (once) and stops recording.
pub fn finish(kind: EndKind, exit_code: Option<i32>, signal: Option<i32>) {
    let panicked = PANICKED.load(Ordering::Acquire);
    let kind = match kind {
        EndKind::Exit if panicked && exit_code == Some(101) => EndKind::Panic,
        EndKind::Abort if panicked => EndKind::Panic,
        k => k,
    };
    if crate::select::skipped() || recorder::in_foreign_child() || FINISHED.swap(true, Ordering::AcqRel) {
        return;
    }
    let _g = Guard::enter();
    // A running snapshot being written completes first (the collector
    // thread never waits here: it is not busy when it finishes the image).
    crate::running::wait_idle(5_000_000_000);
    crate::control::withdraw();
    // No wait for hooks that passed the ENABLED check just before: one that
    // read the clock before the snapshot's end reserved its slot first, and
    // the final drain waits for that slot; one that reads it later records
    // an event after the end, which no snapshot of this image shows.
    ENABLED.store(false, Ordering::SeqCst);
    let end = inherited::End {
        kind,
        exit_code,
        signal,
        keep: false,
        in_signal: signal.is_some(),
    };
    if inherited::write_if_inherited_only(end) {
        recorder::SHUT_DOWN.store(true, Ordering::Release);
        return;
    }
    write_snapshot(kind, exit_code, signal, true);
}

/// Writes the snapshot of the image as it is now, before `exec`.
pub fn before_exec() {
    if FINISHED.load(Ordering::Acquire) || crate::select::skipped() {
        return;
    }
    let _g = Guard::enter();
    crate::running::wait_idle(5_000_000_000);
    crate::control::withdraw();
    let end = inherited::End {
        kind: EndKind::Exec,
        exit_code: None,
        signal: None,
        keep: true,
        in_signal: false,
    };
    if !inherited::write_if_inherited_only(end) {
        write_snapshot(EndKind::Exec, None, None, false);
    }
}

/// The `exec` counter for the next image of this pid. It counts the images
/// that record: a skipped image (no engine state, its own number in the
/// environment it was given) passes its number on, since it wrote no file
/// the next could repeat — so under `run cargo run`, the program cargo
/// execs is still the run's first image and writes `-o`'s path itself.
pub fn next_exec_seq() -> u32 {
    if crate::select::skipped() {
        return sys::getenv(crate::process::EXEC_SEQ_VAR)
            .and_then(|v| crate::process::parse_exec_seq(v, sys::getpid()))
            .unwrap_or(0);
    }
    ENGINE.with(|slot| recorder::state(slot).process.as_ref().map_or(0, |p| p.exec_seq) + 1)
}

/// Takes the snapshot of the image as it ends (a running one is
/// `running::take`). `last`: the final one (the collector's state is
/// consumed and recording stops for good).
fn take_snapshot(
    kind: EndKind,
    exit_code: Option<i32>,
    signal: Option<i32>,
    last: bool,
) -> (memscope_format::Snapshot, ProcessInfo) {
    let cfg = config::get();
    let start = start_anchor();
    ENGINE.with(|slot| {
        // The end is read under the lock: a drain that ran before this one
        // (bounded by its own, earlier "now") cannot have applied anything
        // later than it. The end anchor follows it: no event lies outside.
        let end = clock::now();
        let cal = Calibration::until_now(start);
        let st = recorder::state(slot);
        st.drain(Mode::UpTo(end));
        st.refresh_names();
        if last {
            recorder::SHUT_DOWN.store(true, Ordering::Release);
        }
        let process = st.process.clone().unwrap_or_else(|| ProcessInfo::capture(start));
        let dropped = st.inflight_lost + recorder::UNRECORDABLE.load(Ordering::Relaxed);
        let collector = if last {
            std::mem::replace(&mut st.collector, crate::collector::Collector::new(end, 1.0, 0))
        } else {
            st.collector.clone()
        };
        let ending = Ending {
            kind,
            end_ticks: end,
            exit_code,
            signal,
        };
        let counts = snapshot::EngineCounts {
            events_dropped: dropped,
        };
        (
            snapshot::build(collector.finish(end), &process, ending, &cal, cfg, counts),
            process,
        )
    })
}

/// The default path set by the program (memscope-rs's `enable_auto_export`),
/// used when `MEMSCOPE_EXPORT_PATH` is not set.
static PROGRAM_PATH: Locked<Option<String>> = Locked::new(None);

pub fn set_program_export_path(path: &str) {
    let _g = Guard::enter();
    PROGRAM_PATH.with(|p| *p = Some(path.to_string()));
}

/// Writes a snapshot of the image as it is now to `path` (JSON, or the
/// HTML report when the path ends in `.html`); recording goes on.
pub fn export_now(path: &str) -> std::io::Result<()> {
    let _g = Guard::enter();
    let (snap, _) = crate::running::take();
    crate::running::write(path, &snap)
}

fn write_snapshot(kind: EndKind, exit_code: Option<i32>, signal: Option<i32>, last: bool) {
    let cfg = config::get();
    if !cfg.auto_export {
        // Nothing to build: only stop recording for good.
        if last {
            recorder::SHUT_DOWN.store(true, Ordering::Release);
        }
        return;
    }
    let t0 = clock::monotonic_ns();
    let (snap, process) = take_snapshot(kind, exit_code, signal, last);
    let built_ms = (clock::monotonic_ns() - t0) as f64 / 1e6;
    let overflowed = crate::unwind::sites::overflowed();
    if overflowed > 0 {
        crate::warn!(
            "{overflowed} allocations came from stacks beyond the {} distinct call sites memscope tells apart; \
             they are counted in call site 0 (no frames)",
            crate::unwind::sites::MAX_SITES
        );
    }
    let path = snapshot_path(&process);
    let mut written = Vec::new();
    if cfg.format != ExportFormat::Html {
        let t = clock::monotonic_ns();
        let r = snapshot::write_atomic(&path, |w| snap.write_json(w).map_err(std::io::Error::from));
        note_written(r, &path, built_ms, t, &mut written);
    }
    if cfg.format != ExportFormat::Json {
        let html = crate::paths::with_extension(&path, "html");
        let t = clock::monotonic_ns();
        let r = snapshot::write_atomic(&html, |w| memscope_report::write_html(std::slice::from_ref(&snap), w));
        note_written(r, &html, built_ms, t, &mut written);
    }
    if let Some(m) = &cfg.manifest {
        for p in &written {
            let _ = snapshot::append_manifest(m, p);
        }
    }
}

/// Where this image's snapshot goes (SPEC §2).
fn snapshot_path(process: &ProcessInfo) -> String {
    snapshot_path_with(process, None)
}

/// [`snapshot_path`], or the same rules applied to `template` when given.
pub(crate) fn snapshot_path_with(process: &ProcessInfo, template: Option<&str>) -> String {
    let cfg = config::get();
    let template = match (template, PROGRAM_PATH.with(|p| p.clone())) {
        (Some(t), _) => t.to_string(),
        (None, Some(p)) if !cfg.export_path_from_env => p,
        _ => cfg.export_path.clone(),
    };
    let image = crate::paths::Image {
        pid: process.pid,
        exe_name: process.exe_name(),
        exec_seq: process.exec_seq,
        is_root: process.is_root,
    };
    crate::paths::absolute(&crate::paths::expand(&template, &image), &process.cwd)
}

fn note_written(r: std::io::Result<()>, path: &str, built_ms: f64, start: u64, written: &mut Vec<String>) {
    match r {
        Ok(()) => {
            let ms = (clock::monotonic_ns() - start) as f64 / 1e6;
            crate::info!("wrote {path}: snapshot built in {built_ms:.1} ms, written in {ms:.1} ms");
            written.push(path.to_string());
        }
        Err(e) => crate::warn!("cannot write the snapshot to {path}: {e}"),
    }
}

// ------------------------------------------------------------------ fork

extern "C" fn fork_prepare() {
    thread::with(|s| s.guard.set(s.guard.get() + 1));
    ENGINE.lock_raw();
    PROGRAM_PATH.lock_raw();
}

extern "C" fn fork_parent() {
    // SAFETY: locked by fork_prepare on this thread.
    unsafe {
        PROGRAM_PATH.unlock_raw();
        ENGINE.unlock_raw();
    }
    thread::leave();
}

/// The child's side of `fork()`: it continues the parent's heap and counts
/// as they were at the fork, and prepares the small snapshot it writes if
/// it makes no event of its own (see [`inherited`]). Its collector thread
/// starts with its first event (see [`collector_thread`]).
extern "C" fn fork_child() {
    PID.store(sys::getpid(), Ordering::Relaxed);
    collector_thread::reset_in_child();
    crate::running::reset_in_child();
    // The lineage's first anchor stays: the child's snapshot shows blocks
    // born before the fork, which its own start anchor would extrapolate to.
    START.reset_in_child();
    FINAL_REQUEST.store(0, Ordering::Relaxed);
    DEFERRED.store(0, Ordering::Relaxed);
    let now = Anchor::take();
    // Its ring holds the parent's events up to the fork: drained and
    // released below; the thread claims one at its next event.
    thread::with(|s| s.ring.set(std::ptr::null()));
    // SAFETY: fork_prepare locked ENGINE and PROGRAM_PATH on this thread,
    // which is the only thread of the child; rings are never unmapped.
    unsafe {
        PROGRAM_PATH.unlock_raw();
        let st = recorder::state(ENGINE.get_locked());
        st.adopt_after_fork(now.ticks);
        if let Some(p) = st.process.as_mut() {
            p.after_fork(now);
        }
        if !FINISHED.load(Ordering::Relaxed) {
            if let Some(p) = st.process.as_ref() {
                inherited::prepare(st, p, start_anchor(), now, snapshot_path(p));
            }
        }
        ENGINE.unlock_raw();
    }
    thread::leave();
}

// --------------------------------------------------------------- signals

/// Signals whose default action kills the process, and which memscope
/// catches (when their disposition is the default) to write the snapshot.
const FATAL_SIGNALS: [c_int; 18] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGSEGV,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGSYS,
];

fn install_signal_handlers() {
    for sig in FATAL_SIGNALS {
        // SAFETY: query then (if SIG_DFL) install the handler.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
                continue;
            }
            if libc::sigaction(sig, &fatal_action(), std::ptr::null_mut()) == 0 {
                crate::sigchain::set_ours(sig, true);
            }
        }
    }
}

/// memscope's handler for a fatal signal: sa_mask blocks everything while
/// it runs; SA_RESETHAND makes it one-shot, so the disposition is the
/// default again when it re-raises.
pub(crate) fn fatal_action() -> libc::sigaction {
    // SAFETY: a zeroed sigaction is valid; the fields are then set.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_fatal_signal as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_ONSTACK;
    // SAFETY: sa_mask is a valid sigset_t.
    unsafe { libc::sigfillset(&mut sa.sa_mask) };
    sa
}

/// Whether memscope puts its handler on `sig` when its disposition is the
/// default.
pub(crate) fn watches_signal(sig: c_int) -> bool {
    FATAL_SIGNALS.contains(&sig)
}

/// Whether this image is still being traced (its snapshot not yet written).
pub(crate) fn tracing() -> bool {
    PID.load(Ordering::Relaxed) != 0 && !FINISHED.load(Ordering::Acquire)
}

/// A pending request for the collector thread: `signal << 8 | kind`.
static FINAL_REQUEST: AtomicU32 = AtomicU32::new(0);
static FINAL_DONE: AtomicU32 = AtomicU32::new(0);
const REQ_SIGNAL: u32 = 1;
const REQ_ABORT: u32 = 2;

/// A fatal signal that arrived while its thread ran memscope's own code
/// (0: none), handled when that code is left ([`run_deferred_signal`]).
static DEFERRED: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_fatal_signal(sig: c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SA_RESETHAND has put the default back.
    crate::sigchain::set_ours(sig, false);
    if thread::with(|s| s.guard.get()) > 0 {
        // This thread was inside memscope's own code, which may hold the
        // engine's lock (a single-threaded program merges its own ring):
        // writing the snapshot now would wait for it forever. That code
        // ends soon; `thread::leave` then finishes the work below.
        DEFERRED.store(sig as u32, Ordering::Release);
        return;
    }
    // SAFETY: errno is thread-local; saved and restored around our work.
    let errno = unsafe { *libc::__errno_location() };
    write_for_signal(sig, true);
    // SAFETY: re-raise on this thread; the signal is blocked until we return,
    // then the (default again) disposition takes the process down.
    unsafe {
        *libc::__errno_location() = errno;
        libc::syscall(libc::SYS_tgkill, sys::getpid() as i64, sys::gettid() as i64, sig as i64);
    }
}

/// Handles a fatal signal deferred by [`on_fatal_signal`]: this thread has
/// just left memscope's code, so it writes the snapshot itself and raises
/// the signal again (its default disposition ends the process).
pub(crate) fn run_deferred_signal() {
    if DEFERRED.load(Ordering::Relaxed) == 0 {
        return;
    }
    let sig = DEFERRED.swap(0, Ordering::AcqRel) as c_int;
    if sig == 0 {
        return;
    }
    write_for_signal(sig, false);
    // SAFETY: as in on_fatal_signal; not in a handler, so the default
    // disposition acts at once.
    unsafe {
        libc::syscall(libc::SYS_tgkill, sys::getpid() as i64, sys::gettid() as i64, sig as i64);
    }
}

/// Writes the snapshot for fatal signal `sig`. In the handler the thread
/// may have been inside `malloc`: the collector thread writes then
/// (started for it in a single-threaded image), unless the image has no
/// event of its own (its snapshot needs no `malloc`).
fn write_for_signal(sig: c_int, in_handler: bool) {
    let kind = if sig == libc::SIGABRT { REQ_ABORT } else { REQ_SIGNAL };
    if recorder::in_foreign_child() {
        return;
    }
    if in_handler
        && !FINISHED.load(Ordering::Acquire)
        && !inherited::no_event_of_its_own()
        && collector_thread::start_for_signal()
    {
        FINAL_REQUEST.store((sig as u32) << 8 | kind, Ordering::Release);
        collector_thread::wake();
        let deadline = clock::monotonic_ns() + 10_000_000_000;
        while FINAL_DONE.load(Ordering::Acquire) == 0 && clock::monotonic_ns() < deadline {
            sys::futex_wait(&FINAL_DONE, 0, 50_000_000);
        }
    } else {
        finish_from_signal(kind, sig);
    }
}

fn finish_from_signal(kind: u32, sig: c_int) {
    let end = if kind == REQ_ABORT {
        EndKind::Abort
    } else {
        EndKind::Signal
    };
    finish(end, None, Some(sig));
}

/// Called by the collector thread between rounds; true if it served a request.
pub fn serve_final_request() -> bool {
    let req = FINAL_REQUEST.swap(0, Ordering::AcqRel);
    if req == 0 {
        return false;
    }
    finish_from_signal(req & 0xff, (req >> 8) as c_int);
    FINAL_DONE.store(1, Ordering::Release);
    sys::futex_wake_all_u32(&FINAL_DONE);
    true
}
