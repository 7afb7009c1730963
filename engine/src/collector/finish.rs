//! The collector's end states: a `fork()` child's start, the summary of a
//! child without events of its own, and the [`Finished`] state a snapshot
//! is built from.

use super::live::LiveTable;
use super::records::FreedRecords;
use super::{AddrMap, Block, Collector, Peak, Record, SiteTable, ThreadAgg, Totals, VarState};
use memscope_format::hist;

impl Collector {
    /// Becomes the state of a `fork()` child at tick `fork_ts`: every live
    /// block is inherited, and the parent's freed-block records stay the
    /// parent's (the counters, peak and timeline continue, as DHAT counts a
    /// child).
    /// No block is touched: which ones are inherited follows from their
    /// birth, so a child does not copy the pages of its parent's heap table
    /// (copy-on-write) just to mark them.
    ///
    /// The call sites, the per-thread figures and the lifetime histogram
    /// start empty: a child's show what it did itself, as memray shows a
    /// child, while its counters, peak and timeline continue the parent's. A shell's
    /// children (hundreds in a script) would otherwise each repeat the
    /// shell's sites. Nothing is allocated or freed here: the parent's site
    /// table and kept records are left where they are (freeing them, or
    /// allocating, writes to heap pages the child shares with its parent,
    /// and each page written is copied: a page fault).
    pub fn mark_inherited(&mut self, fork_ts: u64) {
        let kept = FreedRecords::new(self.freed.capacity());
        std::mem::forget(std::mem::replace(&mut self.freed, kept));
        self.named_freed.clear();
        std::mem::forget(std::mem::replace(&mut self.sites, SiteTable::sparse()));
        self.lifetime_counts.fill(0);
        self.lifetime_bytes.fill(0);
        for t in &mut self.threads {
            *t = ThreadAgg {
                tid: t.tid,
                name: std::mem::take(&mut t.name),
                ..ThreadAgg::default()
            };
        }
        self.at_fork = Some(self.totals);
        self.inherited_before = fork_ts;
        self.totals.inherited_allocations = self.live_count() as u64;
        self.totals.inherited_bytes = self.live_bytes;
        // The table's share of the live bytes: the rest is the recent
        // block's and the displaced ones'.
        let elsewhere: u64 = self.displaced.values().map(|b| b.size).sum::<u64>()
            + if self.recent.is_some() {
                self.recent.block.size
            } else {
                0
            };
        self.live.fork_overlay(self.live_bytes.saturating_sub(elsewhere));
    }

    /// What the snapshot of a `fork()` child that made no event of its own
    /// shows (SPEC §2 `inherited_only`): the inherited totals and peak, and
    /// the moment of the fork on the timeline; no records, sites, threads or
    /// histograms, and nothing of the parent's heap is copied.
    pub fn inherited_only(&self) -> Finished {
        let mut timeline = Vec::with_capacity(3);
        if self.peak.bytes > 0 {
            timeline.push((self.peak.ts, self.peak.bytes));
        }
        timeline.push((self.inherited_before, self.live_bytes));
        Finished {
            totals: self.totals,
            at_fork: self.at_fork,
            inherited_live_at_end: (self.live_count() as u64, self.live_bytes),
            peak: self.peak,
            live_at_end: Vec::new(),
            live_count: 0,
            live_bytes: self.live_bytes,
            freed: Vec::new(),
            sites: SiteTable::sparse(),
            threads: Vec::new(),
            lifetime_counts: Vec::new(),
            lifetime_bytes: Vec::new(),
            timeline,
            vars: Vec::new(),
            named_freed: Vec::new(),
            inherited_only: true,
        }
    }

    /// The timeline a snapshot shows. A `fork()` child's starts at the
    /// fork: the parent's points before it are in the parent's snapshot
    /// (a shell's hundreds of children would each repeat them, ~13 KB
    /// apiece); the peak, if it came before the fork, stays as one point,
    /// and the fork itself is a point at the live bytes inherited.
    fn own_timeline(&self) -> Vec<(u64, u64)> {
        if self.at_fork.is_none() {
            return self.timeline.points();
        }
        let fork = self.inherited_before;
        let mut out = Vec::with_capacity(8);
        if self.peak.bytes > 0 && self.peak.ts < fork {
            out.push((self.peak.ts, self.peak.bytes));
        }
        out.push((fork, self.totals.inherited_bytes));
        out.extend(self.timeline.points_since(fork));
        out
    }

    pub fn live_count(&self) -> usize {
        self.live.len() + self.displaced.len() + self.recent.is_some() as usize
    }

    /// Ends the run at `end`: live blocks get their lifetime up to `end`.
    /// Consumes the per-block state and returns what a snapshot needs.
    pub fn finish(mut self, end: u64) -> Finished {
        self.flush_recent();
        // Only the blocks born here are listed: a `fork()` child's inherited
        // ones (often most of its table) are counted as they go by, not
        // copied out (a shell's child: ~1,400 blocks, ~35 µs of fresh pages).
        let fork = self.inherited_before;
        // Sized for all of them unless they are a fork child's (its own are few).
        let mut blocks = Vec::with_capacity(if fork == 0 { self.live_count() } else { 0 });
        let inherited = split_inherited(&self.live, &self.displaced, fork, &mut blocks);
        let mut fin = self.finish_with(blocks, inherited, end, usize::MAX);
        fin.live_at_end.sort_by_key(|r| (r.birth, r.ptr));
        fin
    }

    /// [`finish`](Self::finish) with the live blocks given as a list (a
    /// running snapshot copies them out; see `running`), left unsorted;
    /// only `keep` of them (see `running::keep_listable`) become records.
    /// `inherited`: live inherited blocks (count, bytes) counted, not
    /// listed, besides any in `blocks`.
    pub(super) fn finish_with(
        mut self,
        mut blocks: Vec<(u64, Block)>,
        inherited: (u64, u64),
        end: u64,
        keep: usize,
    ) -> Finished {
        if self.peak_dirty {
            self.peak_epoch += 1;
        }
        let epoch = self.peak_epoch;
        for s in self.sites.iter_mut() {
            if s.peak_epoch != epoch {
                s.at_peak_bytes = s.live_bytes;
                s.at_peak_blocks = s.live_blocks;
            }
        }
        let mut inherited_live = inherited;
        let (mut live_count, mut live_bytes) = (0, 0);
        for (_, b) in &blocks {
            if b.birth < self.inherited_before {
                // Still as the parent left it: listed in its snapshot.
                inherited_live = (inherited_live.0 + 1, inherited_live.1 + b.size);
                continue;
            }
            let life = end.max(b.birth) - b.birth;
            let bucket = hist::bucket_of(life);
            self.sites.get_mut(b.site).lifetimes.record_in(bucket, life);
            self.lifetime_counts[bucket] += 1;
            self.lifetime_bytes[bucket] += b.size;
            live_count += 1;
            live_bytes += b.size;
        }
        if inherited_live.0 > 0 {
            blocks.retain(|(_, b)| b.birth >= self.inherited_before);
        }
        if blocks.len() > keep {
            self.keep_listable(&mut blocks, keep);
        }
        let mut live: Vec<Record> = Vec::with_capacity(blocks.len());
        for (ptr, b) in blocks {
            let death = end.max(b.birth);
            live.push(Record {
                ptr,
                size: b.size,
                kind: b.kind as u8,
                thread: b.thread,
                site: b.site,
                birth: b.birth,
                death,
                inherited: b.birth < self.inherited_before,
                var: if self.named_blocks.is_empty() {
                    0
                } else {
                    self.named_blocks.get(&ptr).copied().unwrap_or(0)
                },
            });
        }
        let live_bytes = live_bytes + inherited_live.1;
        let timeline = self.own_timeline();
        Finished {
            totals: self.totals,
            at_fork: self.at_fork,
            inherited_live_at_end: inherited_live,
            peak: self.peak,
            live_count,
            live_at_end: live,
            live_bytes,
            freed: self.freed.into_kept(),
            sites: self.sites,
            threads: self.threads,
            lifetime_counts: self.lifetime_counts,
            lifetime_bytes: self.lifetime_bytes,
            timeline,
            vars: self.vars,
            named_freed: self.named_freed,
            inherited_only: false,
        }
    }
}

/// Everything a snapshot is built from.
pub struct Finished {
    pub totals: Totals,
    /// A fork child's counters at the fork (see `Collector::mark_inherited`).
    pub at_fork: Option<Totals>,
    /// Inherited blocks still live at the end, and their bytes: counted in
    /// the totals, not listed (the parent's snapshot lists them).
    pub inherited_live_at_end: (u64, u64),
    pub peak: Peak,
    /// Blocks live at the end, oldest first.
    pub live_at_end: Vec<Record>,
    /// How many blocks are live at the end (not inherited): a running
    /// snapshot's `live_at_end` keeps only the ones it can list.
    pub live_count: u64,
    pub live_bytes: u64,
    /// Kept freed records, the largest (see `records`), in no order.
    pub freed: Vec<Record>,
    pub sites: SiteTable,
    pub threads: Vec<ThreadAgg>,
    pub lifetime_counts: Vec<u64>,
    pub lifetime_bytes: Vec<u64>,
    pub timeline: Vec<(u64, u64)>,
    /// `track_var!` variables in birth order.
    pub vars: Vec<VarState>,
    /// Freed blocks a variable owned (live ones are in `live_at_end`).
    pub named_freed: Vec<Record>,
    /// A fork child's summary only (see [`Collector::inherited_only`]).
    pub inherited_only: bool,
}

/// The live blocks (`live` and `displaced`) split at tick `fork`: those
/// born before it — a `fork()` child's inherited ones — counted and
/// returned as (blocks, bytes), the others pushed to `own`.
pub(super) fn split_inherited(
    live: &LiveTable,
    displaced: &AddrMap<Block>,
    fork: u64,
    own: &mut Vec<(u64, Block)>,
) -> (u64, u64) {
    // A child's inherited blocks it left alone are counted, not read.
    let mut inherited = live.untouched_inherited();
    for (ptr, b) in live.iter_own().chain(displaced.iter().map(|(p, b)| (*p, *b))) {
        if b.birth < fork {
            inherited = (inherited.0 + 1, inherited.1 + b.size);
        } else {
            own.push((ptr, b));
        }
    }
    inherited
}
