//! Fatal signals whose disposition is the default (including `abort`'s
//! SIGABRT): a one-shot handler has the snapshot written — by the collector
//! thread, since the signal may have interrupted `malloc` on this thread (a
//! single-threaded image starts its collector for this) — then re-raises,
//! so the process dies as it would have. A signal that lands inside
//! memscope's own code on that thread is handled when that code ends
//! ([`crate::thread::leave`] calls back [`run_deferred_signal`]), and so is
//! one that lands inside the real allocator of an image without a
//! collector thread ([`inside_allocator`]).
//! [`crate::sigchain`] keeps the program's view of these signals.

use crate::collector_thread;
use crate::ending;
use crate::image::{self, FINISHED};
use crate::inherited;
use crate::sys;
use crate::thread::{self, DEFERRED_SIGNAL as DEFERRED};
use memscope_format::EndKind;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{compiler_fence, AtomicBool, Ordering};

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

/// Puts memscope's handler on every fatal signal whose disposition is the
/// default.
pub(crate) fn install() {
    for sig in FATAL_SIGNALS {
        // SAFETY: query then (if SIG_DFL) install the handler.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
                continue;
            }
            if libc::sigaction(sig, &fatal_action(), std::ptr::null_mut()) == 0 {
                set_ours(sig, true);
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

/// Per signal: memscope's handler is installed (and the program believes
/// the disposition is the default; see [`crate::sigchain`]).
static OURS: [AtomicBool; 65] = [const { AtomicBool::new(false) }; 65];

pub(crate) fn set_ours(sig: c_int, on: bool) {
    if let Some(o) = OURS.get(sig as usize) {
        o.store(on, Ordering::Release);
    }
}

pub(crate) fn is_ours(sig: c_int) -> bool {
    OURS.get(sig as usize).is_some_and(|o| o.load(Ordering::Acquire))
}

/// A fork child handles no signal its parent deferred.
pub(crate) fn reset_in_child() {
    DEFERRED.store(0, Ordering::Relaxed);
}

/// True while a hook of an image without a collector thread (a
/// single-threaded program) runs the real allocator. One flag for the
/// process, not per thread: such an image has one thread that allocates,
/// and an image whose collector runs never writes it (no shared line
/// written by many threads).
static IN_ALLOCATOR: AtomicBool = AtomicBool::new(false);

/// Runs the real allocator function `real` for a hook. Where no collector
/// thread runs, a fatal signal that lands inside it is handled when it
/// returns: the handler would otherwise start the collector thread, and
/// `pthread_create` allocates — inside an interrupted `malloc` of a process
/// glibc knows to be single-threaded (so it takes no lock), that corrupts
/// the heap ("corrupted double-linked list", seen under SIGTERM).
#[inline(always)]
pub fn inside_allocator<T>(real: impl FnOnce() -> T) -> T {
    if collector_thread::running() {
        return real();
    }
    IN_ALLOCATOR.store(true, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    let r = real();
    compiler_fence(Ordering::SeqCst);
    IN_ALLOCATOR.store(false, Ordering::Relaxed);
    if DEFERRED.load(Ordering::Relaxed) != 0 {
        run_deferred_signal();
    }
    r
}

extern "C" fn on_fatal_signal(sig: c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SA_RESETHAND has put the default back.
    set_ours(sig, false);
    let in_allocator = IN_ALLOCATOR.load(Ordering::Relaxed) && !collector_thread::running();
    if in_allocator || thread::with(|s| s.guard.get()) > 0 {
        // This thread was inside memscope's own code, which may hold the
        // engine's lock (a single-threaded program merges its own ring):
        // writing the snapshot now would wait for it forever; or inside
        // the real allocator, where starting a thread would corrupt the
        // heap. Either ends soon; `thread::leave` (through the callback
        // `lifecycle::start` registered) or [`inside_allocator`] then
        // finishes the work below.
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
/// event of its own (no allocator call of its own is running then: see
/// `inherited`).
fn write_for_signal(sig: c_int, in_handler: bool) {
    if image::in_foreign_child() {
        return;
    }
    let end = if sig == libc::SIGABRT {
        EndKind::Abort
    } else {
        EndKind::Signal
    };
    if in_handler
        && !FINISHED.load(Ordering::Acquire)
        && !inherited::no_event_of_its_own()
        && collector_thread::start_for_signal()
    {
        collector_thread::finish_there(end, sig);
    } else {
        ending::finish(end, None, Some(sig));
    }
}
