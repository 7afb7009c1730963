//! Under `memscope-cli run`, an image's last snapshot is finished by a
//! helper process after the image has exited (`engine/src/detach.rs`), off
//! the critical path of whatever waits for the image. These tests hold what
//! that must not change: every image's snapshot arrives, in a PID namespace
//! of the program's too (whose init's exit kills everything in it); `run`
//! does not take the helpers for processes the command left running; and
//! where it applies, the helper is what finished the snapshot.

use memscope_format::Snapshot;
use memscope_tests::cli::*;
use memscope_tests::*;
use std::path::Path;

fn named<'a>(snaps: &'a [Snapshot], name: &str) -> Vec<&'a Snapshot> {
    snaps
        .iter()
        .filter(|s| s.process.exe.rsplit('/').next() == Some(name))
        .collect()
}

/// `unshare -r -p -f`: the shell is the init of a PID namespace of its own
/// and exits right after its `ls`. A helper in that namespace would be
/// killed with it, its snapshot lost: in there, images finish their own.
#[test]
fn every_image_in_a_pid_namespace_of_the_programs_keeps_its_snapshot() {
    let Some(unshare) = tools::program("unshare", "util-linux") else {
        return;
    };
    let dir = scratch("run_endings_pid_namespace");
    let script = "ls / > /dev/null; ls /proc/self > /dev/null; echo pid $$";
    let out = command(&dir)
        .args(["run", "-o", "snap.json", "--"])
        .arg(&unshare)
        .args(["-r", "-p", "-f", "sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pid 1\n", "the shell is the namespace's init");
    let snaps = snapshots_in(&dir);
    let ls = named(&snaps, "ls");
    assert_eq!(ls.len(), 2, "both ls images: {:?}", json_files(&dir));
    for s in ls {
        assert_eq!(s.process.exit_code, Some(0));
        assert!(s.summary.total_allocations > 0, "ls allocates: {:?}", s.process.argv);
        check_invariants(s);
    }
    // The init itself (pid 1 in there), which ends last.
    let init: Vec<&Snapshot> = snaps
        .iter()
        .filter(|s| s.process.argv.first().map(String::as_str) == Some("sh"))
        .filter(|s| s.process.end != memscope_format::EndKind::Exec)
        .collect();
    assert_eq!(
        init.len(),
        1,
        "the namespace's init wrote its snapshot: {:?}",
        json_files(&dir)
    );
    assert_eq!((init[0].process.pid, init[0].process.exit_code), (1, Some(0)));
}

/// Whether an image shares `run`'s PID namespace is known without /proc
/// (two `stat`s there cost every image ~80 µs at its exit) to the run's
/// first image, to a fork child of an image that knew, and to an image
/// exec'd by one that knew; inside a namespace of the program's, it is
/// looked up, and found not to be.
#[test]
fn whether_an_image_shares_runs_pid_namespace_is_passed_on_not_looked_up() {
    let lookups = |err: &str| -> Vec<String> {
        err.lines()
            .filter(|l| l.contains("pid namespace looked up in /proc"))
            .map(str::to_string)
            .collect()
    };
    // The first image (sh), a subshell it forks, and the program it execs
    // from a fork child and from the subshell's: each finishes in a helper,
    // none looks. (The program, not `ls`: coreutils close stderr at exit,
    // and with it the debug log.)
    let dir = scratch("run_endings_pid_namespace_known");
    let prog = prog();
    let script = "\"$0\" alloc 10 64 0 0; (\"$0\" alloc 10 64 0 0; exit 3); exit 0";
    let err = debug_run(&dir, "sh", &["-c", script, prog.to_str().unwrap()]);
    let helped = ending_lines(&err)
        .into_iter()
        .filter(|l| l.ends_with("(in a helper, after the image exited)"))
        .count();
    assert_eq!(helped, 4, "sh, its subshell and both programs: {err}");
    assert_eq!(lookups(&err), Vec::<String>::new(), "{err}");

    // A child `posix_spawn` made (`make`'s way) knows too. `system()`'s
    // shell is started by glibc's own spawn, past the library's hooks: it
    // is not told, and the `true` it execs looks.
    let dir = scratch("run_endings_pid_namespace_spawned");
    let err = debug_run(&dir, c_program("spawns", &[]), &["spawn", "0", "/bin/true"]);
    let snaps = snapshots_in(&dir);
    let trues = named(&snaps, "true");
    assert_eq!(trues.len(), 2, "{err}");
    let looked = lookups(&err);
    assert_eq!(looked.len(), 1, "{err}");
    let spawned = trues
        .iter()
        .find(|s| s.process.exec_seq == 0)
        .expect("posix_spawn's true");
    assert!(
        !looked[0].starts_with(&format!("memscope[{}]:", spawned.process.pid)),
        "{err}"
    );

    let Some(unshare) = tools::program("unshare", "util-linux") else {
        return;
    };
    let dir = scratch("run_endings_pid_namespace_looked_up");
    let args = [
        "-r",
        "-p",
        "-f",
        "sh",
        "-c",
        "\"$0\" alloc 10 64 0 0",
        prog.to_str().unwrap(),
    ];
    let err = debug_run(&dir, &unshare, &args);
    let looked = lookups(&err);
    // The shell (pid 1 in there) and the program; unshare itself is the
    // run's first image, in run's namespace, and knows.
    assert_eq!(looked.len(), 2, "{err}");
    assert!(looked.iter().all(|l| l.ends_with("run's: false")), "{err}");
    assert_eq!(named(&snapshots_in(&dir), "cli_prog").len(), 1, "{err}");
}

/// The helpers of the command's last images are still at work when it
/// ends: `run` waits for them without saying it waits for processes the
/// command left running. A process it did leave running is still told.
#[test]
fn run_says_it_waits_only_for_processes_the_command_left_running() {
    let dir = scratch("run_endings_left_running");
    let out = command(&dir)
        .args([
            "run",
            "-o",
            "snap.json",
            "--",
            "sh",
            "-c",
            "ls / > /dev/null; ls / > /dev/null",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("left running"), "{}", stderr(&out));
    assert_eq!(named(&snapshots_in(&dir), "ls").len(), 2);

    let dir = scratch("run_endings_left_running_sleep");
    let out = command(&dir)
        .args(["run", "-o", "snap.json", "--", "sh", "-c", "sleep 1 & exit 0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting for the processes it left running"),
        "{}",
        stderr(&out)
    );
    let snaps = snapshots_in(&dir);
    let sleeps = named(&snaps, "sleep");
    assert_eq!(sleeps.len(), 1, "run waited for the sleep: {:?}", json_files(&dir));
    assert_eq!(sleeps[0].process.exit_code, Some(0));
}

/// The `ending: …` debug lines in `err`.
fn ending_lines(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.contains("ending: drain")).collect()
}

/// `memscope-cli run -o dir/snap.json -- program args…` with the debug log,
/// which must succeed: its stderr.
fn debug_run(dir: &Path, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let out = command(dir)
        .env("MEMSCOPE_LOG", "debug")
        .args(["run", "-o", "snap.json", "--"])
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    err
}

/// [`debug_run`] of a program of one image: its stderr, with the image's
/// ending line.
fn run_debug(dir: &Path, program: &Path, args: &[&str]) -> (String, String) {
    let err = debug_run(dir, program, args);
    let endings = ending_lines(&err);
    assert_eq!(endings.len(), 1, "{err}");
    let ending = endings[0].to_string();
    (err, ending)
}

/// Under `run` a single-threaded image's snapshot is finished by its
/// helper after the image has exited; under plain `LD_PRELOAD` (whose file
/// must be complete when the program has exited) and in a multi-threaded
/// image, by the image itself. The numbers are what the program did.
#[test]
fn a_helper_finishes_an_exited_images_snapshot_only_under_run() {
    // An array of 1,000 pointers (8,000 bytes), 1,000 blocks of 64 bytes,
    // all freed but 10 of the blocks, then exit(0); no stdio.
    let args = ["alloc", "1000", "64", "10", "0"];
    let dir = scratch("run_endings_helper");
    let (err, ending) = run_debug(&dir, &prog(), &args);
    assert!(ending.ends_with("(in a helper, after the image exited)"), "{err}");
    let plain = traced("run_endings_plain", &prog(), &args, &[("MEMSCOPE_LOG", "debug")]);
    let plain_err = plain.stderr();
    let plain_endings = ending_lines(&plain_err);
    assert_eq!(plain_endings.len(), 1, "{}", plain.stderr());
    assert!(!plain_endings[0].contains("helper"), "{}", plain.stderr());
    let handed = snapshots_in(&dir);
    assert_eq!(handed.len(), 1, "{:?}", json_files(&dir));
    for s in [&handed[0], plain.only()] {
        let t = &s.summary;
        assert_eq!((t.total_allocations, t.total_allocated_bytes), (1001, 72_000));
        assert_eq!(
            (t.total_frees, t.live_at_exit_allocations, t.live_at_exit_bytes),
            (991, 10, 640)
        );
        assert_eq!(t.peak_live_bytes, 72_000);
        assert_eq!(s.process.exit_code, Some(0));
        check_invariants(s);
    }

    let threads = c_program("threads", &[]);
    let dir = scratch("run_endings_threads");
    let (err, ending) = run_debug(&dir, &threads, &["4", "2000"]);
    assert!(!ending.contains("helper"), "{err}");
    assert_eq!(
        snapshots_in(&dir)[0].summary.total_allocations,
        4 * 2000 + base_allocations(&threads)
    );
}

/// What `threads` allocates with no iterations (libc's own, for the
/// threads themselves), measured, not guessed.
fn base_allocations(threads: &Path) -> u64 {
    traced("run_endings_threads_base", threads, &["4", "0"], &[])
        .only()
        .summary
        .total_allocations
}
