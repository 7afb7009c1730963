//! A per-thread memo of recent stack walks (kept in the thread's ring:
//! `ring::OwnerMemo`), so the common case — the same
//! call site allocating again and again from the same stack — costs a few
//! independent loads instead of a walk.
//!
//! A walk is a pure function of the caller's return address, stack pointer
//! and frame pointer, the stack words it reads, and the unwind rules of the
//! code it passes through. An entry keeps all of those (rules by the module
//! list's generation); a lookup re-reads every stack word the walk read and
//! compares. Only an exact match returns the memoized call site, so the
//! result is always the one a full walk would give, and the re-reads are
//! independent of each other (the walk's are a chain: each address comes
//! from the previous frame's rule).

use std::cell::Cell;
use std::mem::MaybeUninit;

const ENTRIES: usize = 16;
/// Stack words a memoized walk may have read (a deeper walk is not kept).
/// Code with frame pointers reads two words a frame (the return address
/// and the saved rbp): at 32, none of node's walks (20 frames deep) could
/// be kept, and 90% of them were walked again; at 64, 18% are.
pub const MAX_READS: usize = 64;

pub struct Entry {
    ra: Cell<u64>,
    sp: Cell<u64>,
    bp: Cell<u64>,
    generation: Cell<u64>,
    /// `bp matters << 63 | reads << 32 | site id`.
    reads_id: Cell<u64>,
    /// The memo's tick when it was last stored or hit (least recently
    /// used: replaced first).
    used: Cell<u64>,
    /// The words read: their addresses as offsets from `sp` (a thread's
    /// stack spans less than 4 GiB; a quarter less memory per thread than
    /// full addresses), and their values.
    offsets: [Cell<u32>; MAX_READS],
    values: [Cell<u64>; MAX_READS],
}

pub struct Memo {
    entries: [Entry; ENTRIES],
    /// Counts stores: the clock of [`Entry::used`].
    tick: Cell<u64>,
}

impl Default for Memo {
    fn default() -> Self {
        Self::new()
    }
}

/// The stack words one walk read.
pub struct ReadLog {
    /// (address, value) pairs; the first `len` are set (left uninitialized
    /// otherwise: a walk that misses the memo must not pay for zeroing 1 KiB).
    words: [MaybeUninit<(u64, u64)>; MAX_READS],
    pub len: usize,
    /// More than [`MAX_READS`]: not memoized.
    pub overflow: bool,
    /// The walk used the caller's frame pointer register before replacing
    /// it with a saved value (most code without frame pointers never does:
    /// then the register, often a loop variable, is no part of the key).
    pub bp_used: bool,
}

const BP_MATTERS: u64 = 1 << 63;

impl ReadLog {
    pub fn new() -> ReadLog {
        ReadLog {
            words: [MaybeUninit::uninit(); MAX_READS],
            len: 0,
            overflow: false,
            bp_used: true,
        }
    }

    #[inline(always)]
    pub fn push(&mut self, addr: u64, value: u64) {
        if self.len < MAX_READS {
            self.words[self.len].write((addr, value));
            self.len += 1;
        } else {
            self.overflow = true;
        }
    }
}

impl ReadLog {
    /// The words read, in order.
    pub fn words(&self) -> &[(u64, u64)] {
        // SAFETY: `push` initialized the first `len`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const (u64, u64), self.len) }
    }
}

impl Default for ReadLog {
    fn default() -> Self {
        Self::new()
    }
}

/// The two entries a walk from (`ra`, `sp`) may be kept in. By return
/// address and stack pointer: C++ and Rust programs allocate through one
/// `operator new` / `__rust_alloc`, so the return address alone sent most
/// of their call sites to one entry (cpp_churn: 98% misses), while their
/// callers differ in where the call sits on the stack. Two choices, the
/// least recently used replaced, so a handful of hot sites rarely evict
/// each other by a chance collision.
#[inline(always)]
fn ways(ra: u64, sp: u64) -> (usize, usize) {
    let h = (ra ^ sp.rotate_left(23)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 60) as usize % ENTRIES, (h >> 56) as usize % ENTRIES)
}

impl Memo {
    pub const fn new() -> Memo {
        const ENTRY: Entry = Entry {
            ra: Cell::new(0),
            sp: Cell::new(0),
            bp: Cell::new(0),
            generation: Cell::new(0),
            reads_id: Cell::new(0),
            used: Cell::new(0),
            offsets: [const { Cell::new(0) }; MAX_READS],
            values: [const { Cell::new(0) }; MAX_READS],
        };
        Memo {
            entries: [ENTRY; ENTRIES],
            tick: Cell::new(0),
        }
    }

    /// Forgets every walk (all-zero entries, as in a fresh mapping).
    pub fn clear(&self) {
        for e in &self.entries {
            for key in [&e.ra, &e.sp, &e.bp, &e.generation, &e.reads_id, &e.used] {
                key.set(0);
            }
        }
        self.tick.set(0);
    }

    /// The memoized site of a walk from (`ra`, `sp`, `bp`), if every stack
    /// word that walk read still holds the same value.
    ///
    /// # Safety
    /// `sp` must be the calling thread's current stack position above the
    /// caller's frame (as given to the walk whose result was stored): the
    /// stored addresses lie between it and the thread's stack top.
    #[inline(always)]
    pub unsafe fn lookup(&self, ra: u64, sp: u64, bp: u64, generation: u64) -> Option<u32> {
        let (a, b) = ways(ra, sp);
        self.check(&self.entries[a], ra, sp, bp, generation)
            .or_else(|| self.check(&self.entries[b], ra, sp, bp, generation))
    }

    /// # Safety
    /// As [`Memo::lookup`].
    #[inline(always)]
    unsafe fn check(&self, e: &Entry, ra: u64, sp: u64, bp: u64, generation: u64) -> Option<u32> {
        let reads_id = e.reads_id.get();
        let bp_matters = reads_id & BP_MATTERS != 0;
        if e.ra.get() != ra || e.sp.get() != sp || (bp_matters && e.bp.get() != bp) || e.generation.get() != generation
        {
            return None;
        }
        let reads = ((reads_id >> 32) & 0xffff) as usize;
        let mut same = true;
        for k in 0..reads.min(MAX_READS) {
            let addr = sp + e.offsets[k].get() as u64;
            same &= std::ptr::read_volatile(addr as *const u64) == e.values[k].get();
        }
        if !same {
            return None;
        }
        e.used.set(self.tick.get());
        Some(reads_id as u32)
    }

    /// Keeps the result of a walk (unless it read too much).
    pub fn store(&self, ra: u64, sp: u64, bp: u64, generation: u64, id: u32, log: &ReadLog) {
        let offset = |addr: u64| u32::try_from(addr.wrapping_sub(sp)).ok();
        if log.overflow || log.words().iter().any(|&(addr, _)| offset(addr).is_none()) {
            return;
        }
        let (a, b) = ways(ra, sp);
        let (a, b) = (&self.entries[a], &self.entries[b]);
        let e = if b.used.get() < a.used.get() { b } else { a };
        let tick = self.tick.get() + 1;
        self.tick.set(tick);
        e.used.set(tick);
        for (k, &(addr, value)) in log.words().iter().enumerate() {
            e.offsets[k].set(offset(addr).unwrap_or(0));
            e.values[k].set(value);
        }
        e.reads_id
            .set(if log.bp_used { BP_MATTERS } else { 0 } | (log.len as u64) << 32 | id as u64);
        e.ra.set(ra);
        e.sp.set(sp);
        e.bp.set(bp);
        e.generation.set(generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_hit_needs_every_word_unchanged() {
        let stack = [10u64, 20, 30, 40];
        let memo = Memo::new();
        let mut log = ReadLog::new();
        for w in &stack[1..3] {
            log.push(w as *const u64 as u64, *w);
        }
        let sp = stack.as_ptr() as u64;
        memo.store(0x4000, sp, 7, 1, 42, &log);
        // SAFETY: the addresses are `stack`'s, alive here.
        unsafe {
            assert_eq!(memo.lookup(0x4000, sp, 7, 1), Some(42));
            assert_eq!(memo.lookup(0x4000, sp, 8, 1), None, "another frame pointer");
            assert_eq!(memo.lookup(0x4000, sp, 7, 2), None, "modules changed");
            assert_eq!(memo.lookup(0x4008, sp, 7, 1), None, "another caller");
        }
        let changed = [10u64, 21, 30, 40];
        let mut log = ReadLog::new();
        for w in &changed[1..3] {
            log.push(w as *const u64 as u64, if *w == 21 { 20 } else { *w });
        }
        memo.store(0x4000, changed.as_ptr() as u64, 7, 1, 43, &log);
        // SAFETY: as above.
        unsafe {
            assert_eq!(
                memo.lookup(0x4000, changed.as_ptr() as u64, 7, 1),
                None,
                "a word changed"
            )
        };
    }

    /// Call sites that share their return address (every `operator new`
    /// caller's) and differ in stack position keep entries of their own.
    #[test]
    fn sites_sharing_a_return_address_keep_their_own_entries() {
        let memo = Memo::new();
        let log = ReadLog::new();
        // No words logged: the addresses are never read.
        let sp = |k: usize| 0x7ffd_1234_5000 + 0x90 * k as u64;
        for k in 0..8 {
            memo.store(0x4000, sp(k), 0, 1, 100 + k as u32, &log);
        }
        // SAFETY: no words to re-read.
        let hits = (0..8)
            .filter(|&k| unsafe { memo.lookup(0x4000, sp(k), 0, 1) } == Some(100 + k as u32))
            .count();
        assert_eq!(hits, 8);
    }

    /// Code with frame pointers reads two words a frame: a walk of 32
    /// frames (64 words) is kept, one that read more is not, nor one whose
    /// words lie too far above its stack pointer to be kept as offsets.
    #[test]
    fn walks_of_up_to_64_words_are_kept() {
        let stack: Vec<u64> = (0..80).map(|i| i * 3 + 1).collect();
        let sp = stack.as_ptr() as u64;
        let log_of = |n: usize| {
            let mut log = ReadLog::new();
            for w in &stack[1..=n] {
                log.push(w as *const u64 as u64, *w);
            }
            log
        };
        let memo = Memo::new();
        memo.store(0x4000, sp, 0, 1, 64, &log_of(MAX_READS));
        memo.store(0x5000, sp, 0, 1, 65, &log_of(MAX_READS + 1));
        let mut far = ReadLog::new();
        far.push(sp + (1 << 33), 0);
        memo.store(0x6000, sp, 0, 1, 66, &far);
        // SAFETY: the addresses kept are `stack`'s, alive here.
        unsafe {
            assert_eq!(memo.lookup(0x4000, sp, 0, 1), Some(64));
            assert_eq!(memo.lookup(0x5000, sp, 0, 1), None, "read more than it keeps");
            assert_eq!(memo.lookup(0x6000, sp, 0, 1), None, "a word 8 GiB above");
        }
    }
}
