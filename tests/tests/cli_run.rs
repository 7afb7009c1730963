//! `memscope-cli run` on real programs: counts, exit codes, every process
//! of a run, the files it writes and what it prints.

use memscope_format::EndKind;
use memscope_tests::cli::*;
use memscope_tests::*;
use std::io::Write;
use std::process::Stdio;

#[test]
fn c_program_counts_exit_code_and_summary() {
    let dir = scratch("cli_run_c");
    let (_, s, out) = run_prog(&dir, "snap", &["alloc", "1000", "64", "10", "7"]);
    assert_eq!(out.status.code(), Some(7), "run exits with the command's code");
    assert!(out.stdout.is_empty(), "the program's stdout is untouched");
    check_invariants(&s);
    let m = &s.summary;
    assert_eq!(m.total_allocations, 1001, "1000 blocks and the pointer array");
    assert_eq!(m.live_at_exit_allocations, 10);
    assert_eq!(m.live_at_exit_bytes, 640);
    assert_eq!(m.peak_live_bytes, 1000 * 64 + 1000 * 8);
    assert_eq!(s.process.exit_code, Some(7));
    let err = stderr(&out);
    assert!(err.lines().all(|l| l.starts_with("memscope: ")), "{err}");
    assert!(err.contains("exited with code 7"), "{err}");
    assert!(err.contains("1,001 allocations"), "{err}");
    assert!(err.contains("live at exit: 640 B in 10 blocks"), "{err}");
    assert!(
        err.contains(&format!("wrote {}", dir.join("snap.json").display())),
        "{err}"
    );
}

#[test]
fn default_path_is_memscope_exe_pid_in_the_working_directory() {
    let dir = scratch("cli_run_default_path");
    let out = command(&dir)
        .arg("run")
        .arg(prog())
        .args(["alloc", "3", "8", "0", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let files = json_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let s = memscope_format::read_snapshot_file(&files[0]).unwrap();
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert_eq!(name, format!("memscope-cli_prog-{}.json", s.process.pid));
    assert_eq!(s.summary.total_allocations, 4);
}

#[test]
fn rust_program_output_and_status_are_unchanged() {
    let dir = scratch("cli_run_rust");
    let prog = rust_program("rust_alloc");
    let plain = untraced(&prog, &[]);
    let out = command(&dir).args(["run", "-o", "r.json"]).arg(&prog).output().unwrap();
    assert_eq!(out.stdout, plain.stdout);
    assert_eq!(out.status.code(), plain.status.code());
    let s = memscope_format::read_snapshot_file(&dir.join("r.json")).unwrap();
    check_invariants(&s);
    // The leaked 5555 bytes and std's own blocks live at the end: what
    // valgrind's DHAT sees live at t-end.
    assert!(s.allocations.iter().any(|a| a.is_leaked && a.size == 5555));
    if dhat::available() {
        let d = dhat::run(&prog, &[], &dir);
        assert_eq!(
            (s.summary.live_at_exit_allocations, s.summary.live_at_exit_bytes),
            (d.end_blocks, d.end_bytes)
        );
    }
}

#[test]
fn shell_script_with_two_children_leads_with_the_biggest() {
    let dir = scratch("cli_run_script");
    let script = root().join("tests/programs/cli_two_children.sh");
    let out = command(&dir)
        .args(["run", "-o", "s.json"])
        .arg(&script)
        .arg(prog())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "the script passes on its child's code");
    let snaps: Vec<_> = json_files(&dir)
        .iter()
        .map(|p| memscope_format::read_snapshot_file(p).unwrap())
        .collect();
    for s in &snaps {
        check_invariants(s);
    }
    let progs: Vec<_> = snaps.iter().filter(|s| s.process.exe.ends_with("/cli_prog")).collect();
    let mut counts: Vec<u64> = progs.iter().map(|s| s.summary.total_allocations).collect();
    counts.sort();
    assert_eq!(counts, [101, 301], "both children traced exactly");
    let root = memscope_format::read_snapshot_file(&dir.join("s.json")).unwrap();
    assert!(root.process.exe.ends_with("sh") || root.process.exe.ends_with("dash"));
    // A fork of the shell that exec'd cli_prog wrote an "exec" snapshot
    // (dash vforks for the foreground one: that image writes none).
    assert!(snaps.iter().any(|s| s.process.end == EndKind::Exec));
    let err = stderr(&out);
    let biggest = progs.iter().max_by_key(|s| s.summary.total_allocated_bytes).unwrap();
    assert!(
        err.contains(&format!("(pid {}) allocated most", biggest.process.pid)),
        "{err}"
    );
    assert!(err.contains(&format!("{} process images traced", snaps.len())), "{err}");
}

#[test]
fn shell_pipeline_keeps_stdin_and_stdout() {
    let dir = scratch("cli_run_pipeline");
    let mut child = command(&dir)
        .args(["run", "-o", "p.json", "sh", "-c", "tr a-z A-Z | sort"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pear\napple\nfig\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "APPLE\nFIG\nPEAR\n");
    let snaps: Vec<_> = json_files(&dir)
        .iter()
        .map(|p| memscope_format::read_snapshot_file(p).unwrap())
        .collect();
    for exe in ["/tr", "/sort"] {
        let s: Vec<_> = snaps.iter().filter(|s| s.process.exe.ends_with(exe)).collect();
        assert_eq!(
            s.len(),
            1,
            "{exe}: {:?}",
            snaps.iter().map(|s| &s.process.exe).collect::<Vec<_>>()
        );
        assert_eq!(s[0].process.exit_code, Some(0));
        assert!(s[0].summary.total_allocations > 0);
    }
}

#[test]
fn exit_codes_pass_through() {
    let dir = scratch("cli_run_exit_codes");
    for (script, code) in [
        ("exit 0", 0),
        ("exit 42", 42),
        ("exit 255", 255),
        ("kill -TERM $$", 143),
    ] {
        let out = cli(&dir, &["run", "-o", "e.json", "sh", "-c", script]);
        assert_eq!(out.status.code(), Some(code), "{script}: {}", stderr(&out));
    }
}

#[test]
fn sigkill_says_nothing_could_be_written_and_does_not_hang() {
    let dir = scratch("cli_run_sigkill");
    let t = std::time::Instant::now();
    let out = command(&dir)
        .args(["run", "-o", "k.json"])
        .arg(prog())
        .arg("kill9")
        .output()
        .unwrap();
    assert!(t.elapsed().as_secs() < 20);
    assert_eq!(out.status.code(), Some(128 + 9));
    let err = stderr(&out);
    assert!(
        err.contains("killed by SIGKILL") && err.contains("cannot write its snapshot"),
        "{err}"
    );
    assert!(json_files(&dir).is_empty());
}

#[test]
fn segfault_is_reported_not_masked() {
    let dir = scratch("cli_run_segv");
    let out = cli(&dir, &["run", "-o", "v.json", "sh", "-c", "kill -SEGV $$"]);
    assert_eq!(out.status.code(), Some(128 + 11));
    let s = memscope_format::read_snapshot_file(&dir.join("v.json")).unwrap();
    assert_eq!(s.process.signal, Some(11));
    assert!(stderr(&out).contains("killed by SIGSEGV"), "{}", stderr(&out));
}

#[test]
fn html_report_covers_every_process() {
    let dir = scratch("cli_run_html");
    let script = root().join("tests/programs/cli_two_children.sh");
    let out = command(&dir)
        .args(["run", "--export", "html", "-o", "h.json"])
        .arg(&script)
        .arg(prog())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(json_files(&dir).is_empty(), "--export html keeps no JSON");
    let html = std::fs::read_to_string(dir.join("h.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // One section per process image (the report's view, parsed as HTML).
    let doc = scraper::Html::parse_document(&html);
    let n = doc
        .select(&scraper::Selector::parse("section.process").unwrap())
        .count();
    // The shell, its fork that exec'd the background child, both children
    // (dash vforks for the foreground one: that image writes none).
    assert_eq!(n, 4, "the shell, its fork and both children");
    assert!(
        stderr(&out).contains(&format!("report over {n} processes")),
        "{}",
        stderr(&out)
    );
    assert!(
        html.contains(&prog().display().to_string()),
        "the children are in the report"
    );

    let dir = scratch("cli_run_both");
    let out = cli(&dir, &["run", "--export", "both", "-o", "b.json", "true"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(dir.join("b.json").is_file() && dir.join("b.html").is_file());
}

#[test]
fn options_after_the_command_belong_to_it() {
    let dir = scratch("cli_run_trailing");
    let out = cli(
        &dir,
        &[
            "run",
            "-o",
            "t.json",
            "sh",
            "-c",
            "echo \"$@\"",
            "sh",
            "--export",
            "-o",
            "x",
        ],
    );
    assert_eq!(stdout(&out), "--export -o x\n");
    assert!(dir.join("t.json").is_file() && !dir.join("x").exists());
    let out = cli(&dir, &["run", "--backtrace", "8", "-o", "bt.json", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    let s = memscope_format::read_snapshot_file(&dir.join("bt.json")).unwrap();
    assert_eq!(s.tool.backtrace_depth, 8);
}

#[test]
fn an_existing_ld_preload_is_kept() {
    let dir = scratch("cli_run_ld_preload");
    let other = c_library("plugin");
    let out = command(&dir)
        .env("LD_PRELOAD", &other)
        .args(["run", "-o", "l.json", "sh", "-c", "echo \"$LD_PRELOAD\""])
        .output()
        .unwrap();
    let lib = std::fs::canonicalize(lib_path()).unwrap();
    assert_eq!(stdout(&out), format!("{}:{}\n", lib.display(), other.display()));
}

#[test]
fn waits_for_processes_the_command_left_running() {
    let dir = scratch("cli_run_orphans");
    let script = format!("{} alloc 50 16 0 0 & exit 3", prog().display());
    let script = format!("sleep 0.3; {script}");
    let out = cli(
        &dir,
        &["run", "-o", "o.json", "sh", "-c", &format!("({script}) & exit 4")],
    );
    assert_eq!(out.status.code(), Some(4));
    let progs: Vec<_> = json_files(&dir)
        .iter()
        .map(|p| memscope_format::read_snapshot_file(p).unwrap())
        .filter(|s| s.process.exe.ends_with("/cli_prog"))
        .collect();
    assert_eq!(progs.len(), 1, "the orphan's snapshot was waited for");
    assert_eq!(progs[0].summary.total_allocations, 51);
    let err = stderr(&out);
    assert!(err.contains("waiting for the processes it left running"), "{err}");
    let n = json_files(&dir).len();
    assert!(err.contains(&format!("; {n} process images traced")), "{err}");
    assert!(err.contains(&format!("(pid {})", progs[0].process.pid)), "{err}");
}
