//! Programs no one here wrote: their output and exit status are byte for
//! byte those of an un-traced run, their snapshots are valid, and their
//! counts equal valgrind --tool=dhat's when both tools run them with the same
//! environment and the same kind of stdio.

use memscope_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed (.ci/run installs it)");
}

/// One explicit environment for every run of a comparison: the variables
/// valgrind adds to its client (LD_LIBRARY_PATH, GLIBCPP/GLIBCXX_FORCE_NEW,
/// PWD; it sets LD_PRELOAD itself) and those memscope's runs carry, so that a
/// program that copies or grows its environment does the same work under
/// both tools.
fn exact_env(dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
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
/// they behave identically; returns the traced run.
fn same_behaviour(test: &str, argv: &[&str], stdin_file: Option<&Path>, extra: &[(&str, &str)]) -> Run {
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

/// DHAT's totals for `argv` (run in `dir`, in the same environment).
fn dhat_totals(
    dir: &Path,
    name: &str,
    argv: &[&str],
    stdin_file: Option<&Path>,
    extra: &[(&str, &str)],
) -> dhat::Totals {
    assert!(dhat::available(), "valgrind is not installed (.ci/run installs it)");
    let out = dir.join(format!("dhat-{name}.json"));
    let mut c = Command::new("valgrind");
    c.args(["--tool=dhat", "--run-libc-freeres=no", "--run-cxx-freeres=no", "-q"])
        .arg(format!("--dhat-out-file={}", out.display()))
        .args(argv)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .envs(exact_env(dir, extra));
    if let Some(f) = stdin_file {
        c.stdin(std::fs::File::open(f).unwrap());
    }
    // Pipes, as in the other runs: stdio sizes its buffers by what fd 1 is.
    c.output().unwrap();
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
    let text: String = (0..5000).map(|i| format!("{:08}\n", (i * 7919) % 10007)).collect();
    std::fs::write(&input, text).unwrap();
    let sort = tool("sort");
    let argv = [sort.to_str().unwrap(), input.to_str().unwrap()];
    let run = same_behaviour("real_sort", &argv, None, &[]);
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
    let sqlite = tool("sqlite3");
    let argv = [sqlite.to_str().unwrap(), ":memory:"];
    let run = same_behaviour("real_sqlite3", &argv, Some(&script), &[]);
    equals_dhat(&run, &argv, Some(&script), &[]);
}

#[test]
fn python3() {
    let py = tool("python3");
    let argv = [
        py.to_str().unwrap(),
        "-c",
        "d = {str(i): [i] * (i % 7) for i in range(20000)}; print(len(d))",
    ];
    let env = [("PYTHONHASHSEED", "0")];
    let run = same_behaviour("real_python3", &argv, None, &env);
    equals_dhat(&run, &argv, None, &env);
}

#[test]
fn git() {
    let git = tool("git");
    let repo = root();
    let argv = [
        git.to_str().unwrap(),
        "-C",
        repo.to_str().unwrap(),
        "rev-list",
        "--count",
        "HEAD",
    ];
    let run = same_behaviour("real_git", &argv, None, &[]);
    equals_dhat(&run, &argv, None, &[]);
}

/// gcc runs cc1 and as: every image is traced and writes its snapshot, and
/// the object file is byte for byte the same.
#[test]
fn gcc_compiling_a_file() {
    let gcc = tool("gcc");
    let src = root().join("tests/programs/entry_points.c");
    let dir = scratch("real_gcc_objects");
    let (a, b) = (dir.join("traced.o"), dir.join("plain.o"));
    let run = same_behaviour(
        "real_gcc",
        &[
            gcc.to_str().unwrap(),
            "-O2",
            "-c",
            "-o",
            a.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
        None,
        &[],
    );
    let st = Command::new(&gcc)
        .args(["-O2", "-c", "-o", b.to_str().unwrap(), src.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "the object files differ"
    );
    let exes: Vec<String> = run
        .snapshots
        .iter()
        .map(|(_, s)| s.process.exe.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(exes.iter().any(|e| e == "cc1"), "{exes:?}");
    assert!(exes.iter().any(|e| e == "as" || e.ends_with("-as")), "{exes:?}");
}

#[test]
fn a_program_that_grows_its_environment() {
    // 1000 setenv/unsetenv: glibc reallocates `environ` each time, by sizes
    // that depend on the environment, identical in both runs here.
    let prog = c_program("environ", &[]);
    let argv = [prog.to_str().unwrap(), "churn", "/bin/true"];
    let run = same_behaviour("real_environ_churn", &argv, None, &[]);
    assert_eq!(run.only().allocations.iter().filter(|a| a.size == 48).count(), 100);
    equals_dhat(&run, &argv, None, &[]);
}
