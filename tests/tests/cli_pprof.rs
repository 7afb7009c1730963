//! `export --to pprof` read back by the real `go tool pprof` (Debian's
//! `golang-go`; `.ci/run` installs it): every sample type's total equals
//! the snapshot's, per-sample values equal its call sites', names survive,
//! and a snapshot without call sites is still a profile pprof opens.

use memscope_format::Snapshot;
use memscope_tests::cli::*;
use memscope_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const TYPES: [&str; 4] = ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"];

/// `go tool pprof ARGS…`; a missing `go` fails with how to install it.
fn pprof(args: &[&str], profile: &Path) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(profile)
        // pprof keeps no state of its own outside the scratch directory.
        .env("HOME", profile.parent().unwrap())
        .env("PPROF_TMPDIR", profile.parent().unwrap())
        .output()
        .unwrap_or_else(|e| panic!("cannot run go ({e}): apt-get install golang-go (.ci/run installs it)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `Total samples = N` of `-top` for one sample type (units as plain numbers).
fn total(profile: &Path, sample_index: &str) -> u64 {
    let top = pprof(&["-top", "-unit=B", &format!("-sample_index={sample_index}")], profile);
    let line = top
        .lines()
        .find(|l| l.contains("Total samples = "))
        .unwrap_or_else(|| panic!("{top}"));
    let n = line
        .split("Total samples = ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('B');
    n.parse().unwrap_or_else(|_| panic!("{line}"))
}

/// The per-sample values `-raw` prints (`a b c d: locations`).
fn raw_samples(profile: &Path) -> Vec<[u64; 4]> {
    let raw = pprof(&["-raw"], profile);
    let header = "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes[dflt]";
    assert!(raw.contains(header), "{raw}");
    raw.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| l.contains(':') && !l.starts_with("Locations"))
        .map(|l| {
            let v: Vec<u64> = l
                .split(':')
                .next()
                .unwrap()
                .split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect();
            v.try_into().unwrap_or_else(|v| panic!("{v:?} in {l}"))
        })
        .collect()
}

fn export(dir: &Path, snap: &Path, name: &str) -> PathBuf {
    let out_path = dir.join(name);
    let args: [&std::ffi::OsStr; 5] = [
        "export".as_ref(),
        snap.as_ref(),
        "--to".as_ref(),
        "pprof".as_ref(),
        out_path.as_ref(),
    ];
    let out = cli(dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    out_path
}

/// The sums the profile must show: per type over the call sites.
fn site_sums(s: &Snapshot) -> [u64; 4] {
    s.callsites.iter().fold([0; 4], |t, c| {
        [
            t[0] + c.allocations + c.reallocs,
            t[1] + c.bytes,
            t[2] + c.live_at_exit_allocations,
            t[3] + c.live_at_exit_bytes,
        ]
    })
}

fn summary_totals(s: &Snapshot) -> [u64; 4] {
    let m = &s.summary;
    [
        m.total_allocations + m.reallocs,
        m.total_allocated_bytes,
        m.live_at_exit_allocations,
        m.live_at_exit_bytes,
    ]
}

#[test]
fn go_tool_pprof_reads_the_exact_counts_of_a_c_program() {
    let dir = scratch("cli_pprof_c");
    let (snap, s, out) = run_prog(&dir, "p", &["alloc", "1000", "64", "10", "7"]);
    assert_eq!(out.status.code(), Some(7));
    let profile = export(&dir, &snap, "p.pb.gz");
    // 1000 blocks of 64 B and the 8000-byte pointer array; 10 blocks leaked.
    let expect = [1001, 72_000, 10, 640];
    assert_eq!(summary_totals(&s), expect);
    for (ty, want) in TYPES.iter().zip(expect) {
        assert_eq!(total(&profile, ty), want, "{ty}");
    }
    let mut samples = raw_samples(&profile);
    samples.sort();
    let mut sites: Vec<[u64; 4]> = s
        .callsites
        .iter()
        .map(|c| {
            [
                c.allocations + c.reallocs,
                c.bytes,
                c.live_at_exit_allocations,
                c.live_at_exit_bytes,
            ]
        })
        .filter(|v| v.iter().any(|&x| x > 0))
        .collect();
    sites.sort();
    assert_eq!(samples, sites, "one sample per site, its numbers unchanged");
    // The allocating function is named, with its callers below it.
    let top = pprof(&["-top", "-unit=B", "-sample_index=alloc_space"], &profile);
    let first = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .nth(1)
        .unwrap();
    assert!(
        first.trim_start().starts_with("72000B") && first.ends_with(" main"),
        "{top}"
    );
    assert!(top.contains("__libc_start_main"), "{top}");
    assert!(top.contains("File: cli_prog"), "{top}");
}

#[test]
fn go_tool_pprof_totals_equal_a_real_sqlite3_run() {
    let dir = scratch("cli_pprof_sqlite");
    let sqlite = ["/usr/bin/sqlite3", "/bin/sqlite3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("sqlite3 is not installed: apt-get install sqlite3 (.ci/run installs it)"));
    let sql = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\
               WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) \
               INSERT INTO t SELECT x, 'v' || x FROM c; SELECT count(*), max(v) FROM t;";
    let out = cli(&dir, &["run", "-o", "sq.json", sqlite, ":memory:", sql]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "2000|v999\n");
    let snap = dir.join("sq.json");
    let s = memscope_format::read_snapshot_file(&snap).unwrap();
    let profile = export(&dir, &snap, "sq.pb.gz");
    assert!(s.callsites.len() > 20, "a real program has many sites");
    assert_eq!(
        site_sums(&s),
        summary_totals(&s),
        "a process without fork: sites cover the summary"
    );
    let samples = raw_samples(&profile);
    let raw_sums = samples
        .iter()
        .fold([0; 4], |t, v| [t[0] + v[0], t[1] + v[1], t[2] + v[2], t[3] + v[3]]);
    assert_eq!(raw_sums, site_sums(&s));
    for (i, ty) in TYPES.iter().enumerate() {
        assert_eq!(total(&profile, ty), summary_totals(&s)[i], "{ty}");
    }
    let top = pprof(&["-top", "-sample_index=alloc_space"], &profile);
    assert!(top.contains("File: sqlite3"), "{top}");
    // Samples start where the site's name does: pprof's heaviest functions
    // are sqlite's callers of its allocator, not the allocator, its
    // wrappers or unnamed helpers.
    let flat: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .take(5)
        .map(|l| l.split_whitespace().last().unwrap_or(""))
        .collect();
    assert_eq!(flat.len(), 5, "{top}");
    for f in &flat {
        assert!(
            !f.starts_with("0x") && !["malloc", "realloc", "sqlite3Malloc", "sqlite3Realloc"].contains(f),
            "{top}"
        );
    }
    assert!(flat.iter().filter(|f| f.starts_with("sqlite3")).count() >= 3, "{top}");
}

#[test]
fn a_snapshot_without_call_sites_is_still_a_profile() {
    let dir = scratch("cli_pprof_no_sites");
    // Backtraces off: one site with an empty stack.
    let path = dir.join("nb.json");
    let out = command(&dir)
        .args(["run", "--backtrace", "0", "-o"])
        .arg(&path)
        .arg(prog())
        .args(["alloc", "100", "32", "3", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let profile = export(&dir, &path, "nb.pb.gz");
    for (ty, want) in TYPES.iter().zip([101, 3200 + 800, 3, 96]) {
        assert_eq!(total(&profile, ty), want, "{ty}");
    }
    // No call sites at all: one sample carrying the summary.
    let bare = dir.join("bare.json");
    std::fs::write(
        &bare,
        r#"{"format":"memscope","format_version":2,"modules":[],"frames":[],
      "process":{"pid":42,"ppid":1,"exe":"/bin/prog","argv":["prog"],"start_unix_ns":1000,
                 "end_unix_ns":11000,"end":"exit","exit_code":0},
      "summary":{"total_allocations":7,"total_frees":5,"total_allocated_bytes":700,"total_freed_bytes":500,
                 "reallocs":1,"peak_live_bytes":300,"peak_live_allocations":3,"peak_unix_ns":5000,
                 "live_at_exit_allocations":2,"live_at_exit_bytes":200,"events_dropped":0,"records_omitted":0},
      "allocations":[],"callsites":[],"variables":[],"timeline":[]}"#,
    )
    .unwrap();
    let profile = export(&dir, &bare, "bare.pb.gz");
    for (ty, want) in TYPES.iter().zip([8, 700, 2, 200]) {
        assert_eq!(total(&profile, ty), want, "{ty}");
    }
}

#[test]
fn an_unwritable_profile_is_one_line() {
    let dir = scratch("cli_pprof_bad_output");
    let (snap, _, _) = run_prog(&dir, "p", &["alloc", "10", "8", "0", "0"]);
    let snap = snap.to_str().unwrap();
    for (target, why) in [
        ("/nonexistent-dir/p.pb.gz", "cannot write"),
        ("/dev/full", "No space left"),
    ] {
        let line = assert_one_line_error(&cli(&dir, &["export", snap, "--to", "pprof", target]), target);
        assert!(line.contains(why), "{line}");
    }
}
