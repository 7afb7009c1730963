//! Many processes: every image writes its own snapshot, no two collide,
//! none is lost, every one is valid.

use memscope_tests::*;
use std::collections::HashSet;

fn check_all(run: &Run) {
    let names: HashSet<_> = run.paths().into_iter().collect();
    assert_eq!(names.len(), run.snapshots.len(), "two images wrote the same file");
    let images: HashSet<_> = run
        .snapshots
        .iter()
        .map(|(_, s)| (s.process.pid, s.process.exec_seq))
        .collect();
    assert_eq!(images.len(), run.snapshots.len(), "one snapshot per image");
    for (p, s) in &run.snapshots {
        check_invariants(s);
        assert!(p.exists());
    }
}

#[test]
fn a_fork_storm_writes_one_snapshot_per_image() {
    let prog = c_program("spawns", &[]);
    let run = traced("spawns_storm", &prog, &["storm", "40", "/bin/true"], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(run.stderr(), "");
    let expected: usize = run.stdout().trim().parse().unwrap();
    assert_eq!(run.snapshots.len(), expected, "{:?}", run.paths());
    check_all(&run);
    // Children continue the parent's heap: each inherits the 77-byte block
    // (counted, listed in the parent's snapshot).
    let parent = run.find(|s| !s.process.forked && s.process.exe.ends_with("spawns"));
    assert!(parent[0].allocations.iter().any(|a| a.size == 77));
    for (_, s) in run.snapshots.iter().filter(|(_, s)| s.process.forked) {
        let m = &s.summary;
        assert!(
            m.inherited_allocations >= 1 && m.inherited_bytes >= 77,
            "{}",
            s.process.pid
        );
        assert!(
            s.allocations.iter().all(|a| !(a.inherited && a.is_leaked)),
            "{}",
            s.process.pid
        );
    }
}

#[test]
fn forks_while_other_threads_allocate() {
    let prog = c_program("spawns", &[]);
    let run = traced(
        "spawns_threaded_fork",
        &prog,
        &["threaded-fork", "30", "/bin/true"],
        &[],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(run.snapshots.len(), 31, "{:?}", run.paths());
    check_all(&run);
    for (_, s) in run.snapshots.iter().filter(|(_, s)| s.process.forked) {
        assert!(s
            .allocations
            .iter()
            .any(|a| a.size == 1000 && a.is_leaked && !a.inherited));
        assert_eq!(s.summary.events_dropped, 0);
    }
}

#[test]
fn posix_spawn_and_system_children_are_traced() {
    let prog = c_program("spawns", &[]);
    let run = traced("spawns_spawn", &prog, &["spawn", "0", "/bin/true"], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    check_all(&run);
    let trues = run.find(|s| s.process.exe.ends_with("/true"));
    assert_eq!(trues.len(), 2, "{:?}", run.paths());
    assert_eq!(
        run.find(|s| s.process.exe.ends_with("/sh") || s.process.exe.ends_with("/dash"))
            .len(),
        1
    );
}
