//! The thread's last stack walk, kept so the next one walks only the frames
//! that changed.
//!
//! A deep program allocates from ever-changing inner frames under the same
//! outer ones (a compiler: `main → toplev → compile_file → … → parser →
//! ggc_alloc`). The memo ([`super::memo`]) only helps when the whole stack
//! repeats; here a walk stops as soon as it reaches a frame of the last
//! walk — the same return address at the same stack address — whose outer
//! part still holds: every stack word that part read still has the value
//! it read, and the frame pointer register, where that part used it, is
//! the same. Those are everything the rest of a walk depends on (with the
//! unwind rules, fixed per module list generation), so the spliced stack is
//! exactly the one a full walk finds; checking them is independent loads,
//! where walking is a chain of dependent rule look-ups.
//!
//! States are kept outermost first, so the outer part a splice keeps stays
//! where it is and only the new inner frames are written.

use super::rules::{self, Step};
use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;

/// States kept: the last walk's, from the start, and the walk under way's,
/// innermost first from the end (see [`Data::states`]).
const MAX: usize = 64;
/// Deepest walk the trace takes (deeper ones walk without it).
const MAX_WALK: usize = MAX / 2;

/// The step from this state used the frame pointer register it came with.
const USES_BP: u8 = 1;
/// The rest of the walk from this state used the incoming frame pointer
/// register (before a saved value replaced it).
const BP_MATTERS: u8 = 2;

/// One point of a walk: at return address `ip` with stack pointer `sp`
/// (the CFA of the frame below) and frame pointer register `bp`.
#[derive(Clone, Copy)]
struct State {
    ip: u64,
    sp: u64,
    bp: u64,
    /// Where the step from here read the caller's saved rbp (0: it did not).
    bp_addr: u64,
    bp_val: u64,
    /// The lowest stack address the steps from here outward tried to read
    /// (in a [`Data::states`] entry; in the scratch, this step's own).
    min_addr: u64,
    /// The hash of the frames outer to this one (see [`fold`]).
    hash: u64,
    flags: u8,
}

const EMPTY: State = State {
    ip: 0,
    sp: 0,
    bp: 0,
    bp_addr: 0,
    bp_val: 0,
    min_addr: u64::MAX,
    hash: 0,
    flags: 0,
};

struct Data {
    /// States of the last walk, outermost first (`len` of them; 0: none),
    /// and from the other end, innermost first, those of the walk under
    /// way ([`Data::scratch`]): at most [`MAX_WALK`] each, so the two never
    /// meet. One array, so a thread's trace is 4 KiB of its static TLS,
    /// which every thread and process image pays to set up.
    states: [State; MAX],
    len: usize,
    /// It ended by itself rather than at `depth`.
    natural_end: bool,
    /// The return address its last step read and rejected (address 0: none).
    end_ra: (u64, u64),
    depth: usize,
    generation: u64,
    /// The lowest address it was allowed to read, and its stack's top.
    floor: u64,
    hi: u64,
    /// Walks that kept the last one's outer frames.
    splices: u64,
}

/// A thread's last walk (lives in its thread state).
pub struct Trace {
    data: UnsafeCell<Data>,
    /// Set while a walk uses `data`: a signal handler that allocates in
    /// the middle of one walks without the trace.
    busy: Cell<bool>,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

/// Seed of a stack's hash.
pub const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// One step of a stack's hash, folded outermost frame first (so the hash
/// of a kept outer part is where the next walk continues from).
#[inline(always)]
pub fn fold(h: u64, ip: u64) -> u64 {
    (h ^ ip).wrapping_mul(0x100_0000_01B3).rotate_left(29)
}

/// The hash of a stack, innermost frame first.
#[inline(always)]
pub fn hash(frames: &[u64]) -> u64 {
    frames.iter().rev().fold(SEED, |h, &ip| fold(h, ip))
}

/// Reads a stack word the walk may read: inside `[floor, hi)`, aligned.
#[inline(always)]
fn read(addr: u64, floor: u64, hi: u64) -> Option<u64> {
    if addr < floor || addr > hi - 8 || addr % 8 != 0 {
        return None;
    }
    // SAFETY: inside this thread's stack, at or above the walk's own stack
    // pointer: mapped and readable.
    Some(unsafe { std::ptr::read_volatile(addr as *const u64) })
}

impl Trace {
    pub const fn new() -> Trace {
        Trace {
            data: UnsafeCell::new(Data {
                states: [EMPTY; MAX],
                len: 0,
                natural_end: false,
                end_ra: (0, 0),
                depth: 0,
                generation: 0,
                floor: 0,
                hi: 0,
                splices: 0,
            }),
            busy: Cell::new(false),
        }
    }

    /// Walks the stack of an allocator call whose return address `ra` sits
    /// at `caller_sp`, with frame pointer register `bp`, into `out` (at
    /// most `depth` frames, `ra` first); returns how many and their
    /// [`hash`]. None for a walk deeper than [`MAX_WALK`], or while this
    /// thread's trace is in use (re-entered from a signal handler): walk
    /// without it.
    #[inline(always)]
    pub fn walk(
        &self,
        ra: u64,
        caller_sp: u64,
        bp: u64,
        hi: u64,
        depth: usize,
        generation: u64,
        out: &mut [MaybeUninit<u64>],
    ) -> Option<(usize, u64)> {
        if depth > MAX_WALK || self.busy.replace(true) {
            return None;
        }
        // SAFETY: `busy` keeps every other use of this thread's trace out
        // (only this thread reaches it).
        let d = unsafe { &mut *self.data.get() };
        let r = d.walk(ra, caller_sp + 8, bp, hi, depth.max(1), generation, out);
        self.busy.set(false);
        Some(r)
    }
}

impl Data {
    /// State `i` (innermost first) of the walk under way.
    #[inline(always)]
    fn scratch(&mut self, i: usize) -> &mut State {
        &mut self.states[MAX - 1 - i]
    }
}

#[cfg(test)]
impl Trace {
    /// Walks so far that kept the last one's outer frames.
    pub fn splices(&self) -> u64 {
        // SAFETY: a read of this thread's own counter, no walk under way.
        unsafe { (*self.data.get()).splices }
    }
}

impl Data {
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        ra: u64,
        floor: u64,
        bp: u64,
        hi: u64,
        depth: usize,
        generation: u64,
        out: &mut [MaybeUninit<u64>],
    ) -> (usize, u64) {
        let mut trying = self.len > 0 && self.generation == generation && self.hi == hi && self.depth == depth;
        // The last walk's state to compare with: they go up the stack as
        // this walk does.
        let mut p = self.len;
        let (mut ip, mut sp, mut bp) = (ra, floor, bp);
        let mut n = 0;
        let mut natural_end = true;
        let mut end_ra = (0, 0);
        let mut splice = None;
        loop {
            *self.scratch(n) = State { ip, sp, bp, ..EMPTY };
            if trying {
                while p > 0 && self.states[p - 1].sp < sp {
                    p -= 1;
                }
                if p > 0 && self.states[p - 1].sp == sp && self.states[p - 1].ip == ip {
                    match self.can_splice(p - 1, n, floor, bp, depth) {
                        Ok(()) => {
                            splice = Some(p - 1);
                            break;
                        }
                        // The same frame reached from other callers: a
                        // state further out may still be the last walk's.
                        Err(Some(changed)) => p = changed + 1,
                        Err(None) => trying = false,
                    }
                }
            }
            if n + 1 == depth {
                natural_end = false;
                break;
            }
            let s = self.scratch(n);
            let rule = rules::lookup(ip, true);
            let (cfa, saved_bp) = match rule.step() {
                Step::Sp => (sp + rule.cfa_offset(), rule.bp_offset()),
                Step::Bp => {
                    s.flags |= USES_BP;
                    (bp.wrapping_add(rule.cfa_offset()), rule.bp_offset())
                }
                Step::FramePointer => {
                    s.flags |= USES_BP;
                    (bp.wrapping_add(16), Some(-16))
                }
                Step::End | Step::Stop => break,
            };
            if cfa <= sp {
                break;
            }
            let ra_addr = cfa.wrapping_sub(8);
            s.min_addr = ra_addr;
            let Some(next) = read(ra_addr, floor, hi) else { break };
            if let Some(off) = saved_bp {
                let addr = cfa.wrapping_add(off as u64);
                s.min_addr = s.min_addr.min(addr);
                match read(addr, floor, hi) {
                    Some(v) => {
                        (s.bp_addr, s.bp_val) = (addr, v);
                        bp = v;
                    }
                    None => break,
                }
            }
            if next < 4096 {
                end_ra = (ra_addr, next);
                break;
            }
            (ip, sp) = (next, cfa);
            n += 1;
        }
        // States 0..=n of the scratch are this walk's own.
        let start = match splice {
            Some(at) => {
                // The kept state `at` is scratch state n: same step, same
                // reads; its frame pointer is kept as this walk saw it.
                self.states[at].bp = self.scratch(n).bp;
                self.splices += 1;
                self.len = at + n + 1;
                at + 1
            }
            None => {
                self.len = n + 1;
                self.natural_end = natural_end;
                self.end_ra = end_ra;
                0
            }
        };
        self.floor = floor;
        self.depth = depth;
        self.generation = generation;
        self.hi = hi;
        for q in start..self.len {
            let mut s = *self.scratch(self.len - 1 - q);
            if q > 0 {
                let outer = &self.states[q - 1];
                s.min_addr = s.min_addr.min(outer.min_addr);
                if s.flags & USES_BP != 0 || (s.bp_addr == 0 && outer.flags & BP_MATTERS != 0) {
                    s.flags |= BP_MATTERS;
                }
                s.hash = fold(outer.hash, outer.ip);
            } else {
                if s.flags & USES_BP != 0 {
                    s.flags |= BP_MATTERS;
                }
                s.hash = SEED;
            }
            self.states[q] = s;
        }
        let len = self.len;
        for (i, slot) in out[..len].iter_mut().enumerate() {
            slot.write(self.states[len - 1 - i].ip);
        }
        let inner = &self.states[len - 1];
        let hash = fold(inner.hash, inner.ip);
        if super::modules::generation() != generation {
            // The module list changed during the walk: its rules may be
            // another list's.
            self.len = 0;
        }
        (len, hash)
    }

    /// Whether this walk, at its state `n` equal (return address and stack
    /// pointer) to the last walk's state `at`, may take the last walk's
    /// outer frames as its own. `Err(Some(q))`: a word the last walk read
    /// to reach its state `q` changed, so only state `q` and those outer
    /// may still match; `Err(None)`: none may.
    #[inline(always)]
    fn can_splice(&self, at: usize, n: usize, floor: u64, bp: u64, depth: usize) -> Result<(), Option<usize>> {
        let s = &self.states[at];
        // Frames it would have: its own n + 1, and the `at` outer ones.
        let total = n + 1 + at;
        let fits = if self.natural_end {
            total <= depth
        } else {
            // The last walk stopped at the depth: only as many frames again.
            total == depth
        };
        // Every read the outer part tried is one this walk may make and
        // the last one could: none was refused for lying below a floor.
        if !fits || s.min_addr < floor.max(self.floor) {
            return Err(None);
        }
        if s.flags & BP_MATTERS != 0 && s.bp != bp {
            return Err(at.checked_sub(1));
        }
        self.holds(at)
    }

    /// Whether every stack word the walk read from state `at` outward,
    /// and that mattered, still holds what it read; else the innermost
    /// state a walk may still splice at (the step into it read a changed
    /// word; see
    /// [`Data::can_splice`]). Checked from the inside out: a changed stack
    /// is most often told at its first word.
    #[inline(always)]
    fn holds(&self, at: usize) -> Result<(), Option<usize>> {
        let word = |addr: u64| {
            // SAFETY: `can_splice` checked these addresses lie at or above
            // the current walk's floor; all below this thread's stack top.
            unsafe { std::ptr::read_volatile(addr as *const u64) }
        };
        for q in (0..at).rev() {
            let (s, inner) = (&self.states[q], &self.states[q + 1]);
            // The return address the step from state q + 1 read, and the
            // saved rbp it read if a later step used it.
            if word(s.sp - 8) != s.ip
                || (inner.bp_addr != 0 && s.flags & BP_MATTERS != 0 && word(inner.bp_addr) != inner.bp_val)
            {
                return Err(Some(q));
            }
        }
        if self.natural_end && self.end_ra.0 != 0 && word(self.end_ra.0) != self.end_ra.1 {
            return Err(None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{capture, modules, Caller};

    /// What one probe saw: the frames walked with the trace, their hash,
    /// and the frames walked without it.
    type Seen = (Vec<u64>, u64, Vec<u64>);

    /// Called like an allocator entry point: hands its caller's stack
    /// pointer (at the return address) and frame pointer register on, as
    /// the hooks' entry trampolines do.
    #[unsafe(naked)]
    extern "C" fn probe(depth: usize, out: *mut Vec<Seen>) {
        std::arch::naked_asm!("mov rdx, rsp", "mov rcx, rbp", "jmp {f}", f = sym probe_from)
    }

    extern "C" fn probe_from(depth: usize, out: *mut Vec<Seen>, sp: usize, bp: usize) {
        let caller = Caller { sp, bp };
        let (traced, hash) = capture::frames_of_caller(depth, caller, true);
        let (plain, _) = capture::frames_of_caller(depth, caller, false);
        // SAFETY: the test's own vector, alive for the call.
        unsafe { &mut *out }.push((traced, hash, plain));
    }

    /// Recursion with varying inner frames and two call sites per level:
    /// consecutive walks share more or fewer outer frames, at different
    /// depths relative to the limit.
    #[inline(never)]
    fn recurse(level: u32, depth: usize, out: &mut Vec<Seen>) {
        let out_ptr = std::hint::black_box(out as *mut Vec<Seen>);
        if level % 3 == 0 {
            probe(depth, out_ptr);
        } else {
            probe(std::hint::black_box(depth), out_ptr);
        }
        if level > 0 {
            recurse(level - 1, depth, out);
            if level % 2 == 0 {
                recurse(level / 3, depth, out);
            }
        }
        probe(depth, std::hint::black_box(out as *mut Vec<Seen>));
    }

    #[test]
    fn a_walk_through_the_trace_finds_the_frames_a_full_walk_finds() {
        modules::refresh();
        let trace = &crate::thread::current().memo.trace;
        for depth in [1, 3, 8, 20, 32] {
            let mut seen = Vec::new();
            let before = trace.splices();
            recurse(12, depth, &mut seen);
            let spliced = trace.splices() - before;
            // (One frame has nothing outer to keep.)
            assert!(
                depth == 1 || (spliced > 10 && spliced < 74),
                "depth {depth}: {spliced} of 74 walks spliced"
            );
            assert_eq!(seen.len(), 74, "two probes a call");
            for (traced, hash, plain) in &seen {
                assert_eq!(traced, plain, "depth {depth}");
                assert_eq!(*hash, super::hash(traced));
            }
            let deepest = seen.iter().map(|s| s.0.len()).max().unwrap();
            assert!(deepest == depth || deepest > 12, "depth {depth}: {deepest} frames");
        }
    }
}
