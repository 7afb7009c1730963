//! Programs no one here wrote: they exit 0 and print what their input makes
//! them print (computed here, not read from a run), byte for byte as an
//! un-traced run does; their snapshots are valid, and their counts equal
//! valgrind --tool=dhat's when both tools run them with the same environment
//! and the same kind of stdio.

use memscope_tests::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// The PATH of every run here: the system's programs, not a user's shims.
const PATH: &str = tools::SYSTEM_PATH;

/// One explicit environment for every run of a comparison: the variables
/// valgrind adds to its client (LD_LIBRARY_PATH, GLIBCPP/GLIBCXX_FORCE_NEW,
/// PWD; it sets LD_PRELOAD itself) and those memscope's runs carry, so that a
/// program that copies or grows its environment does the same work under
/// both tools.
fn exact_env(dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), PATH.into()),
        ("HOME".into(), dir.display().to_string()),
        ("LC_ALL".into(), "C".into()),
        ("PWD".into(), dir.display().to_string()),
        ("LD_LIBRARY_PATH".into(), "/usr/lib/debug".into()),
        ("GLIBCPP_FORCE_NEW".into(), "1".into()),
        ("GLIBCXX_FORCE_NEW".into(), "1".into()),
        (
            "MEMSCOPE_EXPORT_PATH".into(),
            dir.join("snap.json").display().to_string(),
        ),
        ("MEMSCOPE_MANIFEST".into(), dir.join("manifest").display().to_string()),
        ("MEMSCOPE_RUN_PPID".into(), std::process::id().to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Runs `argv` with `stdin_file` as input, traced and un-traced, and checks
/// that both exit 0 with `stdout` and behave identically; returns the
/// traced run.
fn same_behaviour(test: &str, argv: &[&str], stdin_file: Option<&Path>, extra: &[(&str, &str)], stdout: &[u8]) -> Run {
    let dir = scratch(test);
    let run_it = |traced: bool| {
        let mut c = Command::new(argv[0]);
        c.args(&argv[1..])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.env_clear().envs(exact_env(&dir, extra));
        if let Some(f) = stdin_file {
            c.stdin(std::fs::File::open(f).unwrap());
        }
        if traced {
            c.env("LD_PRELOAD", lib_path());
        }
        c.output().unwrap()
    };
    let plain = run_it(false);
    let _ = std::fs::remove_file(dir.join("manifest"));
    let output = run_it(true);
    assert_eq!(
        plain.status.code(),
        Some(0),
        "{test}: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(stdout),
        "{test}: the expected output"
    );
    assert_eq!(output.status.code(), plain.status.code(), "{test}: exit status");
    assert_eq!(output.stdout, plain.stdout, "{test}: stdout");
    assert_eq!(output.stderr, plain.stderr, "{test}: stderr");
    let snapshots = read_manifest(&dir);
    assert!(!snapshots.is_empty(), "{test}: no snapshot");
    for (_, s) in &snapshots {
        check_invariants(s);
    }
    Run { output, dir, snapshots }
}

/// `valgrind --tool=dhat opts… argv…` in `dir`, in the comparison's
/// environment, writing `out` (without libc/libstdc++ freeres, so the end
/// state matches a native run).
fn valgrind_dhat(dir: &Path, out: &Path, opts: &[&str], argv: &[&str], extra: &[(&str, &str)]) -> Command {
    let mut c = Command::new("valgrind");
    c.args(["--tool=dhat", "--run-libc-freeres=no", "--run-cxx-freeres=no", "-q"])
        .args(opts)
        .arg(format!("--dhat-out-file={}", out.display()))
        .args(argv)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .envs(exact_env(dir, extra));
    c
}

/// DHAT's totals for `argv` (run in `dir`, in the same environment).
fn dhat_totals(
    dir: &Path,
    name: &str,
    argv: &[&str],
    stdin_file: Option<&Path>,
    extra: &[(&str, &str)],
) -> dhat::Totals {
    let out = dir.join(format!("dhat-{name}.json"));
    let mut c = valgrind_dhat(dir, &out, &[], argv, extra);
    if let Some(f) = stdin_file {
        c.stdin(std::fs::File::open(f).unwrap());
    }
    // Pipes, as in the other runs: stdio sizes its buffers by what fd 1 is.
    let o = c.output().unwrap();
    assert!(o.status.success(), "{argv:?} under valgrind: {:?}", o.status);
    dhat::read(&out)
}

/// memscope's counts in DHAT's terms.
fn as_dhat(s: &memscope_format::Summary) -> dhat::Totals {
    dhat::Totals {
        blocks: s.total_allocations + s.reallocs,
        bytes: s.total_allocated_bytes,
        gmax_blocks: s.peak_live_allocations,
        gmax_bytes: s.peak_live_bytes,
        end_blocks: s.live_at_exit_allocations,
        end_bytes: s.live_at_exit_bytes,
    }
}

fn equals_dhat(run: &Run, argv: &[&str], stdin_file: Option<&Path>, env: &[(&str, &str)]) {
    if !dhat::available() {
        return;
    }
    let d = dhat_totals(&run.dir, "run", argv, stdin_file, env);
    let m = as_dhat(&run.only().summary);
    assert_eq!(
        (d.blocks, d.bytes, d.end_blocks, d.end_bytes, d.gmax_bytes),
        (m.blocks, m.bytes, m.end_blocks, m.end_bytes, m.gmax_bytes),
        "{argv:?}: DHAT vs memscope (blocks, bytes, end blocks, end bytes, peak)"
    );
}

#[test]
fn sort() {
    let input = scratch("real_sort_input").join("lines");
    let mut lines: Vec<String> = (0..5000).map(|i| format!("{:08}\n", (i * 7919) % 10007)).collect();
    std::fs::write(&input, lines.concat()).unwrap();
    lines.sort();
    let Some(sort) = tools::program("sort", "coreutils") else {
        return;
    };
    let argv = [sort.to_str().unwrap(), input.to_str().unwrap()];
    let run = same_behaviour("real_sort", &argv, None, &[], lines.concat().as_bytes());
    equals_dhat(&run, &argv, None, &[]);
}

#[test]
fn sqlite3() {
    let script = scratch("real_sqlite_input").join("q.sql");
    std::fs::write(
        &script,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n\
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)\n\
         INSERT INTO t SELECT x, 'v' || x FROM c;\n\
         SELECT count(*), max(v) FROM t;\n",
    )
    .unwrap();
    let Some(sqlite) = tools::program("sqlite3", "sqlite3") else {
        return;
    };
    let argv = [sqlite.to_str().unwrap(), ":memory:"];
    // 2000 rows; 'v999' is the greatest of 'v1'…'v2000' as text.
    let run = same_behaviour("real_sqlite3", &argv, Some(&script), &[], b"2000|v999\n");
    equals_dhat(&run, &argv, Some(&script), &[]);
}

#[test]
fn python3() {
    let Some(py) = tools::program("python3", "python3") else {
        return;
    };
    let argv = [
        py.to_str().unwrap(),
        "-c",
        "d = {str(i): [i] * (i % 7) for i in range(20000)}; print(len(d))",
    ];
    let env = [("PYTHONHASHSEED", "0")];
    let run = same_behaviour("real_python3", &argv, None, &env, b"20000\n");
    equals_dhat(&run, &argv, None, &env);
}

#[test]
fn git() {
    let Some(git) = tools::program("git", "git") else {
        return;
    };
    let repo = root();
    // The count by another path through git: one line per commit.
    let log = Command::new(&git)
        .args(["-C", repo.to_str().unwrap(), "log", "--format=%H"])
        .output()
        .unwrap();
    assert!(log.status.success());
    let commits = log.stdout.iter().filter(|&&b| b == b'\n').count();
    assert!(commits > 0);
    let argv = [
        git.to_str().unwrap(),
        "-C",
        repo.to_str().unwrap(),
        "rev-list",
        "--count",
        "HEAD",
    ];
    let run = same_behaviour("real_git", &argv, None, &[], format!("{commits}\n").as_bytes());
    equals_dhat(&run, &argv, None, &[]);
}

/// gcc runs cc1 and as: every image is traced and writes its snapshot, the
/// object file is byte for byte the same, and each image's counts equal
/// DHAT's for the same image (valgrind following gcc into its children).
#[test]
fn gcc_compiling_a_file() {
    let Some(gcc) = tools::program("gcc", "gcc") else {
        return;
    };
    let src = root().join("tests/programs/entry_points.c");
    let dir = scratch("real_gcc_objects");
    let (a, b) = (dir.join("traced.o"), dir.join("plain.o"));
    // cc1's garbage collector sizes its heap from the machine's memory and
    // limits, which valgrind changes: fixed parameters make it collect at
    // the same points under both tools (the object file is the same).
    let argv = [
        gcc.to_str().unwrap(),
        "--param=ggc-min-expand=30",
        "--param=ggc-min-heapsize=8192",
        "-O2",
        "-c",
        "-o",
        a.to_str().unwrap(),
        src.to_str().unwrap(),
    ];
    let run = same_behaviour("real_gcc", &argv, None, &[], b"");
    let st = Command::new(&gcc)
        .args(&argv[1..5])
        .args(["-o", b.to_str().unwrap(), src.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "the object files differ"
    );
    // Each image by the file its executable is (gcc is a link to gcc-12).
    let name = |exe: &str| {
        let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.into());
        exe.file_name().unwrap().to_string_lossy().into_owned()
    };
    let mut ours: Vec<(String, dhat::Totals)> = run
        .snapshots
        .iter()
        .map(|(_, s)| (name(&s.process.exe), as_dhat(&s.summary)))
        .collect();
    let exes: Vec<&str> = ours.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(exes.len(), 3, "the driver, cc1 and as: {exes:?}");
    assert!(exes.contains(&"cc1"), "{exes:?}");
    assert!(exes.iter().any(|e| *e == "as" || e.ends_with("-as")), "{exes:?}");
    if !dhat::available() {
        return;
    }
    let mut theirs: Vec<(String, dhat::Totals)> = dhat_images(&run.dir, &argv)
        .into_iter()
        .map(|(cmd, t)| {
            // DHAT names an image by its argv[0], which gcc may give bare.
            let exe = if cmd.contains('/') {
                cmd.into()
            } else {
                tools::on_path_in(PATH.as_ref(), &[cmd.as_str()])
                    .unwrap_or_else(|| panic!("{cmd} ran under DHAT but is not on {PATH}"))
            };
            (name(exe.to_str().unwrap()), t)
        })
        .collect();
    ours.sort_by(|x, y| x.0.cmp(&y.0));
    theirs.sort_by(|x, y| x.0.cmp(&y.0));
    let names = |v: &[(String, dhat::Totals)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs));
    for ((exe, m), (_, d)) in ours.iter().zip(&theirs) {
        let (m, d) = (*m, cc1_page_tables(exe, *m, *d));
        assert_eq!(
            [m.blocks, m.bytes, m.end_blocks, m.end_bytes, m.gmax_bytes],
            [d.blocks, d.bytes, d.end_blocks, d.end_bytes, d.gmax_bytes],
            "{exe}: memscope vs DHAT (blocks, bytes, end blocks, end bytes, peak)"
        );
    }
}

/// cc1's garbage collector indexes its pages with a two-level table kept to
/// the end: a 2064-byte node (`page_table_chain`: next, high bits, 256 leaf
/// pointers) for each 4 GiB region its pages land in, and a 32 KiB leaf
/// (calloc'd) for each 16 MiB slice of it. How many of each depends on where
/// mmap puts the pages — address-space randomisation, and valgrind's own
/// layout. So DHAT's count of cc1 is adjusted by whole nodes and leaves (at
/// most two of each, the one combination that explains both the blocks and
/// the bytes live at exit apart) before the exact comparison; every other
/// number of every image must match as it is.
fn cc1_page_tables(exe: &str, ours: dhat::Totals, mut theirs: dhat::Totals) -> dhat::Totals {
    const NODE: i64 = 16 + 256 * 8;
    const LEAF: i64 = 4096 * 8;
    if exe != "cc1" {
        return theirs;
    }
    let blocks = ours.end_blocks as i64 - theirs.end_blocks as i64;
    let bytes = ours.end_bytes as i64 - theirs.end_bytes as i64;
    let fits = (-2..=2i64)
        .flat_map(|nodes| (-2..=2i64).map(move |leaves| (nodes, leaves)))
        .find(|&(n, l)| n + l == blocks && n * NODE + l * LEAF == bytes);
    let Some((nodes, leaves)) = fits else {
        panic!("cc1: {blocks} blocks and {bytes} bytes live at exit apart: not whole page-table nodes and leaves");
    };
    let by = nodes * NODE + leaves * LEAF;
    let adjust = |v: u64, by: i64| (v as i64 + by) as u64;
    theirs.blocks = adjust(theirs.blocks, blocks);
    theirs.end_blocks = adjust(theirs.end_blocks, blocks);
    theirs.bytes = adjust(theirs.bytes, by);
    theirs.end_bytes = adjust(theirs.end_bytes, by);
    theirs.gmax_bytes = adjust(theirs.gmax_bytes, by);
    theirs
}

/// DHAT's totals for every image of `argv` (valgrind follows exec), each
/// with the argv[0] it was started with.
fn dhat_images(dir: &Path, argv: &[&str]) -> Vec<(String, dhat::Totals)> {
    let out = dir.join("dhat-image.%p.json");
    let o = valgrind_dhat(dir, &out, &["--trace-children=yes"], argv, &[])
        .output()
        .unwrap();
    assert!(o.status.success(), "{argv:?} under valgrind: {:?}", o.status);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("dhat-image."))
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let cmd = v["cmd"].as_str().expect("DHAT's cmd").split(' ').next().unwrap();
            (cmd.to_string(), dhat::read(&p))
        })
        .collect()
}

#[test]
fn a_program_that_grows_its_environment() {
    // 1000 setenv/unsetenv: glibc reallocates `environ` each time, by sizes
    // that depend on the environment, identical in both runs here.
    let prog = c_program("environ", &[]);
    let argv = [prog.to_str().unwrap(), "churn", "/bin/true"];
    // Every block listed (the default cap is smaller); DHAT runs in the
    // same environment.
    let env = [("MEMSCOPE_MAX_RECORDS", "20000")];
    let run = same_behaviour("real_environ_churn", &argv, None, &env, b"");
    assert_eq!(run.only().allocations.iter().filter(|a| a.size == 48).count(), 100);
    equals_dhat(&run, &argv, None, &env);
}
