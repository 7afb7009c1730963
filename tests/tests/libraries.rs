//! dlopen'ed code and Rust programs are traced like any other.

use memscope_tests::*;

#[test]
fn allocations_in_a_dlopened_library_are_counted() {
    let lib = c_library("plugin");
    let prog = c_program("dlopen", &[]);
    let l = lib.to_str().unwrap();
    let base = traced("dlopen_base", &prog, &[l, "0"], &[]);
    let run = traced("dlopen_churn", &prog, &[l, "20"], &[]);
    assert!(run.output.status.success());
    let (b, s) = (run.only(), base.only());
    check_invariants(b);
    check_invariants(s);
    // 20 rounds of 100 blocks of 32 bytes, one kept per round, all from
    // plugin_alloc's one malloc; dlopen's own bookkeeping comes on top.
    let plugin_kept = b.allocations.iter().filter(|a| a.is_leaked && a.size == 32).count();
    assert_eq!(plugin_kept, 20);
    assert_eq!(
        sites_under(b, "plugin_alloc"),
        (2000, 2000 * 32, 20, 20 * 32),
        "plugin_alloc's blocks, named although the library was closed"
    );
    assert_eq!(b.summary.events_dropped, 0);
    // The whole run, dlopen's bookkeeping included, as DHAT counts it.
    if !dhat::available() {
        return;
    }
    let d = dhat::run(&prog, &[l, "20"], &run.dir);
    let m = &b.summary;
    assert_eq!(
        (d.blocks, d.bytes, d.end_blocks, d.end_bytes),
        (
            m.total_allocations + m.reallocs,
            m.total_allocated_bytes,
            m.live_at_exit_allocations,
            m.live_at_exit_bytes
        ),
        "DHAT vs memscope (blocks, bytes, end blocks, end bytes)"
    );
}

#[test]
fn a_rust_program_is_traced() {
    let prog = rust_program("rust_alloc");
    let run = traced("rust_alloc", &prog, &[], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let s = run.only();
    check_invariants(s);
    // The Vec grows by doubling from 4 to 1024 u64: exactly 8 reallocs of
    // it, to 64, 128, … 8192 bytes, in that order.
    let mut grown: Vec<(u64, u64)> = s
        .allocations
        .iter()
        .filter(|a| a.kind == "realloc" && a.size >= 64 && a.size.is_power_of_two() && a.size <= 8192)
        .map(|a| (a.timestamp_alloc, a.size))
        .collect();
    grown.sort();
    let sizes: Vec<u64> = grown.iter().map(|g| g.1).collect();
    assert_eq!(sizes, [64, 128, 256, 512, 1024, 2048, 4096, 8192]);
    let leaked: Vec<u64> = s.allocations.iter().filter(|a| a.is_leaked).map(|a| a.size).collect();
    assert!(leaked.contains(&5555), "{leaked:?}");
    // Everything else live at the end is std's own (its stack-overflow
    // handler's thread table, set up because the program sees SIGSEGV's
    // disposition as the default, as it is without memscope): the same
    // blocks DHAT sees at t-end.
    if dhat::available() {
        let d = dhat::run(&prog, &[], &run.dir);
        assert_eq!(
            (leaked.len() as u64, leaked.iter().sum::<u64>()),
            (d.end_blocks, d.end_bytes)
        );
        let m = &s.summary;
        assert_eq!(
            (d.blocks, d.bytes),
            (m.total_allocations + m.reallocs, m.total_allocated_bytes),
            "DHAT vs memscope (blocks, bytes)"
        );
    }
    assert!(s.allocations.iter().any(|a| a.size == 4096 && !a.is_leaked), "the Box");
    assert!(
        s.allocations.iter().any(|a| a.size == 8192 && a.kind == "realloc"),
        "the Vec at 1024 u64"
    );
}

#[test]
fn a_cpp_program_is_traced_through_new_and_delete() {
    let prog = cpp_program("cpp_alloc");
    let run = traced("cpp_alloc", &prog, &[], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let s = run.only();
    check_invariants(s);
    let blocks = |size: u64| s.allocations.iter().filter(|a| a.size == size).collect::<Vec<_>>();
    assert_eq!(blocks(1000).len(), 1, "new Big");
    assert_eq!(blocks(100).len(), 1, "new int[25]");
    assert_eq!(blocks(400).len(), 1, "the reserved vector");
    let aligned = blocks(256);
    assert_eq!(aligned.len(), 1);
    assert_eq!(aligned[0].kind, "aligned", "aligned new goes through aligned_alloc");
    let leaked: Vec<u64> = s.allocations.iter().filter(|a| a.is_leaked).map(|a| a.size).collect();
    assert!(leaked.contains(&48), "{leaked:?}");
    assert!(!leaked.contains(&1000) && !leaked.contains(&400));
}

/// glibc's own malloc debugging and tuning switches change nothing memscope counts.
#[test]
fn malloc_env_and_tunables_do_not_change_the_counts() {
    let prog = c_program("entry_points", &[]);
    for (k, v) in [
        ("MALLOC_PERTURB_", "165"),
        ("MALLOC_CHECK_", "3"),
        (
            "GLIBC_TUNABLES",
            "glibc.malloc.tcache_count=0:glibc.malloc.mmap_threshold=4096",
        ),
        ("MALLOC_ARENA_MAX", "1"),
    ] {
        let run = traced(&format!("malloc_env_{k}"), &prog, &[], &[(k, v)]);
        assert!(run.output.status.success(), "{k}: {}", run.stderr());
        let s = run.only();
        check_invariants(s);
        let m = &s.summary;
        assert_eq!(
            (m.total_allocations, m.reallocs, m.total_frees, m.total_allocated_bytes),
            (21, 2, 19, 1234),
            "{k}"
        );
    }
}
