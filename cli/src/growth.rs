//! Growth between two moments of one process (issue 16): `diff` of two
//! snapshots of the same process, the first taken while it ran, is the
//! leak-hunting view — sites ranked by how much their live bytes grew
//! between the two moments, not by a comparison of two runs.

use memscope_format::Snapshot;

/// True when `base` and `new` are two moments of one process: same pid and
/// start time, `base` a running snapshot taken before `new` (a running one
/// or the final).
pub fn two_moments(base: &Snapshot, new: &Snapshot) -> bool {
    let (b, n) = (&base.process, &new.process);
    base.is_running() && b.pid == n.pid && b.start_unix_ns == n.start_unix_ns && b.end_unix_ns <= n.end_unix_ns
}

/// How the two moments are introduced: "pid 42, 3.5 s apart".
pub fn interval(base: &Snapshot, new: &Snapshot) -> String {
    let ns = new.process.end_unix_ns.saturating_sub(base.process.end_unix_ns);
    format!(
        "two moments of pid {}, {} apart",
        base.process.pid,
        crate::text::duration(ns)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use memscope_format::EndKind;

    #[test]
    fn only_an_earlier_running_snapshot_of_the_same_process_counts() {
        let mut a = crate::sites::tests::with_sites(vec![]);
        a.process.pid = 42;
        a.process.start_unix_ns = 1_000;
        a.process.end_unix_ns = 5_000;
        a.process.end = EndKind::Running;
        let mut b = a.clone();
        b.process.end_unix_ns = 9_000;
        assert!(two_moments(&a, &b));
        assert!(!two_moments(&b, &a), "the later one first");
        b.process.end = EndKind::Exit;
        assert!(two_moments(&a, &b), "running, then the final");
        assert!(!two_moments(&b, &a));
        b.process.start_unix_ns = 2_000;
        assert!(!two_moments(&a, &b), "another process with the same pid");
    }
}
