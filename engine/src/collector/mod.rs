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

mod events;
mod finish;
mod live;
mod open_table;
mod records;
mod running;
mod sites;
mod timeline;

pub use finish::Finished;
use live::LiveTable;
use records::FreedRecords;
pub use records::Record;
pub use running::RunningCopy;
pub use sites::SiteTable;
use timeline::Timeline;

use crate::event::Kind;
use memscope_format::hist::{self, LogHistogram};
use std::collections::HashMap;

/// How far apart (in ns) a cross-thread free/alloc pair may be seen reversed.
pub const REORDER_WINDOW_NS: u64 = 50_000;

pub use memscope_format::addr_map::{AddrHasher, AddrMap};

/// A live block.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    pub size: u64,
    pub birth: u64,
    pub site: u32,
    pub thread: u32,
    /// A [`Kind`] as its `u8`: an enum here would lend `Option<Block>` (the
    /// live table's answers) its spare values, and the byte-wide packing
    /// that costs makes the next read of the block stall.
    pub kind: u8,
}

/// The collector's most recent block: address 0 when there is none. Not an
/// `Option<(u64, Block)>`: that one keeps its tag in `Block::kind`'s spare
/// values, and the byte-wide writes that packs made every later read of the
/// block wait (a failed store-to-load forward) on the hottest path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recent {
    pub ptr: u64,
    pub block: Block,
}

impl Recent {
    pub const NONE: Recent = Recent {
        ptr: 0,
        block: Block {
            size: 0,
            birth: 0,
            site: 0,
            thread: 0,
            kind: Kind::Malloc as u8,
        },
    };

    pub fn is_some(&self) -> bool {
        self.ptr != 0
    }
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
    /// Blocks live when `peak_live_bytes` was first reached.
    pub peak_live_blocks: u64,
    pub at_peak_bytes: u64,
    pub at_peak_blocks: u64,
    peak_epoch: u64,
    pub lifetimes: LogHistogram,
}

impl Site {
    /// After a birth, with the site's live `bytes` and `blocks` then: its
    /// own maximum, and the blocks live when it was first reached (DHAT's
    /// `mb`/`mbk`; the first block counts even at 0 bytes, as a sweep of
    /// the site's records gives it).
    #[inline(always)]
    fn note_own_peak(&mut self, bytes: u64, blocks: u64) {
        if bytes > self.peak_live_bytes || self.peak_live_blocks == 0 {
            self.peak_live_bytes = bytes;
            self.peak_live_blocks = blocks;
        }
    }
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
    recent: Recent,
    live: LiveTable,
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
    pub sites: SiteTable,
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
            recent: Recent::NONE,
            live: LiveTable::default(),
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
            sites: SiteTable::dense(),
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

    /// True when the live table is larger than the cache: then the consumer
    /// prefetches the entries the events ahead will look up.
    #[inline(always)]
    pub fn live_is_large(&self) -> bool {
        self.live.is_large()
    }

    /// Starts loading the live table's entry for `ptr`.
    #[inline(always)]
    pub fn prefetch_live(&self, ptr: u64) {
        self.live.prefetch(ptr)
    }

    /// Forgets the tid → slot mapping (after `fork`, tids are reused), keeping
    /// the per-thread totals.
    pub fn forget_thread_ids(&mut self) {
        self.thread_slots.clear();
    }

    /// Before a site's live bytes change: if the process peak moved since
    /// the site last changed, its current value is its value at that peak.
    #[inline(always)]
    fn checkpoint_at_peak(s: &mut Site, epoch: u64) {
        if s.peak_epoch != epoch {
            s.at_peak_bytes = s.live_bytes;
            s.at_peak_blocks = s.live_blocks;
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
}

#[cfg(test)]
mod test_blocks;
#[cfg(test)]
mod tests;
