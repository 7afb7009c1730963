//! `export --to dhat` stays exact when the snapshot lists fewer records than
//! the program made blocks (`MEMSCOPE_MAX_RECORDS`, default 256): a call
//! site's total lifetime and its block counts at its own and at the global
//! peak come from aggregates the collector keeps, not from the records.

use memscope_tests::cli::*;
use memscope_tests::*;
use std::path::Path;

/// `alloc 1000 48 7 0`: an array of 1,000 pointers, then 1,000 blocks of 48
/// bytes all live at once (the peak), 7 of them never freed.
const ARGS: [&str; 5] = ["alloc", "1000", "48", "7", "0"];

fn export(dir: &Path, snapshot: &Path, name: &str) -> serde_json::Value {
    let out_path = dir.join(name);
    let out = cli(
        dir,
        &[
            "export",
            snapshot.to_str().unwrap(),
            "--to",
            "dhat",
            out_path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("estimate"),
        "an exact export says nothing about estimates: {}",
        stderr(&out)
    );
    serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap()
}

/// (tbk, tb, mbk, mb, gbk, gb, ebk, eb) of each program point, sorted.
fn points(v: &serde_json::Value) -> Vec<[u64; 8]> {
    let mut p: Vec<[u64; 8]> = v["pps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pp| ["tbk", "tb", "mbk", "mb", "gbk", "gb", "ebk", "eb"].map(|k| pp[k].as_u64().unwrap()))
        .collect();
    p.sort();
    p
}

#[test]
fn dhat_export_is_exact_beyond_the_record_cap() {
    let dir = scratch("dhat_export_cap");
    let (path, snap, _) = run_prog(&dir, "capped", &ARGS);
    assert_eq!(snap.allocations.len(), 256, "the default cap lists 256 records");
    assert_eq!(snap.summary.records_omitted, 1001 - 256);
    let v = export(&dir, &path, "capped.dhat.json");
    // By the program's design: the array is one block, alone at its peak;
    // the 48-byte site peaks with all 1,000 blocks live, which is also the
    // process's peak (the array is live then too).
    assert_eq!(
        points(&v),
        [
            [1, 8000, 1, 8000, 1, 8000, 0, 0],
            [1000, 48_000, 1000, 48_000, 1000, 48_000, 7, 7 * 48]
        ]
    );
    if dhat::available() {
        let theirs = dhat::run(&prog(), &ARGS, &dir);
        assert_eq!(
            dhat::read(&dir.join("capped.dhat.json")),
            theirs,
            "totals: memscope's export vs valgrind's DHAT"
        );
        assert_eq!(
            dhat::points(&dir.join("capped.dhat.json")),
            dhat::points(&dir.join("dhat.json")),
            "program points: memscope's export vs valgrind's DHAT"
        );
    }
}

/// The total lifetime the export takes from the aggregates equals the sum
/// of the records' lifetimes when every block is listed (each record's
/// lifetime is a difference of two timestamps rounded to the nanosecond,
/// so the two may differ by up to 1 ns a block).
#[test]
fn dhat_total_lifetime_is_the_sum_of_the_records() {
    let dir = scratch("dhat_export_total_lifetime");
    let path = dir.join("all.json");
    let out = command(&dir)
        .env("MEMSCOPE_MAX_RECORDS", "100000")
        .args(["run", "-o", path.to_str().unwrap()])
        .arg(prog())
        .args(ARGS)
        .output()
        .expect("run memscope-cli");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let snap = memscope_format::read_snapshot_file(&path).unwrap();
    assert_eq!(snap.summary.records_omitted, 0);
    let v = export(&dir, &path, "all.dhat.json");
    let mut checked = 0;
    for c in &snap.callsites {
        let records: Vec<_> = snap.allocations.iter().filter(|a| a.callsite == Some(c.id)).collect();
        if records.is_empty() {
            continue;
        }
        let sum: u64 = records.iter().map(|a| a.lifetime_ns).sum();
        let total = c.lifetime_ns.total.expect("a new snapshot carries the total lifetime");
        assert!(
            total.abs_diff(sum) <= records.len() as u64 + 1,
            "site {}: aggregate {total} ns vs records {sum} ns over {} blocks",
            c.id,
            records.len()
        );
        let pp = v["pps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pp| pp["tbk"].as_u64() == Some(c.allocations + c.reallocs) && pp["tb"].as_u64() == Some(c.bytes))
            .expect("the site's program point");
        assert_eq!(pp["tl"].as_u64(), Some(total));
        checked += 1;
    }
    assert!(checked >= 2, "both of the program's sites were checked");
}
