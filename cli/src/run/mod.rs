//! `run [--export json|html|both] [-o PATH] [--backtrace N] [--all | --only
//! PAT… | --skip PAT…] [--] CMD [ARGS…]`: traces CMD and every process it
//! starts with libmemscope.so (or those [`focus`] chooses), waits for
//! all of them, writes the report, prints a short summary to stderr and
//! exits with CMD's own exit code (128+N for signal N).
//!
//! Options after CMD belong to CMD (`memscope-cli run cargo run --release`).

mod cargo;
mod child;
pub(crate) mod digest;
mod finish;
mod focus;
mod groups;
mod handoff;
mod library;
mod names;
mod tail;
mod target;
mod tidy;

use crate::text::term;
use crate::Outcome;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Export {
    /// One JSON snapshot per process image.
    Json,
    /// One HTML report over every process (the JSON snapshots are not kept).
    Html,
    /// Both.
    Both,
}

/// Run a command with every heap allocation traced.
#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
pub struct Args {
    /// What to write; default: $MEMSCOPE_EXPORT_FORMAT, else json.
    #[arg(long, value_enum)]
    export: Option<Export>,
    /// The first process's snapshot (other processes insert .<pid> before the
    /// extension); default: $MEMSCOPE_EXPORT_PATH, else memscope-%e-%p.json
    /// (%e = program name, %p = pid). The report goes beside it as .html,
    /// the run manifest (every snapshot of the run) as .run.json.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    output: Option<PathBuf>,
    /// Stack frames recorded per allocation (0 = none; more frames, more cost).
    #[arg(long, value_name = "N")]
    backtrace: Option<u32>,
    #[command(flatten)]
    wrappers: crate::sites::WrapperArgs,
    /// Trace every process, also cargo, rustup and rustc under a cargo
    /// command (by default only what cargo runs from the target directory).
    #[arg(long, conflicts_with_all = ["only", "skip"])]
    all: bool,
    /// Only processes whose executable matches PATTERN record (a glob; with
    /// a '/' it is matched against the full path, else the name).
    /// Repeatable. The others record nothing, but their children are followed.
    #[arg(long, value_name = "PATTERN")]
    only: Vec<String>,
    /// Processes whose executable matches PATTERN record nothing (their
    /// children are still followed). Repeatable; wins over --only.
    #[arg(long, value_name = "PATTERN")]
    skip: Vec<String>,
    /// Also write a running snapshot of every traced process this often
    /// (e.g. 10s, 500ms, 5m), named after its snapshot with .at-<unix ms>
    /// before the extension, so the names sort in time order.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    every: Option<std::time::Duration>,
    /// Show the live view of `memscope-cli top` on the command's process
    /// while it runs (q or Ctrl-C leaves the view; the command goes on).
    #[arg(long)]
    live: bool,
    /// The command to trace and its arguments.
    #[arg(required = true, value_name = "CMD [ARGS]...")]
    command: Vec<OsString>,
}

/// A duration for `--every`/`--timeout`: `500ms`, `10s`, `5m`, `1h`, or seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    memscope_format::control::parse_duration(s)
        .map(std::time::Duration::from_nanos)
        .ok_or_else(|| format!("{s:?} is not a duration (examples: 500ms, 10s, 5m)"))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// Where the snapshots and the report go.
pub struct Plan {
    pub export: Export,
    /// Absolute snapshot path template, as the user asked for it.
    pub template: PathBuf,
    /// The template the library gets (inside the temporary directory when
    /// only HTML is wanted).
    pub lib_template: PathBuf,
    pub manifest: PathBuf,
    /// The path was chosen by the user (`-o` or `MEMSCOPE_EXPORT_PATH`),
    /// so it wins over a program's own `enable_auto_export` path.
    pub chosen: bool,
}

fn plan(a: &Args, tmp: &Path) -> Result<Plan, String> {
    let export = match a.export {
        Some(e) => e,
        None => match std::env::var("MEMSCOPE_EXPORT_FORMAT").as_deref() {
            Ok("html") => Export::Html,
            Ok("both") => Export::Both,
            _ => Export::Json,
        },
    };
    let user_path = std::env::var_os("MEMSCOPE_EXPORT_PATH").filter(|p| !p.is_empty());
    let chosen = a.output.is_some() || user_path.is_some();
    let template = match &a.output {
        Some(o) if o.as_os_str().is_empty() => return Err("-o needs a path".into()),
        Some(o) => o.clone(),
        None => user_path
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("memscope-%e-%p.json")),
    };
    let template = absolute(&template);
    if template.is_dir() {
        return Err(format!(
            "{} is a directory; give a file name for the first snapshot (e.g. {}/memscope.json)",
            term(&template.display().to_string()),
            term(&template.display().to_string())
        ));
    }
    let dir = template.parent().unwrap_or(Path::new("/"));
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str()))
        .map_err(|_| "the output path contains a NUL byte".to_string())?;
    // SAFETY: valid C string.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "cannot write snapshots to {}: {}",
            term(&dir.display().to_string()),
            crate::load::io_reason(&e)
        ));
    }
    let lib_template = if export == Export::Html {
        tmp.join(template.file_name().unwrap_or_else(|| "memscope.json".as_ref()))
    } else {
        template.clone()
    };
    Ok(Plan {
        export,
        template,
        lib_template,
        manifest: tmp.join("manifest"),
        chosen,
    })
}

pub fn main(a: Args) -> Outcome {
    crate::sites::configure(&a.wrappers)?;
    let mut lib = library::find()?;
    tidy_cache(&lib);
    if !lib.is_file() {
        // Removed by another build's run between finding and holding it
        // (a part unused for a month, used again at that very moment).
        lib = library::find()?;
        tidy_cache(&lib);
    }
    let lib_elf = target::library_elf(&lib)?;
    let program = target::resolve(&a.command[0])?;
    target::check(&program, &lib_elf)?;
    let tmp = tempfile::Builder::new()
        .prefix("memscope-run-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {}", crate::load::io_reason(&e)))?;
    let plan = plan(&a, tmp.path())?;
    let focus = focus::Focus::choose(&a.command, a.all, &a.only, &a.skip)?;
    let skip_log = tmp.path().join("skipped");

    let mut preload = lib.clone().into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    let mut cmd = Command::new(&program);
    cmd.arg0(&a.command[0])
        .args(&a.command[1..])
        .env("LD_PRELOAD", preload)
        .env("MEMSCOPE_RUN_PPID", std::process::id().to_string())
        .env("MEMSCOPE_MANIFEST", &plan.manifest)
        .env("MEMSCOPE_EXPORT_FORMAT", "json")
        .env("MEMSCOPE_SYMBOLIZE", "later")
        .env_remove("MEMSCOPE_AUTO_EXPORT")
        .env_remove("MEMSCOPE_ROOT_PID")
        .env_remove("MEMSCOPE_EXEC_SEQ");
    // SPEC §1: a program's own enable_auto_export path wins over run's
    // default, not over -o or the user's MEMSCOPE_EXPORT_PATH.
    if plan.chosen {
        cmd.env("MEMSCOPE_EXPORT_PATH", &plan.lib_template)
            .env_remove("MEMSCOPE_DEFAULT_EXPORT_PATH");
    } else {
        cmd.env_remove("MEMSCOPE_EXPORT_PATH")
            .env("MEMSCOPE_DEFAULT_EXPORT_PATH", &plan.lib_template);
    }
    focus.apply(&mut cmd, &skip_log);
    if let Some(every) = a.every {
        cmd.env("MEMSCOPE_EVERY", format!("{}ms", every.as_millis().max(1)));
    }
    if a.live {
        // The view asks every second: even a single-threaded command must
        // be reachable when it does not allocate (see MEMSCOPE_REACHABLE).
        cmd.env("MEMSCOPE_REACHABLE", "1");
    }
    // Running snapshots go beside the user's (with --export html, the
    // library's own snapshots go to a temporary directory).
    cmd.env("MEMSCOPE_RUNNING_PATH", &plan.template);
    if let Some(n) = a.backtrace {
        cmd.env("MEMSCOPE_BACKTRACE", n.to_string());
    }
    if a.live && !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err("--live needs a terminal".into());
    }
    let (listener, handed) = handoff::Listener::start(tmp.path()).unzip();
    match &listener {
        Some(l) => cmd.env(handoff::VAR, l.socket()),
        None => cmd.env_remove(handoff::VAR),
    };
    child::prepare();
    let started = std::time::Instant::now();
    let namer = names::Namer::start(&plan.manifest, handed);
    let pid = child::spawn(&mut cmd).map_err(|e| {
        format!(
            "cannot start {}: {}",
            term(&program.display().to_string()),
            crate::load::io_reason(&e)
        )
    })?;
    let live = a
        .live
        .then(|| std::thread::spawn(move || crate::top::watch_live(pid as u32)));
    let (ended, when) = child::wait(pid, || {
        eprintln!("memscope: the command has ended; waiting for the processes it left running (Ctrl-C stops waiting)")
    });
    if let Some(view) = live {
        // It leaves at its next refresh, now that the process is gone.
        let _ = view.join();
    }
    let cmd_name = a.command[0].to_string_lossy().into_owned();
    if let Some(l) = listener {
        l.finish();
    }
    let named = namer.finish(&plan.manifest);
    finish::finish(
        &finish::Run {
            plan: &plan,
            pid: pid as u32,
            ended,
            cmd_name: &cmd_name,
            command: a.command.iter().map(|c| c.to_string_lossy().into_owned()).collect(),
            elapsed: when.duration_since(started),
            focus: &focus,
            skip_log: &skip_log,
        },
        named,
    );
    drop(tmp);
    Ok(ExitCode::from(ended.exit_code()))
}

/// Marks the cache parts this run uses and removes those unused for long
/// (see [`tidy`]): the names of this CLI's build and of the library's, and
/// the embedded library's directory when `lib` is that.
fn tidy_cache(lib: &Path) {
    use memscope_symbols::{file_build_id, NameCache};
    let names = crate::load::name_cache_root();
    let lib_root = library::cache_root().ok();
    let lib_id = file_build_id(lib);
    let mut used: Vec<String> = [crate::load::own_build_id(), lib_id.as_deref()]
        .into_iter()
        .flatten()
        .map(NameCache::namer_part)
        .collect();
    if let (Some(root), Some(dir)) = (&lib_root, lib.parent()) {
        if dir.parent() == Some(root.as_path()) {
            tidy::hold(lib);
            used.extend(dir.file_name().and_then(|n| n.to_str()).map(String::from));
        }
    }
    let roots: Vec<PathBuf> = names
        .map(|c| c.dir().to_path_buf())
        .into_iter()
        .chain(lib_root)
        .collect();
    tidy::tidy(&roots, &used, std::time::SystemTime::now());
}
