//! Snapshots of a running program (issue 16, SPEC §3 `"running"`, §4
//! `snapshot PID`, `run --every`): taken from a real process that holds a
//! known heap and waits on a pipe, each checked exactly against what the
//! program holds at that moment.

use memscope_format::{EndKind, Snapshot};
use memscope_tests::cli::*;
use memscope_tests::running::*;
use memscope_tests::*;
use std::path::Path;
use std::process::Stdio;

/// The same block in two snapshots of one process: same address, size and
/// site; the birth times agree to the clock calibration (which the later
/// snapshot refines: a few ns apart here, allowed up to 1 µs).
fn same_block(a: &memscope_format::Allocation, b: &memscope_format::Allocation) -> bool {
    a.ptr == b.ptr
        && a.size == b.size
        && a.callsite == b.callsite
        && a.timestamp_alloc.abs_diff(b.timestamp_alloc) <= 1_000
}

/// Every block of `part` appears in `whole`.
#[track_caller]
fn all_in(part: &[&memscope_format::Allocation], whole: &Snapshot, what: &str) {
    let by_ptr: std::collections::HashMap<&str, Vec<&memscope_format::Allocation>> =
        whole.allocations.iter().fold(Default::default(), |mut m, a| {
            m.entry(a.ptr.as_str()).or_default().push(a);
            m
        });
    for a in part {
        let found = by_ptr
            .get(a.ptr.as_str())
            .is_some_and(|v| v.iter().any(|b| same_block(a, b)));
        assert!(
            found,
            "{what}: block {} ({} B) is not in the final snapshot",
            a.ptr, a.size
        );
    }
}

/// Live blocks and bytes a snapshot reports.
fn live(s: &Snapshot) -> (u64, u64) {
    (s.summary.live_at_exit_allocations, s.summary.live_at_exit_bytes)
}

#[track_caller]
fn assert_running(s: &Snapshot, pid: u32) {
    assert_eq!(s.process.end, EndKind::Running);
    assert_eq!(s.process.pid, pid);
    assert!(
        s.allocations.iter().all(|a| !a.is_leaked),
        "a running snapshot leaks nothing yet"
    );
    assert_eq!(s.summary.events_dropped, 0);
    check_invariants(s);
}

#[test]
fn snapshot_pid_shows_exactly_what_the_program_holds_and_it_goes_on() {
    let dir = scratch("running_exact");
    let mut p = Live::preloaded(&dir, &[]);
    let (base_path, base) = p.take(&dir, None);
    assert_running(&base, p.pid);
    // The default path: the process's own, with .at-<unix ms>.
    let name = base_path.file_name().unwrap().to_string_lossy().into_owned();
    let ms = base.process.end_unix_ns / 1_000_000;
    assert_eq!(base_path.parent().unwrap(), dir);
    assert_eq!(name, format!("snap.at-{ms}.json"));

    assert_eq!(p.send("hold 1000 7777"), (1000, 7_777_000));
    let (_, held) = p.take(&dir, Some(&dir.join("held.json")));
    assert_running(&held, p.pid);
    assert_eq!(live(&held), (live(&base).0 + 1000, live(&base).1 + 7_777_000));
    let blocks = live_of_size(&held, 7777);
    assert_eq!(blocks.len(), 1000);
    assert!(held
        .callsites
        .iter()
        .any(|c| c.live_at_exit_bytes == 7_777_000 && c.allocations == 1000));

    assert_eq!(p.send("grow 500 333"), (1500, 7_777_000 + 500 * 333));
    let (_, grown) = p.take(&dir, Some(Path::new("grown.json")));
    assert_eq!(live(&grown), (live(&held).0 + 500, live(&held).1 + 166_500));
    assert!(grown.process.end_unix_ns > held.process.end_unix_ns);

    assert_eq!(p.send("free"), (0, 0));
    let (_, freed) = p.take(&dir, None);
    assert_eq!(live(&freed), live(&base));
    assert_eq!(freed.summary.total_frees, base.summary.total_frees + 1500);

    let out = p.quit();
    assert_eq!(out.status.code(), Some(0));
    let fin = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    assert_eq!(fin.process.end, EndKind::Exit);
    assert_eq!(fin.summary.total_allocations, freed.summary.total_allocations);
    // The blocks the running snapshot listed are the final one's, unchanged.
    all_in(&blocks, &fin, "held.json");
}

/// By default memscope adds no thread to a single-threaded program: one
/// that waits without allocating cannot be asked, and `snapshot` says how
/// to make it reachable; its final snapshot is as always.
#[test]
fn an_idle_single_threaded_process_is_not_asked_and_the_cli_says_why() {
    let dir = scratch("running_idle_default");
    let mut p = Live::preloaded(&dir, &[("MEMSCOPE_REACHABLE", "0")]);
    assert_eq!(p.send("hold 10 100"), (10, 1000));
    let o = p.snapshot(&dir, None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("is traced but cannot be asked now") && err.contains("MEMSCOPE_REACHABLE=1"),
        "{err}"
    );
    assert_eq!(p.threads(), 1, "memscope added a thread to a single-threaded program");
    let pid = p.pid;
    assert_eq!(p.quit().status.code(), Some(0));
    let fin = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    assert_eq!((fin.process.pid, fin.process.end), (pid, EndKind::Exit));
    assert_eq!(live_of_size(&fin, 100).len(), 10);
}

/// A single-threaded program that allocates is reached without
/// `MEMSCOPE_REACHABLE`: its own thread sees the request between events
/// and starts memscope's thread to answer it (the user asked).
#[test]
fn a_single_threaded_process_that_allocates_answers_a_request() {
    let dir = scratch("running_busy_default");
    let mut p = Live::preloaded(&dir, &[("MEMSCOPE_REACHABLE", "0")]);
    assert_eq!(p.send("hold 1000 7777"), (1000, 7_777_000));
    p.start_command("churn 3000");
    // The image advertises itself a poll period into its events.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(p.threads(), 1, "a thread before anyone asked");
    let (_, s) = p.take(&dir, None);
    assert_running(&s, p.pid);
    assert_eq!(live_of_size(&s, 7777).len(), 1000);
    assert_eq!(p.threads(), 2, "memscope's thread answers from now on");
    assert_eq!(p.reply("churn 3000"), (1000, 7_777_000));
    assert_eq!(p.quit().status.code(), Some(0));
    let fin = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    assert_eq!(live_of_size(&fin, 7777).len(), 1000);
    assert_eq!(fin.summary.events_dropped, 0);
}

/// A killed process cannot take back its `<pid>.traced`: the next
/// `snapshot` clears what processes that are gone left (a minute old).
#[test]
fn snapshot_clears_the_files_of_killed_processes() {
    let dir = scratch("running_sweep");
    let mut killed = Live::preloaded(&dir, &[]);
    killed.take(&dir, None);
    let gone = killed.pid;
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    // SAFETY: no arguments, cannot fail.
    let ctl = Path::new(&memscope_format::control::dir_for(unsafe { libc::geteuid() })).to_path_buf();
    let left = ctl.join(format!("{gone}.traced"));
    let recent = ctl.join(format!("{gone}.wake"));
    std::fs::write(&recent, b"").unwrap();
    let minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    let f = std::fs::File::options()
        .write(true)
        .open(&left)
        .expect("a killed process leaves its .traced");
    f.set_modified(minutes_ago).unwrap();
    let p = Live::preloaded(&dir, &[]);
    p.take(&dir, None);
    assert!(!left.exists(), "the gone process's advertisement stays");
    assert!(recent.exists(), "a file of the last minute may still be answered");
    std::fs::remove_file(&recent).unwrap();
    assert_eq!(p.quit().status.code(), Some(0));
}

#[test]
fn snapshot_pid_of_a_process_under_run() {
    let dir = scratch("running_under_run");
    let mut p = Live::under_run(&dir, &["-o", "r.json"]);
    assert_eq!(p.send("hold 64 4000"), (64, 256_000));
    let (path, s) = p.take(&dir, None);
    assert_running(&s, p.pid);
    assert_eq!(live_of_size(&s, 4000).len(), 64);
    assert!(path.starts_with(&dir), "{}", path.display());
    // Named now, though run names the final snapshots later.
    assert!(s.frames.iter().any(|f| f.function.as_deref() == Some("hold_blocks")));
    let out = p.quit();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fin = memscope_format::read_snapshot_file(&dir.join("r.json")).unwrap();
    assert_eq!(fin.summary.live_at_exit_allocations, s.summary.live_at_exit_allocations);
}

#[test]
fn a_pid_that_is_not_traced_gone_or_not_a_pid_is_one_line_and_exit_2() {
    let dir = scratch("running_bad_pid");
    let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let err = assert_one_line_error(&cli(&dir, &["snapshot", &sleeper.id().to_string()]), "untraced");
    assert!(err.contains("not traced by memscope"), "{err}");
    sleeper.kill().unwrap();
    let gone = sleeper.id();
    sleeper.wait().unwrap();
    let err = assert_one_line_error(&cli(&dir, &["snapshot", &gone.to_string()]), "gone");
    assert!(err.contains(&format!("no process with pid {gone}")), "{err}");
    assert_one_line_error(&cli(&dir, &["snapshot", "0"]), "pid 0");
    assert_one_line_error(&cli(&dir, &["snapshot", "abc"]), "not a number");
    assert_one_line_error(&cli(&dir, &["snapshot", "1"]), "init: not traced, or not ours");
    assert_one_line_error(&cli(&dir, &["snapshot"]), "no pid");
}

#[test]
fn two_requests_at_once_both_get_complete_files() {
    let dir = scratch("running_concurrent");
    let mut p = Live::preloaded(&dir, &[]);
    p.send("hold 10000 100");
    for round in 0..3 {
        let outs: Vec<_> = (0..2)
            .map(|i| {
                let mut c = command(&dir);
                c.args(["snapshot", &p.pid.to_string(), "-o", &format!("c{round}-{i}.json")]);
                c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        let snaps: Vec<Snapshot> = outs
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let o = c.wait_with_output().unwrap();
                assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
                memscope_format::read_snapshot_file(&dir.join(format!("c{round}-{i}.json"))).unwrap()
            })
            .collect();
        for s in &snaps {
            assert_running(s, p.pid);
            assert_eq!(live_of_size(s, 100).len(), 10000);
        }
        assert_eq!(live(&snaps[0]), live(&snaps[1]));
    }
    // Nothing is left behind in the control directory for these requests.
    let ctl = format!("/tmp/memscope-{}", unsafe { libc::geteuid() });
    let left: Vec<String> = std::fs::read_dir(&ctl)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{}.", p.pid)) && !n.ends_with(".traced"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let pid = p.pid;
    assert!(Path::new(&format!("{ctl}/{pid}.traced")).exists());
    p.quit();
    assert!(!Path::new(&format!("{ctl}/{pid}.traced")).exists(), "withdrawn at exit");
}

#[test]
fn a_process_that_exits_during_a_request_still_writes_its_final_snapshot() {
    let dir = scratch("running_exit_race");
    for round in 0..5 {
        let mut p = Live::preloaded(
            &dir,
            &[("MEMSCOPE_EXPORT_PATH", &format!("{}/fin{round}.json", dir.display()))],
        );
        p.send("hold 10000 48");
        let pid = p.pid;
        let req = command(&dir)
            .args(["snapshot", &pid.to_string(), "-o", &format!("race{round}.json")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10 * round));
        let out = p.quit();
        assert_eq!(out.status.code(), Some(0));
        let o = req.wait_with_output().unwrap();
        let fin = memscope_format::read_snapshot_file(&dir.join(format!("fin{round}.json"))).unwrap();
        assert_eq!(fin.process.end, EndKind::Exit);
        assert_eq!(live_of_size(&fin, 48).len(), 10000);
        match o.status.code() {
            Some(0) => {
                let s = memscope_format::read_snapshot_file(&dir.join(format!("race{round}.json"))).unwrap();
                assert_running(&s, pid);
                assert_eq!(live_of_size(&s, 48).len(), 10000);
            }
            _ => {
                let err = assert_one_line_error(&o, "ended");
                assert!(err.contains("ended before") || err.contains("not traced"), "{err}");
            }
        }
        let strays: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(strays.is_empty(), "half-written files: {strays:?}");
    }
}

/// Periodic snapshot files beside `stem` (`<stem>.at-<ms>.json`), in name order.
fn periodic(dir: &Path, stem: &str) -> Vec<(String, Snapshot)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{stem}.at-")) && n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let s = memscope_format::read_snapshot_file(&dir.join(&n)).unwrap();
            (n, s)
        })
        .collect()
}

/// Every periodic snapshot is a running one, in time order, and exact
/// against the final snapshot for the blocks they share.
fn check_periodic(snaps: &[(String, Snapshot)], fin: &Snapshot, size: u64, held: usize) {
    assert_eq!(live_of_size(fin, size).len(), held);
    for w in snaps.windows(2) {
        assert!(
            w[0].1.process.end_unix_ns < w[1].1.process.end_unix_ns,
            "{} / {}",
            w[0].0,
            w[1].0
        );
    }
    let mut before = 0;
    for (name, s) in snaps {
        assert_running(s, fin.process.pid);
        let blocks = live_of_size(s, size);
        // The program only ever adds these: each snapshot holds at least
        // as many as the one before, and no more than the final.
        assert!(
            blocks.len() >= before && blocks.len() <= held,
            "{name}: {}",
            blocks.len()
        );
        before = blocks.len();
        all_in(&blocks, fin, name);
    }
}

#[test]
fn run_every_writes_running_snapshots_in_time_order() {
    let dir = scratch("running_every");
    let mut p = Live::under_run(&dir, &["--every", "200ms", "-o", "e.json"]);
    p.send("hold 3000 999");
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let out = p.quit();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fin = memscope_format::read_snapshot_file(&dir.join("e.json")).unwrap();
    let snaps = periodic(&dir, "e");
    assert!(snaps.len() >= 4, "{} periodic snapshots", snaps.len());
    check_periodic(&snaps, &fin, 999, 3000);
    // The ones taken after `hold` answered show all of it.
    assert_eq!(live_of_size(&snaps.last().unwrap().1, 999).len(), 3000);
}

#[test]
fn memscope_every_does_the_same_under_plain_ld_preload() {
    let dir = scratch("running_every_env");
    let mut p = Live::preloaded(&dir, &[("MEMSCOPE_EVERY", "150ms")]);
    p.send("hold 100 12345");
    std::thread::sleep(std::time::Duration::from_millis(800));
    p.quit();
    let fin = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    let snaps = periodic(&dir, "snap");
    assert!(snaps.len() >= 3, "{} periodic snapshots", snaps.len());
    check_periodic(&snaps, &fin, 12345, 100);
}

#[test]
fn run_every_rejects_a_bad_duration() {
    let dir = scratch("running_every_bad");
    let err = assert_one_line_error(&cli(&dir, &["run", "--every", "soon", "true"]), "bad duration");
    assert!(err.contains("soon"), "{err}");
}

#[test]
fn diff_of_two_moments_ranks_sites_by_growth_and_reads_say_live_now() {
    let dir = scratch("running_growth");
    let mut p = Live::preloaded(&dir, &[]);
    p.send("hold 1000 100");
    let (first, _) = p.take(&dir, Some(&dir.join("t1.json")));
    p.send("grow 500 4000");
    p.send("hold 10 100");
    let (second, _) = p.take(&dir, Some(&dir.join("t2.json")));
    p.quit();
    let arg = std::ffi::OsStr::new;
    let o = cli(
        &dir,
        &[
            arg("diff"),
            first.as_os_str(),
            second.as_os_str(),
            arg("--format"),
            arg("json"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sites_ranked_by"], "live_bytes_growth");
    let growth = |i: usize| {
        let s = &v["sites"][i];
        let live = |k: &str| s[k]["live_at_exit_bytes"].as_i64().unwrap_or(0);
        (s["site"].as_str().unwrap().to_string(), live("new") - live("base"))
    };
    let (site, grew) = growth(0);
    assert!(site.starts_with("grow_blocks"), "{site}");
    assert_eq!(grew, 2_000_000);
    let (site, grew) = growth(1);
    assert!(site.starts_with("hold_blocks"), "{site}");
    assert_eq!(grew, 1_000);
    assert_eq!(v["totals"]["live_at_exit"]["change"], 2_001_000);

    let text = stdout(&cli(&dir, &[arg("diff"), first.as_os_str(), second.as_os_str()]));
    assert!(text.contains("sites by growth of live bytes"), "{text}");
    assert!(
        text.contains(&format!("two moments of pid {}", p_pid(&second))),
        "{text}"
    );
    assert!(text.contains("live now"), "{text}");
    let summary = stdout(&cli(&dir, &[arg("summary"), second.as_os_str()]));
    assert!(summary.contains("live now:"), "{summary}");
    assert!(summary.contains("top sites by bytes live now"), "{summary}");
    assert!(!summary.contains("leak"), "{summary}");
    let html = dir.join("t2.html");
    let o = cli(&dir, &[arg("analyze"), second.as_os_str(), html.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<h3>Live now</h3>") && !page.contains("Live at exit"));
}

fn p_pid(snapshot: &Path) -> u32 {
    memscope_format::read_snapshot_file(snapshot).unwrap().process.pid
}
