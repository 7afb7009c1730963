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
fn heap_layout(dir: &Path, argv: &[&str], traced: bool, env: &[(&str, &str)]) -> Output {
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
        "MEMSCOPE_SKIP",
        "MEMSCOPE_ONLY",
    ] {
        c.env_remove(k);
    }
    if traced {
        c.env("LD_PRELOAD", lib_path())
            .env("MEMSCOPE_EXPORT_PATH", dir.join("snap.json"))
            .envs(env.iter().copied());
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
    let plain = text(&heap_layout(&dir, &argv, false, &[]));
    assert_eq!(
        plain,
        text(&heap_layout(&dir, &argv, false, &[])),
        "the program is deterministic"
    );
    assert!(plain.contains("MEMSCOPE_ROOT_PID unset"), "{plain}");
    assert!(plain.contains("MEMSCOPE_EXEC_SEQ unset"), "{plain}");
    let traced = text(&heap_layout(&dir, &argv, true, &[]));
    assert_eq!(
        traced, plain,
        "addresses (low bits), glibc's bytes in use, the environment"
    );
    // And it was traced: the 4,000 blocks of the churn, and stdout's buffer.
    let s = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    assert_eq!(s.summary.total_allocations, 4001);
    assert_eq!(s.summary.total_frees, 4000);
}

/// A thread's vector of thread-local blocks (glibc's DTV, calloc'd by
/// `pthread_create`) has one entry more, since libmemscope.so has thread-
/// local storage of its own: glibc's count of the main arena's bytes in use
/// can differ by that (it did by 320 bytes here, after the churns split
/// chunks differently). The addresses the program's threads get do not.
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
    let plain = addresses(&heap_layout(&dir, &argv, false, &[]));
    assert_eq!(plain.len(), 3 * 250, "{plain:?}");
    assert_eq!(addresses(&heap_layout(&dir, &argv, true, &[])), plain);
    let s = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    assert!(s.summary.total_allocations >= 4 * 4000, "{:?}", s.summary);
}

/// Without a launcher the first image tells the later ones that they are
/// not the first through the environment `exec` gives them (each writes
/// `PATH.<pid>…`, never `PATH`; the image the shell execs in its own pid
/// `PATH.<pid>-1`), and none of them finds memscope's markers in its own
/// environment — also when the shell is a skipped image.
#[test]
fn later_images_know_they_are_not_the_first_and_no_image_sees_the_markers() {
    let prog = c_program("heap_layout", &[]);
    let real_prog = std::fs::canonicalize(&prog).unwrap();
    let shell = std::fs::canonicalize("/bin/sh").unwrap();
    let shell_name = shell.file_name().unwrap().to_str().unwrap().to_owned();
    // Two children of the shell, then the shell's own pid execs the third.
    let script = format!("{p} one; {p} one; exec {p} one", p = prog.display());
    let argv = ["/bin/sh", "-c", script.as_str()];
    let files = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snap"))
            .collect();
        v.sort();
        v
    };
    let plain = text(&heap_layout(&scratch("host_heap_exec_plain"), &argv, false, &[]));
    assert_eq!(plain.matches("MEMSCOPE_ROOT_PID unset").count(), 3, "{plain}");
    assert_eq!(plain.matches("MEMSCOPE_EXEC_SEQ unset").count(), 3, "{plain}");
    for skip_shell in [false, true] {
        let dir = scratch(&format!("host_heap_exec_{skip_shell}"));
        let env: &[(&str, &str)] = if skip_shell {
            &[("MEMSCOPE_SKIP", &shell_name)]
        } else {
            &[]
        };
        assert_eq!(
            text(&heap_layout(&dir, &argv, true, env)),
            plain,
            "skipped shell: {skip_shell}"
        );
        let names = files(&dir);
        let snaps: Vec<_> = names
            .iter()
            .map(|n| (n, memscope_format::read_snapshot_file(&dir.join(n)).unwrap()))
            .collect();
        let programs: Vec<_> = snaps
            .iter()
            .filter(|(_, s)| Path::new(&s.process.exe) == real_prog)
            .collect();
        assert_eq!(programs.len(), 3, "{names:?}");
        // The shell: at PATH when it records, nowhere when skipped (the
        // program it execs in its own pid is then the test's child).
        let root = snaps.iter().find(|(n, _)| n.as_str() == "snap.json");
        let shell_pid = match root {
            Some((_, s)) => {
                assert!(!skip_shell, "a skipped shell wrote {names:?}");
                assert_eq!(Path::new(&s.process.exe), shell);
                s.process.pid
            }
            None => {
                assert!(skip_shell, "no snapshot at PATH: {names:?}");
                let ours: Vec<_> = programs
                    .iter()
                    .filter(|(_, s)| s.process.ppid == std::process::id())
                    .collect();
                assert_eq!(ours.len(), 1, "{names:?}");
                ours[0].1.process.pid
            }
        };
        let children = programs.iter().filter(|(_, s)| s.process.ppid == shell_pid).count();
        assert_eq!(children, 2, "the shell's two children: {names:?}");
        for (name, s) in &programs {
            assert_eq!(s.summary.total_allocations, 4001);
            let pid = s.process.pid;
            // A child of a shell that forks (not vforks) wrote its own
            // snapshot at the exec: the program is then its pid's second.
            let expected: &[String] = &if pid == shell_pid {
                vec![format!("snap.{pid}{}.json", if skip_shell { "" } else { "-1" })]
            } else {
                vec![format!("snap.{pid}.json"), format!("snap.{pid}-1.json")]
            };
            assert!(
                expected.contains(*name),
                "{name}, skipped shell: {skip_shell}: {names:?}"
            );
        }
        assert_eq!(
            programs.iter().filter(|(_, s)| s.process.pid == shell_pid).count(),
            1,
            "the exec'd program runs in the shell's pid: {names:?}"
        );
    }
}
