//! Which processes of a run record (issue 20): a memscope-rs program's own
//! `enable_auto_export` path under `run`; `--only`/`--skip` (a skipped
//! image writes nothing, its children are still traced); and the seed's
//! usage, `memscope-cli run cargo run`, where only the program cargo runs
//! from the target directory is traced.

use memscope_tests::cli::*;
use memscope_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Each snapshot of `dir` with its executable's base name.
fn snapshots(dir: &Path) -> Vec<(PathBuf, memscope_format::Snapshot)> {
    json_files(dir)
        .into_iter()
        .map(|p| {
            let s = memscope_format::read_snapshot_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, s)
        })
        .collect()
}

fn exe_name(s: &memscope_format::Snapshot) -> &str {
    s.process.exe.rsplit('/').next().unwrap()
}

/// The snapshot of the executable named `name` among `snaps`.
fn of<'a>(snaps: &'a [(PathBuf, memscope_format::Snapshot)], name: &str) -> &'a memscope_format::Snapshot {
    snaps
        .iter()
        .map(|(_, s)| s)
        .find(|s| exe_name(s) == name)
        .unwrap_or_else(|| panic!("{name} not traced"))
}

#[test]
fn the_programs_own_path_wins_unless_the_user_chose_one() {
    let seed = rs_example("seed");
    let dir = scratch("select_program_path");
    let out = command(&dir).arg("run").arg(&seed).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let files = snapshots(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0].0,
        dir.join("my_memory_analysis.json"),
        "enable_auto_export's path"
    );
    let vars: Vec<&str> = files[0].1.variables.iter().map(|v| v.var_name.as_str()).collect();
    assert_eq!(vars, ["my_vec"]);

    let dir = scratch("select_program_path_o");
    let out = command(&dir)
        .args(["run", "-o", "chosen.json"])
        .arg(&seed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: Vec<PathBuf> = json_files(&dir);
    assert_eq!(names, [dir.join("chosen.json")], "-o wins");

    let dir = scratch("select_program_path_env");
    let out = command(&dir)
        .env("MEMSCOPE_EXPORT_PATH", "env-%p.json")
        .arg("run")
        .arg(&seed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let files = snapshots(&dir);
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].0,
        dir.join(format!("env-{}.json", files[0].1.process.pid)),
        "the user's MEMSCOPE_EXPORT_PATH wins"
    );
}

/// `dir/two.sh`, which runs `prog_a` then `prog_b` (copies of the CLI test
/// program) with known allocation counts, and exits with prog_b's code.
fn two_programs(dir: &Path) -> PathBuf {
    for name in ["prog_a", "prog_b"] {
        std::fs::copy(prog(), dir.join(name)).unwrap();
    }
    let script = dir.join("two.sh");
    let (a, b) = (dir.join("prog_a"), dir.join("prog_b"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n'{}' alloc 100 64 0 0\n'{}' alloc 300 32 0 5\n",
            a.display(),
            b.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

fn run_selected(test: &str, select: &[&str]) -> (PathBuf, Vec<(PathBuf, memscope_format::Snapshot)>, Output) {
    let dir = scratch(test);
    let script = two_programs(&dir);
    let out = command(&dir).arg("run").args(select).arg(&script).output().unwrap();
    let snaps = snapshots(&dir);
    (dir, snaps, out)
}

#[test]
fn only_and_skip_choose_images_and_children_of_skipped_ones_are_traced() {
    let (_, snaps, out) = run_selected("select_only_b", &["--only", "prog_b"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "the program's exit code: {err}");
    assert_eq!(snaps.len(), 1, "only prog_b recorded, not sh nor prog_a: {err}");
    let s = &snaps[0].1;
    assert_eq!(exe_name(s), "prog_b");
    assert_eq!(s.summary.total_allocations, 301, "300 blocks and the pointer array");
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("memscope: {} (pid {})", s.process.exe, s.process.pid)),
        "{err}"
    );
    assert!(first.contains("1 process image traced, 2 skipped"), "{err}");
    assert!(!err.contains("matched no process"), "{err}");

    let (_, snaps, out) = run_selected("select_skip", &["--skip", "prog_b", "--skip", "*sh"]);
    assert_eq!(out.status.code(), Some(5));
    let names: Vec<&str> = snaps.iter().map(|(_, s)| exe_name(s)).collect();
    assert_eq!(names, ["prog_a"], "{}", stderr(&out));
    assert_eq!(snaps[0].1.summary.total_allocations, 101);

    // A path pattern and a name pattern together.
    let dir = scratch("select_path_pattern");
    let (_, snaps, out) = run_selected(
        "select_path_pattern",
        &["--only", &format!("{}/*_a", dir.display()), "--only", "prog_b"],
    );
    let mut names: Vec<&str> = snaps.iter().map(|(_, s)| exe_name(s)).collect();
    names.sort();
    assert_eq!(names, ["prog_a", "prog_b"], "{}", stderr(&out));
}

#[test]
fn a_pattern_that_matches_nothing_is_one_warning_at_the_end() {
    let (_, snaps, out) = run_selected("select_no_match", &["--only", "foo"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "still the program's exit code: {err}");
    assert!(snaps.is_empty(), "{snaps:?}");
    assert_eq!(
        err.lines().last(),
        Some("memscope: --only 'foo' matched no process"),
        "{err}"
    );
    assert_eq!(err.matches("matched no process").count(), 1, "{err}");

    let (_, snaps, out) = run_selected("select_skip_no_match", &["--skip", "nothing-like-it"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(snaps.len(), 3, "sh, prog_a and prog_b: {err}");
    assert_eq!(
        err.lines().last(),
        Some("memscope: --skip 'nothing-like-it' matched no process"),
        "{err}"
    );
}

/// A tiny crate (the seed's example, taking its output path as its
/// argument) depending on memscope-rs by path, built once, offline, into a
/// target directory kept between test runs.
fn seed_crate() -> (PathBuf, PathBuf) {
    let dir = profile_dir().join("seed-crate");
    let target = profile_dir().join("seed-crate-target");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"seedprog\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nmemscope-rs = {{ path = \"{}\" }}\n\n[workspace]\n",
        root().join("memscope-rs").display()
    );
    let main = "use memscope_rs::track_var;\n\nfn main() {\n    memscope_rs::init();\n    \
                let out = std::env::args().nth(1).unwrap_or_else(|| \"my_memory_analysis.json\".into());\n    \
                memscope_rs::enable_auto_export(Some(&out));\n    let my_vec = vec![1, 2, 3];\n    \
                let tracked_vec = track_var!(my_vec);\n    assert_eq!(tracked_vec.len(), 3);\n}\n\n\
                #[test]\nfn one_block() {\n    let v = vec![7u8; 1000];\n    assert_eq!(v.len(), 1000);\n}\n";
    let write_if_changed = |p: PathBuf, text: &str| {
        if std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
            std::fs::write(p, text).unwrap();
        }
    };
    write_if_changed(dir.join("Cargo.toml"), &manifest);
    write_if_changed(dir.join("src/main.rs"), main);
    if !dir.join("Cargo.lock").exists() {
        std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    }
    let st = cargo(&dir, &target)
        .args(["build", "--release", "--offline", "-q"])
        .status()
        .expect("run cargo (install Rust with rustup: https://rustup.rs)");
    assert!(st.success(), "building the seed crate failed");
    (dir, target)
}

/// `cargo` from PATH (as a user types it, through rustup's proxy), with
/// the crate's target directory and no memscope variables.
fn cargo(dir: &Path, target: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("LD_PRELOAD");
    c
}

#[test]
fn cargo_run_traces_only_the_program_cargo_runs() {
    let (krate, target) = seed_crate();
    let dir = scratch("select_cargo_run");
    let manifest = krate.join("Cargo.toml");
    let out = command(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .args(["run", "cargo", "run", "--release", "-q", "--manifest-path"])
        .arg(&manifest)
        .args(["--", "out.json"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let snaps = snapshots(&dir);
    assert_eq!(snaps.len(), 1, "cargo and rustup are not traced: {err}");
    let (path, s) = &snaps[0];
    assert_eq!(path, &dir.join("out.json"), "the program's own path, as -o would be");
    let program = std::fs::canonicalize(target.join("release/seedprog")).unwrap();
    assert_eq!(Path::new(&s.process.exe), program);
    let vars: Vec<&str> = s.variables.iter().map(|v| v.var_name.as_str()).collect();
    assert_eq!(vars, ["my_vec"]);
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("memscope: {} (pid {})", program.display(), s.process.pid)),
        "{err}"
    );
    assert!(first.contains("skipped (") && first.contains("cargo"), "{err}");

    // --all: every process as before, the program still leads.
    for p in json_files(&dir) {
        std::fs::remove_file(p).unwrap();
    }
    let out = command(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .args(["run", "--all", "--export", "both", "-o", "all.json"])
        .args(["cargo", "run", "--release", "-q", "--manifest-path"])
        .arg(&manifest)
        .args(["--", "out.json"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let snaps = snapshots(&dir);
    let names: Vec<&str> = snaps.iter().map(|(_, s)| exe_name(s)).collect();
    assert!(names.contains(&"cargo") && names.contains(&"seedprog"), "{names:?}");
    let lead = err.lines().nth(1).unwrap();
    assert!(
        lead.contains("seedprog (pid") && lead.contains("is the program cargo ran"),
        "{err}"
    );
    let html = std::fs::read_to_string(dir.join("all.html")).unwrap();
    assert!(
        html.contains("<span class=\"prog\">seedprog</span>"),
        "the report leads with the program too"
    );
}

#[test]
fn without_a_choice_the_summary_leads_with_the_heaviest_non_launcher() {
    let dir = scratch("select_lead_non_launcher");
    let prog_a = dir.join("prog_a");
    std::fs::copy(prog(), &prog_a).unwrap();
    // bash allocates ~1 MB for its variable, prog_a 16 blocks of 8 bytes
    // and its 128-byte pointer array: bash allocated most, yet it only launches.
    let script = format!("x=$(printf '%1000000s' ''); '{}' alloc 16 8 0 0", prog_a.display());
    let out = command(&dir).args(["run", "bash", "-c", &script]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let snaps = snapshots(&dir);
    let (bash, a) = (of(&snaps, "bash"), of(&snaps, "prog_a"));
    assert!(
        bash.summary.total_allocated_bytes > 1_000_000,
        "{}",
        bash.summary.total_allocated_bytes
    );
    assert_eq!(a.summary.total_allocations, 17);
    let lead = err.lines().nth(1).unwrap();
    assert_eq!(
        lead,
        format!(
            "memscope: {} (pid {}) allocated most apart from launchers (--only NAME chooses another) (exited with code 0):",
            a.process.exe, a.process.pid
        ),
        "{err}"
    );
    assert!(
        err.contains("allocated:    256 B in 17 allocations"),
        "the lead's own lines: {err}"
    );
}

#[test]
fn bad_choices_are_one_line_errors() {
    let dir = scratch("select_bad_choices");
    for (args, what) in [
        (&["--all", "--only", "x"][..], "cannot be used with"),
        (&["--only", "a:b"][..], "without ':'"),
        (&["--skip", ""][..], "non-empty pattern"),
    ] {
        let out = command(&dir).arg("run").args(args).arg("/bin/true").output().unwrap();
        let line = assert_one_line_error(&out, &format!("{args:?}"));
        assert!(line.contains(what), "{line}");
    }
    assert!(json_files(&dir).is_empty(), "nothing ran");
}

#[test]
fn cargo_test_traces_only_the_test_binary() {
    let (krate, target) = seed_crate();
    let dir = scratch("select_cargo_test");
    let out = command(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .args([
            "run",
            "cargo",
            "test",
            "--release",
            "--offline",
            "-q",
            "--manifest-path",
        ])
        .arg(krate.join("Cargo.toml"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let snaps = snapshots(&dir);
    assert_eq!(
        snaps.len(),
        1,
        "only the test binary (rustc, if it ran, is skipped too): {err}"
    );
    let s = &snaps[0].1;
    let deps = std::fs::canonicalize(target.join("release/deps")).unwrap();
    assert!(Path::new(&s.process.exe).starts_with(&deps), "{}", s.process.exe);
    assert!(exe_name(s).starts_with("seedprog-"), "{}", s.process.exe);
    assert!(s.summary.total_allocated_bytes >= 1000, "the test's vec![7u8; 1000]");
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("memscope: {} (pid {})", s.process.exe, s.process.pid)),
        "{err}"
    );
    assert!(first.contains("skipped (") && first.contains("cargo"), "{err}");
}
