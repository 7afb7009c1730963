//! memscope-cli — see SPEC §4. The subcommands arrive with the CLI issue.
use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("memscope-cli: no subcommands yet; use LD_PRELOAD=libmemscope.so (see README)");
    ExitCode::from(2)
}
