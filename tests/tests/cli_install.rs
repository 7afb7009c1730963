//! memscope-cli installed on its own: which libmemscope.so `run` injects
//! (`MEMSCOPE_LIB`, then one beside the executable, then the copy embedded
//! in it, written once to the per-user cache), what a cache that cannot be
//! written does, and a real `cargo install --path cli` whose `run` works
//! with no library installed beside it.

use memscope_tests::cli::*;
use memscope_tests::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A copy of the CLI alone in `dir/bin`, as `cargo install` leaves it.
fn lone_cli(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let copy = bin.join("memscope-cli");
    // Copied by `cp`, not from this process: while the copy was open for
    // writing here, another test's thread could spawn a child that held the
    // descriptor until its own exec, and running the copy then failed with
    // ETXTBSY ("Text file busy"; seen once in CI).
    let cp = Command::new("cp").arg(cli_path()).arg(&copy).status().expect("run cp");
    assert!(cp.success(), "cp {} {}", cli_path().display(), copy.display());
    copy
}

/// `cli run …` with the memscope variables cleared and the cache in `cache`.
fn run_with_cache(cli: &Path, dir: &Path, cache: &Path, args: &[&str]) -> Output {
    command_of(cli, dir)
        .env("XDG_CACHE_HOME", cache)
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}

/// The library `run` put in `LD_PRELOAD` (the first entry).
fn injected(cli: &Path, dir: &Path, cache: &Path) -> PathBuf {
    let out = run_with_cache(cli, dir, cache, &["-o", "p.json", "sh", "-c", "echo \"$LD_PRELOAD\""]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    PathBuf::from(stdout(&out).trim().split(':').next().unwrap())
}

/// Files in the cache, recursively.
fn cache_files(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![cache.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `cli_prog alloc 1000 64 10 7` traced by `cli`: the counts the program's
/// design fixes (as `cli_run`'s first test).
fn assert_traces_exactly(cli: &Path, dir: &Path, cache: &Path) {
    let prog = prog();
    let out = run_with_cache(
        cli,
        dir,
        cache,
        &[
            "-o",
            "exact.json",
            prog.to_str().unwrap(),
            "alloc",
            "1000",
            "64",
            "10",
            "7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let s = memscope_format::read_snapshot_file(&dir.join("exact.json")).unwrap();
    check_invariants(&s);
    assert_eq!(s.summary.total_allocations, 1001);
    assert_eq!(s.summary.live_at_exit_bytes, 640);
    assert_eq!(s.summary.peak_live_bytes, 1000 * 64 + 1000 * 8);
}

#[test]
fn library_lookup_order_and_the_embedded_copy() {
    let dir = scratch("cli_install_lookup");
    let cli = lone_cli(&dir);
    let cache = dir.join("cache");

    // Nothing beside it: the embedded library, written to the cache.
    let lib = injected(&cli, &dir, &cache);
    let libdir = lib.parent().unwrap();
    assert_eq!(lib.file_name().unwrap(), "libmemscope.so");
    assert_eq!(libdir.parent().unwrap(), cache.join("memscope"));
    let sub = libdir.file_name().unwrap().to_str().unwrap();
    assert!(sub.starts_with(&format!("{}-", env!("CARGO_PKG_VERSION"))), "{sub}");
    assert_eq!(std::fs::metadata(libdir).unwrap().mode() & 0o777, 0o700);
    // Beside the library, only the name cache's files (run's naming keeps
    // the names it found there, traced images the unwind rules they
    // derived): no temporary file of any.
    let name_cache_file = |f: &Path| {
        let dir = f.parent().and_then(|d| d.file_name()).and_then(|n| n.to_str());
        dir.is_some_and(|d| d.starts_with("names-")) && f.extension().is_some_and(|e| e == "names" || e == "rules")
    };
    let others: Vec<PathBuf> = cache_files(&cache)
        .into_iter()
        .filter(|f| *f != lib && !name_cache_file(f))
        .collect();
    assert!(others.is_empty(), "no temporary file left: {others:?}");
    let bytes = std::fs::read(&lib).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_traces_exactly(&cli, &dir, &cache);

    // Written once: the next run uses the same file.
    let ino = std::fs::metadata(&lib).unwrap().ino();
    assert_eq!(injected(&cli, &dir, &cache), lib);
    assert_eq!(std::fs::metadata(&lib).unwrap().ino(), ino);

    // A damaged copy is replaced, not injected.
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&lib, &bytes[..4096]).unwrap();
    assert_eq!(injected(&cli, &dir, &cache), lib);
    assert_eq!(std::fs::read(&lib).unwrap(), bytes);

    // Concurrent first runs on an empty cache all succeed, one file results.
    let cache2 = dir.join("cache2");
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let (cli, dir, cache2) = (cli.clone(), dir.clone(), cache2.clone());
            std::thread::spawn(move || run_with_cache(&cli, &dir, &cache2, &["-o", &format!("c{i}.json"), "true"]))
        })
        .collect();
    for r in runs {
        let out = r.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let files = cache_files(&cache2);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), bytes);

    // A library beside the executable wins over the embedded one…
    let beside = cli.parent().unwrap().join("libmemscope.so");
    std::os::unix::fs::symlink(lib_path(), &beside).unwrap();
    let build_lib = std::fs::canonicalize(lib_path()).unwrap();
    assert_eq!(injected(&cli, &dir, &cache), build_lib);
    std::fs::remove_file(&beside).unwrap();
    // …and so does one in ../lib (a packaged install).
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::os::unix::fs::symlink(lib_path(), dir.join("lib/libmemscope.so")).unwrap();
    assert_eq!(injected(&cli, &dir, &cache), build_lib);

    // MEMSCOPE_LIB wins over everything.
    let chosen = dir.join("chosen.so");
    std::fs::copy(lib_path(), &chosen).unwrap();
    let out = command_of(&cli, &dir)
        .env("MEMSCOPE_LIB", &chosen)
        .env("XDG_CACHE_HOME", &cache)
        .args(["run", "-o", "m.json", "sh", "-c", "echo \"$LD_PRELOAD\""])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), chosen.display().to_string(), "{}", stderr(&out));
}

#[test]
fn a_cache_that_cannot_be_written_is_one_line() {
    let dir = scratch("cli_install_bad_cache");
    let cli = lone_cli(&dir);

    // The cache's parent is a file: nothing can be created under it.
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = run_with_cache(&cli, &dir, &file, &["-o", "x.json", "true"]);
    let line = assert_one_line_error(&out, "cache under a file");
    assert!(
        line.contains("cannot create") && line.contains("MEMSCOPE_LIB"),
        "{line}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    assert!(!dir.join("x.json").exists(), "nothing ran");

    // A cache directory others may write to is refused, and left alone.
    let shared = dir.join("shared");
    let sub = shared.join("memscope").join(cache_subdir(&cli, &dir));
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run_with_cache(&cli, &dir, &shared, &["-o", "x.json", "true"]);
    let line = assert_one_line_error(&out, "shared cache");
    assert!(line.contains("not a private directory"), "{line}");
    assert!(cache_files(&shared).is_empty(), "nothing half-written");

    // No cache directory at all.
    let out = command_of(&cli, &dir)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HOME")
        .args(["run", "-o", "x.json", "true"])
        .output()
        .unwrap();
    let line = assert_one_line_error(&out, "no HOME");
    assert!(line.contains("HOME and XDG_CACHE_HOME are unset"), "{line}");
}

/// `run` marks the cache parts it uses and removes other builds' parts
/// left unused for a month, except a library a `run` still going on holds;
/// nothing that is not memscope's is touched.
#[test]
fn run_removes_other_builds_cache_parts_unused_for_a_month() {
    use std::os::fd::AsRawFd;
    use std::time::{Duration, SystemTime};
    let dir = scratch("cli_install_tidy");
    let cli = lone_cli(&dir);
    let cache = dir.join("cache");
    let root = cache.join("memscope");
    let days_ago = |d: u64| SystemTime::now() - Duration::from_secs(d * 24 * 3600);
    let set_mtime = |p: &Path, t: SystemTime| std::fs::File::open(p).unwrap().set_modified(t).unwrap();
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let part = |name: &str, files: &[&str], age_days: u64| -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in files {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        set_mtime(&d, days_ago(age_days));
        d
    };
    let stale_names = part(
        "names-00aa43e2d8d6f21b093394d174f021bbffff157b",
        &["93ac61ec.names", "93ac61ec.rules", ".93ac61ec.names.77.0.tmp"],
        40,
    );
    let recent_names = part("names-11bb43e2d8d6f21b093394d174f021bbffff157b", &["a.names"], 20);
    let stale_lib = part("0.0.1-0123456789abcdef", &["libmemscope.so"], 40);
    let held_lib = part("0.0.2-0123456789abcdef", &["libmemscope.so"], 40);
    // Old, but not only memscope's files, or not named as its parts.
    let foreign = part(
        "names-22cc43e2d8d6f21b093394d174f021bbffff157b",
        &["a.names", "notes.txt"],
        40,
    );
    let other = part("backup-0123456789abcdef", &["libmemscope.so"], 40);
    let loose = root.join("names-33dd");
    std::fs::write(&loose, b"x").unwrap();
    set_mtime(&loose, days_ago(40));
    // A run of that build, still going on, holds its library.
    let held = std::fs::File::open(held_lib.join("libmemscope.so")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_SH) }, 0);

    let lib = injected(&cli, &dir, &cache);
    assert!(
        !stale_names.exists() && !stale_lib.exists(),
        "unused for 40 days: removed"
    );
    for kept in [&recent_names, &held_lib, &foreign, &other, &loose] {
        assert!(kept.exists(), "{} kept", kept.display());
    }
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 2, "not emptied either");

    // This run's own library, however old its directory looks, is marked
    // used, not removed.
    let own = lib.parent().unwrap().to_path_buf();
    assert_eq!(own.parent(), Some(root.as_path()));
    set_mtime(&own, days_ago(60));
    assert_eq!(injected(&cli, &dir, &cache), lib);
    assert!(lib.is_file());
    assert!(mtime(&own) > days_ago(1), "marked used");
    assert!(held_lib.exists(), "still held");

    // Once that run ends, its library goes at the next run.
    drop(held);
    injected(&cli, &dir, &cache);
    assert!(!held_lib.exists(), "released, unused for 40 days: removed");
    assert!(recent_names.exists() && foreign.exists() && other.exists() && loose.exists());
}

/// The cache subdirectory this build writes (learned from a run).
fn cache_subdir(cli: &Path, dir: &Path) -> String {
    let probe = dir.join("probe-cache");
    let lib = injected(cli, dir, &probe);
    lib.parent().unwrap().file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn cargo_install_gives_a_cli_whose_run_works_alone() {
    let dir = scratch("cli_install_cargo");
    ensure_built();
    let root = dir.join("prefix");
    let target_dir = profile_dir().parent().unwrap().to_path_buf();
    let mut c = Command::new(env!("CARGO"));
    c.args(["install", "--offline", "--locked", "--quiet", "--path"])
        .arg(memscope_tests::root().join("cli"))
        .arg("--root")
        .arg(&root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(&dir);
    if !profile_dir().ends_with("release") {
        c.arg("--debug");
    }
    let out = c.output().expect("run cargo install");
    assert!(out.status.success(), "cargo install failed: {}", stderr(&out));
    let cli = root.join("bin/memscope-cli");
    let installed: Vec<_> = std::fs::read_dir(root.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(installed, ["memscope-cli"], "only the CLI is installed");
    assert!(!root.join("lib").exists());
    assert_traces_exactly(&cli, &dir, &dir.join("cache"));
    let version = Command::new(&cli).arg("--version").output().unwrap();
    assert!(stdout(&version).starts_with(&format!("memscope-cli {} (commit ", env!("CARGO_PKG_VERSION"))));
}
