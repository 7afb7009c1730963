//! fork, exec and vfork: every image writes its own snapshot (SPEC §2).

use memscope_format::{EndKind, Snapshot};
use memscope_tests::*;
use std::path::Path;

fn run_mode(mode: &str) -> Run {
    let prog = c_program("processes", &[]);
    let run = traced(&format!("processes_{mode}"), &prog, &[mode, "/bin/true"], &[]);
    assert!(run.output.status.success(), "{mode}: {}", run.stderr());
    assert_eq!(run.stderr(), "");
    for (_, s) in &run.snapshots {
        check_invariants(s);
    }
    run
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The parent: a (100) and b (200) before the fork, b freed, d (400) after.
fn check_parent(s: &Snapshot) {
    assert_eq!(s.process.end, EndKind::Exit);
    assert_eq!(s.process.exit_code, Some(0));
    assert!(!s.process.forked);
    let m = &s.summary;
    assert_eq!(
        (m.total_allocations, m.total_frees, m.total_allocated_bytes),
        (3, 1, 700)
    );
    assert_eq!((m.live_at_exit_allocations, m.live_at_exit_bytes), (2, 500));
}

/// The forked child: inherits a and b, allocates c (300), frees a.
fn check_child(s: &Snapshot, parent: &Snapshot) {
    assert!(s.process.forked);
    assert_eq!(s.process.ppid, parent.process.pid);
    let m = &s.summary;
    assert_eq!((m.inherited_allocations, m.inherited_bytes), (2, 300));
    // The counters continue the parent's at the fork (as DHAT counts it)…
    let f = m.at_fork.expect("the counters at the fork");
    assert_eq!(
        (f.total_allocations, f.total_frees, f.total_allocated_bytes),
        (2, 0, 300)
    );
    assert_eq!(
        (m.total_allocations, m.total_frees, m.total_allocated_bytes),
        (3, 1, 600)
    );
    assert_eq!((m.live_at_exit_allocations, m.live_at_exit_bytes), (2, 500));
    // …while the records and sites are the child's own: c, and a, which it
    // freed (born before the child started). b, untouched, is counted, not
    // listed: the parent's snapshot lists it.
    assert_eq!(
        (m.inherited_live_at_exit_allocations, m.inherited_live_at_exit_bytes),
        (1, 200)
    );
    assert!(s.allocations.iter().all(|r| r.size != 200), "b is the parent's");
    let a = s.allocations.iter().find(|r| r.size == 100).expect("a");
    assert!(a.inherited && !a.is_leaked && a.timestamp_alloc < s.process.start_unix_ns);
    let c = s.allocations.iter().find(|r| r.size == 300).expect("c");
    assert!(!c.inherited && c.is_leaked);
    let sites: Vec<(u64, u64)> = s
        .callsites
        .iter()
        .filter(|c| c.allocations > 0)
        .map(|c| (c.allocations, c.bytes))
        .collect();
    assert_eq!(sites, [(1, 300)], "the child's one allocation");
}

#[test]
fn fork_child_continues_the_parents_heap() {
    let run = run_mode("fork");
    assert_eq!(run.snapshots.len(), 2, "{:?}", run.paths());
    let parent = &run
        .snapshots
        .iter()
        .find(|(p, _)| name(p) == "snap.json")
        .expect("root writes PATH")
        .1;
    let (cpath, child) = run.snapshots.iter().find(|(p, _)| name(p) != "snap.json").unwrap();
    check_parent(parent);
    check_child(child, parent);
    assert_eq!(name(cpath), format!("snap.{}.json", child.process.pid));
    assert_eq!((child.process.end, child.process.exit_code), (EndKind::Exit, Some(3)));
    // The summary says which part is the parent's.
    let out = memscope_tests::cli::cli(&run.dir, &["summary".as_ref(), cpath.as_os_str()]);
    let text = memscope_tests::cli::stdout(&out);
    assert!(
        text.contains("before fork:  300 B in 2 allocations made by the parent"),
        "{text}"
    );
    assert!(
        text.contains("of the live:  200 B in 1 blocks are the parent's"),
        "{text}"
    );
    assert!(!text.contains("not listed individually"), "{text}");
}

#[test]
fn fork_child_ending_in_underscore_exit() {
    let run = run_mode("fork-_exit");
    let child = run.find(|s| s.process.forked);
    assert_eq!(child.len(), 1);
    assert_eq!(
        (child[0].process.end, child[0].process.exit_code),
        (EndKind::UnderscoreExit, Some(4))
    );
    check_child(child[0], run.find(|s| !s.process.forked)[0]);
}

#[test]
fn exec_writes_the_old_image_then_the_new_one() {
    let run = run_mode("exec");
    assert_eq!(run.snapshots.len(), 3, "{:?}", run.paths());
    let before = run.find(|s| s.process.end == EndKind::Exec);
    assert_eq!(before.len(), 1);
    let pid = before[0].process.pid;
    check_child(before[0], run.find(|s| !s.process.forked && s.process.exec_seq == 0)[0]);
    let after: Vec<_> = run.snapshots.iter().filter(|(_, s)| s.process.exec_seq == 1).collect();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].1.process.pid, pid);
    assert_eq!(name(&after[0].0), format!("snap.{pid}-1.json"));
    assert!(after[0].1.process.exe.ends_with("true"));
    assert_eq!(after[0].1.process.exit_code, Some(0));
}

#[test]
fn exec_with_an_empty_environment_is_still_traced() {
    let run = run_mode("env-i");
    assert_eq!(run.snapshots.len(), 3, "{:?}", run.paths());
    assert_eq!(
        run.find(|s| s.process.exec_seq == 1 && s.process.exe.ends_with("true"))
            .len(),
        1
    );
}

#[test]
fn vfork_child_leaves_the_parent_alone() {
    let run = run_mode("vfork");
    assert_eq!(run.snapshots.len(), 2, "{:?}", run.paths());
    let parent = run.find(|s| s.process.exe.ends_with("processes"));
    assert_eq!(parent.len(), 1);
    assert_eq!(parent[0].summary.total_allocations, 3);
    let t = run.find(|s| s.process.exe.ends_with("true"));
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].process.exec_seq, 0, "a new pid starts its own sequence");
}
