//! The collector thread: merges the rings into the collector in the
//! background, and writes the final snapshot when a fatal signal arrives
//! (the signalled thread may be inside `malloc`).
//!
//! memscope never adds a thread to a single-threaded program: a process
//! gets its collector thread only once a thread of the program's own other
//! than the main one makes its first event ([`ensure_if_threaded`], from the
//! slow path that gives a thread its ring). Programs check that they are
//! single-threaded: chromium's zygote CHECKs that `/proc/self/task` holds one
//! entry before it forks (a collector started in every image made it die of
//! SIGTRAP), and `unshare(CLONE_NEWUSER)` fails with EINVAL in a
//! multi-threaded process (`unshare -U`, sandboxes). Until a collector runs,
//! nothing is lost: a producer whose ring is full drains it itself, and the
//! snapshot's own drain reads whatever is left. A fatal signal in an image
//! without one starts it then ([`start_for_signal`]), so the snapshot is
//! still written off the signalled thread, which may be inside `malloc`.
//!
//! Looking at a running process needs the thread: it is started at once
//! when the user asked for that up front (`MEMSCOPE_EVERY`,
//! `MEMSCOPE_REACHABLE`, `run --every`/`--live`), and in a single-threaded
//! image when `memscope-cli snapshot`/`top` asks it ([`poll_without_thread`]).

use crate::consumer::{state, Mode, ENGINE};
use crate::ending;
use crate::image::{COLLECTOR_STARTED_FOR, ENABLED, PID};
use crate::sys;
use crate::thread;
use memscope_format::EndKind;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Pid of the process whose collector thread is running (0: none).
static RUNNING_FOR: AtomicU32 = AtomicU32::new(0);
/// Futex the collector sleeps on; producers bump it to wake it.
static WAKE: AtomicU32 = AtomicU32::new(0);
static SLEEPING: AtomicBool = AtomicBool::new(false);

extern "C" fn collector_main(_: *mut libc::c_void) -> *mut libc::c_void {
    thread::mark_internal_forever();
    // SAFETY: blocking every signal in this thread only; process-directed
    // signals then go to the program's threads, whose handlers expect them.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_NAME, c"memscope".as_ptr());
    }
    crate::thread::verify_static_tls();
    let pid = PID.load(Ordering::Relaxed);
    RUNNING_FOR.store(pid, Ordering::Release);
    let mut idle_ns = 1_000_000;
    let mut running = crate::running::Server::start();
    while ENABLED.load(Ordering::Relaxed) && PID.load(Ordering::Relaxed) == pid {
        if serve_final_request() {
            continue;
        }
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| running.tick())).is_err() {
            crate::warn!("internal error while taking a running snapshot");
        }
        let ran = std::panic::catch_unwind(|| {
            ENGINE.with(|slot| {
                let st = state(slot);
                let applied = st.drain(Mode::Running);
                st.maintain();
                (st.backlog(), applied)
            })
        });
        match ran {
            // Less than half a big ring waiting, or little that could be
            // applied (events younger than the merge's slack, or a ring
            // whose head a preempted hook holds in flight): sleep until a
            // producer nudges (every quarter ring) or the timeout. Rounds
            // stay large, and a collector that polled tiny rounds (~100
            // events each) spent more than the events' own work on
            // per-round costs and on cache lines it took from producers; and
            // while it spun on a ring held in flight it took a core from the
            // very thread it waited for (a program keeping every core busy).
            // A large backlog that can be applied is worked on at once.
            Ok((n, applied)) if n < 64 * 1024 || applied < 1024 => {
                let w = WAKE.load(Ordering::Acquire);
                SLEEPING.store(true, Ordering::SeqCst);
                sys::futex_wait(&WAKE, w, idle_ns);
                SLEEPING.store(false, Ordering::Relaxed);
                idle_ns = if n == 0 {
                    (idle_ns * 2).min(20_000_000)
                } else {
                    1_000_000
                };
            }
            Ok(_) => idle_ns = 1_000_000,
            Err(_) => {
                crate::warn!("internal error in the collector; tracing stops here");
                ENABLED.store(false, Ordering::Relaxed);
                break;
            }
        }
    }
    if RUNNING_FOR.load(Ordering::Relaxed) == pid {
        RUNNING_FOR.store(0, Ordering::Release);
    }
    std::ptr::null_mut()
}

/// Starts the collector thread when the calling thread is not the image's
/// main thread: the program is multi-threaded already, so one more thread
/// changes nothing it could check. Called by a thread's first event; the
/// caller holds no lock of memscope's or of `malloc`'s.
pub fn ensure_if_threaded() {
    if sys::gettid() != PID.load(Ordering::Relaxed) {
        ensure();
    }
}

/// True when the user asked to look at running processes up front
/// (periodic snapshots, or `MEMSCOPE_REACHABLE`): every image then gets
/// its collector thread at once.
pub fn wanted_at_start() -> bool {
    let cfg = crate::config::get();
    cfg.every_ns.is_some() || cfg.reachable
}

/// Starts the collector thread now (see [`wanted_at_start`]).
pub fn start_now() {
    ensure();
}

/// Pid for which [`NEXT_POLL_NS`] and [`ADVERTISED_FOR`] hold.
static POLL_PID: AtomicU32 = AtomicU32::new(0);
/// When a producer of a thread-less image looks for requests next.
static NEXT_POLL_NS: AtomicU64 = AtomicU64::new(0);
/// Pid that tried to advertise itself from [`poll_without_thread`].
static ADVERTISED_FOR: AtomicU32 = AtomicU32::new(0);

/// Called by a producer every quarter ring while no collector thread runs
/// (a single-threaded program; its rings are drained inline): at most every
/// `POLL_MS` it advertises the image for `memscope-cli snapshot` (once), and
/// when a request waits — or running snapshots were asked for up front —
/// starts the collector thread, which serves it: the user asked, so the
/// thread is added then. A process that makes no event never comes here:
/// `memscope-cli snapshot` says so and names `MEMSCOPE_REACHABLE`.
#[cold]
pub fn poll_without_thread() {
    let pid = PID.load(Ordering::Relaxed);
    let now = crate::clock::monotonic_ns();
    let period = memscope_format::control::POLL_MS * 1_000_000;
    if POLL_PID.load(Ordering::Relaxed) != pid {
        // The first poll of an image (or of a fork child) comes a period
        // later: a short-lived process never pays for advertising.
        POLL_PID.store(pid, Ordering::Relaxed);
        NEXT_POLL_NS.store(now + period, Ordering::Relaxed);
        return;
    }
    if now < NEXT_POLL_NS.load(Ordering::Relaxed) {
        return;
    }
    NEXT_POLL_NS.store(now + period, Ordering::Relaxed);
    let _g = thread::Guard::enter();
    if wanted_at_start() || crate::control::requested() {
        ensure();
    } else if ADVERTISED_FOR.swap(pid, Ordering::Relaxed) != pid {
        crate::control::advertise();
    }
}

/// Starts the collector thread for a fatal signal and waits (up to 1 s) for
/// it to run; false if none could be started (the caller then writes the
/// snapshot itself).
pub fn start_for_signal() -> bool {
    ensure();
    let deadline = crate::clock::monotonic_ns() + 1_000_000_000;
    while !running() {
        if crate::clock::monotonic_ns() > deadline {
            return false;
        }
        sys::sleep_ns(100_000);
    }
    true
}

/// Starts this process's collector thread unless one was started (or
/// tried) already.
fn ensure() {
    let pid = PID.load(Ordering::Relaxed);
    if COLLECTOR_STARTED_FOR.load(Ordering::Relaxed) == pid || COLLECTOR_STARTED_FOR.swap(pid, Ordering::AcqRel) == pid
    {
        return;
    }
    if !spawn() {
        crate::warn!("could not start the collector thread; recording inline");
    }
}

fn spawn() -> bool {
    let _g = thread::Guard::enter();
    // SAFETY: plain pthread_create of a detached thread with a C entry point.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 1 << 20);
        let mut t: libc::pthread_t = 0;
        let ok = libc::pthread_create(&mut t, &attr, collector_main, std::ptr::null_mut()) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok
    }
}

/// True when a collector thread of this process runs (and so can be asked
/// to write the final snapshot from a signal handler).
#[inline]
pub fn running() -> bool {
    RUNNING_FOR.load(Ordering::Acquire) == PID.load(Ordering::Relaxed)
}

/// True while the collector sleeps between rounds.
#[inline]
pub fn sleeping() -> bool {
    SLEEPING.load(Ordering::Relaxed)
}

/// Wakes the collector (to drain, or to hand it a request).
#[cold]
pub fn wake() {
    WAKE.fetch_add(1, Ordering::Release);
    sys::futex_wake_all_u32(&WAKE);
}

/// Forgets the parent's collector thread (fork child); the child's starts
/// as any image's does ([`ensure_if_threaded`]).
pub fn reset_in_child() {
    RUNNING_FOR.store(0, Ordering::Release);
    SLEEPING.store(false, Ordering::Relaxed);
    FINAL_REQUEST.store(0, Ordering::Relaxed);
}

/// A pending request for the collector thread to take the final snapshot:
/// `signal << 8 | kind`.
static FINAL_REQUEST: AtomicU32 = AtomicU32::new(0);
static FINAL_DONE: AtomicU32 = AtomicU32::new(0);
const REQ_SIGNAL: u32 = 1;
const REQ_ABORT: u32 = 2;

/// Has the running collector thread take the final snapshot of an image
/// ended by fatal signal `sig` (`end`: [`EndKind::Abort`] for SIGABRT,
/// else [`EndKind::Signal`]) and waits for it, at most 10 s: the signalled
/// thread may be inside `malloc` (see `signals`).
pub fn finish_there(end: EndKind, sig: i32) {
    let kind = if end == EndKind::Abort { REQ_ABORT } else { REQ_SIGNAL };
    FINAL_REQUEST.store((sig as u32) << 8 | kind, Ordering::Release);
    wake();
    let deadline = crate::clock::monotonic_ns() + 10_000_000_000;
    while FINAL_DONE.load(Ordering::Acquire) == 0 && crate::clock::monotonic_ns() < deadline {
        sys::futex_wait(&FINAL_DONE, 0, 50_000_000);
    }
}

/// Called by the collector thread between rounds; true if it served a
/// request of [`finish_there`].
fn serve_final_request() -> bool {
    let req = FINAL_REQUEST.swap(0, Ordering::AcqRel);
    if req == 0 {
        return false;
    }
    let end = if req & 0xff == REQ_ABORT {
        EndKind::Abort
    } else {
        EndKind::Signal
    };
    ending::finish(end, None, Some((req >> 8) as i32));
    FINAL_DONE.store(1, Ordering::Release);
    sys::futex_wake_all_u32(&FINAL_DONE);
    true
}
