//! `scripts/ci-memory-check.sh`, the CI memory-regression example: it
//! passes against its own baseline and fails the job when memory grows.

use memscope_tests::cli::*;
use memscope_tests::*;
use std::process::Output;

fn gate(dir: &std::path::Path, opts: &[&str], n: &str, leak: &str) -> Output {
    std::process::Command::new(root().join("scripts/ci-memory-check.sh"))
        .current_dir(dir)
        .env("MEMSCOPE_CLI", cli_path())
        .env_remove("GITHUB_STEP_SUMMARY")
        .args(opts)
        .arg("--")
        .arg(prog())
        .args(["alloc", n, "64", leak, "0"])
        .output()
        .unwrap()
}

#[test]
fn the_gate_passes_on_the_baseline_and_fails_on_growth() {
    let dir = scratch("cli_ci_script");
    let out = gate(&dir, &["--update-baseline"], "1000", "10");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let base = memscope_format::read_snapshot_file(&dir.join("memscope-baseline.json")).unwrap();
    assert_eq!(base.summary.total_allocations, 1001);

    let out = gate(&dir, &["--max-peak", "1MiB"], "1000", "10");
    assert_eq!(
        out.status.code(),
        Some(0),
        "same program, same memory: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(dir.join("memscope-ci/snapshot.html").is_file());
    assert!(std::fs::read_to_string(dir.join("memscope-ci/diff.md"))
        .unwrap()
        .contains("within the limits"));

    // 5 % more peak is within the default 10 %; one more leaked block is not.
    let out = gate(&dir, &[], "1050", "11");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let md = std::fs::read_to_string(dir.join("memscope-ci/diff.md")).unwrap();
    assert!(md.contains("bytes live at exit grew by 64 B"), "{md}");
    assert!(stderr(&out).contains("FAILED"));

    let out = gate(&dir, &["--max-leak-growth", "64"], "1050", "11");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = gate(&dir, &["--max-leak-growth", "1KiB"], "1200", "11");
    assert_eq!(out.status.code(), Some(1), "20 % more peak: {}", stdout(&out));
    let out = gate(&dir, &["--max-peak", "10KiB"], "1000", "10");
    assert_eq!(out.status.code(), Some(1), "absolute limit: {}", stdout(&out));

    let failing = std::process::Command::new(root().join("scripts/ci-memory-check.sh"))
        .current_dir(&dir)
        .env("MEMSCOPE_CLI", cli_path())
        .args(["--", "false"])
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(3), "a failing command fails the job");
}
