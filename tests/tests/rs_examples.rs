//! memscope-rs's examples built as real programs: alone (the engine runs
//! in-process) and under `LD_PRELOAD=libmemscope.so`, where the crate only
//! names variables in the library's records (SPEC §1).

use memscope_format::{EndKind, Snapshot, Variable};
use memscope_tests::*;
use std::process::Command;

const MS: u64 = 1_000_000;

fn var<'a>(s: &'a Snapshot, name: &str) -> &'a Variable {
    s.variables
        .iter()
        .find(|v| v.var_name == name)
        .unwrap_or_else(|| panic!("no variable {name} in {:?}", s.variables))
}

/// Every variable's lifetime is a number, exact, and ends at its drop or at
/// the end of the process.
fn check_variables(s: &Snapshot) {
    assert!(!s.variables.is_empty());
    for v in &s.variables {
        assert!(v.timestamp_alloc >= s.process.start_unix_ns, "{v:?}");
        assert!(v.timestamp_dealloc <= s.process.end_unix_ns, "{v:?}");
        assert_eq!(v.lifetime_ns, v.timestamp_dealloc - v.timestamp_alloc, "{v:?}");
        assert_eq!(v.lifetime_ms, v.lifetime_ns / MS, "{v:?}");
        // Live at the end: leaked at exit, live now in a running snapshot
        // (SPEC §3: `"is_leaked": false`).
        let live = v.timestamp_dealloc == s.process.end_unix_ns;
        assert_eq!(v.is_leaked, live && !s.is_running(), "{v:?}");
    }
}

/// `lifetime_ms`/`lifetime_ns` are integers in the file itself (the seed's
/// bug was `null`).
fn check_raw_lifetimes(path: &std::path::Path) {
    let raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vars = raw["variables"].as_array().unwrap();
    assert!(!vars.is_empty());
    for v in vars {
        assert!(v["lifetime_ms"].is_u64() && v["lifetime_ns"].is_u64(), "{v}");
    }
}

#[test]
fn the_seeds_example_writes_its_own_file_with_an_exact_lifetime() {
    let dir = scratch("rs_seed");
    let out = Command::new(rs_example("seed"))
        .current_dir(&dir)
        .env_remove("LD_PRELOAD")
        .env_remove("MEMSCOPE_EXPORT_PATH")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let path = dir.join("my_memory_analysis.json");
    check_raw_lifetimes(&path);
    let s = memscope_format::read_snapshot_file(&path).unwrap();
    check_invariants(&s);
    check_variables(&s);
    assert_eq!(s.tool.mode, "in-process");
    assert_eq!((s.process.end, s.process.exit_code), (EndKind::Exit, Some(0)));
    assert_eq!(s.variables.len(), 1);
    let v = var(&s, "my_vec");
    assert_eq!(
        (v.type_name.as_str(), v.scope_name.as_str(), v.size),
        ("alloc::vec::Vec<i32>", "seed::main", 12)
    );
    assert!(!v.is_leaked && v.ptr != "0x0");
    assert_eq!(v.thread_id, s.process.pid as u64, "main thread");
    // The seed installs no allocator: no allocation is recorded.
    assert_eq!(s.summary.total_allocations, 0);
}

#[test]
fn threads_name_their_variables_on_their_own_threads() {
    let dir = scratch("rs_threads_export");
    let mid = dir.join("mid.json");
    let run = in_process("rs_threads", &rs_example("threads"), &["4", mid.to_str().unwrap()], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(run.stdout(), "total=10088\n");
    let s = run.only();
    check_invariants(s);
    check_variables(s);
    check_raw_lifetimes(&run.snapshots[0].0);
    assert_eq!(s.tool.mode, "in-process");
    let data: Vec<&Variable> = s.variables.iter().filter(|v| v.var_name == "data").collect();
    assert_eq!(data.len(), 4);
    let mut tids: Vec<u64> = data.iter().map(|v| v.thread_id).collect();
    tids.sort();
    tids.dedup();
    assert_eq!(tids.len(), 4, "one thread per worker");
    for v in &data {
        assert_eq!(
            (v.type_name.as_str(), v.scope_name.as_str()),
            ("alloc::vec::Vec<u8>", "threads::worker")
        );
        assert!(v.lifetime_ns >= 50 * MS && !v.is_leaked, "{v:?}");
        assert_ne!(v.thread_id, s.process.pid as u64);
        // Worker n (thread "worker-n") owns 1000 * (n + 1) bytes.
        let t = s
            .threads
            .iter()
            .find(|t| t.thread_id == v.thread_id)
            .expect("thread listed");
        let n: u64 = t.name.strip_prefix("worker-").expect("worker name").parse().unwrap();
        assert_eq!(v.size, 1000 * (n + 1), "{t:?}");
    }
    let shared = var(s, "greeting");
    assert_eq!(shared.type_name, "alloc::sync::Arc<alloc::string::String>");
    assert_eq!(
        (shared.scope_name.as_str(), shared.thread_id),
        ("threads::main", s.process.pid as u64)
    );
    // The shared Arc outlives every worker.
    assert!(data.iter().all(|v| v.timestamp_dealloc <= shared.timestamp_dealloc));
    // With the in-process allocator, each named block's record carries the name.
    let mut named: Vec<(&str, u64)> = s
        .allocations
        .iter()
        .filter_map(|a| Some((a.var_name.as_deref()?, a.size)))
        .collect();
    named.sort();
    let expected = [
        ("data", 1000),
        ("data", 2000),
        ("data", 3000),
        ("data", 4000),
        ("greeting", 40),
    ];
    assert!(expected.iter().all(|e| named.contains(e)), "{named:?}");
    // export() mid-run: the workers' variables are dead, the process runs on.
    let m = memscope_format::read_snapshot_file(&mid).unwrap();
    assert_eq!(m.process.end, EndKind::Running);
    check_variables(&m);
    assert!(m
        .variables
        .iter()
        .filter(|v| v.var_name == "data")
        .all(|v| !v.is_leaked));
    let greeting = var(&m, "greeting");
    assert!(
        greeting.timestamp_dealloc == m.process.end_unix_ns && !greeting.is_leaked,
        "still alive at the export: live now, not leaked"
    );
}

#[test]
fn a_panic_out_of_main_ends_the_snapshot_as_panic() {
    let run = in_process("rs_panics", &rs_example("panics"), &[], &[("RUST_BACKTRACE", "0")]);
    assert_eq!(run.output.status.code(), Some(101));
    assert!(
        run.stderr().contains("not a number"),
        "the previous hook ran: {}",
        run.stderr()
    );
    let s = run.only();
    check_invariants(s);
    check_variables(s);
    assert_eq!((s.process.end, s.process.exit_code), (EndKind::Panic, Some(101)));
    let v = var(s, "settings");
    assert_eq!((v.type_name.as_str(), v.size), ("alloc::string::String", 11));
    assert!(!v.is_leaked, "dropped while unwinding");
}

#[test]
fn leaked_variables_last_until_the_end() {
    let run = in_process("rs_leaks", &rs_example("leaks"), &[], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let s = run.only();
    check_invariants(s);
    check_variables(s);
    let scratch = var(s, "scratch");
    assert!(!scratch.is_leaked && scratch.lifetime_ns >= 120 * MS && scratch.size == 4096);
    let kept = var(s, "message");
    assert!(kept.is_leaked);
    assert_eq!(kept.timestamp_dealloc, s.process.end_unix_ns);
    assert_eq!(kept.size, "this string is never freed".len() as u64);
    let frame = var(s, "Frame { pixels: vec![0; 64] }");
    assert_eq!((frame.type_name.as_str(), frame.size), ("leaks::Frame", 256));
    let answer = var(s, "42u64");
    assert_eq!(
        (answer.type_name.as_str(), answer.size, answer.ptr.as_str()),
        ("u64", 0, "0x0")
    );
    // The forgotten String's block and the Box::leak'd slice are live at the end.
    let leaked: Vec<(Option<&str>, u64)> = s
        .allocations
        .iter()
        .filter(|a| a.is_leaked)
        .map(|a| (a.var_name.as_deref(), a.size))
        .collect();
    assert!(leaked.contains(&(Some("message"), 26)), "{leaked:?}");
    assert!(leaked.contains(&(None, 256)), "{leaked:?}");
    let freed = s
        .allocations
        .iter()
        .find(|a| a.var_name.as_deref() == Some("scratch"))
        .unwrap();
    assert!(!freed.is_leaked && freed.lifetime_ns >= 120 * MS);
    // In-process call sites: the Box::leak'd table's stack starts in std's
    // allocation code (the crate's allocator frames are left out) and
    // reaches `main` (inlined: DWARF names it bare) at the line that
    // allocates it.
    let leak_line = line_of("memscope-rs/examples/leaks.rs", "Box::leak(vec![7u64; 32]");
    let site = s
        .callsites
        .iter()
        .find(|c| c.live_at_exit_bytes == 256)
        .expect("the leaked table's site");
    let frames = stack(s, site);
    let top = frames.first().expect("frames");
    let top_file = top.file.as_deref().unwrap_or("");
    assert!(
        !top_file.contains("memscope-rs/src") && !top_file.contains("engine/src"),
        "{site:#?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| matches!(f.function.as_deref(), Some("main" | "leaks::main"))
                && f.file.as_deref().is_some_and(|p| p.ends_with("leaks.rs"))
                && f.line == Some(leak_line)),
        "{site:#?}"
    );
}

/// The 1-based line of the first line of `file` containing `needle`.
fn line_of(file: &str, needle: &str) -> u32 {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    text.lines().position(|l| l.contains(needle)).expect("needle") as u32 + 1
}

/// The counts that must not change when memscope-rs names variables.
fn counts(s: &Snapshot) -> [u64; 7] {
    let m = &s.summary;
    [
        m.total_allocations,
        m.total_frees,
        m.reallocs,
        m.total_allocated_bytes,
        m.total_freed_bytes,
        m.live_at_exit_allocations,
        m.live_at_exit_bytes,
    ]
}

#[test]
fn under_preload_one_snapshot_with_names_and_the_same_counts() {
    for (name, args) in [
        ("seed", vec![]),
        ("threads", vec!["3"]),
        ("panics", vec![]),
        ("leaks", vec![]),
    ] {
        let program = rs_example(name);
        let env = [("RUST_BACKTRACE", "0")];
        let named = traced(&format!("rs_preload_{name}"), &program, &args, &env);
        let plain = traced(
            &format!("rs_preload_{name}_off"),
            &program,
            &args,
            &[env[0], ("MEMSCOPE_RS", "off")],
        );
        assert_eq!(named.output.status.code(), plain.output.status.code(), "{name}");
        assert_eq!(named.stdout(), plain.stdout(), "{name}");
        let (s, p) = (named.only(), plain.only());
        check_invariants(s);
        check_variables(s);
        assert_eq!((s.tool.mode.as_str(), p.tool.mode.as_str()), ("preload", "preload"));
        assert!(p.variables.is_empty());
        // Nothing counted twice, nothing added: the same heap as without memscope-rs.
        assert_eq!(counts(s), counts(p), "{name}");
        // The library's records of the variables' blocks carry their names.
        for v in s.variables.iter().filter(|v| v.size > 0 && v.ptr != "0x0") {
            assert!(
                s.allocations
                    .iter()
                    .any(|a| a.var_name.as_deref() == Some(v.var_name.as_str()) && a.ptr == v.ptr && a.size == v.size),
                "{name}: no named record for {v:?}"
            );
        }
        // The program's own export path is not used when MEMSCOPE_EXPORT_PATH is set.
        assert!(!named.dir.join("my_memory_analysis.json").exists());
        if name == "panics" {
            assert_eq!(s.process.end, EndKind::Panic);
            assert_eq!((p.process.end, p.process.exit_code), (EndKind::Exit, Some(101)));
        }
    }
}

#[test]
fn under_preload_the_programs_path_is_used_when_the_environment_sets_none() {
    let dir = scratch("rs_preload_seed_path");
    let out = Command::new(rs_example("seed"))
        .current_dir(&dir)
        .env("LD_PRELOAD", lib_path())
        .env_remove("MEMSCOPE_EXPORT_PATH")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        files,
        ["my_memory_analysis.json"],
        "one snapshot, at the program's path"
    );
    let s = memscope_format::read_snapshot_file(&dir.join("my_memory_analysis.json")).unwrap();
    assert_eq!(s.tool.mode, "preload");
    assert_eq!(var(&s, "my_vec").size, 12);
}

/// The in-process allocator counts what libmemscope.so counts: the same
/// churn workload, built with it (`alloc_tracked`, no `LD_PRELOAD`) and
/// without it (`alloc_plain`, preloaded), each minus its own run with zero
/// iterations (start-up, libc's and the thread's own blocks differ).
#[test]
fn the_in_process_allocator_counts_as_the_preload_library_does() {
    let work = |n: &str| -> [u64; 7] {
        let tracked = in_process(&format!("rs_churn_{n}"), &rs_example("alloc_tracked"), &["2", n], &[]);
        let plain = traced(
            &format!("rs_churn_plain_{n}"),
            &rs_example("alloc_plain"),
            &["2", n],
            &[],
        );
        assert!(tracked.output.status.success() && plain.output.status.success());
        let (t, p) = (tracked.only(), plain.only());
        check_invariants(t);
        assert_eq!(t.tool.mode, "in-process");
        let (t, p) = (counts(t), counts(p));
        std::array::from_fn(|i| p[i] - t[i])
    };
    let (busy, idle) = (work("20000"), work("0"));
    assert_eq!(busy, idle, "preload minus in-process, with and without the workload");
    // And what the workload itself costs, by a tool that shares no code with
    // memscope: valgrind's DHAT on the plain build, the same difference.
    if !dhat::available() {
        return;
    }
    let in_process_work = |n: &str| {
        let run = in_process(
            &format!("rs_churn_dhat_{n}"),
            &rs_example("alloc_tracked"),
            &["2", n],
            &[],
        );
        let m = run.only().summary.clone();
        let d = dhat::run(&rs_example("alloc_plain"), &["2", n], &run.dir);
        let ours = [
            m.total_allocations + m.reallocs,
            m.total_allocated_bytes,
            m.live_at_exit_allocations,
            m.live_at_exit_bytes,
        ];
        (ours, [d.blocks, d.bytes, d.end_blocks, d.end_bytes])
    };
    let ((m1, d1), (m0, d0)) = (in_process_work("20000"), in_process_work("0"));
    let diff = |a: [u64; 4], b: [u64; 4]| -> [u64; 4] { std::array::from_fn(|i| a[i] - b[i]) };
    assert_eq!(
        diff(m1, m0),
        diff(d1, d0),
        "the workload's (blocks, bytes, end blocks, end bytes): in-process vs DHAT"
    );
}
