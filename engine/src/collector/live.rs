//! The live-block table: every block born and not yet freed, by address.
//!
//! Small, it is a `hashbrown` map, whose probe reads a few control bytes
//! that stay in the L1 cache and then one bucket. Past [`LARGE_AT`] blocks
//! it moves into a table of its own: open addressing with linear probing
//! over 32-byte entries (two to a cache line), where a block's entry is a
//! function of its address alone, so the consumer — which sees the events
//! ahead of the one it applies — prefetches the entry a free will look up
//! 16 events before it gets there ([`LiveTable::prefetch`]). A table that
//! has outgrown the cache otherwise makes every free wait on memory.
//! Measured on `big_heap.c` (scripts/bench), traced / un-traced wall:
//!
//! | live blocks | `hashbrown` | own table, prefetched |
//! |---|---|---|
//! | 4,000 | 5.5x | 7.1x (5.6x prefetched) |
//! | 30,000 | 10.6x | 7.1x |
//! | 100,000 | 4.5x | 3.7x |
//! | 1,000,000 | 4.3x | 3.2x |
//!
//! (The small case is the one where the hashbrown map stays in L2.)
//!
//! In a `fork()` child the table is the parent's, shared page by page
//! until written: each page the child writes is copied first (a page
//! fault, ~2 µs here). A shell's child that inserts a handful of blocks
//! into its parent's table of thousands wrote ~7 such pages, and finding
//! its own live blocks at the end meant reading every inherited one. So a
//! child leaves the parent's table as it was ([`LiveTable::fork_overlay`]):
//! its own blocks go into a table of its own, and the inherited ones it
//! frees are noted as gone. Its own live blocks are then that table; the
//! inherited ones still live are counted, not read: those at the fork
//! less those gone.

use super::open_table::OpenTable;
use super::{AddrMap, Block};

/// Blocks from which the table is an [`OpenTable`] (its `hashbrown` map
/// would be ~650 KiB, past a core's L2 cache).
pub const LARGE_AT: usize = 8 * 1024;

#[derive(Clone, Default)]
pub struct LiveTable {
    small: AddrMap<Block>,
    large: OpenTable,
    /// The blocks are in `large` (never goes back).
    is_large: bool,
    /// In a `fork()` child: the blocks it inherited. The fields above then
    /// hold only the blocks that were put in since the fork.
    inherited: Option<Box<Inherited>>,
}

/// A `fork()` child's inherited blocks (see the module docs).
#[derive(Clone, Default)]
struct Inherited {
    /// The table as it was at the fork: read, never written.
    table: LiveTable,
    /// The addresses of its blocks taken out since.
    gone: AddrMap<()>,
    /// Its blocks' bytes at the fork.
    bytes: u64,
    /// The sizes of the blocks in `gone`, summed.
    gone_bytes: u64,
}

impl Inherited {
    /// Takes the inherited block at `ptr` out, if it is still there.
    fn take(&mut self, ptr: u64) -> Option<Block> {
        let block = self.get(ptr)?;
        self.gone.insert(ptr, ());
        self.gone_bytes += block.size;
        Some(block)
    }

    fn get(&self, ptr: u64) -> Option<Block> {
        self.table.get(ptr).filter(|_| !self.gone.contains_key(&ptr))
    }
}

impl LiveTable {
    pub fn len(&self) -> usize {
        let own = if self.is_large {
            self.large.len()
        } else {
            self.small.len()
        };
        own + self.inherited.as_ref().map_or(0, |i| i.table.len() - i.gone.len())
    }

    /// In a `fork()` child: every block in the table now is inherited and
    /// stays where it is, unwritten (see the module docs). `bytes`: their
    /// sizes summed, which the collector knows.
    pub fn fork_overlay(&mut self, bytes: u64) {
        let table = std::mem::take(self);
        self.inherited = Some(Box::new(Inherited {
            table,
            bytes,
            ..Inherited::default()
        }));
    }

    /// The inherited blocks not taken out since the fork, and their bytes
    /// ((0, 0) outside a fork child): all born before the fork.
    pub fn untouched_inherited(&self) -> (u64, u64) {
        self.inherited.as_ref().map_or((0, 0), |i| {
            (
                (i.table.len() - i.gone.len()) as u64,
                i.bytes.saturating_sub(i.gone_bytes),
            )
        })
    }

    /// The block at `ptr`, if live.
    pub fn get(&self, ptr: u64) -> Option<Block> {
        let own = if self.is_large {
            self.large.get(ptr)
        } else {
            self.small.get(&ptr).copied()
        };
        own.or_else(|| self.inherited.as_ref()?.get(ptr))
    }

    /// True once the blocks are in the prefetchable table.
    #[inline(always)]
    pub fn is_large(&self) -> bool {
        self.is_large
    }

    /// Starts loading the entry a lookup of `ptr` reads first (large only).
    #[inline(always)]
    pub fn prefetch(&self, ptr: u64) {
        self.large.prefetch(ptr)
    }

    pub fn contains(&self, ptr: u64) -> bool {
        self.get(ptr).is_some()
    }

    /// Adds `block` at `ptr`; returns the block that was there.
    #[inline]
    pub fn insert(&mut self, ptr: u64, block: Block) -> Option<Block> {
        if self.inherited.is_some() {
            return self.insert_over_inherited(ptr, block);
        }
        self.insert_own(ptr, block)
    }

    /// `insert` in a fork child: an inherited block still live at `ptr`
    /// (its free still on its way) is the one that was there.
    #[inline(never)]
    fn insert_over_inherited(&mut self, ptr: u64, block: Block) -> Option<Block> {
        let old = self.inherited.as_mut().and_then(|i| i.take(ptr));
        let own = self.insert_own(ptr, block);
        old.or(own)
    }

    #[inline]
    fn insert_own(&mut self, ptr: u64, block: Block) -> Option<Block> {
        if self.is_large {
            return self.large.insert(ptr, block);
        }
        let old = self.small.insert(ptr, block);
        if self.small.len() >= LARGE_AT {
            self.go_large();
        }
        old
    }

    /// Removes and returns the block at `ptr`.
    #[inline]
    pub fn remove(&mut self, ptr: u64) -> Option<Block> {
        if self.is_large {
            return self.large.remove(ptr).or_else(|| self.remove_inherited(ptr));
        }
        // Read in place, then removed: a block handed back by `remove`
        // passes through memory, and reading it there waited on the copy.
        let Some(&block) = self.small.get(&ptr) else {
            return self.remove_inherited(ptr);
        };
        self.small.remove(&ptr);
        Some(block)
    }

    #[inline(never)]
    fn remove_inherited(&mut self, ptr: u64) -> Option<Block> {
        self.inherited.as_mut()?.take(ptr)
    }

    #[cold]
    fn go_large(&mut self) {
        for (ptr, block) in std::mem::take(&mut self.small) {
            self.large.insert(ptr, block);
        }
        self.is_large = true;
    }

    /// Every block, in no particular order.
    #[cfg(test)]
    pub fn iter(&self) -> Box<dyn Iterator<Item = (u64, Block)> + '_> {
        let own = self.iter_own();
        match &self.inherited {
            None => own,
            Some(i) => Box::new(own.chain(i.table.iter().filter(|(p, _)| !i.gone.contains_key(p)))),
        }
    }

    /// In a fork child the blocks put in since the fork (see
    /// [`untouched_inherited`](Self::untouched_inherited) for the others);
    /// elsewhere every block.
    pub fn iter_own(&self) -> Box<dyn Iterator<Item = (u64, Block)> + '_> {
        if self.is_large {
            Box::new(self.large.iter())
        } else {
            Box::new(self.small.iter().map(|(p, b)| (*p, *b)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::test_blocks::{block, same};
    use std::collections::HashMap;

    #[test]
    fn a_growing_table_moves_to_its_own_entries_and_keeps_every_block() {
        let mut t = LiveTable::default();
        let n = LARGE_AT as u64 + 100;
        for k in 1..=n {
            assert!(t.insert(k * 32, block(k)).is_none());
            assert_eq!(t.is_large(), k >= LARGE_AT as u64, "after {k} blocks");
        }
        assert_eq!(t.len() as u64, n);
        for k in (1..=n).step_by(3) {
            assert!(same(t.remove(k * 32), Some(block(k))), "block {k}");
        }
        for k in 1..=n {
            assert_eq!(t.contains(k * 32), k % 3 != 1, "block {k}");
        }
        let all: Vec<_> = t.iter().collect();
        assert_eq!(all.len() as u64, n - n.div_ceil(3));
        assert!(all.iter().all(|(p, b)| same(Some(*b), Some(block(p / 32)))));
    }

    /// A fork child's and grandchild's tables, against a map of every live
    /// block: the same answers, the parent's table never written, and the
    /// split into own and untouched inherited blocks whole.
    #[test]
    fn a_fork_childs_table_answers_as_one_and_leaves_the_parents_unwritten() {
        for parent_blocks in [300u64, LARGE_AT as u64 + 50] {
            let mut t = LiveTable::default();
            let mut m: HashMap<u64, Block> = HashMap::new();
            for k in 1..=parent_blocks {
                t.insert(k * 16, block(k));
                m.insert(k * 16, block(k));
            }
            let mut rng = 0x9E37_79B9_7F4A_7C15u64;
            let mut step = parent_blocks;
            for generation in 0..2 {
                let fork = step + 1;
                let bytes: u64 = m.values().map(|b| b.size).sum();
                t.fork_overlay(bytes);
                let parent = t.inherited.as_ref().unwrap().table.clone();
                for _ in 0..20_000 {
                    step += 1;
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    // Addresses shared with the inherited blocks, and new ones.
                    let ptr = (rng >> 20) % (parent_blocks * 2) * 16;
                    match rng % 4 {
                        0 | 1 => assert!(same(t.remove(ptr), m.remove(&ptr)), "remove {ptr:#x}"),
                        2 => assert!(
                            same(t.insert(ptr, block(step)), m.insert(ptr, block(step))),
                            "insert {ptr:#x}"
                        ),
                        _ => assert!(same(t.get(ptr), m.get(&ptr).copied()), "get {ptr:#x}"),
                    }
                    assert_eq!(t.len(), m.len(), "generation {generation}");
                }
                // The parent's table is as it was at the fork.
                let now = &t.inherited.as_ref().unwrap().table;
                assert_eq!(now.len(), parent.len());
                assert!(parent.iter().all(|(p, b)| same(now.get(p), Some(b))));
                // Own blocks listed, inherited ones counted: every live one.
                let (mut n, mut bytes) = t.untouched_inherited();
                let mut own = 0;
                for (p, b) in t.iter_own() {
                    assert!(same(m.get(&p).copied(), Some(b)));
                    if b.birth < fork {
                        (n, bytes) = (n + 1, bytes + b.size);
                    } else {
                        own += 1;
                    }
                }
                let born_before: Vec<&Block> = m.values().filter(|b| b.birth < fork).collect();
                assert_eq!(n as usize, born_before.len());
                assert_eq!(bytes, born_before.iter().map(|b| b.size).sum::<u64>());
                assert_eq!(own + n as usize, m.len());
                assert_eq!(t.iter().count(), m.len());
            }
        }
    }
}
