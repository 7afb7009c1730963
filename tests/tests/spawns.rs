//! Many processes: every image writes its own snapshot, no two collide,
//! none is lost, every one is valid.

use memscope_tests::*;
use std::collections::HashSet;
use std::path::Path;

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
    // The parent, 40 children, 10 grandchildren (i % 4 == 2) and 10 `true`s
    // (i % 4 == 3 exec): 61 images, as the program also says.
    assert_eq!(run.stdout(), "61\n");
    assert_eq!(run.snapshots.len(), 61, "{:?}", run.paths());
    check_all(&run);
    let parent = run.find(|s| !s.process.forked && s.process.exe.ends_with("spawns"));
    assert_eq!(parent.len(), 1);
    let root_pid = parent[0].process.pid;
    // Its 77 bytes, and stdio's buffer for the final printf (stdout is a
    // pipe here: 4096 bytes).
    assert_eq!(own(parent[0]), (2, 77 + 4096), "the parent's blocks");
    // Child i allocates 100 + i bytes, a grandchild 7, nothing else; each
    // continues its parent's heap, so it inherits every block live in it.
    let forked = run.find(|s| s.process.forked);
    let mut children: Vec<u64> = forked
        .iter()
        .filter(|s| s.process.ppid == root_pid)
        .map(|s| {
            assert_eq!(inherited(s), (1, 77), "{}", s.process.pid);
            assert_eq!(own(s).0, 1, "{}", s.process.pid);
            own(s).1
        })
        .collect();
    children.sort();
    assert_eq!(children, (100..140).collect::<Vec<u64>>());
    // A grandchild inherits the 77 bytes and its parent's 100 + i.
    let mut grandparents: Vec<u64> = forked
        .iter()
        .filter(|s| s.process.ppid != root_pid)
        .map(|s| {
            assert_eq!(own(s), (1, 7), "{}", s.process.pid);
            let (n, bytes) = inherited(s);
            assert_eq!(n, 2, "{}", s.process.pid);
            bytes - 77 - 100
        })
        .collect();
    grandparents.sort();
    assert_eq!(grandparents, (2..40).step_by(4).collect::<Vec<u64>>());
    for s in &forked {
        assert!(
            s.allocations.iter().all(|a| !(a.inherited && a.is_leaked)),
            "{}",
            s.process.pid
        );
    }
    assert_eq!(run.find(|s| s.process.exe.ends_with("/true")).len(), 10);
}

/// An exec'd image takes the clock the image before it found (the kernel's
/// clock source is the TSC or not: one read of sysfs per run, not per
/// image), and `MEMSCOPE_CLOCK=monotonic` still holds in every image.
#[test]
fn every_image_takes_the_clock_the_kernel_allows_or_the_one_asked_for() {
    let source =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource").unwrap_or_default();
    let allowed = if source.starts_with("tsc") { "tsc" } else { "monotonic" };
    let prog = c_program("spawns", &[]);
    for (name, env, clock) in [
        ("spawns_clock", &[][..], allowed),
        (
            "spawns_clock_monotonic",
            &[("MEMSCOPE_CLOCK", "monotonic")][..],
            "monotonic",
        ),
    ] {
        let run = traced(name, &prog, &["storm", "8", "/bin/true"], env);
        assert!(run.output.status.success(), "{}", run.stderr());
        // The parent, 8 children, 2 grandchildren, 2 `true`s.
        assert_eq!(run.snapshots.len(), 13, "{:?}", run.paths());
        assert_eq!(run.find(|s| s.process.exe.ends_with("/true")).len(), 2);
        for (p, s) in &run.snapshots {
            assert_eq!(s.tool.clock, clock, "{}", p.display());
        }
    }
    // Asked for by a program for the one it execs: what the image before
    // found does not override it.
    let run = traced(
        "spawns_clock_asked_by_the_program",
        Path::new("/bin/sh"),
        &["-c", "MEMSCOPE_CLOCK=monotonic /bin/true"],
        &[],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let clocks: HashSet<(bool, &str)> = run
        .snapshots
        .iter()
        .map(|(_, s)| (s.process.exe.ends_with("/true"), s.tool.clock.as_str()))
        .collect();
    assert_eq!(
        clocks,
        HashSet::from([(false, allowed), (true, "monotonic")]),
        "{:?}",
        run.paths()
    );
}

/// The blocks (count, bytes) an image allocated itself.
fn own(s: &memscope_format::Snapshot) -> (u64, u64) {
    let at_fork = s.summary.at_fork.unwrap_or_default();
    (
        s.summary.total_allocations - at_fork.total_allocations,
        s.summary.total_allocated_bytes - at_fork.total_allocated_bytes,
    )
}

/// The blocks (count, bytes) a fork child inherited live from its parent.
fn inherited(s: &memscope_format::Snapshot) -> (u64, u64) {
    (s.summary.inherited_allocations, s.summary.inherited_bytes)
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
    let forked = run.find(|s| s.process.forked);
    assert_eq!(forked.len(), 30);
    for s in forked {
        // Each child allocates one block of 1000 bytes and exits.
        assert_eq!(own(s), (1, 1000), "{}", s.process.pid);
        let m = &s.summary;
        assert_eq!(m.live_at_exit_bytes - m.inherited_live_at_exit_bytes, 1000);
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
