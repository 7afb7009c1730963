//! `memscope-cli run` over a run of many processes: the summary leads with
//! the heaviest process and then tells one line per executable, heaviest
//! first, bounded; the HTML report groups the same way and details only the
//! heaviest processes. Every number is checked against the snapshots the
//! run wrote, and the test program's against what it was told to do.

mod report_common;

use memscope_format::human::{bytes, count};
use memscope_format::Snapshot;
use memscope_tests::cli::*;
use memscope_tests::*;
use report_common::{all, one, sel, text};
use std::collections::BTreeMap;
use std::path::Path;

/// `memscope-cli run OPTIONS… sh -c SCRIPT cli_prog` in `dir` (the test
/// program is the script's `$0`): its stderr and every snapshot it left.
fn run_script(dir: &Path, options: &[&str], script: &str) -> (String, Vec<Snapshot>) {
    let out = command(dir)
        .arg("run")
        .args(options)
        .args(["sh", "-c", script])
        .arg(prog())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (stderr(&out), snapshots_in(dir))
}

/// The summary's lines under "processes by executable", without the
/// `memscope:` prefix and indentation.
fn group_lines(err: &str) -> Vec<String> {
    err.lines()
        .skip_while(|l| !l.contains("processes by executable, most bytes allocated first:"))
        .skip(1)
        .take_while(|l| l.starts_with("memscope:     "))
        .map(|l| l.trim_start_matches("memscope:     ").to_string())
        .collect()
}

/// One executable's processes as the test adds them up from the files.
struct Expected {
    exe: String,
    name: String,
    processes: usize,
    bytes: u64,
    allocations: u64,
    peak: u64,
    /// The pids whose peak is the group's (any of them may be named).
    peak_pids: Vec<u32>,
}

/// The groups of `snaps`, heaviest first, summed from the snapshots.
fn expected_groups(snaps: &[Snapshot]) -> Vec<Expected> {
    let mut by_exe: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for s in snaps {
        by_exe.entry(s.process.exe.as_str()).or_default().push(s);
    }
    let mut groups: Vec<Expected> = by_exe
        .into_iter()
        .map(|(exe, members)| {
            let own: Vec<&&Snapshot> = members.iter().filter(|s| !s.summary.inherited_only).collect();
            let peak = own.iter().map(|s| s.summary.peak_live_bytes).max().unwrap_or(0);
            Expected {
                exe: exe.to_string(),
                name: exe.rsplit('/').next().unwrap().to_string(),
                processes: members.len(),
                // A fork child's counters continue its parent's: the group
                // counts what each image allocated itself.
                bytes: own
                    .iter()
                    .map(|s| s.summary.total_allocated_bytes - s.summary.at_fork.map_or(0, |f| f.total_allocated_bytes))
                    .sum(),
                allocations: own
                    .iter()
                    .map(|s| s.summary.total_allocations - s.summary.at_fork.map_or(0, |f| f.total_allocations))
                    .sum(),
                peak,
                peak_pids: own
                    .iter()
                    .filter(|s| s.summary.peak_live_bytes == peak)
                    .map(|s| s.process.pid)
                    .collect(),
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        (b.bytes, b.processes)
            .cmp(&(a.bytes, a.processes))
            .then(a.exe.cmp(&b.exe))
    });
    groups
}

/// Asserts the summary's group lines are `want`'s, in order, and returns
/// the pid each line names.
#[track_caller]
fn assert_group_lines(got: &[String], want: &[Expected]) -> Vec<u32> {
    want.iter()
        .zip(got)
        .map(|(g, line)| {
            let times = if g.processes > 1 {
                format!(" ×{}", g.processes)
            } else {
                String::new()
            };
            let head = format!(
                "{}{times}: total {} in {} allocation{}, peak {} ({}pid ",
                g.name,
                bytes(g.bytes),
                count(g.allocations),
                if g.allocations == 1 { "" } else { "s" },
                bytes(g.peak),
                if g.processes > 1 { "largest: " } else { "" }
            );
            let pid: u32 = line
                .strip_prefix(&head)
                .and_then(|rest| rest.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{line:?} is not {head:?}…"))
                .parse()
                .unwrap();
            assert!(g.peak_pids.contains(&pid), "{line}: pid {pid} of {:?}", g.peak_pids);
            pid
        })
        .collect()
}

#[test]
fn the_summary_groups_processes_by_executable() {
    let dir = scratch("cli_run_many_groups");
    let script = "for i in 1 2 3; do ls / >/dev/null; done; \"$0\" alloc 20000 64 10 0";
    let (err, snaps) = run_script(&dir, &["-o", "g.json"], script);
    let ls: Vec<&Snapshot> = snaps.iter().filter(|s| s.process.exe.ends_with("/ls")).collect();
    assert_eq!(ls.len(), 3, "{err}");
    let p = snaps
        .iter()
        .find(|s| s.process.exe.ends_with("/cli_prog"))
        .expect("the test program's snapshot");
    // 20,000 blocks of 64 bytes and the array of their pointers.
    assert_eq!(p.summary.total_allocations, 20_001);
    assert_eq!(p.summary.total_allocated_bytes, 20_000 * 64 + 20_000 * 8);
    assert_eq!(p.summary.peak_live_bytes, 20_000 * 64 + 20_000 * 8);
    // It leads, with its exact numbers.
    assert!(
        err.contains(&format!("(pid {}) allocated most (exited with code 0):", p.process.pid)),
        "{err}"
    );
    assert!(
        err.contains("  allocated:    1.37 MiB in 20,001 allocations\n"),
        "{err}"
    );
    assert!(err.contains("  live at exit: 640 B in 10 blocks\n"), "{err}");
    // Then one line per executable, heaviest first: the program, `ls ×3`,
    // the shell.
    let lines = group_lines(&err);
    let want = expected_groups(&snaps);
    assert_eq!(lines.len(), want.len(), "{err}");
    let pids = assert_group_lines(&lines, &want);
    assert_eq!(
        lines[0],
        format!(
            "cli_prog: total 1.37 MiB in 20,001 allocations, peak 1.37 MiB (pid {})",
            p.process.pid
        )
    );
    let ls_line = lines.iter().find(|l| l.starts_with("ls ×3: ")).expect("a group ls ×3");
    let ls_bytes: u64 = ls.iter().map(|s| s.summary.total_allocated_bytes).sum();
    let ls_allocs: u64 = ls.iter().map(|s| s.summary.total_allocations).sum();
    assert!(
        ls_line.starts_with(&format!(
            "ls ×3: total {} in {} allocations",
            bytes(ls_bytes),
            count(ls_allocs)
        )),
        "{ls_line}"
    );
    assert_eq!(pids[0], p.process.pid);
    assert!(
        err.contains(&format!("; {} process images traced", snaps.len())),
        "{err}"
    );
}

#[test]
fn more_executables_than_lines_end_with_how_many_more() {
    let dir = scratch("cli_run_many_executables");
    // Ten copies of the program under ten names, the n-th allocating
    // 1,000·n blocks of 8 bytes.
    for i in 0..10 {
        let copy = dir.join(format!("p{i}"));
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(prog(), &copy).unwrap();
    }
    let script = "for i in 0 1 2 3 4 5 6 7 8 9; do ./p$i alloc $(( (i + 1) * 1000 )) 8 0 0; done";
    let (err, snaps) = run_script(&dir, &["-o", "m.json"], script);
    for i in 0..10u64 {
        let s = snaps
            .iter()
            .find(|s| s.process.exe.ends_with(&format!("/p{i}")))
            .unwrap_or_else(|| panic!("p{i}: {err}"));
        let n = (i + 1) * 1000;
        assert_eq!(
            (s.summary.total_allocations, s.summary.total_allocated_bytes),
            (n + 1, 16 * n),
            "p{i}"
        );
    }
    let lines = group_lines(&err);
    let want = expected_groups(&snaps);
    assert_eq!(want.len(), 11, "ten programs and the shell");
    assert_eq!(lines.len(), 9, "{err}");
    assert_group_lines(&lines[..8], &want[..8]);
    assert_eq!(lines[0].split(':').next(), Some("p9"), "{err}");
    let rest: usize = want[8..].iter().map(|g| g.processes).sum();
    assert_eq!(
        lines[8],
        format!(
            "… and 3 more executables ({rest} process{})",
            if rest == 1 { "" } else { "es" }
        )
    );
    assert!(err.contains("/p9 (pid "), "the heaviest leads: {err}");
}

#[test]
fn the_report_of_many_processes_groups_them_and_details_the_heaviest() {
    let dir = scratch("cli_run_many_report");
    let script = "for i in $(seq 40); do ls / >/dev/null; done; \"$0\" alloc 20000 64 10 0";
    let (err, snaps) = run_script(&dir, &["--export", "both", "-o", "r.json"], script);
    assert!(snaps.len() >= 43, "sh, seq, 40 ls and the program: {}", snaps.len());
    // The summary stays short however many processes ran.
    assert!(err.lines().count() <= 20, "{err}");
    let html = std::fs::read_to_string(dir.join("r.html")).unwrap();
    let doc = scraper::Html::parse_document(&html);
    let groups = all(&doc, "#processes details.group");
    let want = expected_groups(&snaps);
    assert_eq!(groups.len(), want.len());
    for (g, w) in groups.iter().zip(&want) {
        let attr = |k: &str| g.value().attr(k).unwrap().parse::<u64>().unwrap();
        assert_eq!(g.value().attr("data-exe"), Some(w.exe.as_str()));
        assert_eq!(
            [
                attr("data-processes"),
                attr("data-bytes"),
                attr("data-allocations"),
                attr("data-peak")
            ],
            [w.processes as u64, w.bytes, w.allocations, w.peak],
            "{}",
            w.name
        );
        assert_eq!(g.select(&sel("tbody tr")).count(), w.processes);
    }
    let ls = one(&doc, "details.group[data-exe$=\"/ls\"]");
    assert_eq!(ls.value().attr("data-processes"), Some("40"));
    assert_eq!(ls.value().attr("open"), None, "a big group starts collapsed");
    // Full sections for the 20 heaviest, the program first; a row for the rest.
    let sections = all(&doc, "section.process");
    assert_eq!(sections.len(), memscope_report::MAX_DETAILED);
    assert_eq!(all(&doc, "tr.detailed").len(), memscope_report::MAX_DETAILED);
    assert_eq!(all(&doc, "tr.brief").len(), snaps.len() - memscope_report::MAX_DETAILED);
    let first = sections[0].select(&sel(".pid")).next().map(text);
    let p = snaps.iter().find(|s| s.process.exe.ends_with("/cli_prog")).unwrap();
    assert_eq!(first, Some(format!("pid {}", p.process.pid)));
    let note = text(one(&doc, "#processes [data-field=run]"));
    assert!(
        note.contains(&format!(
            "the other {} are told in their row",
            snaps.len() - memscope_report::MAX_DETAILED
        )),
        "{note}"
    );
    assert!(err.contains(&format!("report over {} processes", snaps.len())), "{err}");
}

/// A run lists blocks one by one for a few images of each executable: its
/// root, the first three, and each one heavier than every one before it.
/// The others' totals stay whole, their cap reads 0 and `records_omitted`
/// counts the blocks they do not list. With `MEMSCOPE_MAX_RECORDS` set,
/// every image lists.
#[test]
fn a_run_lists_blocks_for_a_few_images_of_each_executable() {
    let script = "for i in 1 2 3 4 5 6; do \"$0\" alloc 5 100 2 0; done; \"$0\" alloc 5 200 2 0; true";
    for (test, cap) in [("cli_run_many_lists", None), ("cli_run_many_lists_all", Some("256"))] {
        let dir = scratch(test);
        let mut cmd = command(&dir);
        if let Some(n) = cap {
            cmd.env("MEMSCOPE_MAX_RECORDS", n);
        }
        let out = cmd
            .args(["run", "-o", "l.json", "sh", "-c", script])
            .arg(prog())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let mut progs: Vec<Snapshot> = snapshots_in(&dir)
            .into_iter()
            .filter(|s| s.process.exe.ends_with("/cli_prog"))
            .collect();
        progs.sort_by_key(|s| s.process.start_unix_ns);
        assert_eq!(progs.len(), 7, "{test}");
        for s in &progs {
            check_invariants(s);
            // 5 blocks and the array of their pointers, 2 of them leaked.
            assert_eq!(
                (s.summary.total_allocations, s.summary.live_at_exit_allocations),
                (6, 2),
                "{test}"
            );
            assert_eq!(s.allocations.len() as u64 + s.summary.records_omitted, 6, "{test}");
        }
        let listed: Vec<(usize, u64)> = progs
            .iter()
            .map(|s| (s.allocations.len(), s.tool.max_records))
            .collect();
        let want = match cap {
            Some(_) => vec![(6, 256); 7],
            // An image that lists none says its cap was 0.
            None => [6, 6, 6, 0, 0, 0, 6]
                .map(|n| (n, if n == 0 { 0 } else { 256 }))
                .to_vec(),
        };
        assert_eq!(listed, want, "{test}");
    }
}
