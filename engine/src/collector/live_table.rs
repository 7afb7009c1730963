//! The table of live blocks by address: open addressing with linear probing
//! and one 32-byte entry per block (two per cache line, never straddling
//! one), so a lookup is one cache line where a `HashMap<u64, Block>` (40-byte
//! buckets and a separate control array) touched two or three.
//!
//! Why its own table: with long-lived blocks (alloc_bench's 4096-entry
//! table, a cache, a tree) each free lands on a random entry of a table
//! larger than the cache, and those misses were most of the collector's time
//! (`collector_replay ... table`: 44 ns per event with the `HashMap`). An
//! entry's line can be fetched ahead ([`LiveTable::prefetch`]): the
//! collector does it for a new block's entry when the block is born (it goes
//! into the table when the next one is born). Fetching a free's entry a few
//! slots before the consumer applies it was tried and measured slower: the
//! extra read of the ring cost more than the misses it hid.
//!
//! Deletion shifts later entries of the probe run back (no tombstones), so
//! a long run of inserts and removes never degrades the probes.

use super::Block;

/// A block in the table: `size_kind` holds the size in its low 56 bits and
/// the kind's `u8` above (sizes come from 48-bit ring fields; a larger one
/// is kept in [`LiveTable::oversized`]).
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Entry {
    /// The block's address; 0 marks an empty entry.
    ptr: u64,
    birth: u64,
    size_kind: u64,
    site: u32,
    thread: u32,
}

const SIZE_BITS: u32 = 56;
const SIZE_MASK: u64 = (1 << SIZE_BITS) - 1;

impl Entry {
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

/// Live blocks by address (see the module docs).
#[derive(Clone, Default)]
pub struct LiveTable {
    entries: Vec<Entry>,
    /// `64 - log2(entries.len())`: the hash's top bits index the table.
    shift: u32,
    len: usize,
    /// Blocks the packed entry cannot hold: address 0 (the empty mark) or a
    /// size of 2^56 bytes or more. Never seen from real hooks; kept exact.
    oversized: Vec<(u64, Block)>,
}

/// Fibonacci hashing: heap addresses differ mostly in their middle bits,
/// which one multiply spreads into the top bits the index is taken from.
#[inline(always)]
fn hash(ptr: u64) -> u64 {
    ptr.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl LiveTable {
    pub fn len(&self) -> usize {
        self.len + self.oversized.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    fn home(&self, ptr: u64) -> usize {
        (hash(ptr) >> self.shift) as usize
    }

    /// Starts fetching the cache line where `ptr`'s entry would be.
    #[inline(always)]
    pub fn prefetch(&self, ptr: u64) {
        if self.entries.is_empty() {
            return;
        }
        let e = &self.entries[self.home(ptr)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint; the address is in the table.
        unsafe {
            std::arch::x86_64::_mm_prefetch(e as *const Entry as *const i8, std::arch::x86_64::_MM_HINT_T0);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = e;
    }

    /// Index of `ptr`'s entry, or of the empty entry where it would go.
    #[inline(always)]
    fn probe(&self, ptr: u64) -> usize {
        let mask = self.entries.len() - 1;
        let mut i = self.home(ptr);
        loop {
            let k = self.entries[i].ptr;
            if k == ptr || k == 0 {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn packable(ptr: u64, b: &Block) -> bool {
        ptr != 0 && b.size <= SIZE_MASK
    }

    /// Inserts `block` at `ptr`; returns the block that was there.
    pub fn insert(&mut self, ptr: u64, block: Block) -> Option<Block> {
        if !Self::packable(ptr, &block) || !self.oversized.is_empty() {
            return self.insert_oversized(ptr, block);
        }
        self.insert_packed(ptr, block)
    }

    #[inline]
    fn insert_packed(&mut self, ptr: u64, block: Block) -> Option<Block> {
        // At most 3/4 full: probe runs stay short, and the table stays
        // small enough for the cache (a miss is what a lookup costs).
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        let i = self.probe(ptr);
        let e = &mut self.entries[i];
        let old = (e.ptr != 0).then(|| e.block());
        *e = Entry {
            ptr,
            birth: block.birth,
            size_kind: block.size | (block.kind as u64) << SIZE_BITS,
            site: block.site,
            thread: block.thread,
        };
        self.len += old.is_none() as usize;
        old
    }

    /// `insert` when the block or one already kept is not packable: an
    /// address is in one place only.
    #[cold]
    fn insert_oversized(&mut self, ptr: u64, block: Block) -> Option<Block> {
        let old = self.remove(ptr);
        if Self::packable(ptr, &block) {
            self.insert_packed(ptr, block);
        } else {
            self.oversized.push((ptr, block));
        }
        old
    }

    /// The block at `ptr`, if any.
    #[inline]
    pub fn get(&self, ptr: u64) -> Option<Block> {
        if !self.oversized.is_empty() {
            if let Some((_, b)) = self.oversized.iter().find(|(p, _)| *p == ptr) {
                return Some(*b);
            }
        }
        if self.entries.is_empty() || ptr == 0 {
            return None;
        }
        let e = &self.entries[self.probe(ptr)];
        (e.ptr != 0).then(|| e.block())
    }

    pub fn contains_key(&self, ptr: u64) -> bool {
        self.get(ptr).is_some()
    }

    /// Removes and returns the block at `ptr`. Inlined: a block handed
    /// back through memory is read back wider than it was written, and that
    /// load waits (a failed store-to-load forward).
    #[inline(always)]
    pub fn remove(&mut self, ptr: u64) -> Option<Block> {
        if !self.oversized.is_empty() {
            if let Some(i) = self.oversized.iter().position(|(p, _)| *p == ptr) {
                return Some(self.oversized.swap_remove(i).1);
            }
        }
        self.remove_packed(ptr)
    }

    #[inline(always)]
    fn remove_packed(&mut self, ptr: u64) -> Option<Block> {
        if self.entries.is_empty() || ptr == 0 {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut hole = self.probe(ptr);
        if self.entries[hole].ptr == 0 {
            return None;
        }
        let found = self.entries[hole].block();
        self.len -= 1;
        // Backward shift: move each later entry of the run whose home is
        // not between the hole and it into the hole.
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let k = self.entries[i].ptr;
            if k == 0 {
                break;
            }
            let home = self.home(k);
            // Distance from home to i and from home to the hole, cyclically.
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.entries[hole] = self.entries[i];
                hole = i;
            }
        }
        self.entries[hole] = Entry::default();
        Some(found)
    }

    #[cold]
    fn grow(&mut self) {
        let cap = (self.entries.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.entries, vec![Entry::default(); cap]);
        self.shift = 64 - cap.trailing_zeros();
        let mask = cap - 1;
        for e in old.into_iter().filter(|e| e.ptr != 0) {
            let mut i = self.home(e.ptr);
            while self.entries[i].ptr != 0 {
                i = (i + 1) & mask;
            }
            self.entries[i] = e;
        }
    }

    /// Every block, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Block)> + '_ {
        self.entries
            .iter()
            .filter(|e| e.ptr != 0)
            .map(|e| (e.ptr, e.block()))
            .chain(self.oversized.iter().copied())
    }

    /// Empties the table, returning every block.
    pub fn drain(&mut self) -> impl Iterator<Item = (u64, Block)> {
        let t = std::mem::take(self);
        let oversized = t.oversized;
        t.entries
            .into_iter()
            .filter(|e| e.ptr != 0)
            .map(|e| (e.ptr, e.block()))
            .chain(oversized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn block(n: u64) -> Block {
        Block {
            size: n * 3,
            birth: n,
            site: n as u32 % 7,
            thread: n as u32 % 3,
            kind: (n % 6) as u8,
        }
    }

    fn same(a: Option<Block>, b: Option<Block>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                (a.size, a.birth, a.site, a.thread, a.kind) == (b.size, b.birth, b.site, b.thread, b.kind)
            }
            _ => false,
        }
    }

    #[test]
    fn matches_a_hash_map_through_random_inserts_and_removes() {
        let mut t = LiveTable::default();
        let mut m: HashMap<u64, Block> = HashMap::new();
        let mut x = 0x1234_5678u64;
        for n in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Addresses from a small, clustered range: long probe runs.
            let ptr = 0x5555_0000_0000 + (x % 6000) * 16;
            if x & 0x300 == 0 {
                assert!(same(t.remove(ptr), m.remove(&ptr)), "remove {ptr:#x} at {n}");
            } else {
                assert!(same(t.insert(ptr, block(n)), m.insert(ptr, block(n))), "insert at {n}");
            }
            assert_eq!(t.len(), m.len());
        }
        for (p, b) in &m {
            assert!(same(t.get(*p), Some(*b)));
        }
        let mut all: Vec<u64> = t.drain().map(|(p, _)| p).collect();
        all.sort();
        let mut want: Vec<u64> = m.keys().copied().collect();
        want.sort();
        assert_eq!(all, want);
        assert!(t.is_empty());
    }

    #[test]
    fn address_zero_and_huge_sizes_are_kept_exactly() {
        let mut t = LiveTable::default();
        let huge = Block {
            size: u64::MAX,
            ..block(1)
        };
        assert!(t.insert(0, block(2)).is_none());
        assert!(t.insert(0x10, block(3)).is_none());
        assert!(same(t.insert(0x10, huge), Some(block(3))));
        assert_eq!(t.len(), 2);
        assert!(same(t.get(0x10), Some(huge)));
        assert!(same(t.get(0), Some(block(2))));
        assert!(same(t.remove(0x10), Some(huge)));
        assert!(t.get(0x10).is_none());
        assert!(same(t.remove(0), Some(block(2))));
        assert!(t.is_empty());
    }
}
