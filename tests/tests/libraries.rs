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
    // 20 rounds of 100 blocks of 32 bytes, one kept per round; dlopen's own
    // bookkeeping comes on top.
    let plugin_kept = b.allocations.iter().filter(|a| a.is_leaked && a.size == 32).count();
    assert_eq!(plugin_kept, 20);
    assert!(b.summary.total_allocations >= s.summary.total_allocations + 2000);
    assert_eq!(b.summary.events_dropped, 0);
}

#[test]
fn a_rust_program_is_traced() {
    let prog = rust_program("rust_alloc");
    let run = traced("rust_alloc", &prog, &[], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let s = run.only();
    check_invariants(s);
    // The Vec grows by doubling from 4 to 1024 elements: 8 reallocs at least.
    assert!(s.summary.reallocs >= 8);
    let leaked: Vec<u64> = s.allocations.iter().filter(|a| a.is_leaked).map(|a| a.size).collect();
    assert_eq!(leaked, vec![5555]);
    assert!(s.allocations.iter().any(|a| a.size == 4096 && !a.is_leaked), "the Box");
    assert!(
        s.allocations.iter().any(|a| a.size == 8192 && a.kind == "realloc"),
        "the Vec at 1024 u64"
    );
}
