//! The program's view of the fatal signals memscope watches.
//!
//! memscope puts a one-shot handler on every fatal signal whose disposition
//! is the default, so that the snapshot is written before the default action
//! ends the process. Programs that *set* the default explicitly (dash does
//! at start-up for SIGTERM, many daemons after a fork) would silently remove
//! it. libmemscope.so routes the program's `sigaction`/`signal` here: setting
//! the default keeps memscope's handler (whose last act is the default
//! action), asking for the disposition answers "default", and installing a
//! handler of the program's own (or ignoring the signal) steps memscope aside.

use crate::image;
use crate::signals::{fatal_action, is_ours, set_ours, watches_signal};
use crate::thread;
use libc::c_int;

pub type RealSigaction = unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;

/// What the program sees for a signal whose disposition it left (or set)
/// to the default.
fn default_view() -> libc::sigaction {
    // SAFETY: all-zero is a valid sigaction: SIG_DFL, no flags, empty mask.
    unsafe { std::mem::zeroed() }
}

/// `sigaction(2)` as the program calls it.
///
/// # Safety
/// As `sigaction(2)`: `act` and `old` are null or valid.
pub unsafe fn program_sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
    real: RealSigaction,
) -> c_int {
    let watched = watches_signal(sig);
    if !watched || thread::current().guard.get() != 0 {
        return real(sig, act, old);
    }
    let wants_default = !act.is_null() && (*act).sa_sigaction == libc::SIG_DFL;
    if is_ours(sig) {
        if act.is_null() || wants_default {
            if !old.is_null() {
                *old = default_view();
            }
            return 0;
        }
        let r = real(sig, act, old);
        if r == 0 {
            set_ours(sig, false);
            if !old.is_null() {
                *old = default_view();
            }
        }
        return r;
    }
    if wants_default && image::tracing() {
        // Back to the default from a handler of the program's: watch again.
        let ours = fatal_action();
        let r = real(sig, &ours, old);
        if r == 0 {
            set_ours(sig, true);
        }
        return r;
    }
    real(sig, act, old)
}

/// `signal(3)` on top of [`program_sigaction`], with glibc's BSD semantics
/// (the handler stays, interrupted calls restart, the signal is blocked
/// while its handler runs).
///
/// # Safety
/// As `signal(3)`.
pub unsafe fn program_signal(sig: c_int, handler: libc::sighandler_t, real: RealSigaction) -> libc::sighandler_t {
    let mut act: libc::sigaction = std::mem::zeroed();
    act.sa_sigaction = handler;
    act.sa_flags = libc::SA_RESTART;
    libc::sigemptyset(&mut act.sa_mask);
    if libc::sigaddset(&mut act.sa_mask, sig) < 0 {
        return libc::SIG_ERR;
    }
    let mut old: libc::sigaction = std::mem::zeroed();
    if program_sigaction(sig, &act, &mut old, real) < 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}
