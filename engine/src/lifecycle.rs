//! Start-up, and the handlers through which an image ends or forks (SPEC
//! §2/§3 `process.end`). The top of the engine: hosts (libmemscope.so,
//! memscope-rs) call in here and into [`crate::recorder`].
//!
//! - return from `main` / `exit`: an `on_exit` handler registered from our
//!   constructor — registered before libc registers `_dl_fini`, so it runs
//!   after every other exit handler and destructor, and it gets the status;
//! - `_exit`/`_Exit`: hooked ([`before_underscore_exit`]);
//! - fatal signals whose disposition is the default: [`crate::signals`];
//! - `exec`: the old image writes its snapshot first ([`before_exec`], called
//!   by the preload library's exec hooks);
//! - `fork`: the child keeps the parent's heap; it writes only the summary
//!   it inherited unless it makes events of its own ([`inherited`]), and
//!   gets its own collector thread at its first one.
//!
//! The snapshot of an ending image is written by [`crate::ending`].

use crate::clock::Anchor;
use crate::collector_thread;
use crate::config;
use crate::consumer::{self, ENGINE};
use crate::destination::PROGRAM_PATH;
use crate::ending;
use crate::image::{self, FINISHED, PID};
use crate::inherited;
use crate::process::ProcessInfo;
use crate::signals;
use crate::sys;
use crate::thread::{self, Guard};
use memscope_format::EndKind;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::destination::set_program_export_path;
pub use crate::ending::{before_exec, before_underscore_exit, finish, next_exec_seq, note_panic};
pub use crate::image::{start_anchor, Host};
pub use crate::running::export_now;

extern "C" {
    fn on_exit(f: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
}

/// Starts the engine: configuration, diagnostics, process facts, the exit,
/// fork and fatal-signal handlers (the collector thread comes later, see
/// `collector_thread`). Returns the facts about this image.
pub fn start(host: Host) -> ProcessInfo {
    let _g = Guard::enter();
    image::set_host(host);
    let pid = sys::getpid();
    PID.store(pid, Ordering::Relaxed);
    thread::verify_static_tls();
    let start = image::start_anchor();
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
    crate::detach::note_start(process.ppid);
    crate::info!("tracing {} (pid {}), snapshot to {}", process.exe, pid, cfg.export_path);
    ENGINE.with(|slot| consumer::state(slot).process = Some(process.clone()));
    // SAFETY: registering plain C callbacks.
    unsafe {
        on_exit(on_exit_handler, std::ptr::null_mut());
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    thread::on_deferred_signal(signals::run_deferred_signal);
    signals::install();
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
    ending::finish(EndKind::Exit, Some(status), None);
}

// ------------------------------------------------------------------ fork

/// Set by `fork_prepare` when the forking thread was already inside
/// memscope's own code: a signal handler that interrupted it called `fork`.
/// The interrupted code may hold the engine's locks, so that fork takes
/// none and changes nothing (waiting for them hung the program), and its
/// child, frozen in the middle of memscope's code, records nothing and
/// writes no snapshot. Fork handlers of different threads do not overlap
/// (glibc runs them under its own lock).
static FORK_INSIDE: AtomicBool = AtomicBool::new(false);

extern "C" fn fork_prepare() {
    let inside = thread::current().guard.get() != 0;
    thread::enter();
    FORK_INSIDE.store(inside, Ordering::Relaxed);
    if inside {
        return;
    }
    ENGINE.lock_raw();
    // The forking thread's stack may be small (see crate::alt_stack).
    crate::alt_stack::with_room(|| {
        // What earlier children found, for the ones to come.
        crate::unwind::before_fork();
        // The parent applies its rings' events before forking, once: left
        // in the rings, every child would apply the same ones again in its
        // fork handler (a shell's loop forks hundreds of children from one
        // state, and each re-grew the collector's tables: ~35 page faults
        // per child). How far: see `Mode::BeforeFork`.
        // SAFETY: locked just above, on this thread.
        if let Some(st) = unsafe { ENGINE.get_locked() }.as_mut() {
            if !FINISHED.load(Ordering::Relaxed) {
                st.drain(consumer::Mode::BeforeFork);
            }
        }
    });
    PROGRAM_PATH.lock_raw();
}

extern "C" fn fork_parent() {
    if FORK_INSIDE.load(Ordering::Relaxed) {
        thread::leave();
        return;
    }
    // SAFETY: locked by fork_prepare on this thread.
    unsafe {
        PROGRAM_PATH.unlock_raw();
        ENGINE.unlock_raw();
    }
    thread::leave();
}

/// The child's side of `fork()`: it continues the parent's heap and counts
/// as they were at the fork, and notes what the small snapshot it writes
/// if it makes no event of its own needs (see [`inherited`]). Its collector thread
/// starts with its first event (see [`collector_thread`]).
extern "C" fn fork_child() {
    if FORK_INSIDE.load(Ordering::Relaxed) {
        // See FORK_INSIDE: nothing of the engine's is touched here.
        image::ENABLED.store(false, Ordering::SeqCst);
        FINISHED.store(true, Ordering::SeqCst);
        thread::leave();
        return;
    }
    // The forking thread, the child's only one, may have a small stack.
    crate::alt_stack::with_room(child_after_fork);
}

fn child_after_fork() {
    if image::host() == image::Host::Preload {
        // Before memscope's code in the child allocates (see crate::arena)
        // or frees (see crate::own_heap).
        crate::own_heap::reset_in_child();
        crate::arena::fork_child();
    }
    PID.store(sys::getpid(), Ordering::Relaxed);
    crate::detach::fork_child();
    crate::unwind::rule_store::fork_child();
    crate::unwind::mailbox::fork_child();
    collector_thread::reset_in_child();
    signals::reset_in_child();
    crate::running::reset_in_child();
    // The lineage's first anchor stays: the child's snapshot shows blocks
    // born before the fork, which its own start anchor would extrapolate to.
    image::START.reset_in_child();
    let now = Anchor::take();
    // Its ring holds the parent's events up to the fork: drained and
    // released below; the thread claims one at its next event.
    thread::with(|s| s.ring.set(std::ptr::null()));
    // SAFETY: fork_prepare locked ENGINE and PROGRAM_PATH on this thread,
    // which is the only thread of the child; rings are never unmapped.
    unsafe {
        PROGRAM_PATH.unlock_raw();
        let st = consumer::state(ENGINE.get_locked());
        st.adopt_after_fork(now.ticks);
        if let Some(p) = st.process.as_mut() {
            p.after_fork(now);
        }
        if !FINISHED.load(Ordering::Relaxed) {
            inherited::note_fork(now);
        }
        ENGINE.unlock_raw();
    }
    thread::leave();
}
