//! `snapshot PID [-o PATH]` (SPEC §4): the traced process PID writes a
//! `"running"` snapshot without stopping; the path written is printed.

use crate::{control::Target, Outcome};
use std::path::PathBuf;
use std::process::ExitCode;

/// Make a traced process write a snapshot of its heap now, without stopping it.
#[derive(clap::Args)]
pub struct Args {
    /// The traced process (started under `memscope-cli run` or with LD_PRELOAD).
    pid: u32,
    /// Where the snapshot goes; default: the process's own snapshot path
    /// with .at-<unix ms> before the extension. A path ending in .html gets
    /// the report.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    output: Option<PathBuf>,
    /// How long to wait for the process to answer (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::run::parse_duration)]
    timeout: std::time::Duration,
}

pub fn main(a: Args) -> Outcome {
    let target = Target::find(a.pid)?;
    let path = match &a.output {
        None => String::new(),
        Some(p) if p.as_os_str().is_empty() => return Err("-o needs a path".into()),
        Some(p) => {
            let abs = std::path::absolute(p).map_err(|e| format!("cannot resolve -o: {e}"))?;
            abs.to_str().ok_or("the output path is not valid UTF-8")?.to_string()
        }
    };
    let written = target.request(&path, false, a.timeout)?;
    crate::emit(&format!("{}\n", crate::text::term(&written)))?;
    Ok(ExitCode::SUCCESS)
}
