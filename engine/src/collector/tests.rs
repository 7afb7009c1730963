use super::*;

fn new() -> Collector {
    // 1 tick = 1 ns keeps the arithmetic readable.
    let mut c = Collector::new(0, 1.0, 1000);
    c.thread_slot(100);
    c.thread_slot(200);
    c
}

fn check_counts(c: &Collector) {
    let t = c.totals;
    assert_eq!(t.allocations, t.frees + t.untracked_frees + c.live_blocks);
    assert_eq!(c.live_blocks as usize, c.live_count());
    let site_live: u64 = c.sites.iter().map(|(_, s)| s.live_bytes).sum();
    assert_eq!(site_live, c.live_bytes);
    assert_eq!(t.allocated_bytes - t.freed_bytes, c.live_bytes);
    let thread_live: u64 = c.threads.iter().map(|t| t.live_bytes).sum();
    assert_eq!(thread_live, c.live_bytes);
}

#[test]
fn lifetimes_counts_and_peak() {
    let mut c = new();
    c.alloc(10, 0x1000, 100, Kind::Malloc, 0, 1);
    c.alloc(20, 0x2000, 50, Kind::Calloc, 0, 2);
    c.free(70, 0x1000, 0);
    c.alloc(80, 0x3000, 10, Kind::Malloc, 1, 1);
    check_counts(&c);
    assert_eq!(
        c.peak,
        Peak {
            bytes: 150,
            blocks: 2,
            ts: 20
        }
    );
    let f = c.finish(1000);
    assert_eq!(f.totals.allocations, 3);
    assert_eq!(f.totals.frees, 1);
    assert_eq!(f.totals.allocated_bytes, 160);
    assert_eq!(f.totals.freed_bytes, 100);
    assert_eq!(f.freed.len(), 1);
    assert_eq!((f.freed[0].birth, f.freed[0].death), (10, 70));
    let live: Vec<_> = f.live_at_end.iter().map(|r| (r.ptr, r.birth, r.death)).collect();
    assert_eq!(live, vec![(0x2000, 20, 1000), (0x3000, 80, 1000)]);
    assert_eq!(f.live_bytes, 60);
    // Site 1: 100 B then 10 B; its own peak is 100; at the global peak (t=20) it had 100.
    assert_eq!(f.sites[1].allocations, 2);
    assert_eq!(f.sites[1].peak_live_bytes, 100);
    assert_eq!(f.sites[1].at_peak_bytes, 100);
    assert_eq!(f.sites[2].at_peak_bytes, 50);
    assert_eq!(f.sites[1].lifetimes.count(), 2);
    assert_eq!(f.sites[1].lifetimes.stats().min, 60);
    assert_eq!(f.sites[1].lifetimes.stats().max, 920);
    assert_eq!(f.threads[0].allocations, 2);
    assert_eq!(f.threads[1].live_bytes, 10);
    assert_eq!(f.lifetime_counts.iter().sum::<u64>(), 3);
}

#[test]
fn realloc_counts_once_and_moves_the_block() {
    let mut c = new();
    c.alloc(1, 0x10, 16, Kind::Malloc, 0, 1);
    c.realloc(5, 0x10, 0x10, 32, 0, 2); // in place
    c.realloc(9, 0x10, 0x40, 64, 0, 2); // moved
    check_counts(&c);
    assert_eq!(c.totals.allocations, 1);
    assert_eq!(c.totals.reallocs, 2);
    assert_eq!(c.totals.allocated_bytes, 16 + 32 + 64);
    assert_eq!(c.totals.freed_bytes, 16 + 32);
    assert_eq!(c.live_bytes, 64);
    assert_eq!(c.live_blocks, 1);
    assert_eq!(c.totals.frees, 0);
    c.free(12, 0x40, 0);
    check_counts(&c);
    let f = c.finish(20);
    assert_eq!(f.sites[2].reallocs, 2);
    assert_eq!(f.sites[1].allocations, 1);
    assert_eq!(f.freed.len(), 3);
    assert!(f.live_at_end.is_empty());
    assert_eq!(f.peak.bytes, 64);
}

#[test]
fn frees_of_unknown_pointers_count_nowhere_but_unmatched() {
    let mut c = new();
    c.free(5, 0xdead, 0);
    c.realloc(6, 0xbeef, 0x100, 8, 0, 0);
    check_counts(&c);
    assert_eq!(c.totals.frees, 0);
    assert_eq!(c.totals.unmatched_frees, 2);
    assert_eq!(c.totals.allocations, 1);
}

#[test]
fn address_reused_before_its_free_arrives_is_repaired() {
    let mut c = new();
    c.alloc(10, 0x500, 40, Kind::Malloc, 0, 1);
    // Thread 1 gets 0x500 again (ts 30) before thread 0's free (ts 31) is seen.
    c.alloc(30, 0x500, 24, Kind::Malloc, 1, 2);
    c.free(31, 0x500, 0);
    check_counts(&c);
    assert_eq!(c.totals.frees, 1);
    assert_eq!(c.live_bytes, 24);
    let f = c.finish(100);
    assert_eq!(f.freed[0].size, 40);
    assert_eq!(f.live_at_end[0].size, 24);
    assert_eq!(f.totals.untracked_frees, 0);
}

#[test]
fn a_free_seen_before_its_cross_thread_allocation_is_matched() {
    let mut c = new();
    c.free(100, 0x700, 1);
    c.alloc(101, 0x700, 8, Kind::Malloc, 0, 1);
    check_counts(&c);
    assert_eq!(c.totals.unmatched_frees, 0);
    assert_eq!(c.totals.frees, 1);
    assert_eq!(c.live_blocks, 0);
    // Same thread: program order is trusted, so this stays an unmatched free.
    c.free(200, 0x800, 0);
    c.alloc(201, 0x800, 8, Kind::Malloc, 0, 1);
    assert_eq!(c.totals.unmatched_frees, 1);
    assert_eq!(c.live_blocks, 1);
    // Too far apart to be a reordering.
    c.free(300, 0x900, 1);
    c.alloc(300 + REORDER_WINDOW_NS + 1, 0x900, 8, Kind::Malloc, 0, 1);
    assert_eq!(c.totals.unmatched_frees, 2);
    check_counts(&c);
}

/// The engine starts with a default tick rate and resizes the reorder
/// window once the rate is measured.
#[test]
fn the_reorder_window_follows_the_tick_rate() {
    // 0.25 ns per tick: the window is 4 * 50 µs of ticks.
    let mut c = Collector::new(0, 0.25, 1000);
    c.thread_slot(100);
    c.thread_slot(200);
    let w = REORDER_WINDOW_NS;
    c.free(1_000, 0xa00, 1);
    c.alloc(1_000 + 2 * w, 0xa00, 8, Kind::Malloc, 0, 1);
    assert_eq!(c.totals.unmatched_frees, 0, "within 4 * 50 µs of ticks");
    // Measured: 1 ns per tick.
    c.set_ns_per_tick(1.0);
    c.free(10 * w, 0xb00, 1);
    c.alloc(12 * w, 0xb00, 8, Kind::Malloc, 0, 1);
    assert_eq!(c.totals.unmatched_frees, 1, "2 * 50 µs apart: no reordering");
    check_counts(&c);
}

#[test]
fn a_realloc_seen_before_its_cross_thread_allocation_is_matched() {
    let mut c = new();
    c.realloc(100, 0x700, 0x900, 64, 1, 3);
    c.alloc(101, 0x700, 8, Kind::Malloc, 0, 1);
    check_counts(&c);
    assert_eq!((c.totals.allocations, c.totals.reallocs), (1, 1));
    assert_eq!(c.totals.unmatched_frees, 0);
    assert_eq!(c.live_blocks, 1);
    assert_eq!(c.live_bytes, 64);
}

#[test]
fn at_peak_bytes_follow_the_latest_peak() {
    let mut c = new();
    c.alloc(1, 0x1, 100, Kind::Malloc, 0, 1);
    c.free(2, 0x1, 0); // peak 100 (site 1: 100)
    c.alloc(3, 0x2, 60, Kind::Malloc, 0, 2);
    c.alloc(4, 0x3, 60, Kind::Malloc, 0, 1); // peak 120 (site 1: 60, site 2: 60)
    c.free(5, 0x2, 0);
    c.alloc(6, 0x4, 30, Kind::Malloc, 0, 3); // 90 < 120
    let f = c.finish(10);
    assert_eq!(
        f.peak,
        Peak {
            bytes: 120,
            blocks: 2,
            ts: 4
        }
    );
    let at: Vec<_> = f.sites.iter().map(|(_, s)| s.at_peak_bytes).collect();
    assert_eq!(at, vec![0, 60, 60, 0]);
    let own: Vec<_> = f.sites.iter().map(|(_, s)| s.peak_live_bytes).collect();
    assert_eq!(own, vec![0, 100, 60, 30]);
}

/// What `export --to dhat` reads from the aggregates whatever the record
/// cap: the blocks live when a site first reached its own maximum, the
/// blocks it had at the process's (latest) peak, the sum of its lifetimes.
#[test]
fn block_counts_at_the_peaks_and_total_lifetime() {
    let mut c = new();
    c.alloc(1, 0x1, 10, Kind::Malloc, 0, 1);
    c.alloc(2, 0x2, 10, Kind::Malloc, 0, 1);
    c.alloc(3, 0x3, 10, Kind::Malloc, 0, 1); // site 1: 30 B in 3 blocks
    c.alloc(4, 0x4, 20, Kind::Malloc, 0, 2); // peak 50
    c.free(5, 0x1, 0);
    c.free(6, 0x2, 0);
    c.free(7, 0x3, 0);
    c.alloc(8, 0x5, 35, Kind::Malloc, 0, 1); // peak 55; site 1: 35 B in 1 block
    c.free(9, 0x5, 0);
    c.alloc(10, 0x6, 5, Kind::Malloc, 0, 2);
    c.alloc(10, 0x7, 5, Kind::Malloc, 0, 2); // site 2: 30 B in 3 blocks
    c.transient(11, 12, 0x8, 7, Kind::Malloc, 0, 3);
    let f = c.finish(100);
    assert_eq!(f.peak.bytes, 55);
    let s = &f.sites;
    let own: Vec<_> = s.iter().map(|(_, s)| (s.peak_live_bytes, s.peak_live_blocks)).collect();
    assert_eq!(own, vec![(0, 0), (35, 1), (30, 3), (7, 1)]);
    let at: Vec<_> = s.iter().map(|(_, s)| (s.at_peak_bytes, s.at_peak_blocks)).collect();
    assert_eq!(at, vec![(0, 0), (35, 1), (20, 1), (0, 0)]);
    let total: Vec<_> = s.iter().map(|(_, s)| s.lifetimes.sum()).collect();
    assert_eq!(total, vec![0, 4 + 4 + 4 + 1, 96 + 90 + 90, 1]);
}

#[test]
fn inherited_blocks_are_marked() {
    let mut c = new();
    c.alloc(1, 0x1, 10, Kind::Malloc, 0, 0);
    c.alloc(2, 0x2, 20, Kind::Malloc, 0, 0);
    c.alloc(3, 0x3, 30, Kind::Malloc, 0, 0);
    c.free(4, 0x1, 0);
    c.mark_inherited(5);
    assert_eq!((c.totals.inherited_allocations, c.totals.inherited_bytes), (2, 50));
    let only = c.inherited_only();
    assert!(only.inherited_only && only.live_at_end.is_empty() && only.sites.is_empty());
    assert_eq!(
        (only.totals.allocations, only.totals.frees, only.live_bytes),
        (3, 1, 50)
    );
    assert_eq!(only.timeline, vec![(3, 60), (5, 50)]);
    // The child's own block is not inherited; an inherited one it frees is.
    c.alloc(6, 0x4, 40, Kind::Malloc, 0, 0);
    c.free(7, 0x2, 0);
    // The copy taken before an exec (which may fail) finishes the same.
    let before_exec = c.copy_for_running(Vec::new()).finish(9, usize::MAX);
    let f = c.finish(9);
    assert_eq!(before_exec.timeline, f.timeline);
    assert_eq!(before_exec.live_at_end, f.live_at_end);
    assert_eq!(before_exec.inherited_live_at_end, f.inherited_live_at_end);
    // The child's timeline starts at the fork, at the live bytes inherited.
    assert_eq!(f.timeline, vec![(5, 50), (6, 90), (7, 70)]);
    assert_eq!(
        f.freed.iter().map(|r| (r.size, r.inherited)).collect::<Vec<_>>(),
        vec![(20, true)]
    );
    // The untouched inherited block is counted, not listed; the child's
    // sites and histogram hold only its own block.
    let live: Vec<_> = f.live_at_end.iter().map(|r| (r.size, r.inherited)).collect();
    assert_eq!(live, vec![(40, false)]);
    assert_eq!(f.inherited_live_at_end, (1, 30));
    assert_eq!(f.live_bytes, 70);
    assert_eq!(f.at_fork.map(|t| (t.allocations, t.frees)), Some((3, 1)));
    assert_eq!((f.totals.allocations, f.totals.frees), (4, 2));
    let sites: Vec<(u64, u64, u64)> = f
        .sites
        .iter()
        .map(|(_, s)| (s.allocations, s.bytes, s.live_bytes))
        .collect();
    assert_eq!(sites, vec![(1, 40, 40)]);
    assert_eq!(f.lifetime_counts.iter().sum::<u64>(), 1);
    let t = &f.threads[0];
    assert_eq!((t.allocations, t.bytes, t.frees, t.live_bytes), (1, 40, 1, 40));
}

#[test]
fn a_fork_childs_timeline_keeps_the_parents_peak_as_one_point() {
    // Events 100 µs apart, each in its own timeline bucket.
    let mut c = new();
    let t = |i: u64| 1 + 100_000 * i;
    for i in 0..10u64 {
        c.alloc(t(i), 0x1000 + i, 10, Kind::Malloc, 0, 0);
    }
    for i in 0..9u64 {
        c.free(t(10 + i), 0x1000 + i, 0);
    }
    assert!(c.timeline.points().len() >= 19);
    c.mark_inherited(t(20));
    c.alloc(t(21), 0x9000, 5, Kind::Malloc, 0, 0);
    let expect = vec![(t(9), 100), (t(20), 10), (t(21), 15)];
    assert_eq!(
        c.copy_for_running(Vec::new()).finish(t(22), usize::MAX).timeline,
        expect
    );
    let f = c.finish(t(22));
    assert_eq!(f.peak.bytes, 100);
    assert_eq!(f.timeline, expect);
}

/// A random single-threaded-truth history, shuffled across threads the way
/// skewed clocks would, must give the same totals as the truth.
#[test]
fn totals_survive_cross_thread_reordering() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    #[derive(Clone, Copy)]
    enum Op {
        A(u64, u64, u32),
        F(u64, u32),
    }
    let mut live: Vec<u64> = Vec::new();
    let mut free_addrs: Vec<u64> = (1..200).map(|i| i * 16).collect();
    let mut ops = Vec::new();
    for _ in 0..20_000 {
        let th = (next() % 2) as u32;
        if !free_addrs.is_empty() && (live.is_empty() || next() % 2 == 0) {
            let i = (next() as usize) % free_addrs.len();
            let a = free_addrs.swap_remove(i);
            ops.push(Op::A(a, next() % 100 + 1, th));
            live.push(a);
        } else if !live.is_empty() {
            let i = (next() as usize) % live.len();
            let a = live.swap_remove(i);
            ops.push(Op::F(a, th));
            free_addrs.push(a);
        }
    }
    let mut truth = new();
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::A(a, s, t) => truth.alloc(i as u64 * 10, a, s, Kind::Malloc, t, 0),
            Op::F(a, t) => truth.free(i as u64 * 10, a, t),
        }
    }
    // Swap neighbours from different threads (what clock skew can do).
    let mut shuffled: Vec<(u64, Op)> = ops.iter().enumerate().map(|(i, o)| (i as u64 * 10, *o)).collect();
    let thread = |o: &Op| match o {
        Op::A(_, _, t) | Op::F(_, t) => *t,
    };
    for i in 0..shuffled.len() - 1 {
        if next() % 3 == 0 && thread(&shuffled[i].1) != thread(&shuffled[i + 1].1) {
            shuffled.swap(i, i + 1);
        }
    }
    let mut seen = new();
    for (ts, op) in shuffled {
        match op {
            Op::A(a, s, t) => seen.alloc(ts, a, s, Kind::Malloc, t, 0),
            Op::F(a, t) => seen.free(ts, a, t),
        }
    }
    check_counts(&seen);
    assert_eq!(seen.totals, truth.totals);
    assert_eq!(seen.live_bytes, truth.live_bytes);
}

/// `transient` must give exactly what `alloc` + `free` give, in every state.
#[test]
fn transient_equals_alloc_then_free() {
    let script = |c: &mut Collector, fast: bool| {
        c.alloc(1, 0x10, 500, Kind::Malloc, 0, 1);
        c.free(2, 0x10, 0); // peak 500, left
        c.alloc(3, 0x20, 100, Kind::Malloc, 0, 2);
        for (i, size) in [50u64, 300, 600, 0, 10].into_iter().enumerate() {
            let (b, d, p) = (10 + i as u64 * 10, 15 + i as u64 * 10, 0x100 + i as u64 * 16);
            if fast {
                c.transient(b, d, p, size, Kind::Calloc, 1, 3);
            } else {
                c.alloc(b, p, size, Kind::Calloc, 1, 3);
                c.free(d, p, 1);
            }
        }
        c.free(100, 0x20, 0);
    };
    let (mut slow, mut fast) = (new(), new());
    script(&mut slow, false);
    script(&mut fast, true);
    assert_same_result(fast, slow, 200);
}

/// Everything a snapshot shows of `fast` equals what it shows of `slow`.
fn assert_same_result(fast: Collector, slow: Collector, end: u64) {
    check_counts(&fast);
    check_counts(&slow);
    assert_eq!(fast.totals, slow.totals);
    assert_eq!(fast.peak, slow.peak);
    let (f, s) = (fast.finish(end), slow.finish(end));
    assert_eq!(f.sites.len(), s.sites.len());
    for ((_, a), (_, b)) in f.sites.iter().zip(s.sites.iter()) {
        assert_eq!(
            (
                a.allocations,
                a.reallocs,
                a.bytes,
                a.live_bytes,
                a.live_blocks,
                a.peak_live_bytes,
                a.at_peak_bytes,
                a.lifetimes.stats()
            ),
            (
                b.allocations,
                b.reallocs,
                b.bytes,
                b.live_bytes,
                b.live_blocks,
                b.peak_live_bytes,
                b.at_peak_bytes,
                b.lifetimes.stats()
            )
        );
    }
    assert_eq!(f.lifetime_counts, s.lifetime_counts);
    assert_eq!(f.lifetime_bytes, s.lifetime_bytes);
    assert_eq!(f.timeline, s.timeline);
    assert_eq!(f.freed, s.freed);
    assert_eq!(f.live_at_end, s.live_at_end);
    assert_eq!(
        f.threads
            .iter()
            .map(|t| (t.allocations, t.frees, t.bytes, t.live_bytes))
            .collect::<Vec<_>>(),
        s.threads
            .iter()
            .map(|t| (t.allocations, t.frees, t.bytes, t.live_bytes))
            .collect::<Vec<_>>()
    );
}

/// A realloc of the block its thread allocated last takes a one-pass path;
/// it must give exactly what the live-table path gives: growing and
/// shrinking, across call sites, raising the peak and staying under it,
/// with another thread's blocks live meanwhile.
#[test]
fn realloc_of_the_recent_block_equals_the_table_path() {
    let script = |c: &mut Collector, fast: bool| {
        let realloc = |c: &mut Collector, ts, old, new, size, thread, site| {
            if !fast {
                // Moves the recent block into the table: the general path.
                c.flush_recent();
            }
            c.realloc(ts, old, new, size, thread, site);
        };
        c.alloc(1, 0x10, 16, Kind::Malloc, 0, 1);
        realloc(c, 2, 0x10, 0x20, 32, 0, 2);
        realloc(c, 3, 0x20, 0x20, 4000, 0, 2); // a new peak, in place
        realloc(c, 4, 0x20, 0x30, 8, 0, 3); // shrinks: leaves the peak
        c.alloc(5, 0x40, 100, Kind::Malloc, 1, 4);
        realloc(c, 6, 0x30, 0x50, 64, 0, 3);
        realloc(c, 400, 0x50, 0x60, 3990, 0, 2); // just under the peak, later
        c.free(500, 0x40, 1);
        realloc(c, 600, 0x60, 0x70, 5000, 0, 5);
        c.free(700, 0x70, 0);
        c.alloc(800, 0x80, 7, Kind::Malloc, 1, 4);
        realloc(c, 900, 0x80, 0x90, 9, 1, 6); // left live at the end
    };
    let (mut slow, mut fast) = (new(), new());
    script(&mut slow, false);
    script(&mut fast, true);
    assert_eq!(fast.totals.reallocs, 7);
    assert_eq!(fast.peak.bytes, 5000);
    assert_same_result(fast, slow, 1000);
}

#[test]
fn variables_name_their_blocks_through_reallocs() {
    let mut c = new();
    c.alloc(10, 0x100, 16, Kind::Malloc, 0, 0);
    c.var_birth(11, 7, 0x100, 16, 0);
    c.var_birth(12, 8, 0, 0, 1); // owns no heap block
    c.realloc(20, 0x100, 0x200, 64, 0, 0);
    c.var_death(30, 8);
    c.free(40, 0x200, 0);
    c.var_death(41, 7);
    c.var_death(42, 7); // a second drop changes nothing
    c.alloc(50, 0x300, 5, Kind::Malloc, 0, 0);
    c.var_birth(51, 9, 0x300, 5, 0);
    let f = c.finish(100);
    let vars: Vec<_> = f.vars.iter().map(|v| (v.id, v.birth, v.death)).collect();
    assert_eq!(vars, vec![(7, 11, Some(41)), (8, 12, Some(30)), (9, 51, None)]);
    let named: Vec<_> = f
        .named_freed
        .iter()
        .map(|r| (r.var, r.size, r.birth, r.death))
        .collect();
    assert_eq!(named, vec![(7, 16, 10, 20), (7, 64, 20, 40)]);
    assert_eq!(
        f.live_at_end.iter().map(|r| (r.var, r.size)).collect::<Vec<_>>(),
        vec![(9, 5)]
    );
    assert!(f.freed.is_empty(), "named records are kept apart");
}
