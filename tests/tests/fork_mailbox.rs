//! A fork child's new unwind rules and call sites go back to its parent
//! (`engine/src/unwind/mailbox.rs`), so the parent's later children find
//! them instead of finding them again, and nothing any snapshot says
//! changes: each child's sites keep their frames, the parent's snapshot
//! lists none of its children's sites.

use memscope_format::{EndKind, Snapshot};
use memscope_tests::*;

const CHILDREN: usize = 4;

/// `(rules, sites)` of the debug line "N unwind rules and M call sites new
/// to this image" of process `pid`.
fn found_here(stderr: &str, pid: u32) -> (u64, u64) {
    let prefix = format!("memscope[{pid}]: ");
    let line = stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .find(|l| l.ends_with(" call sites new to this image"))
        .unwrap_or_else(|| panic!("no count of what pid {pid} found:\n{stderr}"));
    let words: Vec<&str> = line.split(' ').collect();
    (words[0].parse().unwrap(), words[4].parse().unwrap())
}

/// The frames (function names, innermost first) of the site of `size`-byte
/// blocks.
fn site_of(s: &Snapshot, size: u64) -> Vec<String> {
    let c = s
        .callsites
        .iter()
        .find(|c| c.allocations == 1 && c.bytes == size)
        .unwrap_or_else(|| panic!("no site of one {size}-byte block in pid {}", s.process.pid));
    stack(s, c).into_iter().map(|f| f.function.unwrap_or(f.ip)).collect()
}

#[test]
fn later_fork_children_find_the_rules_and_sites_of_earlier_ones() {
    let prog = c_program("fork_children", &[]);
    for (mode, end) in [("exec", EndKind::Exec), ("exit", EndKind::UnderscoreExit)] {
        let run = traced(
            &format!("fork_mailbox_{mode}"),
            &prog,
            &[&CHILDREN.to_string(), "/bin/true", mode],
            &[("MEMSCOPE_LOG", "debug")],
        );
        let stderr = run.stderr();
        assert!(run.output.status.success(), "{stderr}");
        for (_, s) in &run.snapshots {
            check_invariants(s);
        }
        let mut children = run.find(|s| s.process.forked && s.process.end == end);
        assert_eq!(children.len(), CHILDREN, "{mode}: {:?}", run.paths());
        children.sort_by_key(|s| s.process.start_unix_ns);
        // What each child did, exactly, and where.
        let first = site_of(children[0], 333);
        assert!(
            first.iter().take(2).eq(["child_path", "main"].iter()),
            "{mode}: the first child's 333-byte site: {first:?}"
        );
        for c in &children {
            let m = &c.summary;
            assert_eq!(
                (m.total_allocations, m.total_frees),
                (2, 1),
                "{mode}: pid {}",
                c.process.pid
            );
            assert_eq!((m.total_allocated_bytes, m.live_at_exit_bytes), (410, 77), "{mode}");
            assert_eq!(site_of(c, 333), first, "{mode}: pid {}", c.process.pid);
            assert_eq!(site_of(c, 77), first, "{mode}: pid {}", c.process.pid);
        }
        // The first child found its stacks and the rules to walk them; the
        // ones after it found nothing new: the parent had taken both.
        let (rules, sites) = found_here(&stderr, children[0].process.pid);
        assert!(
            rules >= 2 && sites == 2,
            "{mode}: the first child found {rules} rules, {sites} sites"
        );
        for c in &children[1..] {
            assert_eq!(
                found_here(&stderr, c.process.pid),
                (0, 0),
                "{mode}: pid {}",
                c.process.pid
            );
        }
        // The parent took its children's sites, and lists none of them.
        let parent = run.find(|s| !s.process.forked && s.process.exe.ends_with("/fork_children"));
        assert_eq!(parent.len(), 1, "{mode}");
        assert_eq!(sites_under(parent[0], "child_path"), (0, 0, 0, 0), "{mode}");
    }
}
