//! The live-block table once it is large: open addressing with linear
//! probing over 32-byte entries (two to a cache line), where a block's
//! entry is a function of its address alone, so the consumer prefetches
//! the entry a free will look up before it gets there (see
//! [`super::live`] for why, and what it measured). Deletion shifts the
//! entries after it back (no tombstones), so a lookup never walks past the
//! first empty entry.

use super::Block;

/// One slot: `ptr == 0` is empty (address 0 is kept aside in `zero`).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(32))]
struct Entry {
    ptr: u64,
    /// Size in the low 56 bits (event sizes have 48), kind in the top 8.
    size_kind: u64,
    birth: u64,
    site: u32,
    thread: u32,
}

const SIZE_BITS: u32 = 56;
const SIZE_MASK: u64 = (1 << SIZE_BITS) - 1;
/// The first table's entries (2 KiB).
const MIN_CAPACITY: usize = 64;

impl Entry {
    #[inline(always)]
    fn new(ptr: u64, b: &Block) -> Entry {
        Entry {
            ptr,
            size_kind: b.size.min(SIZE_MASK) | (b.kind as u64) << SIZE_BITS,
            birth: b.birth,
            site: b.site,
            thread: b.thread,
        }
    }

    #[inline(always)]
    fn block(&self) -> Block {
        Block {
            size: self.size_kind & SIZE_MASK,
            birth: self.birth,
            site: self.site,
            thread: self.thread,
            kind: (self.size_kind >> SIZE_BITS) as u8,
        }
    }
}

/// The large table (see the module docs).
#[derive(Debug, Clone, Default)]
pub(super) struct OpenTable {
    entries: Vec<Entry>,
    /// `64 - log2(capacity)`: the hash's shift.
    shift: u32,
    len: usize,
    /// The block at address 0, which no allocator returns but a caller of
    /// the collector's API could still name.
    zero: Option<Block>,
}

impl OpenTable {
    pub(super) fn len(&self) -> usize {
        self.len + self.zero.is_some() as usize
    }

    #[inline(always)]
    fn home(&self, ptr: u64) -> usize {
        // Fibonacci hashing: heap addresses differ mostly in their middle
        // bits, and the multiply carries those into the top ones.
        (ptr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// Starts loading the entry a lookup of `ptr` reads first.
    #[inline(always)]
    pub(super) fn prefetch(&self, ptr: u64) {
        if self.entries.is_empty() {
            return;
        }
        let e = &self.entries[self.home(ptr)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch hint has no effect on memory; `e` is valid.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((e as *const Entry).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = e;
    }

    /// Where `ptr` is, or the empty entry that ends its probe.
    #[inline(always)]
    fn find(&self, ptr: u64) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = self.home(ptr);
        loop {
            let p = self.entries[i].ptr;
            if p == ptr {
                return Ok(i);
            }
            if p == 0 {
                return Err(i);
            }
            i = (i + 1) & mask;
        }
    }

    pub(super) fn get(&self, ptr: u64) -> Option<Block> {
        if ptr == 0 {
            return self.zero;
        }
        if self.entries.is_empty() {
            return None;
        }
        self.find(ptr).ok().map(|i| self.entries[i].block())
    }

    pub(super) fn insert(&mut self, ptr: u64, block: Block) -> Option<Block> {
        if ptr == 0 {
            return self.zero.replace(block);
        }
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        match self.find(ptr) {
            Ok(i) => {
                let old = self.entries[i].block();
                self.entries[i] = Entry::new(ptr, &block);
                Some(old)
            }
            Err(i) => {
                self.entries[i] = Entry::new(ptr, &block);
                self.len += 1;
                None
            }
        }
    }

    #[inline]
    pub(super) fn remove(&mut self, ptr: u64) -> Option<Block> {
        if ptr == 0 {
            return self.zero.take();
        }
        if self.entries.is_empty() {
            return None;
        }
        let mut hole = self.find(ptr).ok()?;
        let block = self.entries[hole].block();
        // Backward shift: move each later entry of the run whose home is
        // not between the hole and it into the hole.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let p = self.entries[j].ptr;
            if p == 0 {
                break;
            }
            let home = self.home(p);
            // Distance from home to j, and from the hole to j, along the ring.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.entries[hole] = self.entries[j];
                hole = j;
            }
        }
        self.entries[hole].ptr = 0;
        self.len -= 1;
        Some(block)
    }

    #[cold]
    fn grow(&mut self) {
        let cap = (self.entries.len() * 2).max(MIN_CAPACITY);
        let old = std::mem::replace(&mut self.entries, vec![Entry::default(); cap]);
        self.shift = 64 - cap.trailing_zeros();
        for e in old.into_iter().filter(|e| e.ptr != 0) {
            let Err(i) = self.find(e.ptr) else {
                unreachable!("addresses are unique in the table")
            };
            self.entries[i] = e;
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, Block)> + '_ {
        let zero = self.zero.map(|b| (0, b));
        zero.into_iter()
            .chain(self.entries.iter().filter(|e| e.ptr != 0).map(|e| (e.ptr, e.block())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::test_blocks::{block, same};
    use std::collections::HashMap;

    #[test]
    fn agrees_with_a_hash_map_over_random_inserts_and_removes() {
        let mut t = OpenTable::default();
        let mut m: HashMap<u64, Block> = HashMap::new();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..400_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Few distinct addresses (collisions, long runs), address 0 included.
            let ptr = (rng >> 20) % 5000 * 16;
            if rng % 3 == 0 {
                assert!(same(t.remove(ptr), m.remove(&ptr)), "remove {ptr:#x} at step {step}");
            } else {
                let b = block(step);
                assert!(
                    same(t.insert(ptr, b), m.insert(ptr, b)),
                    "insert {ptr:#x} at step {step}"
                );
            }
            assert_eq!(t.len(), m.len());
            let probe = (rng >> 40) % 5000 * 16;
            assert!(
                same(t.get(probe), m.get(&probe).copied()),
                "get {probe:#x} at step {step}"
            );
        }
        let mut all: Vec<_> = t.iter().collect();
        all.sort_by_key(|(p, _)| *p);
        let mut want: Vec<_> = m.into_iter().collect();
        want.sort_by_key(|(p, _)| *p);
        assert_eq!(all.len(), want.len());
        for ((p, b), (q, c)) in all.iter().zip(&want) {
            assert_eq!(p, q);
            assert!(same(Some(*b), Some(*c)));
        }
    }

    #[test]
    fn a_removal_keeps_every_entry_of_a_wrapped_run_findable() {
        // Addresses chosen to share home slots at the table's end, so runs
        // wrap past the last entry to the first.
        let mut t = OpenTable::default();
        t.insert(16, block(1));
        let cap = t.entries.len();
        let at_end: Vec<u64> = (1..200_000u64)
            .map(|k| k * 16)
            .filter(|&p| t.home(p) >= cap - 2)
            .take(12)
            .collect();
        for &p in &at_end {
            t.insert(p, block(p));
        }
        for (k, &p) in at_end.iter().enumerate().step_by(2) {
            assert!(t.remove(p).is_some());
            for &q in &at_end[k + 1..] {
                assert!(t.get(q).is_some(), "{q:#x} lost after removing {p:#x}");
            }
        }
        assert!(t.get(16).is_some());
    }
}
