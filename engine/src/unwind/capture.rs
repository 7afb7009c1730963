//! The stack walk of the hot path: from the allocation hook up through the
//! program's frames, by cached unwind rules ([`super::rules`]), hashed into
//! a call-site id on the way.
//!
//! Every memory read is checked against the thread's stack bounds and every
//! step must move strictly up the stack, so a corrupt frame, a stack memscope
//! does not know (a signal's alternate stack, a coroutine's) or code without
//! unwind info ends the walk early; it never faults.

use super::memo::ReadLog;
use super::rules::{self, Step};
use super::sites;
use crate::thread;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};

/// Deepest stack memscope records.
pub const MAX_DEPTH: usize = 128;

/// Text range of the module the walk starts in (libmemscope.so): its
/// frames are the hooks', dropped from the top of every stack.
static SELF_LO: AtomicU64 = AtomicU64::new(0);
static SELF_HI: AtomicU64 = AtomicU64::new(0);

/// Notes which module holds this code (after the module list is known).
pub fn find_self() {
    let here = find_self as fn() as usize as u64;
    if let Some(m) = super::modules::current().find(here) {
        SELF_LO.store(m.text_start, Ordering::Relaxed);
        SELF_HI.store(m.text_end, Ordering::Relaxed);
    }
}

/// The call site of the caller's caller, at most `depth` frames deep.
/// `skip_self`: leave out the leading frames that belong to memscope's own
/// module (true for libmemscope.so; memscope-rs lives in the program's own
/// binary and names its frames instead).
#[inline(never)]
pub fn site(depth: usize, skip_self: bool) -> u32 {
    if thread::current().guard.get() != 0 {
        return 0;
    }
    let (ip, sp, bp): (u64, u64, u64);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads three registers, touches no memory.
    unsafe {
        std::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip, sp = out(reg) sp, bp = out(reg) bp,
            options(nomem, nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    return 0;
    let Some(hi) = stack_top(sp) else { return 0 };
    let mut buf = [MaybeUninit::<u64>::uninit(); MAX_DEPTH];
    let (n, _) = walk(
        Regs { ip, sp, bp },
        false,
        hi,
        &mut buf[..depth.min(MAX_DEPTH)],
        skip_self,
        None,
    );
    intern(&buf, n)
}

/// The call site of an allocator call whose caller's registers are known
/// (see [`super::Caller`]): the first frame is the return address the call
/// pushed.
#[inline(never)]
pub fn site_of_caller(depth: usize, caller: super::Caller) -> u32 {
    let ts = thread::current();
    if ts.guard.get() != 0 {
        return 0;
    }
    let sp = caller.sp as u64;
    let Some(hi) = stack_top(sp) else { return 0 };
    if sp + 8 > hi || sp % 8 != 0 {
        return 0;
    }
    // SAFETY: inside this thread's stack (checked above), at the hook's
    // entry stack pointer, which holds the return address.
    let ra = unsafe { std::ptr::read_volatile(caller.sp as *const u64) };
    let (bp, generation) = (caller.bp as u64, super::modules::generation());
    // The memo lives in the thread's ring (none yet at its first event).
    // SAFETY: rings are never unmapped, and only their owner (this thread)
    // touches the memo.
    let memo = unsafe { ts.ring.get().as_ref() }.map(|r| &r.memo.0);
    // SAFETY: `sp` is this thread's stack pointer at the hook's entry, as
    // for the walk that stored the entry.
    if let Some(id) = memo.and_then(|m| unsafe { m.lookup(ra, sp, bp, generation) }) {
        return id;
    }
    let mut buf = [MaybeUninit::<u64>::uninit(); MAX_DEPTH];
    let depth = depth.clamp(1, MAX_DEPTH);
    buf[0].write(ra);
    let regs = Regs { ip: ra, sp: sp + 8, bp };
    let mut log = ReadLog::new();
    let (n, bp_used) = walk(regs, true, hi, &mut buf[1..depth], false, Some(&mut log));
    let n = n + 1;
    log.bp_used = bp_used;
    let id = intern(&buf, n);
    if let Some(m) = memo {
        m.store(ra, sp, bp, generation, id, &log);
    }
    id
}

#[inline(always)]
fn intern(buf: &[MaybeUninit<u64>], n: usize) -> u32 {
    // SAFETY: the walk initialized the first n entries.
    let frames = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u64, n) };
    let hash = frames.iter().fold(0x9E37_79B9_7F4A_7C15u64, |h, &ip| {
        (h ^ ip).wrapping_mul(0x100_0000_01B3).rotate_left(29)
    });
    sites::intern(hash, frames)
}

#[derive(Clone, Copy, Debug)]
struct Regs {
    ip: u64,
    sp: u64,
    bp: u64,
}

/// Fills `out` with return addresses, innermost first; returns how many,
/// and whether the initial frame pointer register mattered.
#[inline(always)]
fn walk(
    mut r: Regs,
    mut is_return: bool,
    hi: u64,
    out: &mut [MaybeUninit<u64>],
    skip_self: bool,
    mut log: Option<&mut ReadLog>,
) -> (usize, bool) {
    let floor = r.sp;
    // Whether the frame pointer register as the walk began was used (before
    // a saved value replaced it).
    let (mut bp_initial, mut bp_used) = (true, false);
    // The last saved rbp read: the walk's result depends on its value only
    // if a later step computes a CFA from it, so only then is it logged
    // (code without frame pointers keeps loop variables in rbp).
    let mut pending_bp: Option<(u64, u64)> = None;
    let read = |addr: u64| -> Option<u64> {
        if addr < floor || addr > hi - 8 || addr % 8 != 0 {
            return None;
        }
        // SAFETY: inside this thread's stack, at or above the walk's own
        // stack pointer: mapped and readable.
        Some(unsafe { std::ptr::read_volatile(addr as *const u64) })
    };
    let mut note = |addr: u64, value: u64| {
        if let Some(log) = log.as_deref_mut() {
            log.push(addr, value);
        }
    };
    let (self_lo, self_hi) = (SELF_LO.load(Ordering::Relaxed), SELF_HI.load(Ordering::Relaxed));
    let mut n = 0;
    while n < out.len() {
        let rule = rules::lookup(r.ip, is_return);
        let (cfa, saved_bp) = match rule.step() {
            Step::Sp => (r.sp + rule.cfa_offset(), rule.bp_offset()),
            Step::Bp | Step::FramePointer => {
                bp_used |= bp_initial;
                if let Some((addr, value)) = pending_bp.take() {
                    note(addr, value);
                }
                match rule.step() {
                    Step::Bp => (r.bp.wrapping_add(rule.cfa_offset()), rule.bp_offset()),
                    _ => (r.bp.wrapping_add(16), Some(-16)),
                }
            }
            Step::End | Step::Stop => break,
        };
        if cfa <= r.sp {
            break;
        }
        let Some(ra) = read(cfa.wrapping_sub(8)) else { break };
        note(cfa.wrapping_sub(8), ra);
        if let Some(off) = saved_bp {
            let addr = cfa.wrapping_add(off as u64);
            match read(addr) {
                Some(bp) => {
                    r.bp = bp;
                    bp_initial = false;
                    pending_bp = Some((addr, bp));
                }
                None => break,
            }
        }
        if ra < 4096 {
            break;
        }
        r = Regs {
            ip: ra,
            sp: cfa,
            bp: r.bp,
        };
        is_return = true;
        if n == 0 && skip_self && (self_lo..self_hi).contains(&ra) {
            continue;
        }
        out[n].write(ra);
        n += 1;
    }
    (n, bp_used)
}

/// The main thread's stack, `[lo, hi)`, found at start-up.
static MAIN_LO: AtomicU64 = AtomicU64::new(0);
static MAIN_HI: AtomicU64 = AtomicU64::new(0);

/// The main thread's stack as [`note_main_stack`] found it (zeros before).
pub fn main_stack() -> (u64, u64) {
    (MAIN_LO.load(Ordering::Relaxed), MAIN_HI.load(Ordering::Relaxed))
}

extern "C" {
    /// Set by ld.so before any code runs: the stack pointer at the process
    /// entry, on the main thread's stack above every frame.
    static __libc_stack_end: *mut libc::c_void;
}

/// Notes the main thread's stack, without system calls beyond one
/// `getrlimit` (`pthread_getattr_np` reads all of /proc/self/maps for it:
/// ~60 µs at every start-up): its top is the end of the page that holds
/// `__libc_stack_end`, and it may grow down by `RLIMIT_STACK`, a range the
/// kernel keeps free of other mappings (its mmap base lies below the stack
/// top by at least that limit plus the stack's random offset). An unlimited
/// stack is taken as 1 GiB: deeper frames get no call site, never a bad read.
pub fn note_main_stack() {
    const MAX: u64 = 1 << 30;
    // SAFETY: a plain read of a pointer ld.so set before any code ran.
    let end = unsafe { __libc_stack_end } as u64;
    if end == 0 {
        return;
    }
    // SAFETY: sysconf has no preconditions; getrlimit writes `rl`.
    let (page, limit) = unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        let limit = if libc::getrlimit(libc::RLIMIT_STACK, &mut rl) == 0 && rl.rlim_cur != libc::RLIM_INFINITY {
            (rl.rlim_cur as u64).min(MAX)
        } else {
            MAX
        };
        (libc::sysconf(libc::_SC_PAGESIZE) as u64, limit)
    };
    let hi = (end | (page - 1)) + 1;
    MAIN_LO.store(hi.saturating_sub(limit), Ordering::Relaxed);
    MAIN_HI.store(hi, Ordering::Relaxed);
}

/// The readable stack above `sp`: `[sp, hi)`, or `None` for a stack
/// memscope does not know.
///
/// The main thread's is known from start-up. Every other glibc thread has
/// its thread control block (where the thread pointer points) at the top of
/// its own stack mapping, above all of its frames and its static TLS: so
/// everything from `sp` up to the thread pointer is mapped.
#[inline(always)]
fn stack_top(sp: u64) -> Option<u64> {
    let (lo, hi) = (MAIN_LO.load(Ordering::Relaxed), MAIN_HI.load(Ordering::Relaxed));
    if (lo..hi).contains(&sp) {
        return Some(hi);
    }
    let tp = thread::thread_pointer() as u64;
    (sp < tp && tp - sp < 1 << 30).then_some(tp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_stack_is_found_without_proc_maps() {
        note_main_stack();
        let (lo, hi) = (MAIN_LO.load(Ordering::Relaxed), MAIN_HI.load(Ordering::Relaxed));
        // SAFETY: reads a pointer ld.so set at start-up.
        let entry = unsafe { __libc_stack_end } as u64;
        assert!(
            lo < entry && entry < hi && hi - entry <= 4096,
            "{lo:#x} {entry:#x} {hi:#x}"
        );
        // SAFETY: the word below the top is on the main stack's last page.
        let _ = unsafe { std::ptr::read_volatile((hi - 8) as *const u64) };
        // A test runs on a thread of its own: its stack is not the main one.
        let here = &lo as *const u64 as u64;
        if std::thread::current().name() != Some("main") {
            assert!(!(lo..hi).contains(&here));
            assert!(stack_top(here).is_some_and(|top| top > here));
        }
    }
}
