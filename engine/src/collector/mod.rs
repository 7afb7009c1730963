//! Turns the merged event stream into lifetimes and exact aggregates.
//!
//! Pure Rust with no global state: the engine feeds it events in timestamp
//! order; unit tests feed it synthetic ones. All times are clock ticks; the
//! snapshot converts them.
//!
//! Timestamps from different threads can be a few hundred ns out of causal
//! order (the TSC is read without a fence, and a hook can be preempted between
//! reading it and publishing). Only events on the *same address* from
//! *different threads* can be affected, and two repairs make the result
//! exact anyway:
//! - an allocation at an address that is still live means the free that made
//!   the address available is still on its way: the old block is parked in
//!   `displaced` and that free, when it arrives, completes it;
//! - a free of an unknown address from another thread, followed within
//!   [`REORDER_WINDOW_NS`] by the allocation of that address, is the pair seen
//!   in the wrong order: the two are matched.

mod records;
mod running;
mod timeline;

use records::FreedRecords;
pub use records::Record;
pub use running::RunningCopy;
use timeline::Timeline;

use crate::event::Kind;
use memscope_format::hist::{self, LogHistogram};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// How far apart (in ns) a cross-thread free/alloc pair may be seen reversed.
pub const REORDER_WINDOW_NS: u64 = 50_000;

/// Hasher for heap addresses: they are already well spread except for their
/// low (alignment) bits, so one multiply is enough.
#[derive(Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        let x = (v ^ (v >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 32);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
}

pub type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;

/// A live block.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    pub size: u64,
    pub birth: u64,
    pub site: u32,
    pub thread: u32,
    pub kind: Kind,
}

/// Per call-site aggregates.
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub allocations: u64,
    pub reallocs: u64,
    pub bytes: u64,
    pub live_bytes: u64,
    pub live_blocks: u64,
    pub peak_live_bytes: u64,
    pub at_peak_bytes: u64,
    peak_epoch: u64,
    pub lifetimes: LogHistogram,
}

/// Per-thread aggregates, indexed by the collector's dense thread slot.
#[derive(Debug, Clone, Default)]
pub struct ThreadAgg {
    pub tid: u32,
    pub name: String,
    pub allocations: u64,
    pub bytes: u64,
    pub frees: u64,
    pub live_bytes: u64,
}

/// The SPEC §3 counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub allocations: u64,
    pub frees: u64,
    pub allocated_bytes: u64,
    pub freed_bytes: u64,
    pub reallocs: u64,
    pub unmatched_frees: u64,
    pub inherited_allocations: u64,
    pub inherited_bytes: u64,
    /// Blocks whose address was reused though their free never arrived.
    pub untracked_frees: u64,
    pub events_dropped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peak {
    pub bytes: u64,
    pub blocks: u64,
    pub ts: u64,
}

/// A variable named with `track_var!` (ids come from [`crate::vars`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarState {
    pub id: u64,
    pub ptr: u64,
    pub size: u64,
    pub thread: u32,
    pub birth: u64,
    /// None while the variable is alive.
    pub death: Option<u64>,
}

/// A free we could not match yet (see the module docs).
#[derive(Debug, Clone, Copy)]
struct OrphanFree {
    ts: u64,
    thread: u32,
    by_realloc: bool,
}

#[derive(Clone)]
pub struct Collector {
    /// The most recently born block, kept out of `live`: most blocks die
    /// before the next one is born, and then never touch the hash table.
    recent: Option<(u64, Block)>,
    live: AddrMap<Block>,
    displaced: AddrMap<Block>,
    orphans: AddrMap<OrphanFree>,
    /// Timestamp of the newest orphan free: an allocation later than this
    /// plus the reorder window cannot pair with any orphan, so most never
    /// look at `orphans` at all.
    newest_orphan: u64,
    reorder_window: u64,
    pub totals: Totals,
    pub live_bytes: u64,
    pub live_blocks: u64,
    pub peak: Peak,
    peak_dirty: bool,
    peak_epoch: u64,
    pub sites: Vec<Site>,
    pub threads: Vec<ThreadAgg>,
    thread_slots: HashMap<u32, u32>,
    /// Lifetime histogram of every completed block: counts and bytes per bucket.
    pub lifetime_counts: Vec<u64>,
    pub lifetime_bytes: Vec<u64>,
    freed: FreedRecords,
    timeline: Timeline,
    vars: Vec<VarState>,
    var_index: HashMap<u64, usize>,
    /// Blocks owned by a variable: address → variable id.
    named_blocks: AddrMap<u64>,
    /// Freed blocks that a variable owned: all kept, listed first.
    named_freed: Vec<Record>,
    /// Tick of the first event (timeline origin).
    pub first_ts: u64,
    /// In a `fork()` child, the counters as they were at the fork: the
    /// child's call sites and lifetime histogram cover only what it did
    /// itself (its counters continue the parent's).
    at_fork: Option<Totals>,
    /// In a `fork()` child, the tick of the fork: blocks born before it are
    /// the parent's (0: none are).
    inherited_before: u64,
}

impl Collector {
    /// `ns_per_tick` sizes the reorder window and the first timeline bucket;
    /// `max_records` bounds the freed records kept.
    pub fn new(start_ticks: u64, ns_per_tick: f64, max_records: usize) -> Collector {
        let ticks = |ns: u64| ((ns as f64 / ns_per_tick.max(1e-6)) as u64).max(1);
        let mut c = Collector {
            recent: None,
            live: AddrMap::default(),
            displaced: AddrMap::default(),
            orphans: AddrMap::default(),
            newest_orphan: 0,
            reorder_window: 0,
            totals: Totals::default(),
            live_bytes: 0,
            live_blocks: 0,
            peak: Peak::default(),
            peak_dirty: false,
            peak_epoch: 1,
            sites: vec![Site::default()],
            threads: Vec::new(),
            thread_slots: HashMap::new(),
            lifetime_counts: vec![0; hist::BUCKETS],
            lifetime_bytes: vec![0; hist::BUCKETS],
            freed: FreedRecords::new(max_records),
            vars: Vec::new(),
            var_index: HashMap::new(),
            named_blocks: AddrMap::default(),
            named_freed: Vec::new(),
            // First buckets of ~64 µs; they double as the run goes on.
            timeline: Timeline::new(start_ticks, 63 - ticks(64_000).leading_zeros()),
            first_ts: start_ticks,
            inherited_before: 0,
            at_fork: None,
        };
        c.set_ns_per_tick(ns_per_tick);
        c
    }

    /// Resizes the reorder window for a better known tick rate (the timeline
    /// keeps its bucket width: it only sets the resolution).
    pub fn set_ns_per_tick(&mut self, ns_per_tick: f64) {
        self.reorder_window = ((REORDER_WINDOW_NS as f64 / ns_per_tick.max(1e-6)) as u64).max(1);
    }

    /// The dense slot for kernel thread `tid` (created on first use).
    pub fn thread_slot(&mut self, tid: u32) -> u32 {
        if let Some(&s) = self.thread_slots.get(&tid) {
            return s;
        }
        let s = self.threads.len() as u32;
        self.threads.push(ThreadAgg {
            tid,
            ..ThreadAgg::default()
        });
        self.thread_slots.insert(tid, s);
        s
    }

    /// Forgets the tid → slot mapping (after `fork`, tids are reused), keeping
    /// the per-thread totals.
    pub fn forget_thread_ids(&mut self) {
        self.thread_slots.clear();
    }

    #[cold]
    fn grow_sites(&mut self, id: u32) {
        self.sites.resize_with(id as usize + 1, Site::default);
    }

    /// Before a site's live bytes change: if the process peak moved since
    /// the site last changed, its current value is its value at that peak.
    #[inline(always)]
    fn checkpoint_at_peak(s: &mut Site, epoch: u64) {
        if s.peak_epoch != epoch {
            s.at_peak_bytes = s.live_bytes;
            s.peak_epoch = epoch;
        }
    }

    /// Must run before any site changes for a decrease: if the process is
    /// leaving a new peak, every site's current value is its value at the peak.
    #[inline(always)]
    fn leaving_peak(&mut self) {
        if self.peak_dirty {
            self.peak_epoch += 1;
            self.peak_dirty = false;
        }
    }

    #[cold]
    fn new_peak(&mut self, ts: u64) {
        self.peak = Peak {
            bytes: self.live_bytes,
            blocks: self.live_blocks,
            ts,
        };
        self.peak_dirty = true;
    }

    /// A successful malloc/calloc/aligned/valloc/pvalloc/realloc(NULL).
    pub fn alloc(&mut self, ts: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32) {
        if self.orphan_may_match(ts) {
            if let Some(o) = self.orphans.remove(&ptr) {
                if o.thread != thread && ts.saturating_sub(o.ts) <= self.reorder_window {
                    return self.alloc_seen_after_its_free(ts, ptr, size, kind, thread, site, o);
                }
            }
        }
        self.totals.allocations += 1;
        self.totals.allocated_bytes += size;
        self.birth(ts, ptr, size, kind, thread, site, false);
    }

    /// Common part of every block's birth.
    #[allow(clippy::too_many_arguments)]
    fn birth(&mut self, ts: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32, by_realloc: bool) {
        let block = Block {
            size,
            birth: ts,
            site,
            thread,
            kind,
        };
        if let Some((p, b)) = self.recent.replace((ptr, block)) {
            self.insert_live(ts, p, b);
        }
        if site as usize >= self.sites.len() {
            self.grow_sites(site);
        }
        let epoch = self.peak_epoch;
        let s = &mut self.sites[site as usize];
        if by_realloc {
            s.reallocs += 1;
        } else {
            s.allocations += 1;
        }
        s.bytes += size;
        s.live_blocks += 1;
        Self::checkpoint_at_peak(s, epoch);
        s.live_bytes += size;
        s.peak_live_bytes = s.peak_live_bytes.max(s.live_bytes);
        let t = &mut self.threads[thread as usize];
        t.allocations += 1;
        t.bytes += size;
        t.live_bytes += size;
        self.live_blocks += !by_realloc as u64;
        self.live_bytes += size;
        if self.live_bytes > self.peak.bytes {
            self.new_peak(ts);
        }
        self.timeline.record(ts, self.live_bytes);
    }

    #[allow(clippy::too_many_arguments)]
    fn alloc_seen_after_its_free(
        &mut self,
        ts: u64,
        ptr: u64,
        size: u64,
        kind: Kind,
        thread: u32,
        site: u32,
        o: OrphanFree,
    ) {
        // The free was counted as unmatched; it was this block's.
        self.totals.unmatched_frees -= 1;
        self.totals.allocations += 1;
        self.totals.allocated_bytes += size;
        self.birth(ts, ptr, size, kind, thread, site, false);
        if o.by_realloc {
            // That realloc's new block was counted as an allocation because
            // its old block was unknown; now it is known to be a realloc.
            // Its block count was raised then, and a realloc keeps the count.
            self.totals.allocations -= 1;
            self.totals.reallocs += 1;
            self.live_blocks -= 1;
            self.death(ts, ptr, o.thread, Death::Realloc);
        } else {
            self.death(ts, ptr, o.thread, Death::Free);
        }
    }

    /// A block born at `born` and freed at `died` by the same thread, with no
    /// event of that thread in between: the common short-lived case, applied
    /// in one step without touching the live table. The result is exactly
    /// what `alloc` then `free` give: when the block would raise the peak, or
    /// might pair with a reordered free, it takes that path.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn transient(&mut self, born: u64, died: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32) {
        if self.live_bytes + size > self.peak.bytes || self.orphan_may_match(born) || !self.named_blocks.is_empty() {
            return self.transient_checked(born, died, ptr, size, kind, thread, site);
        }
        self.transient_counts(born, died, ptr, size, kind, thread, site);
    }

    /// `transient` when the block may raise the peak, pair with a reordered
    /// free or belong to a variable: the exact two-step path where needed.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn transient_checked(&mut self, born: u64, died: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32) {
        if self.live_bytes + size > self.peak.bytes
            || (self.orphan_may_match(born) && self.orphans.contains_key(&ptr))
            || self.named_blocks.contains_key(&ptr)
        {
            self.alloc(born, ptr, size, kind, thread, site);
            self.free(died, ptr, thread);
        } else {
            self.transient_counts(born, died, ptr, size, kind, thread, site);
        }
    }

    /// Everything an alloc + free pair changes, when no peak is crossed:
    /// the process and site at-peak values cannot change, and every live
    /// count comes back to where it was.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn transient_counts(&mut self, born: u64, died: u64, ptr: u64, size: u64, kind: Kind, thread: u32, site: u32) {
        let died = died.max(born);
        let t = &mut self.totals;
        t.allocations += 1;
        t.frees += 1;
        t.allocated_bytes += size;
        t.freed_bytes += size;
        let th = &mut self.threads[thread as usize];
        th.allocations += 1;
        th.frees += 1;
        th.bytes += size;
        if site as usize >= self.sites.len() {
            self.grow_sites(site);
        }
        let life = died - born;
        let bucket = hist::bucket_of(life);
        let s = &mut self.sites[site as usize];
        s.allocations += 1;
        s.bytes += size;
        s.peak_live_bytes = s.peak_live_bytes.max(s.live_bytes + size);
        s.lifetimes.record_in(bucket, life);
        self.lifetime_counts[bucket] += 1;
        self.lifetime_bytes[bucket] += size;
        self.timeline.record(born, self.live_bytes + size);
        self.timeline.record(died, self.live_bytes);
        self.freed.offer(Record {
            ptr,
            size,
            kind: kind as u8,
            thread,
            site,
            birth: born,
            death: died,
            inherited: born < self.inherited_before,
            var: 0,
        });
    }

    /// Could an allocation at `ts` pair with an orphan free?
    #[inline(always)]
    fn orphan_may_match(&self, ts: u64) -> bool {
        !self.orphans.is_empty() && ts <= self.newest_orphan.saturating_add(self.reorder_window)
    }

    /// Remembers a free of an unknown address (see the module docs).
    #[cold]
    #[inline(never)]
    fn note_orphan(&mut self, ptr: u64, orphan: OrphanFree) {
        self.totals.unmatched_frees += 1;
        self.newest_orphan = self.newest_orphan.max(orphan.ts);
        self.orphans.insert(ptr, orphan);
        if self.orphans.len() > 64 {
            let (w, now) = (self.reorder_window, orphan.ts);
            self.orphans.retain(|_, o| now.saturating_sub(o.ts) <= w);
        }
    }

    /// A free (or realloc(p, 0)) of `ptr`.
    pub fn free(&mut self, ts: u64, ptr: u64, thread: u32) {
        if self.death(ts, ptr, thread, Death::Free).is_none() {
            self.note_orphan(
                ptr,
                OrphanFree {
                    ts,
                    thread,
                    by_realloc: false,
                },
            );
        }
    }

    /// A successful realloc(old, size > 0) that returned `new`.
    pub fn realloc(&mut self, ts: u64, old: u64, new: u64, size: u64, thread: u32, site: u32) {
        if let Some(var) = self.death(ts, old, thread, Death::Realloc) {
            self.totals.reallocs += 1;
            self.totals.allocated_bytes += size;
            self.birth(ts, new, size, Kind::Realloc, thread, site, true);
            if var != 0 {
                // The variable owns the moved buffer now (a growing Vec).
                self.named_blocks.insert(new, var);
            }
        } else {
            self.note_orphan(
                old,
                OrphanFree {
                    ts,
                    thread,
                    by_realloc: true,
                },
            );
            self.alloc(ts, new, size, Kind::Realloc, thread, site);
        }
    }

    #[inline(never)]
    fn insert_live(&mut self, ts: u64, ptr: u64, block: Block) {
        if let Some(old) = self.live.insert(ptr, block) {
            // The free of `old` is still on its way (see module docs).
            if let Some(older) = self.displaced.insert(ptr, old) {
                self.complete_untracked(older, ts);
            }
        }
    }

    /// Removes the block a free of `ptr` by `thread` ends: the oldest one at
    /// that address.
    #[inline]
    fn take_block(&mut self, ptr: u64, thread: u32) -> Option<Block> {
        if !self.displaced.is_empty() {
            if let Some(b) = self.displaced.remove(&ptr) {
                return Some(b);
            }
        }
        match self.recent {
            Some((p, b)) if p == ptr => {
                // An older block at the same address whose free is still on
                // its way goes first. Such a free comes from another thread:
                // the allocating thread's own program order rules it out.
                if b.thread != thread {
                    if let Some(older) = self.live.remove(&ptr) {
                        return Some(older);
                    }
                }
                self.recent = None;
                Some(b)
            }
            _ => self.live.remove(&ptr),
        }
    }

    /// Moves the recent block into the table (before anything that walks it).
    fn flush_recent(&mut self) {
        if let Some((p, b)) = self.recent.take() {
            self.insert_live(b.birth, p, b);
        }
    }

    /// Ends the block at `ptr`: `None` if there is none, else the id of the
    /// variable that owned it (0: none).
    fn death(&mut self, ts: u64, ptr: u64, thread: u32, how: Death) -> Option<u64> {
        let block = self.take_block(ptr, thread)?;
        let var = if self.named_blocks.is_empty() {
            0
        } else {
            self.named_blocks.remove(&ptr).unwrap_or(0)
        };
        let ts = ts.max(block.birth);
        if let Death::Free = how {
            self.totals.frees += 1;
            self.live_blocks -= 1;
            self.threads[thread as usize].frees += 1;
        }
        self.totals.freed_bytes += block.size;
        self.release(&block, ts);
        let record = Record {
            ptr,
            size: block.size,
            kind: block.kind as u8,
            thread: block.thread,
            site: block.site,
            birth: block.birth,
            death: ts,
            inherited: block.birth < self.inherited_before,
            var,
        };
        if var == 0 {
            self.freed.offer(record);
        } else {
            self.named_freed.push(record);
        }
        Some(var)
    }

    /// A `track_var!` variable starts owning `ptr` (0: no heap block).
    pub fn var_birth(&mut self, ts: u64, id: u64, ptr: u64, size: u64, thread: u32) {
        self.var_index.insert(id, self.vars.len());
        self.vars.push(VarState {
            id,
            ptr,
            size,
            thread,
            birth: ts,
            death: None,
        });
        if ptr != 0 && self.has_block(ptr) {
            self.named_blocks.insert(ptr, id);
        }
    }

    /// A `track_var!` variable is dropped.
    pub fn var_death(&mut self, ts: u64, id: u64) {
        if let Some(&i) = self.var_index.get(&id) {
            let v = &mut self.vars[i];
            v.death.get_or_insert(ts.max(v.birth));
        }
    }

    fn has_block(&self, ptr: u64) -> bool {
        self.recent.is_some_and(|(p, _)| p == ptr) || self.live.contains_key(&ptr) || self.displaced.contains_key(&ptr)
    }

    /// What any end of a block changes: live bytes (process, site, owner
    /// thread), the lifetime histograms, the timeline. `ts >= block.birth`.
    #[inline]
    fn release(&mut self, block: &Block, ts: u64) {
        self.leaving_peak();
        if block.birth < self.inherited_before {
            // The parent's block: the child's sites, threads and histogram
            // count only the child's own blocks.
            self.live_bytes = self.live_bytes.saturating_sub(block.size);
            self.timeline.record(ts, self.live_bytes);
            return;
        }
        let owner = &mut self.threads[block.thread as usize];
        owner.live_bytes = owner.live_bytes.saturating_sub(block.size);
        let life = ts - block.birth;
        let bucket = hist::bucket_of(life);
        let epoch = self.peak_epoch;
        let s = &mut self.sites[block.site as usize];
        s.live_blocks -= 1;
        Self::checkpoint_at_peak(s, epoch);
        s.live_bytes = s.live_bytes.saturating_sub(block.size);
        s.lifetimes.record_in(bucket, life);
        self.lifetime_counts[bucket] += 1;
        self.lifetime_bytes[bucket] += block.size;
        self.live_bytes = self.live_bytes.saturating_sub(block.size);
        self.timeline.record(ts, self.live_bytes);
    }

    /// A displaced block whose free never came: its address was reused, so it
    /// was freed by a path memscope does not see.
    fn complete_untracked(&mut self, block: Block, ts: u64) {
        self.totals.untracked_frees += 1;
        self.live_blocks -= 1;
        self.release(&block, ts.max(block.birth));
    }

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
    /// shell's sites. The parent's site table is left where it is, not
    /// freed: freeing it would copy the pages that hold it.
    pub fn mark_inherited(&mut self, fork_ts: u64) {
        self.freed = FreedRecords::new(self.freed.capacity());
        self.named_freed.clear();
        std::mem::forget(std::mem::replace(&mut self.sites, vec![Site::default()]));
        self.lifetime_counts = vec![0; hist::BUCKETS];
        self.lifetime_bytes = vec![0; hist::BUCKETS];
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
            sites: Vec::new(),
            threads: Vec::new(),
            lifetime_counts: Vec::new(),
            lifetime_bytes: Vec::new(),
            timeline,
            vars: Vec::new(),
            named_freed: Vec::new(),
            inherited_only: true,
        }
    }

    pub fn live_count(&self) -> usize {
        self.live.len() + self.displaced.len() + self.recent.is_some() as usize
    }

    /// Ends the run at `end`: live blocks get their lifetime up to `end`.
    /// Consumes the per-block state and returns what a snapshot needs.
    pub fn finish(mut self, end: u64) -> Finished {
        self.flush_recent();
        let blocks: Vec<(u64, Block)> = self.live.drain().chain(self.displaced.drain()).collect();
        let mut fin = self.finish_with(blocks, end, usize::MAX);
        fin.live_at_end.sort_by_key(|r| (r.birth, r.ptr));
        fin
    }

    /// [`finish`](Self::finish) with the live blocks given as a list (a
    /// running snapshot copies them out; see `running`), left unsorted;
    /// only `keep` of them (see `running::keep_listable`) become records.
    fn finish_with(mut self, mut blocks: Vec<(u64, Block)>, end: u64, keep: usize) -> Finished {
        if self.peak_dirty {
            self.peak_epoch += 1;
        }
        let epoch = self.peak_epoch;
        for s in &mut self.sites {
            if s.peak_epoch != epoch {
                s.at_peak_bytes = s.live_bytes;
            }
        }
        let mut inherited_live = (0, 0);
        let (mut live_count, mut live_bytes) = (0, 0);
        for (_, b) in &blocks {
            if b.birth < self.inherited_before {
                // Still as the parent left it: listed in its snapshot.
                inherited_live = (inherited_live.0 + 1, inherited_live.1 + b.size);
                continue;
            }
            let life = end.max(b.birth) - b.birth;
            let bucket = hist::bucket_of(life);
            self.sites[b.site as usize].lifetimes.record_in(bucket, life);
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
            timeline: self.timeline.points(),
            vars: self.vars,
            named_freed: self.named_freed,
            inherited_only: false,
        }
    }
}

#[derive(Clone, Copy)]
enum Death {
    Free,
    Realloc,
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
    pub sites: Vec<Site>,
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

#[cfg(test)]
mod tests;
