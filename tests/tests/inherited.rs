//! Fork children without an allocation event of their own write the small
//! `inherited_only` snapshot (SPEC §2); a child that allocates writes the
//! full one.

use memscope_format::{EndKind, Snapshot};
use memscope_tests::*;

fn run(test: &str) -> Run {
    let prog = c_program("inherited", &[]);
    let run = traced(test, &prog, &["/bin/true"], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(run.stderr(), "");
    for (_, s) in &run.snapshots {
        check_invariants(s);
    }
    run
}

/// The parent's counters at every fork: a, b, c allocated, b freed.
fn at_fork(s: &Snapshot) -> [u64; 9] {
    let m = &s.summary;
    [
        m.total_allocations,
        m.total_frees,
        m.total_allocated_bytes,
        m.total_freed_bytes,
        m.reallocs,
        m.peak_live_bytes,
        m.peak_live_allocations,
        m.live_at_exit_allocations,
        m.live_at_exit_bytes,
    ]
}

fn child(run: &Run, end: EndKind) -> &Snapshot {
    let found = run.find(|s| s.process.forked && s.process.end == end);
    assert_eq!(found.len(), 1, "one child ending in {end:?}: {:?}", run.paths());
    found[0]
}

#[test]
fn children_without_events_of_their_own_write_only_the_inherited_summary() {
    let run = run("inherited_only");
    // Parent, 4 children, and the image the first one exec'd.
    assert_eq!(run.snapshots.len(), 6, "{:?}", run.paths());
    let parent = run.find(|s| !s.process.forked && s.process.exe.ends_with("/inherited"));
    assert_eq!(parent.len(), 1);
    let parent = parent[0];
    assert_eq!((parent.summary.total_allocations, parent.summary.total_frees), (3, 2));
    let only = [
        (child(&run, EndKind::Exec), None, None),
        (child(&run, EndKind::UnderscoreExit), Some(5), None),
        (child(&run, EndKind::Signal), None, Some(libc::SIGTERM)),
    ];
    for (s, code, signal) in only {
        let what = format!("{:?}", s.process.end);
        assert!(s.summary.inherited_only, "{what}");
        assert_eq!(at_fork(s), [3, 1, 600, 200, 0, 600, 3, 2, 400], "{what}");
        let m = &s.summary;
        assert_eq!((m.inherited_allocations, m.inherited_bytes), (2, 400), "{what}");
        assert_eq!((m.events_dropped, m.records_omitted), (0, 3), "{what}");
        assert!(s.allocations.is_empty() && s.callsites.is_empty(), "{what}");
        assert_eq!((s.process.exit_code, s.process.signal), (code, signal), "{what}");
        assert_eq!(s.process.ppid, parent.process.pid);
        // The peak is the parent's, at the same instant.
        let drift = s.summary.peak_unix_ns.abs_diff(parent.summary.peak_unix_ns);
        assert!(drift < 1_000, "{what}: peak moved by {drift} ns");
        assert!(s.process.start_unix_ns <= s.process.end_unix_ns);
    }
    // What the exec'd child became is an image of its own.
    let exec_pid = child(&run, EndKind::Exec).process.pid;
    let after = run.find(|s| s.process.pid == exec_pid && s.process.exec_seq == 1);
    assert_eq!(after.len(), 1);
    assert!(!after[0].summary.inherited_only && after[0].process.exe.ends_with("true"));
}

#[test]
fn a_child_that_allocates_writes_a_full_snapshot() {
    let run = run("inherited_full");
    let s = child(&run, EndKind::Exit);
    assert!(!s.summary.inherited_only);
    assert_eq!(s.process.exit_code, Some(7));
    // The parent's 3 blocks and 1 free, then d allocated and a freed.
    assert_eq!(at_fork(s), [4, 2, 650, 300, 0, 600, 3, 2, 350]);
    let m = &s.summary;
    assert_eq!((m.inherited_allocations, m.inherited_bytes), (2, 400));
    // a (freed here) and c (live, untouched) are the parent's; d is the
    // child's. c is counted, not listed: the parent's snapshot lists it.
    let mut recs: Vec<_> = s
        .allocations
        .iter()
        .map(|a| (a.size, a.inherited, a.is_leaked))
        .collect();
    recs.sort();
    assert_eq!(recs, vec![(50, false, true), (100, true, false)]);
    assert_eq!(
        (m.inherited_live_at_exit_allocations, m.inherited_live_at_exit_bytes),
        (1, 300)
    );
    let f = m.at_fork.expect("counters at the fork");
    assert_eq!(
        (f.total_allocations, f.total_frees, f.total_allocated_bytes),
        (3, 1, 600)
    );
    // The child's sites: d alone.
    let sites: Vec<(u64, u64, u64)> = s
        .callsites
        .iter()
        .map(|c| (c.allocations, c.bytes, c.live_at_exit_bytes))
        .collect();
    assert_eq!(sites, vec![(1, 50, 50)]);
    // Its timeline starts at the fork: the parent's peak (600 B, before the
    // fork) as one point, the 400 B inherited, then d and a; the points
    // before the fork are the parent's snapshot's, not repeated here.
    let values: Vec<u64> = s.timeline.iter().map(|p| p.1).collect();
    assert_eq!(values, vec![600, 400, 450, 350, 350]);
    assert!(s.timeline.windows(2).all(|w| w[0].0 <= w[1].0));
    let parent = run.find(|s| !s.process.forked && s.process.exe.ends_with("/inherited"))[0];
    let drift = s.timeline[0].0.abs_diff(parent.summary.peak_unix_ns);
    assert!(drift < 1_000, "the parent's peak moved by {drift} ns");
}

/// A forked child's own call sites carry the parent's ids: the same stack
/// is the same site in both (a shell's children meet ids spread up to the
/// shell's last one). With few, its table holds just those; with many, it
/// turns into a plain table mid-way. Either way the child's snapshot,
/// written before it execs, shows exactly what the child did.
#[test]
fn a_child_that_allocates_at_its_parents_sites_keeps_their_ids() {
    let prog = c_program("fork_sites", &[]);
    for sites in [10u64, 100] {
        // Deep enough that every depth is a stack of its own.
        let env = [("MEMSCOPE_BACKTRACE", "128")];
        let run = traced(
            &format!("fork_sites_{sites}"),
            &prog,
            &[&sites.to_string(), "/bin/true"],
            &env,
        );
        assert!(run.output.status.success(), "{}", run.stderr());
        assert_eq!(run.stderr(), "");
        for (_, s) in &run.snapshots {
            check_invariants(s);
        }
        let parent = run.find(|s| !s.process.forked && s.process.exe.ends_with("/fork_sites"))[0];
        let s = child(&run, EndKind::Exec);
        assert!(!s.summary.inherited_only);
        // kept and work() in the parent, then work() and mine in the child.
        let m = &s.summary;
        let sum_d = sites * (sites + 1) / 2;
        assert_eq!(
            (m.total_allocations, m.total_frees),
            (2 * sites + 2, 2 * sites),
            "{sites} sites"
        );
        assert_eq!(
            (m.total_allocated_bytes, m.total_freed_bytes),
            (1000 + 2 * sum_d + 7, 2 * sum_d),
            "{sites}"
        );
        // kept is inherited: live, counted, not listed.
        assert_eq!((m.inherited_allocations, m.inherited_bytes), (1, 1000), "{sites}");
        assert_eq!((m.live_at_exit_allocations, m.live_at_exit_bytes), (2, 1007), "{sites}");
        assert_eq!(
            (m.inherited_live_at_exit_allocations, m.inherited_live_at_exit_bytes),
            (1, 1000),
            "{sites}"
        );
        let f = m.at_fork.expect("counters at the fork");
        assert_eq!((f.total_allocations, f.total_frees), (sites + 1, sites), "{sites}");
        // Its records: its own blocks, all of them.
        assert_eq!(s.allocations.len() as u64, sites + 1, "{sites}");
        assert!(s.allocations.iter().all(|a| !a.inherited), "{sites}");
        // Its sites: one per depth with that depth's block, and mine's.
        let ips = |snap: &Snapshot, c: &memscope_format::Callsite| -> Vec<String> {
            snap.frames_of(c).map(|fr| fr.ip.clone()).collect()
        };
        let mut sizes: Vec<(u64, u64, u64)> = s
            .callsites
            .iter()
            .map(|c| (c.bytes, c.allocations, c.live_at_exit_bytes))
            .collect();
        sizes.sort();
        let mut want: Vec<(u64, u64, u64)> = (1..=sites).map(|d| (d, 1, 0)).collect();
        want.push((7, 1, 7));
        want.sort();
        assert_eq!(sizes, want, "{sites} sites");
        assert!(s.callsites.windows(2).all(|w| w[0].id < w[1].id), "in id order");
        // Every site of work() is the parent's site of the same id.
        let mut shared = 0;
        for c in &s.callsites {
            if let Some(p) = parent.callsites.iter().find(|p| p.id == c.id) {
                assert_eq!(ips(s, c), ips(parent, p), "site {} ({sites} sites)", c.id);
                assert_eq!(c.bytes, p.bytes, "site {}: the same depth, the same size", c.id);
                shared += 1;
            }
        }
        assert_eq!(shared, sites, "{sites} sites");
    }
}

/// Forked workers: memscope's memory in a fork child comes from a fresh
/// region of its own at first (engine/src/arena.rs). With 1,000 blocks the
/// worker's tables stay there, and its own fork child inherits them and
/// takes its region past them; with 150,000 (a table of several MiB) they
/// outgrow it and move to `malloc` mid-way. Every count of both children
/// stays exact, and so do their call sites.
#[test]
fn forked_workers_and_their_own_children_are_counted_exactly() {
    let prog = c_program("fork_worker", &[]);
    for n in [1_000u64, 150_000] {
        let run = traced(&format!("fork_worker_{n}"), &prog, &[&n.to_string()], &[]);
        assert!(run.output.status.success(), "{}", run.stderr());
        assert_eq!(run.stderr(), "");
        assert_eq!(run.snapshots.len(), 3, "{:?}", run.paths());
        for (_, s) in &run.snapshots {
            check_invariants(s);
        }
        let ended = |code| {
            let found = run.find(|s| s.process.forked && s.process.exit_code == Some(code));
            assert_eq!(found.len(), 1, "one child exiting with {code}: {:?}", run.paths());
            found[0]
        };
        let sites = |s: &Snapshot| {
            let mut v: Vec<(u64, u64, u64)> = s
                .callsites
                .iter()
                .map(|c| (c.allocations, c.bytes, c.live_at_exit_bytes))
                .collect();
            v.sort();
            v
        };
        // The worker: p inherited and freed; the table of n pointers and
        // the n blocks its own, all freed.
        let w = ended(4);
        let m = &w.summary;
        assert!(!m.inherited_only, "{n}");
        assert_eq!((m.total_allocations, m.total_frees), (n + 2, n + 2), "{n}");
        assert_eq!(
            (m.total_allocated_bytes, m.total_freed_bytes),
            (1000 + 32 * n, 1000 + 32 * n),
            "{n}"
        );
        assert_eq!((m.inherited_allocations, m.inherited_bytes), (1, 1000), "{n}");
        assert_eq!((m.live_at_exit_allocations, m.live_at_exit_bytes), (0, 0), "{n}");
        assert_eq!(m.peak_live_allocations, n + 2, "{n}");
        assert_eq!(sites(w), vec![(1, 8 * n, 0), (n, 24 * n, 0)], "{n}");
        // Its child, forked with p, the table and every other block live:
        // g its own (kept), p freed.
        let c = ended(3);
        let g = &c.summary;
        let live_at_fork = (n / 2 + 2, 1000 + 8 * n + 24 * (n / 2));
        assert_eq!((g.inherited_allocations, g.inherited_bytes), live_at_fork, "{n}");
        assert_eq!((g.total_allocations, g.total_frees), (n + 3, n / 2 + 1), "{n}");
        assert_eq!(
            (g.live_at_exit_allocations, g.live_at_exit_bytes),
            (live_at_fork.0, live_at_fork.1 - 1000 + 70),
            "{n}"
        );
        let f = g.at_fork.expect("counters at the fork");
        assert_eq!((f.total_allocations, f.total_frees), (n + 2, n / 2), "{n}");
        assert_eq!(sites(c), vec![(1, 70, 70)], "{n}");
    }
}
