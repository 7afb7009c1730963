//! memscope-cli (SPEC §4): `run` traces any dynamically linked program with
//! libmemscope.so; `summary`, `check`, `diff`, `export` and `analyze` read
//! the snapshots it writes.
//!
//! Exit codes: 0 ok, 1 a `check`/`diff` limit was exceeded, 2 bad usage or
//! bad input (always exactly one line on stderr, never a panic); `run` exits
//! with the traced command's own code, 128+N when it died of signal N.

mod analyze;
mod check;
mod completions;
mod control;
mod diff;
mod export;
mod growth;
mod load;
mod matching;
mod run;
mod runcheck;
mod rundiff;
mod runfile;
mod sites;
mod snapshot;
mod summary;
mod text;
mod top;

use clap::{CommandFactory, Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// `--version`: the package version and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MEMSCOPE_BUILD_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "memscope-cli",
    version = VERSION,
    about = "Heap profiler for any dynamically linked Linux program: every allocation's size, site and lifetime.",
    after_help = "Example: memscope-cli run --export html cargo run --release\n\
                  Exit codes: 0 ok, 1 a check/diff limit was exceeded, 2 usage or input error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::Args),
    Analyze(analyze::Args),
    Summary(summary::Args),
    Check(check::Args),
    Diff(diff::Args),
    Export(export::Args),
    Completions(completions::Args),
    Snapshot(snapshot::Args),
    Top(top::Args),
}

/// What a command ends with; `Err` is a usage or input error (exit 2).
pub type Outcome = Result<ExitCode, String>;

/// Writes to stdout; a reader that went away (`| head`) is not an error.
pub fn emit(s: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write to standard output: {}", load::io_reason(&e))),
    }
}

/// Creates `path` for writing (replacing it), with a one-line error.
pub fn create_output(path: &std::path::Path) -> Result<std::io::BufWriter<std::fs::File>, String> {
    std::fs::File::create(path)
        .map(|f| std::io::BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| {
            format!(
                "cannot write {}: {}",
                text::term(&path.display().to_string()),
                load::io_reason(&e)
            )
        })
}

/// Finishes writing `path`.
pub fn finish_output(mut w: std::io::BufWriter<std::fs::File>, path: &std::path::Path) -> Result<(), String> {
    w.flush().map_err(|e| {
        format!(
            "cannot write {}: {}",
            text::term(&path.display().to_string()),
            load::io_reason(&e)
        )
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let outcome = match cli.command {
        Command::Run(a) => run::main(a),
        Command::Analyze(a) => analyze::main(a),
        Command::Summary(a) => summary::main(a),
        Command::Check(a) => check::main(a),
        Command::Diff(a) => diff::main(a),
        Command::Export(a) => export::main(a),
        Command::Completions(a) => completions::main(a, Cli::command()),
        Command::Snapshot(a) => snapshot::main(a),
        Command::Top(a) => top::main(a),
    };
    match outcome {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("memscope-cli: {msg}");
            ExitCode::from(2)
        }
    }
}

/// `--help` and `--version` go to stdout with exit 0; every other parse error
/// is one line (clap's first line, plus a hint) with exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = emit(&e.render().to_string());
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("memscope-cli: a command is required: run, snapshot, top, analyze, summary, check, diff, export or completions (see memscope-cli --help)");
            ExitCode::from(2)
        }
        _ => {
            // clap's message up to its first blank line, joined into one line.
            let rendered = e.render().to_string();
            let first: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty())
                .collect();
            let first = first.join(" ");
            let first = first.trim_start_matches("error: ");
            eprintln!("memscope-cli: {} (see memscope-cli --help)", text::term(first));
            ExitCode::from(2)
        }
    }
}
