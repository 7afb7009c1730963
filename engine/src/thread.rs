//! Per-thread state of the hooks: the thread's ring and its re-entrancy guard
//! (16 bytes: glibc takes static TLS out of every thread's stack, and a
//! thread may have only 16 KiB; larger per-thread state lives in the ring).
//!
//! One `const`-initialized thread-local without a destructor, so reaching it
//! never allocates and never registers anything, even in the first malloc of
//! a new thread or the last free of a dying one.
//!
//! Reaching it through `thread_local!` in a cdylib goes through
//! `__tls_get_addr` (~4.5 ns per event here). A library loaded at start-up
//! (as `LD_PRELOAD` does) has its TLS in the static block, at the same offset
//! from the thread pointer in every thread; once that is verified (two
//! threads agree on the offset), [`with`] uses `%fs:0 + offset` instead;
//! until then the main thread, noted at start-up, finds its own state by
//! its thread pointer (a single-threaded program never proves the offset).

use crate::ring::Ring;
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicU32, Ordering};
use std::sync::OnceLock;

pub struct ThreadState {
    /// This thread's ring, null until its first event.
    pub ring: Cell<*const Ring>,
    /// Non-zero while memscope's own code runs on this thread: its
    /// allocations (and those of libc functions it calls) are not recorded.
    pub guard: Cell<u32>,
    /// The program's cancelability, put aside while memscope's own code
    /// runs on this thread (see [`enter`]).
    cancel_state: Cell<i32>,
}

thread_local! {
    static STATE: ThreadState = const { ThreadState {
        ring: Cell::new(std::ptr::null()),
        guard: Cell::new(0),
        cancel_state: Cell::new(0),
    } };
}

/// Offset of `STATE` from the thread pointer once verified, else 0.
static STATIC_OFFSET: AtomicIsize = AtomicIsize::new(0);
/// The offset and thread pointer seen by the first thread that asked
/// ([`note_offset`]); a second thread that sees the same offset proves it.
static FIRST_OFFSET: AtomicIsize = AtomicIsize::new(0);
static FIRST_TP: AtomicIsize = AtomicIsize::new(0);
/// The main thread's thread pointer and the address of its `STATE`, noted
/// at start-up ([`verify_static_tls`]): a single-threaded program never has
/// a second thread to prove the offset, and without them each of its events
/// went through `thread_local!` and a locked compare-exchange (12% of a
/// traced `cpp_churn`). The main thread's thread block is never handed to
/// another thread, so the pair stays true for the image's life.
static MAIN_TP: AtomicIsize = AtomicIsize::new(0);
static MAIN_STATE: AtomicIsize = AtomicIsize::new(0);

#[inline(always)]
pub fn thread_pointer() -> isize {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: isize;
        // SAFETY: on x86_64 Linux %fs:0 holds the thread pointer itself.
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
        };
        tp
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// The calling thread's state. The reference must not be kept beyond the
/// current call (it dies with the thread); hooks use it and return.
#[inline(always)]
pub fn current() -> &'static ThreadState {
    let off = STATIC_OFFSET.load(Ordering::Relaxed);
    let p = if off != 0 {
        (thread_pointer() + off) as *const ThreadState
    } else {
        main_or_slow()
    };
    // SAFETY: `p` is this thread's STATE: either through the offset verified
    // (in two threads) to be STATE's offset from the thread pointer — static
    // TLS offsets are the same in every thread — or, on the main thread, the
    // address it noted itself, or through thread_local!.
    unsafe { &*p }
}

/// Before the offset is proven: the main thread's noted state, else
/// `thread_local!`.
#[inline(always)]
fn main_or_slow() -> *const ThreadState {
    let tp = thread_pointer();
    if tp != 0 && tp == MAIN_TP.load(Ordering::Relaxed) {
        return MAIN_STATE.load(Ordering::Relaxed) as *const ThreadState;
    }
    current_slow()
}

#[cold]
#[inline(never)]
fn current_slow() -> *const ThreadState {
    let p = STATE.with(|s| s as *const ThreadState);
    note_offset(p as isize - thread_pointer());
    p
}

/// Records this thread's offset of `STATE`; the first time two different
/// threads agree, the fast path is enabled.
fn note_offset(off: isize) {
    if !cfg!(target_arch = "x86_64") || off == 0 {
        return;
    }
    let tp = thread_pointer();
    match FIRST_TP.compare_exchange(0, tp, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => FIRST_OFFSET.store(off, Ordering::Relaxed),
        Err(first_tp) if first_tp != tp && FIRST_OFFSET.load(Ordering::Relaxed) == off => {
            STATIC_OFFSET.store(off, Ordering::Relaxed);
        }
        Err(_) => {}
    }
}

#[inline(always)]
pub fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    f(current())
}

/// This thread's offset of `STATE` from its thread pointer.
pub fn local_offset() -> isize {
    STATE.with(|s| s as *const ThreadState as isize) - thread_pointer()
}

/// Notes the calling thread's offset (see [`note_offset`]): called at start-up
/// and by every new thread's first event, so the fast path is on from the
/// second thread of the process, collector or not.
pub fn verify_static_tls() {
    note_offset(local_offset());
    if cfg!(target_arch = "x86_64") && crate::sys::gettid() == crate::sys::getpid() {
        MAIN_STATE.store(STATE.with(|s| s as *const ThreadState as isize), Ordering::Relaxed);
        MAIN_TP.store(thread_pointer(), Ordering::Release);
    }
}

/// While alive, this thread's allocations are memscope's own.
pub struct Guard(());

impl Guard {
    pub fn enter() -> Guard {
        enter();
        Guard(())
    }
}

extern "C" {
    // Not in the libc crate; glibc's, in libc.so.6 since 2.34 (libpthread before).
    fn pthread_setcancelstate(state: std::ffi::c_int, old: *mut std::ffi::c_int) -> std::ffi::c_int;
}
/// glibc's `PTHREAD_CANCEL_DISABLE` (`PTHREAD_CANCEL_ENABLE` is 0).
const PTHREAD_CANCEL_DISABLE: std::ffi::c_int = 1;

/// Enters memscope's own code on this thread (a [`Guard`], or the fork
/// handlers' count, which [`leave`] ends).
///
/// The thread cannot be cancelled in there: memscope's code makes system
/// calls that are cancellation points (`open`, `read`, `nanosleep`…), and a
/// `pthread_cancel` acted on at one of them unwound through memscope's
/// frames, which aborted the program. A cancel request that arrives
/// meanwhile is acted on at the program's next cancellation point.
pub fn enter() {
    with(|s| {
        let g = s.guard.get();
        if g == 0 {
            let mut old = 0;
            // SAFETY: sets this thread's own cancelability; no other effect.
            unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
            s.cancel_state.set(old);
        }
        s.guard.set(g + 1);
    });
}

impl Drop for Guard {
    fn drop(&mut self) {
        leave();
    }
}

/// A fatal signal that arrived while its thread ran memscope's own code
/// (0: none), handled when that code is left (see `signals::on_fatal_signal`).
pub(crate) static DEFERRED_SIGNAL: AtomicU32 = AtomicU32::new(0);

/// What handles a deferred signal ([`on_deferred_signal`]).
static DEFERRED_HANDLER: OnceLock<fn()> = OnceLock::new();

/// Sets what [`leave`] calls when [`DEFERRED_SIGNAL`] is set: the signal
/// handling sits above this module, which only keeps the flag.
pub(crate) fn on_deferred_signal(handler: fn()) {
    let _ = DEFERRED_HANDLER.set(handler);
}

/// Leaves memscope's own code on this thread (the end of a [`Guard`], or of
/// the fork handlers' count); once out of it, a fatal signal that arrived
/// meanwhile is handled.
pub fn leave() {
    let left = with(|s| {
        let was = s.guard.get();
        // Read before the guard drops: a signal handler that allocates
        // right after may enter and leave again, and overwrite it.
        let program_state = s.cancel_state.get();
        let g = was.saturating_sub(1);
        s.guard.set(g);
        if was == 1 {
            let mut ours = 0;
            // SAFETY: gives this thread back the cancelability `enter` put aside.
            unsafe { pthread_setcancelstate(program_state, &mut ours) };
        }
        g
    });
    if left == 0 && DEFERRED_SIGNAL.load(Ordering::Relaxed) != 0 {
        if let Some(handle) = DEFERRED_HANDLER.get() {
            handle();
        }
    }
}

/// Marks the calling thread as memscope's own for the rest of its life.
pub fn mark_internal_forever() {
    enter();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_thread_reaches_its_own_state_before_any_second_thread() {
        // The test harness runs tests on threads of its own: play the main
        // thread by noting this one, as `verify_static_tls` does for it.
        let here = std::thread::spawn(|| {
            MAIN_STATE.store(STATE.with(|s| s as *const ThreadState as isize), Ordering::Relaxed);
            MAIN_TP.store(thread_pointer(), Ordering::Release);
            let p = main_or_slow();
            let other = std::thread::spawn(|| main_or_slow() as usize).join().unwrap();
            STATE.with(|s| s.guard.set(7));
            // SAFETY: this thread's own state, alive for this closure.
            let seen = unsafe { (*p).guard.get() };
            STATE.with(|s| s.guard.set(0));
            (
                p as usize,
                STATE.with(|s| s as *const ThreadState as usize),
                other,
                seen,
            )
        })
        .join()
        .unwrap();
        let (p, own, other, seen) = here;
        assert_eq!(p, own, "the noted thread reaches its own STATE");
        assert_eq!(seen, 7);
        assert_ne!(other, p, "another thread does not reach the noted state");
        MAIN_TP.store(0, Ordering::Relaxed);
    }

    /// The calling thread's cancelability (asked by setting it back).
    fn cancel_state() -> i32 {
        let (mut now, mut again) = (0, 0);
        // SAFETY: sets and restores this thread's own cancelability.
        unsafe {
            pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut now);
            pthread_setcancelstate(now, &mut again);
        }
        now
    }

    #[test]
    fn memscopes_code_cannot_be_cancelled_and_gives_the_state_back() {
        std::thread::spawn(|| {
            let enabled = cancel_state();
            assert_eq!(enabled, 0, "a new thread is cancelable");
            {
                let _outer = Guard::enter();
                assert_eq!(cancel_state(), PTHREAD_CANCEL_DISABLE);
                {
                    let _inner = Guard::enter();
                    assert_eq!(cancel_state(), PTHREAD_CANCEL_DISABLE);
                }
                assert_eq!(cancel_state(), PTHREAD_CANCEL_DISABLE, "still inside");
            }
            assert_eq!(cancel_state(), enabled, "given back");
            // A program that disabled cancellation itself keeps it disabled.
            let mut old = 0;
            // SAFETY: this thread's own cancelability.
            unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old) };
            drop(Guard::enter());
            assert_eq!(cancel_state(), PTHREAD_CANCEL_DISABLE);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_offset_is_the_same_in_every_thread_and_reaches_the_same_state() {
        let here = local_offset();
        let there = std::thread::spawn(local_offset).join().unwrap();
        // In a test binary, TLS is static too.
        assert_eq!(here, there);
        verify_static_tls();
        std::thread::spawn(verify_static_tls).join().unwrap();
        assert_eq!(STATIC_OFFSET.load(Ordering::Relaxed), here);
        with(|s| s.guard.set(41));
        assert_eq!(STATE.with(|s| s.guard.get()), 41);
        std::thread::spawn(|| with(|s| assert_eq!(s.guard.get(), 0)))
            .join()
            .unwrap();
        with(|s| s.guard.set(0));
    }
}
