//! The consumer: merges every thread's ring, in timestamp order, into the
//! [`Collector`]. It runs on the collector thread, or — where there is none,
//! or it is behind — on a producer that makes room in its own ring; either
//! way under the [`ENGINE`] lock.
//!
//! The merge is exact across threads: each round only goes as far as every
//! ring allows (a ring's head event, or the bound an empty or in-flight ring
//! puts on the others), so the collector sees one global timestamp order.

use crate::clock;
use crate::collector::Collector;
use crate::event::{Kind, OneSlotRealloc};
use crate::image::{start_anchor, PID, SHUT_DOWN};
use crate::lock::Locked;
use crate::registry;
use crate::ring::{Peek, Ring, OWNED, RETIRED};
use crate::sys;
use std::sync::atomic::Ordering;

/// Consumer state of the engine (collector + one cursor per ring).
pub static ENGINE: Locked<Option<EngineState>> = Locked::new(None);

/// How far the consumer may go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Up to a little before now, leaving room for hooks in flight.
    Running,
    /// In the parent's fork handler, on the forking thread: as `Running`,
    /// but up to now when every ring that may still receive events is this
    /// thread's own — its earlier events are all published (one left in
    /// flight by a hook that a forking signal handler interrupted bounds
    /// the merge, as in any drain, and is not waited for) and a ring claimed
    /// after the scan holds only later events. Left in the rings, the
    /// newest events (a shell's allocations just before it forks) would be
    /// applied again by every child, each copying the pages of the tables
    /// they touch (~30 page faults per child of a shell loop).
    BeforeFork,
    /// Everything with a timestamp up to `end`, waiting for hooks in flight.
    UpTo(u64),
    /// In a fork child: everything there is; other threads no longer exist.
    ForkChild,
}

/// Per-ring consumer state.
struct Cursor {
    ring: &'static Ring,
    generation: u32,
    thread: u32,
    tid: u32,
    /// Drained and released: not read until a new owner claims the ring.
    parked: bool,
    next: u64,
    last_ts: u64,
    pending_from: Option<u64>,
    /// What the consumer last told the producer it may reuse up to (not
    /// read back from the ring's counter on every event).
    released: u64,
    /// When (monotonic ns) the slot at `next` was first seen in flight.
    inflight_since: u64,
    /// The producer's reservation count, read once per round.
    reserved: u64,
    /// The effective timestamp of the ready head event, or the bound this
    /// ring puts on the others when it has none.
    key: u64,
    ready: bool,
}

pub struct EngineState {
    pub collector: Collector,
    /// Facts about this image (set at start-up, updated after fork).
    pub process: Option<crate::process::ProcessInfo>,
    cursors: Vec<Cursor>,
    /// Ticks a hook may take between reserving a slot and reading the clock.
    slack: u64,
    /// False while windows are sized with [`clock::DEFAULT_NS_PER_TICK`].
    rate_measured: bool,
    last_maintenance: u64,
    /// In-flight slots of threads that no longer exist (fork child) or that
    /// stayed unpublished too long: counted, never silently lost.
    pub inflight_lost: u64,
}

/// The engine state, created on first use.
pub fn state(slot: &mut Option<EngineState>) -> &mut EngineState {
    slot.get_or_insert_with(|| {
        let start = start_anchor();
        let cfg = crate::config::get();
        let measured = clock::measured_ns_per_tick(&start);
        let ns_per_tick = measured.unwrap_or(clock::DEFAULT_NS_PER_TICK);
        EngineState {
            collector: Collector::new(start.ticks, ns_per_tick, cfg.max_records as usize),
            process: None,
            cursors: Vec::new(),
            slack: slack_ticks(ns_per_tick),
            rate_measured: measured.is_some(),
            last_maintenance: 0,
            inflight_lost: 0,
        }
    })
}

/// The merge's slack: 20 µs in ticks.
fn slack_ticks(ns_per_tick: f64) -> u64 {
    ((20_000.0 / ns_per_tick) as u64).max(1)
}

impl EngineState {
    /// Resizes the windows with the measured tick rate once it can be
    /// measured without waiting (see [`clock::DEFAULT_NS_PER_TICK`]).
    fn measure_rate(&mut self, now: u64) {
        let start = start_anchor();
        let threshold = (clock::RATE_MEASURE_NS as f64 / clock::DEFAULT_NS_PER_TICK) as u64;
        if now.saturating_sub(start.ticks) < threshold {
            return;
        }
        if let Some(ns_per_tick) = clock::measured_ns_per_tick(&start) {
            self.slack = slack_ticks(ns_per_tick);
            self.collector.set_ns_per_tick(ns_per_tick);
            self.rate_measured = true;
        }
    }

    /// Adopts new rings and new owners of recycled rings.
    fn sync_cursors(&mut self) {
        if self.cursors.len() < registry::COUNT.load(Ordering::Acquire) as usize {
            let known = self.cursors.len();
            for ring in registry::rings() {
                if !self.cursors[..known].iter().any(|c| std::ptr::eq(c.ring, ring)) {
                    self.cursors.push(Cursor {
                        ring,
                        generation: 0,
                        thread: 0,
                        tid: 0,
                        parked: true,
                        next: ring.consumed(),
                        released: ring.consumed(),
                        last_ts: 0,
                        pending_from: None,
                        inflight_since: 0,
                        reserved: 0,
                        key: 0,
                        ready: false,
                    });
                }
            }
        }
        for c in &mut self.cursors {
            // A new owner may already have left the ring for a big one
            // (RETIRED) before this round: its events are still to read.
            let state = c.ring.state.load(Ordering::Acquire);
            if c.parked && (state == OWNED || state == RETIRED) {
                let generation = c.ring.generation.load(Ordering::Relaxed);
                if generation != c.generation {
                    c.generation = generation;
                    c.tid = c.ring.tid.load(Ordering::Relaxed);
                    c.thread = self.collector.thread_slot(c.tid);
                    c.parked = false;
                    c.last_ts = 0;
                    let name = c.ring.name();
                    if !name.is_empty() {
                        self.collector.threads[c.thread as usize].name = name;
                    }
                }
            }
        }
    }

    /// True when every ring that may still receive events (not parked) is
    /// the calling thread's own.
    fn only_own_rings(&self) -> bool {
        let own = crate::thread::with(|s| s.ring.get());
        self.cursors.iter().all(|c| c.parked || std::ptr::eq(c.ring, own))
    }

    /// Merges ready events of every ring into the collector, in timestamp
    /// order, as far as `mode` allows. Returns the number of events applied.
    pub fn drain(&mut self, mode: Mode) -> u64 {
        if SHUT_DOWN.load(Ordering::Acquire) {
            return 0;
        }
        // "now" first, then the rings: a ring that shows up (a new thread,
        // a ring handed over or upgraded) after the scan below was claimed
        // after this instant, so its events are all later than `now` and
        // nothing up to the idle bound can still appear in it.
        let now = clock::now();
        if !self.rate_measured {
            self.measure_rate(now);
        }
        self.sync_cursors();
        // While running, nothing later than the idle bound is applied, even
        // when no known ring is empty or in flight to bound the merge: a
        // ring this round does not know yet (its thread claims it after the
        // scan below) can still receive events from `now` on, and those
        // come before the later events of the rings it does know.
        let idle = now.saturating_sub(self.slack);
        if mode == Mode::Running {
            crate::rss::sample_if_due();
        }
        let (idle_bound, ts_limit) = match mode {
            Mode::Running => (idle, idle),
            Mode::BeforeFork if self.only_own_rings() => (now, now),
            Mode::BeforeFork => (idle, idle),
            Mode::UpTo(end) => (end, end),
            Mode::ForkChild => (u64::MAX, u64::MAX),
        };
        for i in 0..self.cursors.len() {
            self.cursors[i].reserved = self.cursors[i].ring.reserved();
            self.refresh(i, mode, idle_bound);
        }
        let mut applied = 0;
        loop {
            // The ring with the oldest ready event, and the bound every
            // other ring puts on how far it may go.
            let mut best: Option<usize> = None;
            let mut bound = u64::MAX;
            for (i, c) in self.cursors.iter().enumerate() {
                match best {
                    _ if !c.ready => bound = bound.min(c.key),
                    Some(b) if c.key >= self.cursors[b].key => bound = bound.min(c.key),
                    Some(b) => {
                        bound = bound.min(self.cursors[b].key);
                        best = Some(i);
                    }
                    None => best = Some(i),
                }
            }
            let Some(i) = best else { break };
            let limit = bound.min(ts_limit);
            if self.cursors[i].key > limit {
                break;
            }
            let (n, stopped_at_ready) = self.apply_from(i, limit);
            applied += n;
            if !stopped_at_ready {
                self.refresh(i, mode, idle_bound);
            }
        }
        for c in &mut self.cursors {
            if c.next != c.ring.consumed() {
                c.ring.release_until(c.next);
            }
            c.released = c.next;
        }
        applied
    }

    /// Events reserved (as of the last round) but not yet applied.
    pub fn backlog(&self) -> u64 {
        self.cursors
            .iter()
            .filter(|c| !c.parked)
            .map(|c| c.reserved.saturating_sub(c.next))
            .sum()
    }

    /// Recomputes cursor `i`'s head, skipping slots whose producer is gone.
    fn refresh(&mut self, i: usize, mode: Mode, idle_bound: u64) {
        loop {
            let c = &mut self.cursors[i];
            if c.parked {
                (c.key, c.ready) = (u64::MAX, false);
                return;
            }
            match c.ring.peek(c.next, c.reserved) {
                Peek::Ready(ev) => {
                    c.inflight_since = 0;
                    (c.key, c.ready) = (ev.ts.max(c.last_ts), true);
                    return;
                }
                Peek::Empty => {
                    (c.key, c.ready) = (idle_bound, false);
                    return;
                }
                Peek::InFlight => {
                    if !self.give_up_on_inflight(i, mode) {
                        let c = &mut self.cursors[i];
                        (c.key, c.ready) = (c.last_ts, false);
                        return;
                    }
                    let c = &mut self.cursors[i];
                    c.next += 1;
                    c.inflight_since = 0;
                    if mode == Mode::ForkChild {
                        // A thread of the parent was inside a hook at the fork.
                        // No event of this image is lost: a free in flight leaves
                        // the block live here, as it is; an allocation in flight
                        // is a block no thread of this image can reference.
                        crate::debug!("skipped an event thread {} had in flight at fork()", c.tid);
                    } else {
                        self.inflight_lost += 1;
                        crate::warn!("an event of thread {} was never published; counted as lost", c.tid);
                    }
                }
            }
        }
    }

    /// True when the in-flight slot of cursor `i` will never be published:
    /// its thread is gone, or it has been unpublished for too long.
    fn give_up_on_inflight(&mut self, i: usize, mode: Mode) -> bool {
        let c = &mut self.cursors[i];
        if mode == Mode::ForkChild {
            return true;
        }
        let now = clock::monotonic_ns();
        if c.inflight_since == 0 {
            c.inflight_since = now;
            return false;
        }
        let waited = now - c.inflight_since;
        let patience = if matches!(mode, Mode::UpTo(_)) {
            100_000_000
        } else {
            1_000_000_000
        };
        waited > patience || (waited > 10_000_000 && !sys::thread_alive(PID.load(Ordering::Relaxed), c.tid))
    }

    /// Applies the ready events of cursor `i` with timestamps up to `bound`.
    /// Returns how many, and whether it stopped at a ready event past
    /// `bound` — which it then leaves as the cursor's head, as [`refresh`]
    /// would. With threads allocating at once, their events interleave and
    /// the merge switches rings every few events (alloc_bench, 4 threads:
    /// ~1 M switches for 5 M events); reading that head a second time was
    /// a slot read and decode per switch.
    ///
    /// [`refresh`]: Self::refresh
    fn apply_from(&mut self, i: usize, bound: u64) -> (u64, bool) {
        let mut n = 0;
        let c = &mut self.cursors[i];
        let col = &mut self.collector;
        loop {
            let Peek::Ready(ev) = c.ring.peek(c.next, c.reserved) else {
                return (n, false);
            };
            let ts = ev.ts.max(c.last_ts);
            if ts > bound {
                c.inflight_since = 0;
                (c.key, c.ready) = (ts, true);
                return (n, true);
            }
            if col.live_is_large() {
                prefetch_ahead(c, col);
            }
            c.last_ts = ts;
            c.next += 1;
            let (thread, site) = (c.thread, ev.aux as u32);
            n += 1;
            match ev.kind {
                Kind::Free => col.free(ts, ev.ptr, thread),
                Kind::ReallocFrom => c.pending_from = Some(ev.ptr),
                Kind::VarBirth => col.var_birth(ts, ev.aux, ev.ptr, ev.size, thread),
                Kind::VarDeath => col.var_death(ts, ev.aux),
                Kind::ReallocOne => {
                    let r = OneSlotRealloc::unpack(ev.ptr, ev.aux);
                    col.realloc(ts, r.old, r.new, ev.size, thread, r.site)
                }
                Kind::ReallocTo => match c.pending_from.take() {
                    Some(old) => col.realloc(ts, old, ev.ptr, ev.size, thread, site),
                    None => col.alloc(ts, ev.ptr, ev.size, Kind::Realloc, thread, site),
                },
                kind => match c.ring.peek(c.next, c.reserved) {
                    // Freed by the very next event of its thread: one step.
                    Peek::Ready(f) if f.kind == Kind::Free && f.ptr == ev.ptr && f.ts.max(ts) <= bound => {
                        let died = f.ts.max(ts);
                        c.last_ts = died;
                        c.next += 1;
                        n += 1;
                        col.transient(ts, died, ev.ptr, ev.size, kind, thread, site);
                    }
                    _ => col.alloc(ts, ev.ptr, ev.size, kind, thread, site),
                },
            }
            if c.next - c.released >= 4096 {
                c.ring.release_until(c.next);
                c.released = c.next;
            }
        }
    }

    /// Recycles the rings of threads that have exited, once drained; keeps
    /// thread names current.
    pub fn maintain(&mut self) {
        if SHUT_DOWN.load(Ordering::Acquire) {
            return;
        }
        let now = clock::monotonic_ns();
        if now - self.last_maintenance < 100_000_000 {
            return;
        }
        self.last_maintenance = now;
        self.refresh_names();
        let pid = PID.load(Ordering::Relaxed);
        for c in &mut self.cursors {
            if c.parked {
                continue;
            }
            let drained = c.ring.reserved() == c.next;
            if drained && (c.ring.state.load(Ordering::Acquire) == RETIRED || !sys::thread_alive(pid, c.tid)) {
                c.parked = true;
                registry::release(c.ring);
            }
        }
    }

    /// Copies each owned ring's thread name into the thread table (the name a
    /// ring carries is its owner's, until the ring is released).
    pub fn refresh_names(&mut self) {
        for c in self.cursors.iter().filter(|c| !c.parked) {
            let name = c.ring.name();
            let t = &mut self.collector.threads[c.thread as usize];
            if !name.is_empty() && t.name != name {
                t.name = name;
            }
        }
    }

    /// In a fork child, at tick `fork_ts`: every ring belonged to a thread
    /// of the parent (the forking thread's own included, whose events up to
    /// the fork are the parent's). Drain them all and release them: the
    /// child's threads claim rings at their first event, which is also what
    /// starts the child's collector thread.
    pub fn adopt_after_fork(&mut self, fork_ts: u64) {
        self.drain(Mode::ForkChild);
        self.collector.forget_thread_ids();
        for c in self.cursors.iter_mut().filter(|c| !c.parked) {
            c.parked = true;
            registry::release(c.ring);
        }
        self.collector.mark_inherited(fork_ts);
    }
}

/// How many events ahead of the one applied the consumer prefetches the
/// live-table entry of: far enough for a load from memory (~100 ns) to land
/// before the event is applied, near enough that the line is still in
/// cache then. 8 and 16 measured alike on a 1 M-block heap; 16 leaves room
/// for a faster consumer.
const LOOKAHEAD: u64 = 16;

/// Prefetches the live-table entry the event `LOOKAHEAD` slots ahead of
/// cursor `c` will look up (a free's block, a realloc's old block, a new
/// block's slot for when it is inserted).
#[inline(always)]
fn prefetch_ahead(c: &Cursor, col: &Collector) {
    if let Peek::Ready(ev) = c.ring.peek(c.next + LOOKAHEAD, c.reserved) {
        let ptr = match ev.kind {
            Kind::ReallocOne => OneSlotRealloc::unpack(ev.ptr, ev.aux).old,
            Kind::VarBirth | Kind::VarDeath => return,
            _ => ev.ptr,
        };
        col.prefetch_live(ptr);
    }
}
