//! A copy of the collector for a snapshot taken while the process goes on
//! (SPEC §3 `"end": "running"`).
//!
//! The copy is made while the consumer lock is held, and every moment of
//! that is a moment no program thread whose ring is full can go on; so it
//! is a plain copy of fixed-size values into a buffer the caller allocated
//! (and faulted in) *before* taking the lock, and everything costly (the
//! lifetime histograms, records, JSON) happens on the copy afterwards.

use super::{Block, Collector, Finished};

/// What a running snapshot is built from: the collector without its
/// per-address tables, and the live blocks as a list.
pub struct RunningCopy {
    collector: Collector,
    blocks: Vec<(u64, Block)>,
    with_blocks: bool,
    /// In a `fork()` child: the inherited blocks still live (count, bytes),
    /// counted as they were copied, not copied (the child's snapshot does
    /// not list them, and a shell holds hundreds).
    inherited_live: (u64, u64),
}

impl Collector {
    /// Copies the state for a running snapshot; `blocks` should have room
    /// for [`live_count`](Self::live_count) entries (it grows if not). The
    /// collector itself is left as it was.
    pub fn copy_for_running(&mut self, blocks: Vec<(u64, Block)>) -> RunningCopy {
        self.copy_running(blocks, true)
    }

    /// The aggregates only (summary, call sites, timeline): the live blocks
    /// are counted, not copied — cheap enough to ask for every second.
    pub fn copy_aggregates(&mut self) -> RunningCopy {
        self.copy_running(Vec::new(), false)
    }

    fn copy_running(&mut self, mut blocks: Vec<(u64, Block)>, with_blocks: bool) -> RunningCopy {
        self.flush_recent();
        // The big per-address tables stay out of the clone: the live ones
        // are copied into `blocks`, the others are not needed to finish.
        let live = std::mem::take(&mut self.live);
        let displaced = std::mem::take(&mut self.displaced);
        let orphans = std::mem::take(&mut self.orphans);
        // A `fork()` child's snapshot shows its timeline from the fork on
        // (`own_timeline`): the parent's buckets before it stay uncopied.
        let timeline = std::mem::replace(&mut self.timeline, super::timeline::Timeline::new(0, 0));
        let mut collector = self.clone();
        collector.timeline = match self.at_fork {
            Some(_) => timeline.since(self.inherited_before),
            None => timeline.clone(),
        };
        self.timeline = timeline;
        blocks.clear();
        let mut inherited_live = (0, 0);
        if with_blocks {
            inherited_live = super::finish::split_inherited(&live, &displaced, self.inherited_before, &mut blocks);
        }
        self.live = live;
        self.displaced = displaced;
        self.orphans = orphans;
        RunningCopy {
            collector,
            blocks,
            with_blocks,
            inherited_live,
        }
    }
}

impl RunningCopy {
    /// As [`Collector::finish`]: blocks live now get their lifetime so far.
    /// `live_at_end` holds only what a snapshot of `max_records` records
    /// can list (see [`Collector::keep_listable`]), oldest first: a heap of
    /// millions of blocks is counted whole, not turned into records and
    /// sorted whole.
    pub fn finish(self, end: u64, max_records: usize) -> Finished {
        let (live_blocks, live_bytes) = (self.collector.live_blocks, self.collector.live_bytes);
        let mut fin = self
            .collector
            .finish_with(self.blocks, self.inherited_live, end, max_records);
        fin.live_at_end.sort_unstable_by_key(|r| (r.birth, r.ptr));
        if !self.with_blocks {
            (fin.live_count, fin.live_bytes) = (live_blocks, live_bytes);
        }
        fin
    }
}

impl Collector {
    /// Keeps every block a variable owns and the `keep` oldest others (the
    /// ones a snapshot lists first, SPEC §3), in no order.
    pub(super) fn keep_listable(&self, blocks: &mut Vec<(u64, Block)>, keep: usize) {
        let mut named = 0;
        if !self.named_blocks.is_empty() {
            for i in 0..blocks.len() {
                if self.named_blocks.contains_key(&blocks[i].0) {
                    blocks.swap(named, i);
                    named += 1;
                }
            }
        }
        let rest = &mut blocks[named..];
        if rest.len() > keep {
            rest.select_nth_unstable_by_key(keep, |(p, b)| (b.birth, *p));
            blocks.truncate(named + keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Collector;
    use crate::event::Kind;

    #[test]
    fn a_running_copy_finishes_as_the_collector_would_and_leaves_it_going() {
        let mut c = Collector::new(0, 1.0, 100);
        c.thread_slot(7);
        for i in 0..100u64 {
            c.alloc(10 + i, 0x1000 + i * 16, i + 1, Kind::Malloc, 0, 1);
        }
        for i in 0..40u64 {
            c.free(200 + i, 0x1000 + i * 16, 0);
        }
        let copy = c.copy_for_running(Vec::with_capacity(4));
        let running = copy.finish(500, 1000);
        let trimmed = c.copy_for_running(Vec::new()).finish(500, 10);
        // Only the ten oldest are kept to be listed; all are counted.
        assert_eq!(trimmed.live_count, 60);
        assert_eq!(trimmed.live_at_end.len(), 10);
        let births: Vec<u64> = trimmed.live_at_end.iter().map(|r| r.birth).collect();
        assert_eq!(births, (50..60).collect::<Vec<u64>>());
        // The collector goes on, unchanged by the copy.
        c.alloc(600, 0x9000, 5, Kind::Malloc, 0, 2);
        let fin = c.clone().finish(700);
        assert_eq!(running.live_at_end.len(), 60);
        assert_eq!(running.live_bytes, (41..=100).sum::<u64>());
        assert_eq!(running.totals.allocations, 100);
        assert_eq!(running.totals.frees, 40);
        assert!(running.live_at_end.iter().all(|r| r.death == 500));
        assert_eq!(fin.live_at_end.len(), 61);
        assert_eq!(fin.totals.allocations, 101);
        assert_eq!(fin.live_bytes, running.live_bytes + 5);
    }
}
