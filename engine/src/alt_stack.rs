//! Room for memscope's heavy work on the program's own threads.
//!
//! A snapshot, a fork's drain or a ring drained in place runs on whatever
//! thread the program ends, forks or allocates on, and that thread's stack
//! may be small: glibc lets a program start threads on 16 KiB stacks
//! (`PTHREAD_STACK_MIN`), and coroutines run on stacks of their own. Built
//! there, a snapshot overflowed the stack and killed a program that exits
//! from such a thread, or forks from it. Where the stack is not known to
//! be roomy — anywhere but the main thread's stack with its limit ahead —
//! the work runs on a fresh mapping instead ([`with_room`]).

/// Headroom the main thread's stack must have left to be worked on.
const ROOM: u64 = 1 << 20;
/// The fresh stack: as large as a thread's default, its pages taken only
/// as touched, a guard page below it.
const SIZE: usize = 8 << 20;
const PAGE: usize = 4096;

/// Runs `f` with at least [`ROOM`] of stack: on the current one when that
/// is the main thread's with room left, else on a fresh mapping (or, when
/// no memory can be mapped, on the current one after all).
pub fn with_room<R>(f: impl FnOnce() -> R) -> R {
    if has_room() {
        return f();
    }
    on_fresh_stack(f)
}

/// True when the stack pointer lies on the main thread's stack with at
/// least [`ROOM`] below it (its bounds: see `unwind::capture`).
fn has_room() -> bool {
    let (lo, hi) = crate::unwind::capture::main_stack();
    let sp = stack_pointer();
    lo != 0 && sp < hi && sp.saturating_sub(lo) > ROOM
}

#[inline(always)]
fn stack_pointer() -> u64 {
    let sp: u64;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads one register.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    #[cfg(not(target_arch = "x86_64"))]
    {
        sp = 0;
    }
    sp
}

/// A fresh stack of `size` bytes (its base), its pages taken only as
/// touched, the lowest one a guard page: an overflow faults there instead
/// of writing whatever lies below. `None` when no memory can be mapped.
pub fn map_stack(size: usize) -> Option<*mut std::ffi::c_void> {
    // SAFETY: a new private anonymous mapping, nothing else refers to it;
    // its first page made inaccessible.
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            return None;
        }
        libc::mprotect(base, PAGE, libc::PROT_NONE);
        Some(base)
    }
}

/// What the trampoline runs and what it leaves.
struct Call<F, R> {
    f: Option<F>,
    result: Option<std::thread::Result<R>>,
}

extern "C" fn trampoline<F: FnOnce() -> R, R>(call: *mut std::ffi::c_void) {
    // SAFETY: `on_fresh_stack` passes its own `Call`, alive until it returns.
    let call = unsafe { &mut *(call as *mut Call<F, R>) };
    if let Some(f) = call.f.take() {
        // A panic must not unwind through the switch: carried back instead.
        call.result = Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    }
}

fn on_fresh_stack<F: FnOnce() -> R, R>(f: F) -> R {
    if !cfg!(target_arch = "x86_64") {
        return f();
    }
    let Some(base) = map_stack(SIZE) else {
        return f();
    };
    let mut call = Call {
        f: Some(f),
        result: None,
    };
    // A zeroed page above the first frame: an unwinder that walks out of
    // the trampoline (a panic's backtrace) computes the switching frame's
    // return address from the new stack pointer, finds 0 there and stops,
    // rather than reading past the mapping.
    let top = base as usize + SIZE - PAGE;
    // SAFETY: `top` is 16-byte aligned inside a writable mapping that
    // outlives the call; the trampoline returns normally (panics caught).
    unsafe { switch_and_call(top, trampoline::<F, R>, &mut call as *mut _ as *mut std::ffi::c_void) };
    // SAFETY: the mapping made above, no longer in use.
    unsafe { libc::munmap(base, SIZE) };
    match call.result {
        Some(Ok(r)) => r,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => unreachable!("the trampoline always runs"),
    }
}

/// Calls `f(arg)` with the stack pointer at `top`, and comes back to the
/// current stack.
///
/// # Safety
/// `top` must be 16-byte aligned, with writable memory below it large
/// enough for `f`, which must return normally.
#[cfg(target_arch = "x86_64")]
unsafe fn switch_and_call(top: usize, f: extern "C" fn(*mut std::ffi::c_void), arg: *mut std::ffi::c_void) {
    // r12 is callee-saved: it holds the old stack pointer across the call.
    std::arch::asm!(
        "mov r12, rsp",
        "mov rsp, {top}",
        "call {f}",
        "mov rsp, r12",
        top = in(reg) top,
        f = in(reg) f,
        in("rdi") arg,
        out("r12") _,
        clobber_abi("C"),
    );
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn switch_and_call(_: usize, f: extern "C" fn(*mut std::ffi::c_void), arg: *mut std::ffi::c_void) {
    f(arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deep recursion that needs far more than a small thread's stack.
    fn depth(n: u32) -> u64 {
        let pad = [n as u64; 64];
        if n == 0 {
            return pad[0];
        }
        std::hint::black_box(&pad);
        depth(n - 1) + pad[1]
    }

    #[test]
    fn work_on_a_small_threads_stack_runs_on_a_fresh_one() {
        // 64 KiB of stack; the work needs ~2 MiB (4,000 frames of ~560 bytes).
        let t = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(|| {
                let outside = stack_pointer();
                let (inside, sum) = with_room(|| (stack_pointer(), depth(4_000)));
                (outside.abs_diff(inside) > 64 << 10, sum)
            })
            .unwrap();
        let (moved, sum) = t.join().unwrap();
        assert!(moved, "ran on another stack");
        assert_eq!(sum, (0..=4_000u64).sum::<u64>());
    }

    #[test]
    fn a_panic_comes_back_to_the_caller() {
        let t = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(|| std::panic::catch_unwind(|| with_room(|| panic!("inside"))).is_err())
            .unwrap();
        assert!(t.join().unwrap());
    }
}
