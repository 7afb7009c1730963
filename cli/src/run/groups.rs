//! The summary's lines about the other processes of a run: one per
//! executable, heaviest first (the report's grouping, see
//! [`memscope_report::groups`]), so `make` or `cargo build` reads as
//! "rustc ×12: …" rather than a list of pids that ends in "… and 90 more".

use crate::text::{bytes, count, term};
use memscope_report::groups::{by_executable, display_names};
use memscope_report::ProcessRow;

/// Executables listed before "… and N more executables".
pub const MAX_GROUP_LINES: usize = 8;

/// `rustc ×12: total 1.20 GiB in 3,400,000 allocations, peak 210 MiB
/// (largest: pid 1234)`, one per executable of `rows`, bounded; escaped.
pub fn group_lines(rows: &[ProcessRow]) -> Vec<String> {
    let groups = by_executable(rows);
    let names = display_names(&groups);
    let mut lines: Vec<String> = groups
        .iter()
        .zip(&names)
        .take(MAX_GROUP_LINES)
        .map(|(g, name)| {
            let n = g.members.len();
            let times = if n > 1 {
                format!(" ×{}", count(n as u64))
            } else {
                String::new()
            };
            let forks = match g.inherited_only {
                0 => String::new(),
                1 if n == 1 => " (a fork that only inherited)".to_string(),
                k => format!(
                    " ({} fork{} that only inherited)",
                    count(k as u64),
                    if k == 1 { "" } else { "s" }
                ),
            };
            let pid = rows[g.peak_member].pid;
            format!(
                "{}{times}{forks}: total {} in {} allocation{}, peak {} ({}pid {pid})",
                term(name),
                bytes(g.total_allocated_bytes),
                count(g.total_allocations),
                if g.total_allocations == 1 { "" } else { "s" },
                bytes(g.peak_live_bytes),
                if n > 1 { "largest: " } else { "" },
            )
        })
        .collect();
    if groups.len() > MAX_GROUP_LINES {
        let rest = &groups[MAX_GROUP_LINES..];
        let processes: usize = rest.iter().map(|g| g.members.len()).sum();
        lines.push(format!(
            "… and {} more executable{} ({} process{})",
            count(rest.len() as u64),
            if rest.len() == 1 { "" } else { "s" },
            count(processes as u64),
            if processes == 1 { "" } else { "es" }
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of a process of `exe` with these totals.
    fn row(pid: u32, exe: &str, totals: [u64; 3], inherited_only: bool) -> ProcessRow {
        let mut s = memscope_format::read_snapshot(crate::export::tests::MINIMAL.as_bytes()).unwrap();
        (s.process.pid, s.process.exe, s.process.start_unix_ns) = (pid, exe.into(), u64::from(pid));
        let m = &mut s.summary;
        [m.total_allocated_bytes, m.total_allocations, m.peak_live_bytes] = totals;
        m.inherited_only = inherited_only;
        ProcessRow::of(&s)
    }

    #[test]
    fn one_line_per_executable_heaviest_first() {
        let mut rows = vec![
            row(10, "/usr/bin/bash", [2048, 20, 1024], false),
            row(11, "/usr/bin/bash", [1 << 30, 99, 1 << 30], true),
            row(12, "/usr/bin/bash", [1 << 30, 99, 1 << 30], true),
            row(20, "/usr/bin/ls", [4096, 10, 100], false),
            row(21, "/usr/bin/ls", [4096, 10, 300], false),
            row(30, "/tmp/\x1b[31mevil", [1, 1, 1], false),
        ];
        assert_eq!(
            group_lines(&rows),
            [
                "ls ×2: total 8.00 KiB in 20 allocations, peak 300 B (largest: pid 21)",
                "bash ×3 (2 forks that only inherited): total 2.00 KiB in 20 allocations, peak 1.00 KiB (largest: pid 10)",
                "\\x1b[31mevil: total 1 B in 1 allocation, peak 1 B (pid 30)",
            ]
        );
        for i in 0..20 {
            rows.push(row(100 + i, &format!("/bin/tool{i}"), [1, 1, 1], false));
        }
        let lines = group_lines(&rows);
        assert_eq!(lines.len(), MAX_GROUP_LINES + 1);
        assert_eq!(lines[MAX_GROUP_LINES], "… and 15 more executables (15 processes)");
    }
}
