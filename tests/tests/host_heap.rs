//! The traced program's heap and environment are the ones it has
//! un-traced: memscope's own memory never comes from the program's
//! `malloc` (so every block the program gets sits where it would without
//! memscope: a program that prints or hashes its addresses behaves the
//! same), and the variables memscope passes from one image to the next are
//! not left in the program's environment.

use memscope_tests::*;
use std::path::Path;
use std::process::{Command, Output};

/// `heap_layout MODE` in `dir`, with only `LD_PRELOAD` and the snapshot
/// path added when traced: no launcher, so the first image is the root.
fn heap_layout(dir: &Path, argv: &[&str], traced: bool) -> Output {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]).current_dir(dir);
    for k in [
        "LD_PRELOAD",
        "MEMSCOPE_RUN_PPID",
        "MEMSCOPE_ROOT_PID",
        "MEMSCOPE_EXEC_SEQ",
        "MEMSCOPE_MANIFEST",
        "MEMSCOPE_HANDOFF",
        "MEMSCOPE_EXPORT_PATH",
        "MEMSCOPE_DEFAULT_EXPORT_PATH",
    ] {
        c.env_remove(k);
    }
    if traced {
        c.env("LD_PRELOAD", lib_path())
            .env("MEMSCOPE_EXPORT_PATH", dir.join("snap.json"));
    }
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_single_threaded_programs_blocks_glibcs_count_and_environment_are_as_untraced() {
    let prog = c_program("heap_layout", &[]);
    let argv = [prog.to_str().unwrap(), "one"];
    let dir = scratch("host_heap_one");
    let plain = text(&heap_layout(&dir, &argv, false));
    assert_eq!(
        plain,
        text(&heap_layout(&dir, &argv, false)),
        "the program is deterministic"
    );
    assert!(plain.contains("MEMSCOPE_ROOT_PID unset"), "{plain}");
    let traced = text(&heap_layout(&dir, &argv, true));
    assert_eq!(
        traced, plain,
        "addresses (low bits), glibc's bytes in use, the environment"
    );
    // And it was traced: the 4,000 blocks of the churn, and stdout's buffer.
    let s = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    assert_eq!(s.summary.total_allocations, 4001);
    assert_eq!(s.summary.total_frees, 4000);
}

/// With a second thread, memscope starts its collector thread: glibc's
/// bookkeeping for that thread (its thread-local block's vector) is
/// allocated where glibc puts it, and the main arena's count of bytes in
/// use can differ by it. The addresses the program's threads get do not.
#[test]
fn a_threaded_programs_blocks_are_where_they_are_untraced() {
    let prog = c_program("heap_layout", &[]);
    let argv = [prog.to_str().unwrap(), "threads"];
    let dir = scratch("host_heap_threads");
    let addresses = |o: &Output| -> Vec<String> {
        text(o)
            .lines()
            .filter(|l| l.starts_with("main"))
            .filter(|l| !l.starts_with("main arena"))
            .map(String::from)
            .collect()
    };
    let plain = addresses(&heap_layout(&dir, &argv, false));
    assert_eq!(plain.len(), 3 * 250, "{plain:?}");
    assert_eq!(addresses(&heap_layout(&dir, &argv, true)), plain);
    let s = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    assert!(s.summary.total_allocations >= 4 * 4000, "{:?}", s.summary);
}

/// Without a launcher the first image tells the later ones that they are
/// not the first through the environment `exec` gives them (each writes
/// `PATH.<pid>…`, never `PATH`), and none of them, the first included,
/// finds that marker in its own environment.
#[test]
fn later_images_know_they_are_not_the_first_and_no_image_sees_the_marker() {
    let prog = c_program("heap_layout", &[]);
    let dir = scratch("host_heap_exec");
    // The last command a builtin: the shell forks for both programs.
    let script = format!("{p} one; {p} one; true", p = prog.display());
    let argv = ["/bin/sh", "-c", script.as_str()];
    let plain = text(&heap_layout(&dir, &argv, false));
    let files = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snap"))
            .collect();
        v.sort();
        v
    };
    assert!(files(&dir).is_empty());
    let traced = text(&heap_layout(&dir, &argv, true));
    assert_eq!(traced, plain);
    assert_eq!(plain.matches("MEMSCOPE_ROOT_PID unset").count(), 2, "{plain}");
    // sh is the root, at PATH; each program is a later image of its own
    // pid, at PATH.<pid>… (a shell that forks rather than vforks adds the
    // fork children's snapshots at their exec).
    let names = files(&dir);
    let root = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    assert!(
        root.process.exe.ends_with("sh") || root.process.exe.contains("dash"),
        "{}",
        root.process.exe
    );
    let programs: Vec<_> = names
        .iter()
        .map(|n| (n, memscope_format::read_snapshot_file(&dir.join(n)).unwrap()))
        .filter(|(_, s)| Path::new(&s.process.exe) == std::fs::canonicalize(&prog).unwrap())
        .collect();
    assert_eq!(programs.len(), 2);
    for (name, s) in &programs {
        assert_eq!(s.summary.total_allocations, 4001);
        assert_ne!(s.process.pid, root.process.pid);
        let pid = s.process.pid;
        assert!(
            **name == format!("snap.{pid}.json") || name.starts_with(&format!("snap.{pid}-")),
            "{name} for pid {pid}: {names:?}"
        );
    }
}
