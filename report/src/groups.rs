//! How a run's processes are ranked and grouped by executable. Shared by the
//! report's index and `memscope-cli run`'s terminal summary, so both tell
//! the same story about the same run: which executable weighed most, and
//! which process of it.
//!
//! Weight is bytes allocated (`total_allocated_bytes`): it adds up across
//! the processes of a group (a sum of peaks would not — the processes need
//! not overlap in time), it is the measure that picks the process `run`
//! leads with, and it follows the allocator work done. The largest peak of
//! each group is shown beside it, so the biggest heap is not lost.
//!
//! A fork child that only inherited (`summary.inherited_only`) carries its
//! parent's totals, none of its own: it counts in its group's number of
//! processes, but not in the group's bytes, and it ranks after every
//! process that allocated anything, so it is never "the heaviest process".

use memscope_format::{EndKind, Snapshot, Summary};
use std::cmp::Ordering;
use std::collections::HashMap;

/// Characters of the command line a row keeps (a compiler's argv can run to
/// many kilobytes; the index shows the start of it).
const ARGV_CHARS: usize = 240;

/// What the index and the ranking need of one process image: small enough
/// to keep for every process of a run while its snapshot is dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub pid: u32,
    pub ppid: u32,
    /// The executable's path (argv\[0\] when the snapshot names none).
    pub exe: String,
    /// The command line, space-joined and cut to a readable length.
    pub command: String,
    pub end: EndKind,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub start_unix_ns: u64,
    pub forked: bool,
    pub summary: Summary,
}

impl ProcessRow {
    pub fn of(s: &Snapshot) -> ProcessRow {
        let p = &s.process;
        let exe = if p.exe.is_empty() {
            p.argv.first().cloned().unwrap_or_default()
        } else {
            p.exe.clone()
        };
        let mut command = String::new();
        for a in &p.argv {
            if command.len() > ARGV_CHARS * 4 {
                break;
            }
            if !command.is_empty() {
                command.push(' ');
            }
            command.push_str(a);
        }
        if let Some((cut, _)) = command.char_indices().nth(ARGV_CHARS) {
            command.truncate(cut);
            command.push('…');
        }
        ProcessRow {
            pid: p.pid,
            ppid: p.ppid,
            exe,
            command,
            end: p.end,
            exit_code: p.exit_code,
            signal: p.signal,
            start_unix_ns: p.start_unix_ns,
            forked: p.forked,
            summary: s.summary.clone(),
        }
    }

    /// True for a fork child with no allocation event of its own.
    pub fn inherited_only(&self) -> bool {
        self.summary.inherited_only
    }

    /// Bytes this image allocated itself: a fork child's counters continue
    /// its parent's (`summary.at_fork`), which its parent's row counts.
    pub fn own_allocated_bytes(&self) -> u64 {
        let before = self.summary.at_fork.map_or(0, |f| f.total_allocated_bytes);
        self.summary.total_allocated_bytes.saturating_sub(before)
    }

    /// Allocations this image made itself (see [`Self::own_allocated_bytes`]).
    pub fn own_allocations(&self) -> u64 {
        let before = self.summary.at_fork.map_or(0, |f| f.total_allocations);
        self.summary.total_allocations.saturating_sub(before)
    }
}

/// Heaviest first: processes that allocated anything before those that
/// only inherited, then by bytes allocated, then the earlier start, then
/// the smaller pid (so the order never depends on the input order).
pub fn heavier_first(a: &ProcessRow, b: &ProcessRow) -> Ordering {
    a.inherited_only()
        .cmp(&b.inherited_only())
        .then(b.own_allocated_bytes().cmp(&a.own_allocated_bytes()))
        .then(a.start_unix_ns.cmp(&b.start_unix_ns))
        .then(a.pid.cmp(&b.pid))
}

/// Indices of `rows`, heaviest first.
pub fn ranked(rows: &[ProcessRow]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| heavier_first(&rows[a], &rows[b]));
    order
}

/// The first `n` rows to detail: the first row — the run's subject, which
/// `run` puts first even when it is light (the program `cargo run` ran,
/// beside hundreds of rustc under `--all`) — then the heaviest others.
pub fn to_detail(rows: &[ProcessRow], n: usize) -> Vec<usize> {
    let mut order = ranked(rows);
    if let Some(at) = order.iter().position(|&i| i == 0) {
        order[..=at].rotate_right(1);
    }
    order.truncate(n);
    order
}

/// The processes of one executable.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The executable's path, as [`ProcessRow::exe`].
    pub exe: String,
    /// Indices into the rows, heaviest first (see [`heavier_first`]).
    pub members: Vec<usize>,
    /// Bytes the members allocated themselves (a fork child's share of its
    /// parent's history is the parent's).
    pub total_allocated_bytes: u64,
    pub total_allocations: u64,
    /// The largest peak of a member, and that member (inherited-only
    /// members only when no other member exists).
    pub peak_live_bytes: u64,
    pub peak_member: usize,
    /// Members that only inherited their parent's heap.
    pub inherited_only: usize,
}

/// Groups `rows` by executable, heaviest group first: by bytes allocated,
/// then by number of processes, then by path.
pub fn by_executable(rows: &[ProcessRow]) -> Vec<Group> {
    let mut slot: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for i in ranked(rows) {
        let r = &rows[i];
        let g = *slot.entry(r.exe.as_str()).or_insert_with(|| {
            groups.push(Group {
                exe: r.exe.clone(),
                members: Vec::new(),
                total_allocated_bytes: 0,
                total_allocations: 0,
                peak_live_bytes: 0,
                peak_member: i,
                inherited_only: 0,
            });
            groups.len() - 1
        });
        let g = &mut groups[g];
        if r.inherited_only() {
            g.inherited_only += 1;
        } else {
            g.total_allocated_bytes += r.own_allocated_bytes();
            g.total_allocations += r.own_allocations();
        }
        g.members.push(i);
    }
    for g in &mut groups {
        // The largest peak of the members that allocated (of all members
        // when none did); the heavier member on a tie.
        let all_inherited = g.members.iter().all(|&i| rows[i].inherited_only());
        let best = g
            .members
            .iter()
            .copied()
            .filter(|&i| all_inherited || !rows[i].inherited_only())
            .min_by_key(|&i| std::cmp::Reverse(rows[i].summary.peak_live_bytes))
            .unwrap_or(g.members[0]);
        let peak = rows[best].summary.peak_live_bytes;
        (g.peak_member, g.peak_live_bytes) = (best, peak);
    }
    groups.sort_by(|a, b| {
        b.total_allocated_bytes
            .cmp(&a.total_allocated_bytes)
            .then(b.members.len().cmp(&a.members.len()))
            .then(a.exe.cmp(&b.exe))
    });
    groups
}

/// The last component of a path (the path itself when it has none).
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().filter(|b| !b.is_empty()).unwrap_or(path)
}

/// A name per group: the executable's base name, or its whole path when
/// two groups of the run share that base name.
pub fn display_names(groups: &[Group]) -> Vec<&str> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for g in groups {
        *seen.entry(basename(&g.exe)).or_default() += 1;
    }
    groups
        .iter()
        .map(|g| {
            let b = basename(&g.exe);
            if seen[b] > 1 || b.is_empty() {
                g.exe.as_str()
            } else {
                b
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, exe: &str, bytes: u64, peak: u64, inherited_only: bool) -> ProcessRow {
        ProcessRow {
            pid,
            ppid: 1,
            exe: exe.into(),
            command: exe.into(),
            end: EndKind::Exit,
            exit_code: Some(0),
            signal: None,
            start_unix_ns: u64::from(pid),
            forked: inherited_only,
            summary: Summary {
                total_allocated_bytes: bytes,
                total_allocations: bytes / 10,
                peak_live_bytes: peak,
                inherited_only,
                ..Summary::default()
            },
        }
    }

    #[test]
    fn the_first_row_is_detailed_even_when_it_is_the_lightest() {
        let mut rows = vec![row(1, "/t/program", 10, 10, false)];
        rows.extend((2..30).map(|p| row(p, "/usr/bin/rustc", 1000 + u64::from(p), 500, false)));
        let picked = to_detail(&rows, 20);
        assert_eq!(picked.len(), 20);
        assert_eq!(picked[0], 0, "the subject leads");
        // The others are the 19 heaviest rustc, heaviest first.
        assert_eq!(picked[1..], (11..30).rev().map(|p| p - 1).collect::<Vec<usize>>()[..]);
        assert_eq!(to_detail(&rows[..1], 20), [0]);
        assert!(to_detail(&[], 20).is_empty());
    }

    #[test]
    fn groups_sum_members_heaviest_first_and_skip_inherited_bytes() {
        let rows = vec![
            row(10, "/bin/sh", 100, 50, false),
            row(11, "/bin/sh", 900_000, 900_000, true),
            row(20, "/bin/ls", 300, 70, false),
            row(21, "/bin/ls", 300, 80, false),
            row(22, "/bin/ls", 400, 60, false),
            row(30, "/opt/x/ls", 1, 1, false),
        ];
        let g = by_executable(&rows);
        assert_eq!(g.len(), 3);
        assert_eq!(
            (g[0].exe.as_str(), g[0].total_allocated_bytes, g[0].total_allocations),
            ("/bin/ls", 1000, 100)
        );
        assert_eq!(g[0].members, [4, 2, 3], "heaviest first, then the earlier start");
        assert_eq!((g[0].peak_live_bytes, g[0].peak_member), (80, 3));
        assert_eq!((g[1].exe.as_str(), g[1].total_allocated_bytes), ("/bin/sh", 100));
        assert_eq!(g[1].members, [0, 1], "the inherited-only fork ranks last");
        assert_eq!(
            (g[1].inherited_only, g[1].peak_live_bytes, g[1].peak_member),
            (1, 50, 0)
        );
        assert_eq!(display_names(&g), ["/bin/ls", "sh", "/opt/x/ls"]);
        assert_eq!(ranked(&rows)[0], 4);
        assert_eq!(*ranked(&rows).last().unwrap(), 1);
    }

    #[test]
    fn a_group_of_inherited_only_forks_still_has_a_peak() {
        let rows = vec![row(1, "/bin/sh", 10, 5, true), row(2, "/bin/sh", 10, 7, true)];
        let g = by_executable(&rows);
        assert_eq!((g[0].total_allocated_bytes, g[0].inherited_only), (0, 2));
        assert_eq!((g[0].peak_live_bytes, g[0].peak_member), (7, 1));
    }

    #[test]
    fn long_command_lines_are_cut() {
        let mut s = memscope_format::read_snapshot(MINIMAL.as_bytes()).unwrap();
        s.process.argv = vec!["cc".into(); 500];
        let r = ProcessRow::of(&s);
        assert!(
            r.command.ends_with('…') && r.command.chars().count() == ARGV_CHARS + 1,
            "{}",
            r.command
        );
        s.process.exe.clear();
        assert_eq!(ProcessRow::of(&s).exe, "cc");
    }

    const MINIMAL: &str = r#"{"format":"memscope","format_version":2,
        "process":{"pid":1,"ppid":0,"exe":"/bin/cc","argv":["cc"],"start_unix_ns":1,"end_unix_ns":2,"end":"exit"},
        "summary":{"total_allocations":0,"total_frees":0,"total_allocated_bytes":0,"total_freed_bytes":0,
          "reallocs":0,"peak_live_bytes":0,"peak_live_allocations":0,"peak_unix_ns":1,
          "live_at_exit_allocations":0,"live_at_exit_bytes":0,"events_dropped":0,"records_omitted":0},
        "allocations":[],"modules":[],"frames":[],"callsites":[],"variables":[],"timeline":[]}"#;
}
