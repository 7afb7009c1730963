//! Where snapshots go and how they are written (SPEC §2), and what the
//! library says on stderr.

use memscope_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn behaviours() -> std::path::PathBuf {
    c_program("behaviours", &[])
}

/// Runs with only LD_PRELOAD set (plus `env`), in `dir`.
fn raw_run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(behaviours());
    c.args(args).current_dir(dir).env("LD_PRELOAD", lib_path());
    for k in [
        "MEMSCOPE_EXPORT_PATH",
        "MEMSCOPE_MANIFEST",
        "MEMSCOPE_ROOT_PID",
        "MEMSCOPE_EXEC_SEQ",
        "MEMSCOPE_LOG",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn default_path_is_in_the_startup_directory_even_after_chdir() {
    let dir = scratch("output_default_path");
    let elsewhere = scratch("output_default_path_elsewhere");
    let out = raw_run(&dir, &["chdir", elsewhere.to_str().unwrap()], &[]);
    assert!(out.status.success());
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("memscope-behaviours-") && files[0].ends_with(".json"),
        "{files:?}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    let s = memscope_format::read_snapshot_file(&dir.join(&files[0])).unwrap();
    assert_eq!(files[0], format!("memscope-behaviours-{}.json", s.process.pid));
    assert_eq!(s.process.cwd, dir.to_str().unwrap());
}

#[test]
fn percent_p_and_percent_e_expand() {
    let dir = scratch("output_percent");
    let out = raw_run(&dir, &["many-live", "3"], &[("MEMSCOPE_EXPORT_PATH", "out-%e-%p.json")]);
    assert!(out.status.success());
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let s = memscope_format::read_snapshot_file(&dir.join(&name)).unwrap();
    assert_eq!(name, format!("out-behaviours-{}.json", s.process.pid));
}

#[test]
fn snapshots_are_private_and_replace_a_planted_symlink() {
    let dir = scratch("output_symlink");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("snap.json")).unwrap();
    let out = raw_run(&dir, &["many-live", "3"], &[("MEMSCOPE_EXPORT_PATH", "snap.json")]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious",
        "the symlink was not followed"
    );
    let meta = std::fs::symlink_metadata(dir.join("snap.json")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn auto_export_off_writes_nothing() {
    let dir = scratch("output_auto_export_off");
    let out = raw_run(&dir, &["many-live", "3"], &[("MEMSCOPE_AUTO_EXPORT", "0")]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn an_unwritable_path_is_one_line_and_changes_nothing_else() {
    let dir = scratch("output_unwritable");
    let out = raw_run(
        &dir,
        &["many-live", "3"],
        &[("MEMSCOPE_EXPORT_PATH", "/nonexistent-dir/x/snap.json")],
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("/nonexistent-dir/x/snap.json") && err.contains("No such file"),
        "{err}"
    );
    let quiet = raw_run(
        &dir,
        &["many-live", "3"],
        &[
            ("MEMSCOPE_EXPORT_PATH", "/nonexistent-dir/x/snap.json"),
            ("MEMSCOPE_LOG", "off"),
        ],
    );
    assert!(quiet.stderr.is_empty());
}

#[test]
fn max_records_keeps_live_blocks_first() {
    let run = traced(
        "output_max_records",
        &behaviours(),
        &["many-live", "50"],
        &[("MEMSCOPE_MAX_RECORDS", "10")],
    );
    let s = run.only();
    check_invariants(s);
    assert_eq!(s.allocations.len(), 10);
    assert!(s.allocations.iter().all(|a| a.is_leaked && a.size == 24));
    assert_eq!(
        s.summary.records_omitted,
        s.summary.total_allocations + s.summary.reallocs - 10
    );
    assert_eq!(s.summary.live_at_exit_allocations, 50);
}

#[test]
fn two_hundred_thousand_live_records_are_all_written() {
    let run = traced(
        "output_200k",
        &behaviours(),
        &["many-live", "200000"],
        &[("MEMSCOPE_MAX_RECORDS", "300000")],
    );
    let s = run.only();
    check_invariants(s);
    assert_eq!(
        s.allocations.iter().filter(|a| a.is_leaked && a.size == 24).count(),
        200_000
    );
}

#[test]
fn lifetimes_are_measured_not_guessed() {
    let run = traced("output_lifetime", &behaviours(), &["sleep", "150"], &[]);
    let s = run.only();
    check_invariants(s);
    let b = s.allocations.iter().find(|a| a.size == 4242).expect("the block");
    assert!(!b.is_leaked);
    assert!(
        b.lifetime_ns >= 150_000_000 && b.lifetime_ns < 1_000_000_000,
        "{}",
        b.lifetime_ns
    );
    assert!(b.lifetime_ms >= 150);
    let wall = s.process.end_unix_ns - s.process.start_unix_ns;
    assert!(wall >= b.lifetime_ns);
}

#[test]
fn the_library_writes_html_when_asked() {
    let dir = scratch("output_html");
    let out = raw_run(
        &dir,
        &["many-live", "3"],
        &[
            ("MEMSCOPE_EXPORT_PATH", "snap.json"),
            ("MEMSCOPE_EXPORT_FORMAT", "both"),
        ],
    );
    assert!(out.status.success());
    let s = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    let html = std::fs::read_to_string(dir.join("snap.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains(&format!("\"pid\":{}", s.process.pid)),
        "the page carries the snapshot's data"
    );
    let only = scratch("output_html_only");
    let out = raw_run(
        &only,
        &["many-live", "3"],
        &[
            ("MEMSCOPE_EXPORT_PATH", "snap.json"),
            ("MEMSCOPE_EXPORT_FORMAT", "html"),
        ],
    );
    assert!(out.status.success());
    let names: Vec<String> = std::fs::read_dir(&only)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["snap.html".to_string()]);
}

#[test]
fn a_device_at_the_path_is_never_replaced() {
    let dir = scratch("output_dev_full");
    let out = raw_run(&dir, &["many-live", "3"], &[("MEMSCOPE_EXPORT_PATH", "/dev/full")]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/dev/full") && err.contains("not a regular file"), "{err}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device());
}

#[test]
fn a_directory_that_vanished_is_one_line() {
    let dir = scratch("output_vanished");
    let gone = dir.join("gone");
    std::fs::create_dir(&gone).unwrap();
    // The program removes the output directory before it exits.
    let out = raw_run(
        &dir,
        &["rmdir", gone.to_str().unwrap()],
        &[("MEMSCOPE_EXPORT_PATH", gone.join("snap.json").to_str().unwrap())],
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("snap.json"), "{err}");
}

#[test]
fn closed_stdio_at_start_still_writes_the_snapshot() {
    let dir = scratch("output_closed_stdio");
    let prog = c_program("behaviours", &[]);
    // `exec <&- >&- 2>&-`: the program starts with fds 0, 1 and 2 closed.
    let script = format!("exec {} many-live 5 <&- >&- 2>&-", prog.display());
    let st = Command::new("/bin/sh")
        .args(["-c", &script])
        .current_dir(&dir)
        .env("LD_PRELOAD", lib_path())
        .env("MEMSCOPE_EXPORT_PATH", dir.join("snap.json"))
        .env_remove("MEMSCOPE_MANIFEST")
        .env_remove("MEMSCOPE_ROOT_PID")
        .status()
        .unwrap();
    assert!(st.success());
    let snaps: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    // sh is the first image (PATH), the program after exec is `.<pid>-1`.
    let prog_snap = snaps
        .iter()
        .find(|p| p.to_string_lossy().contains("-1.json"))
        .expect("the program's snapshot");
    let s = memscope_format::read_snapshot_file(prog_snap).unwrap();
    assert_eq!(s.allocations.iter().filter(|a| a.is_leaked && a.size == 24).count(), 5);
}
