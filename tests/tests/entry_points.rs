//! Every interposed allocator entry point, counted exactly (SPEC §3 rules).

use memscope_tests::*;

#[test]
fn every_entry_point_counts_exactly() {
    let prog = c_program("entry_points", &[]);
    let run = traced("entry_points", &prog, &[], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(run.stderr(), "", "memscope prints nothing on a normal run");
    let s = run.only();
    check_invariants(s);
    let m = &s.summary;
    // The arithmetic is in the comments of tests/programs/entry_points.c.
    assert_eq!(m.total_allocations, 21);
    assert_eq!(m.reallocs, 2);
    assert_eq!(m.total_frees, 19);
    assert_eq!(m.total_allocated_bytes, 1234);
    assert_eq!(m.total_freed_bytes, 1147);
    assert_eq!((m.live_at_exit_allocations, m.live_at_exit_bytes), (2, 87));
    assert_eq!((m.peak_live_bytes, m.peak_live_allocations), (266, 2));
    assert_eq!(m.unmatched_frees, 0);
    let count = |kind: &str| s.allocations.iter().filter(|a| a.kind == kind).count();
    // 10 + malloc(0) + the 16-byte block; realloc(NULL), reallocarray(NULL)
    // and the two reallocs; posix_memalign, aligned_alloc, memalign.
    assert_eq!(count("malloc"), 12);
    assert_eq!(count("calloc"), 2);
    assert_eq!(count("realloc"), 4);
    assert_eq!(count("aligned"), 3);
    assert_eq!(count("valloc"), 1);
    assert_eq!(count("pvalloc"), 1);
    let mut leaked: Vec<(u64, &str)> = s
        .allocations
        .iter()
        .filter(|a| a.is_leaked)
        .map(|a| (a.size, a.kind.as_str()))
        .collect();
    leaked.sort();
    assert_eq!(leaked, vec![(10, "malloc"), (77, "calloc")]);
    assert!(
        s.allocations.iter().any(|a| a.size == 0 && !a.is_leaked),
        "malloc(0) is a 0-byte block"
    );
    assert_eq!(s.process.end, memscope_format::EndKind::Exit);
    assert_eq!(s.process.exit_code, Some(0));
    assert_eq!(s.process.argv, vec![prog.display().to_string()]);
}

/// SPEC §6: the same counts as `valgrind --tool=dhat` on the same binary.
#[test]
fn counts_equal_dhat() {
    if !dhat::available() {
        return;
    }
    let prog = c_program("entry_points", &[]);
    let run = traced("entry_points_vs_dhat", &prog, &["no-pvalloc"], &[]);
    let s = run.only();
    check_invariants(s);
    let d = dhat::run(&prog, &["no-pvalloc"], &run.dir);
    let m = &s.summary;
    assert_eq!(
        d.blocks,
        m.total_allocations + m.reallocs,
        "DHAT blocks = allocations + reallocs"
    );
    // DHAT records the one malloc(0) as 1 byte.
    assert_eq!(d.bytes, m.total_allocated_bytes + 1);
    assert_eq!(
        (d.gmax_blocks, d.gmax_bytes),
        (m.peak_live_allocations, m.peak_live_bytes)
    );
    assert_eq!(
        (d.end_blocks, d.end_bytes),
        (m.live_at_exit_allocations, m.live_at_exit_bytes)
    );
}
