//! Shared harness for the integration tests: builds libmemscope.so and
//! memscope-cli (same profile as the tests), compiles the C and Rust test
//! programs in `tests/programs/`, runs them traced in a private directory and
//! reads back every snapshot they wrote.

pub mod cli;
pub mod dhat;
pub mod running;
pub mod tools;

use memscope_format::Snapshot;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `target/<profile>` of the running test binary.
pub fn profile_dir() -> PathBuf {
    // The test binary lives in target/<profile>/deps/.
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn is_release() -> bool {
    profile_dir().file_name().is_some_and(|n| n == "release")
}

/// Builds libmemscope.so and memscope-cli once per test binary.
pub fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "-q", "-p", "memscope-preload", "-p", "memscope-cli"])
            .current_dir(root());
        if is_release() {
            c.arg("--release");
        }
        let st = c.status().expect("run cargo build");
        assert!(st.success(), "building libmemscope.so / memscope-cli failed");
    });
}

pub fn lib_path() -> PathBuf {
    ensure_built();
    profile_dir().join("libmemscope.so")
}

pub fn cli_path() -> PathBuf {
    ensure_built();
    profile_dir().join("memscope-cli")
}

/// Where compiled test programs go.
pub fn programs_dir() -> PathBuf {
    let d = profile_dir().join("test-programs");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn source(name: &str) -> PathBuf {
    root().join("tests/programs").join(name)
}

/// Compiles `tests/programs/<name>.c` (-O0 -g -fno-builtin, so every call
/// the source makes is a call the binary makes: gcc otherwise folds e.g.
/// `realloc(NULL, n)` into `malloc(n)`) and returns the binary.
pub fn c_program(name: &str, extra: &[&str]) -> PathBuf {
    let flags = ["-O0", "-fno-builtin", "-fno-omit-frame-pointer", "-pthread", "-Wall"];
    gcc(name, &[&format!("{name}.c")], &[&flags[..], extra, &["-ldl"]].concat())
}

/// Compiles `tests/programs/<name>.cpp` with g++ (-O0 -g -fno-builtin).
pub fn cpp_program(name: &str) -> PathBuf {
    let out = programs_dir().join(name);
    let src = source(&format!("{name}.cpp"));
    if !is_fresh(&out, &src) {
        let st = Command::new("g++")
            .args(["-O0", "-g", "-fno-builtin", "-std=c++17", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run g++ (install g++)");
        assert!(st.success(), "g++ {name}.cpp failed");
    }
    out
}

/// Compiles `tests/programs/<name>.c` as a shared library `lib<name>.so`.
pub fn c_library(name: &str) -> PathBuf {
    let out = programs_dir().join(format!("lib{name}.so"));
    let src = source(&format!("{name}.c"));
    if !is_fresh(&out, &src) {
        let st = Command::new("gcc")
            .args(["-O0", "-g", "-fno-builtin", "-fPIC", "-shared", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run gcc");
        assert!(st.success(), "gcc {name}.c (shared) failed");
    }
    out
}

/// Runs gcc on `tests/programs/<sources>` with `args` (flags, libraries)
/// into `<programs>/<out_name>`, unless that is newer than every source.
/// For tests that need their own flags (optimization, no frame pointers,
/// linked libraries: `-L` [`programs_dir`] is passed).
pub fn gcc(out_name: &str, sources: &[&str], args: &[&str]) -> PathBuf {
    let _l = build_lock();
    let out = programs_dir().join(out_name);
    let srcs: Vec<PathBuf> = sources.iter().map(|s| source(s)).collect();
    if srcs.iter().all(|s| is_fresh(&out, s)) {
        return out;
    }
    let st = Command::new("gcc")
        .args(["-g", "-o"])
        .arg(&out)
        .args(&srcs)
        .arg("-L")
        .arg(programs_dir())
        .args(args)
        .status()
        .expect("run gcc (install gcc)");
    assert!(st.success(), "gcc {sources:?} {args:?} failed");
    out
}

/// Builds the examples of memscope-rs (once per test binary, same profile
/// as the tests) and returns the one called `name`.
pub fn rs_example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "-q", "-p", "memscope-rs", "--examples"])
            .current_dir(root());
        if is_release() {
            c.arg("--release");
        }
        assert!(
            c.status().expect("run cargo build").success(),
            "building memscope-rs's examples failed"
        );
    });
    profile_dir().join("examples").join(name)
}

/// Held while a test program is built: two tests of one binary needing the
/// same program must not both write it.
fn build_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Compiles `tests/programs/<name>.rs` with rustc.
pub fn rust_program(name: &str) -> PathBuf {
    let _l = build_lock();
    let out = programs_dir().join(name);
    let src = source(&format!("{name}.rs"));
    if !is_fresh(&out, &src) {
        let st = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .args(["-O", "-g", "--edition", "2021", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run rustc");
        assert!(st.success(), "rustc {name}.rs failed");
    }
    out
}

fn is_fresh(out: &Path, src: &Path) -> bool {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((m(out), m(src)), (Some(o), Some(s)) if o >= s)
}

/// A fresh directory for one test's files.
pub fn scratch(test: &str) -> PathBuf {
    let d = profile_dir().join("test-scratch").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The result of one traced run.
pub struct Run {
    pub output: Output,
    pub dir: PathBuf,
    /// Every snapshot the run's images wrote, in the order they finished.
    pub snapshots: Vec<(PathBuf, Snapshot)>,
}

impl Run {
    /// The single snapshot of a one-image run.
    pub fn only(&self) -> &Snapshot {
        assert_eq!(self.snapshots.len(), 1, "expected one snapshot, got {:?}", self.paths());
        &self.snapshots[0].1
    }

    pub fn paths(&self) -> Vec<&Path> {
        self.snapshots.iter().map(|(p, _)| p.as_path()).collect()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The snapshot of the image whose executable path ends with `exe` and
    /// whose end is `end`.
    pub fn find(&self, pred: impl Fn(&Snapshot) -> bool) -> Vec<&Snapshot> {
        self.snapshots.iter().map(|(_, s)| s).filter(|s| pred(s)).collect()
    }
}

/// Runs `program args…` with libmemscope.so preloaded, snapshots to
/// `<dir>/snap.json` (the root image) and `snap.<pid>….json` (the others).
pub fn traced(test: &str, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_with(test, program, args, env, true)
}

/// Runs a program that links memscope-rs without `LD_PRELOAD` (the engine
/// runs in-process), snapshots to the same places as [`traced`].
pub fn in_process(test: &str, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_with(test, program, args, env, false)
}

fn run_with(test: &str, program: &Path, args: &[&str], env: &[(&str, &str)], preload: bool) -> Run {
    let dir = scratch(test);
    let output = command_in(&dir, program, args, env, preload)
        .output()
        .expect("run traced program");
    let snapshots = read_manifest(&dir);
    Run { output, dir, snapshots }
}

/// Like [`traced`], but the program is killed once `limit` has passed:
/// None when it had not finished by then (a test of a hang fails instead
/// of hanging the suite).
pub fn traced_within(test: &str, program: &Path, args: &[&str], limit: std::time::Duration) -> Option<Run> {
    let dir = scratch(test);
    let mut child = command_in(&dir, program, args, &[], true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run traced program");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait for the program").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("read the program's output");
    let snapshots = read_manifest(&dir);
    Some(Run { output, dir, snapshots })
}

/// `program args…` to run in `dir`, snapshots to `<dir>/snap.json` and the
/// manifest beside it; with libmemscope.so preloaded when `preload`.
fn command_in(dir: &Path, program: &Path, args: &[&str], env: &[(&str, &str)], preload: bool) -> Command {
    let mut cmd = Command::new(program);
    default_dispositions(&mut cmd);
    if preload {
        cmd.env("LD_PRELOAD", lib_path());
    } else {
        cmd.env_remove("LD_PRELOAD");
    }
    cmd.args(args)
        .current_dir(dir)
        .env("MEMSCOPE_EXPORT_PATH", dir.join("snap.json"))
        .env("MEMSCOPE_MANIFEST", dir.join("manifest"))
        .env("MEMSCOPE_RUN_PPID", std::process::id().to_string())
        .env_remove("MEMSCOPE_ROOT_PID")
        .env_remove("MEMSCOPE_EXEC_SEQ");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Reads every snapshot listed in `<dir>/manifest`.
pub fn read_manifest(dir: &Path) -> Vec<(PathBuf, Snapshot)> {
    let text = std::fs::read_to_string(dir.join("manifest")).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter(|l| !l.is_empty() && seen.insert(l.to_string()))
        .map(|l| {
            let p = PathBuf::from(l);
            let s = memscope_format::read_snapshot_file(&p).unwrap_or_else(|e| panic!("{l}: {e}"));
            (p, s)
        })
        .collect()
}

/// Runs `program args…` without memscope.
pub fn untraced(program: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    default_dispositions(&mut cmd);
    cmd.args(args).output().expect("run program")
}

/// Starts the program with SIGHUP, SIGINT and SIGQUIT at their default
/// disposition, as a terminal's shell gives them: the suite started by
/// `nohup`, or in the background of a shell without job control, would
/// otherwise hand its programs those signals ignored, and a program that
/// raises one (tests/programs/endings.c) would not end by it, traced or not.
pub fn default_dispositions(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: `signal` is async-signal-safe; nothing else runs between the
    // fork and the exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

/// A frame of a call site with its module path (the version-2 tables
/// resolved), for tests that look at stacks.
#[derive(Debug, Clone)]
pub struct StackFrame {
    pub ip: String,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub module: String,
    pub inlined: bool,
}

/// A call site's frames, innermost first.
pub fn stack(s: &Snapshot, site: &memscope_format::Callsite) -> Vec<StackFrame> {
    s.frames_of(site)
        .map(|f| StackFrame {
            ip: f.ip.clone(),
            function: f.function.clone(),
            file: f.file.clone(),
            line: f.line,
            module: s.module_of(f).unwrap_or_default().to_owned(),
            inlined: f.inlined,
        })
        .collect()
}

/// What the call sites with `function` anywhere in their stack add up to:
/// (allocations, bytes, allocations live at exit, bytes live at exit).
pub fn sites_under(s: &Snapshot, function: &str) -> (u64, u64, u64, u64) {
    s.callsites
        .iter()
        .filter(|c| s.frames_of(c).any(|f| f.function.as_deref() == Some(function)))
        .fold((0, 0, 0, 0), |t, c| {
            (
                t.0 + c.allocations,
                t.1 + c.bytes,
                t.2 + c.live_at_exit_allocations,
                t.3 + c.live_at_exit_bytes,
            )
        })
}

/// Sets a snapshot's call sites, each given with its frames (whose `module`
/// indexes `modules`), and builds the version-2 tables.
pub fn install_sites(
    s: &mut Snapshot,
    modules: &[&str],
    sites: Vec<(memscope_format::Callsite, Vec<memscope_format::Frame>)>,
) {
    let mut t = memscope_format::FrameTables::new();
    for m in modules {
        t.module(m);
    }
    s.callsites = sites
        .into_iter()
        .map(|(mut c, frames)| {
            c.frames = frames.into_iter().map(|f| t.frame(f)).collect();
            c
        })
        .collect();
    t.install(s);
}

/// Checks the invariants every snapshot must satisfy, whatever the program.
pub fn check_invariants(s: &Snapshot) {
    let m = &s.summary;
    assert_eq!(s.format, "memscope");
    assert_eq!(s.format_version, memscope_format::FORMAT_VERSION);
    s.check_tables().expect("frame and module indices in range");
    // Each module path and each frame is stored once (SPEC §3, version 2).
    let distinct: std::collections::HashSet<&String> = s.modules.iter().collect();
    assert_eq!(distinct.len(), s.modules.len(), "a module listed twice");
    let distinct: std::collections::HashSet<&memscope_format::Frame> = s.frames.iter().collect();
    assert_eq!(distinct.len(), s.frames.len(), "a frame listed twice");
    assert_eq!(m.events_dropped, 0, "events were dropped");
    // Every block born is freed, reallocated away, or live at the end.
    assert_eq!(
        m.total_allocations,
        m.total_frees + m.live_at_exit_allocations,
        "allocations = frees + live at exit"
    );
    assert_eq!(
        m.total_allocated_bytes - m.total_freed_bytes,
        m.live_at_exit_bytes,
        "bytes balance"
    );
    assert!(m.peak_live_bytes >= m.live_at_exit_bytes);
    assert!(s.process.start_unix_ns <= s.process.end_unix_ns);
    // A forked child's peak may lie in the history it inherited.
    assert!(m.peak_unix_ns <= s.process.end_unix_ns);
    assert!(s.process.forked || m.peak_unix_ns >= s.process.start_unix_ns);
    let listed = s.allocations.len() as u64;
    assert_eq!(
        listed + m.records_omitted,
        m.total_allocations + m.reallocs,
        "records listed + omitted = blocks"
    );
    if m.inherited_only {
        // SPEC §2: a fork child without events of its own shows its
        // parent's summary at the fork and nothing of its heap.
        assert!(s.process.forked && s.allocations.is_empty() && s.callsites.is_empty());
        assert!(s.timeline.iter().any(|p| p.1 == m.peak_live_bytes));
        return;
    }
    for a in &s.allocations {
        assert!(a.timestamp_dealloc >= a.timestamp_alloc, "{a:?}");
        assert_eq!(a.lifetime_ns, a.timestamp_dealloc - a.timestamp_alloc, "{a:?}");
        assert_eq!(a.lifetime_ms, a.lifetime_ns / 1_000_000);
        assert!(a.callsite.is_some());
        if a.is_leaked {
            assert_eq!(
                a.timestamp_dealloc, s.process.end_unix_ns,
                "leaked blocks end at the end"
            );
        }
    }
    // A fork child lists and aggregates what it did itself; the blocks it
    // inherited and never touched are counted, not listed.
    assert_eq!(
        s.process.forked,
        m.at_fork.is_some(),
        "fork children say what they inherited"
    );
    let at_fork = m.at_fork.unwrap_or_default();
    // A running snapshot's live blocks are not leaked (SPEC §3): they end
    // at the snapshot's moment.
    let running = s.process.end == memscope_format::EndKind::Running;
    let live_listed = s
        .allocations
        .iter()
        .filter(|a| a.is_leaked || (running && a.timestamp_dealloc == s.process.end_unix_ns))
        .count() as u64;
    assert!(
        live_listed + m.inherited_live_at_exit_allocations == m.live_at_exit_allocations
            || listed == s.tool.max_records
    );
    assert!(
        s.allocations.iter().all(|a| !(a.inherited && a.is_leaked)),
        "untouched inherited blocks are the parent's"
    );
    let site_allocs: u64 = s.callsites.iter().map(|c| c.allocations).sum();
    let site_bytes: u64 = s.callsites.iter().map(|c| c.bytes).sum();
    assert_eq!(site_allocs, m.total_allocations - at_fork.total_allocations);
    assert_eq!(site_bytes, m.total_allocated_bytes - at_fork.total_allocated_bytes);
    let hist: u64 = s.lifetime_histogram.iter().map(|b| b.count).sum();
    let own_blocks = m.total_allocations + m.reallocs - at_fork.total_allocations - at_fork.reallocs;
    assert_eq!(hist, own_blocks, "every block of the image has a lifetime");
    assert!(
        s.timeline.iter().any(|p| p.1 == m.peak_live_bytes),
        "the timeline keeps the peak"
    );
}
