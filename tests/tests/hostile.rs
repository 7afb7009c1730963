//! What the traced program controls (argv, thread names) reaches the
//! snapshot as valid, faithfully escaped JSON; thread churn neither loses
//! counts nor piles up per-thread state.

use memscope_tests::*;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

#[test]
fn hostile_argv_and_thread_names_are_escaped() {
    let prog = c_program("hostile", &["-lpthread"]);
    let dir = scratch("hostile_names");
    let weird = std::ffi::OsStr::from_bytes(b"\xff\xfe</script><img src=x onerror=alert(1)>\"\\\n\x1b[2J");
    let out = Command::new(&prog)
        .arg("names")
        .arg(weird)
        .current_dir(&dir)
        .env("LD_PRELOAD", lib_path())
        .env("MEMSCOPE_EXPORT_PATH", dir.join("snap.json"))
        .env("MEMSCOPE_RUN_PPID", std::process::id().to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let raw = std::fs::read(dir.join("snap.json")).unwrap();
    // Valid UTF-8 JSON with no raw control character anywhere.
    let text = std::str::from_utf8(&raw).expect("the snapshot is UTF-8");
    assert!(!text.bytes().any(|b| b < 0x20), "a raw control character in the JSON");
    let s = memscope_format::read_snapshot(&raw[..]).unwrap();
    check_invariants(&s);
    // argv survives (invalid UTF-8 as U+FFFD), markup and quotes intact.
    assert_eq!(s.process.argv.len(), 3);
    assert!(
        s.process.argv[2].starts_with("\u{fffd}\u{fffd}</script><img"),
        "{:?}",
        s.process.argv[2]
    );
    assert!(s.process.argv[2].ends_with("\"\\\n\u{1b}[2J"));
    // Thread names: the kernel keeps 15 bytes of each.
    let names: Vec<&str> = s.threads.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"</script>\u{1b}[31m"), "{names:?}");
    assert!(names.contains(&"a\"b\\c\n\t"), "{names:?}");
    assert!(names.contains(&"\u{1}\u{2}\u{7f}"), "{names:?}");
}

#[test]
fn thousands_of_short_threads() {
    let prog = c_program("hostile", &["-lpthread"]);
    let n: u64 = 3000;
    // Room for every live block of the 3000 threads (the default cap is smaller).
    let run = traced(
        "hostile_threads",
        &prog,
        &["short-threads", &n.to_string()],
        &[("MEMSCOPE_MAX_RECORDS", "20000")],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let s = &run.only().summary;
    check_invariants(run.only());
    // Each thread: 3 blocks from short_lived (10, 20 and 30 bytes, the 30
    // kept), plus what libc allocates for a thread.
    let count = |size: u64| run.only().allocations.iter().filter(|a| a.size == size).count() as u64;
    assert_eq!(count(30), n, "every kept block is listed");
    assert_eq!(sites_under(run.only(), "short_lived"), (3 * n, 60 * n, n, 30 * n));
    assert_eq!(s.events_dropped, 0);
    assert_eq!(
        run.only().threads.iter().filter(|t| t.allocations >= 3).count() as u64,
        n
    );
}
