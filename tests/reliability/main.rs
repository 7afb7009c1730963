//! Reliability: programs that rewrite their environment before `exec`, a
//! Rust thread pool whose blocks die on another thread than the one they
//! were born on, run twice. See README.md beside this file for the whole
//! scenario table (most scenarios live in the suite of their subject).

use memscope_format::{EndKind, Snapshot};
use memscope_tests::*;
use std::path::Path;

fn true_bin() -> &'static str {
    ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a `true` binary")
}

fn exec_after(mode: &str) -> Vec<Snapshot> {
    let prog = c_program("environ", &[]);
    let run = traced(&format!("rel_environ_{mode}"), &prog, &[mode, true_bin()], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let snaps: Vec<Snapshot> = run.snapshots.iter().map(|(_, s)| s.clone()).collect();
    for s in &snaps {
        check_invariants(s);
    }
    snaps
}

#[test]
fn clearenv_then_exec_still_traces_the_new_image() {
    let snaps = exec_after("clearenv");
    assert_eq!(snaps.len(), 2, "the program before exec and `true` after it");
    let before = snaps
        .iter()
        .find(|s| s.process.end == EndKind::Exec)
        .expect("the pre-exec image");
    assert_eq!(before.allocations.iter().filter(|a| a.size == 32).count(), 10);
    let after = snaps
        .iter()
        .find(|s| s.process.end == EndKind::Exit)
        .expect("the exec'd image");
    assert_eq!(after.process.exe, true_bin());
    assert_eq!(after.process.pid, before.process.pid);
}

#[test]
fn an_empty_environment_at_exec_still_traces_the_new_image() {
    let snaps = exec_after("empty");
    assert_eq!(snaps.len(), 2, "the program before exec and `true` after it");
    assert!(snaps
        .iter()
        .any(|s| s.process.end == EndKind::Exit && s.process.exe == true_bin()));
}

/// Allocations and bytes of the pool's `vec![len as u64; len]` line, by
/// call site (every block born on a worker, freed on the main thread).
fn pool_vecs(s: &Snapshot) -> (u64, u64, u64) {
    let src = std::fs::read_to_string(root().join("tests/programs/rust_pool.rs")).unwrap();
    let line = src.lines().position(|l| l.contains("vec![len as u64; len]")).unwrap() as u32 + 1;
    let sites = s.callsites.iter().filter(|c| {
        s.frames_of(c)
            .any(|f| f.line == Some(line) && f.file.as_deref().is_some_and(|p| p.ends_with("rust_pool.rs")))
    });
    sites.fold((0, 0, 0), |(n, b, live), c| {
        (n + c.allocations, b + c.bytes, live + c.live_at_exit_bytes)
    })
}

fn pool(test: &str, workers: usize, jobs: usize) {
    let prog = rust_program("rust_pool");
    let args = [workers.to_string(), jobs.to_string()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plain = untraced(&prog, &args);
    let expect_bytes: u64 = (0..jobs as u64).map(|j| (1 + j % 64) * 8).sum();
    let mut seen = Vec::new();
    for round in 0..2 {
        let run = traced(&format!("{test}_{round}"), &prog, &args, &[]);
        assert_eq!(run.output.stdout, plain.stdout, "output unchanged");
        assert_eq!(run.output.status.code(), plain.status.code());
        let s = run.only();
        check_invariants(s);
        assert_eq!(s.threads.len(), workers + 1, "{:?}", s.threads);
        // Every free found its block: blocks born on a worker whose ring the
        // collector had not seen yet once came after their frees (fixed in
        // the merge; this is its regression test).
        assert_eq!(s.summary.unmatched_frees, 0);
        let vecs = pool_vecs(s);
        assert_eq!(vecs, (jobs as u64, expect_bytes, 0), "every Vec, by its call site");
        seen.push(vecs);
    }
    assert_eq!(seen[0], seen[1], "repeat runs count the same");
}

#[test]
fn a_rust_thread_pool_counts_exactly_twice() {
    pool("rel_pool", 4, 5_000);
}

/// The long variant, 8 workers and 400 000 jobs: runs in every `cargo test`.
#[test]
fn a_rust_thread_pool_long() {
    pool("rel_pool_long", 8, 400_000);
}

/// SIGTERM at 24 moments of a single-threaded malloc churn: it dies of
/// SIGTERM at once and writes its snapshot every time. A signal that lands
/// while this thread merges its own ring (holding the engine's lock) is
/// handled when that merge ends; it used to make the handler wait 10 s for
/// a collector blocked on that lock, with no snapshot (13 of 60 tries).
#[test]
fn sigterm_during_a_single_threaded_churn_ends_it_at_once_with_a_snapshot() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let prog = c_program("churn_forever", &[]);
    let dir = scratch("rel_sigterm_churn");
    for i in 0..24u64 {
        let snap = dir.join(format!("s{i}.json"));
        let mut child = std::process::Command::new(&prog)
            .env("LD_PRELOAD", lib_path())
            .env("MEMSCOPE_EXPORT_PATH", &snap)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 9];
        child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
        std::thread::sleep(Duration::from_millis(20 + i * 7));
        // SAFETY: signals the child this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let sent = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if sent.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                panic!("try {i}: still alive 5 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM), "try {i}");
        let s = memscope_format::read_snapshot_file(&snap).unwrap_or_else(|e| panic!("try {i}: {e}"));
        assert_eq!(s.process.end, EndKind::Signal, "try {i}");
        assert_eq!(s.process.signal, Some(libc::SIGTERM), "try {i}");
        assert!(s.summary.total_allocations > 0, "try {i}");
        check_invariants(&s);
    }
}
