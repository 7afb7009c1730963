//! A signal handler that forks while memscope's own code runs on the
//! interrupted thread: the program goes on as un-traced, and its counts stay
//! exact.

use memscope_tests::*;
use std::time::Duration;

/// The timer's handler forks every 2 ms while the single-threaded program
/// allocates, so some forks come while memscope drains its ring on that
/// thread. `fork_prepare` waited there for the engine's lock, which the
/// interrupted drain held: the program hung, even to SIGTERM. Such a fork
/// now takes no lock, and its child records nothing (about a quarter of
/// ~160 children here); every other child writes its snapshot, and the
/// parent's counts are exact.
#[test]
fn a_signal_handler_that_forks_never_hangs_the_program() {
    let prog = c_program("signal_fork", &[]);
    let iters = 4_000_000u64;
    let plain = untraced(&prog, &["400000"]);
    assert!(plain.status.success(), "un-traced: {plain:?}");
    let limit = Duration::from_secs(120);
    let base = traced_within("signal_fork_base", &prog, &["0"], limit).expect("the baseline finished");
    let Some(run) = traced_within("signal_fork", &prog, &[&iters.to_string()], limit) else {
        panic!("the traced program hung: killed after {limit:?}");
    };
    assert!(run.output.status.success(), "{:?}\n{}", run.output.status, run.stderr());
    assert_eq!(run.stdout(), "done\n");
    let forks: usize = run
        .stderr()
        .lines()
        .find_map(|l| l.strip_suffix(" forks")?.parse().ok())
        .expect("the program's count of forks");
    let root = |r: &Run| r.find(|s| !s.process.forked)[0].summary.clone();
    let (b, s) = (root(&base), root(&run));
    assert_eq!(s.total_allocations - b.total_allocations, iters);
    assert_eq!(s.total_frees - b.total_frees, iters);
    assert_eq!(s.unmatched_frees, 0);
    assert_eq!(s.events_dropped, 0);
    let children = run.find(|s| s.process.forked).len();
    assert!(forks > 20, "the timer fired: {forks} forks");
    assert!(
        children > 0 && children <= forks,
        "{children} snapshots of {forks} children"
    );
}
