//! `analyze SNAPSHOT.json REPORT.html`: the self-contained HTML report
//! (SPEC §5) of one snapshot.

use crate::{load, Outcome};
use std::path::PathBuf;
use std::process::ExitCode;

/// Write the HTML report of a snapshot.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshot written by libmemscope.so or memscope-rs.
    snapshot: PathBuf,
    /// Where to write the report (replaced if it exists).
    report: PathBuf,
    #[command(flatten)]
    wrappers: crate::sites::WrapperArgs,
}

pub fn main(a: Args) -> Outcome {
    crate::sites::configure(&a.wrappers)?;
    let snap = load::snapshot(&a.snapshot)?;
    write_report(&[snap], &a.report)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the report over `snapshots` to `path`.
pub fn write_report(snapshots: &[memscope_format::Snapshot], path: &std::path::Path) -> Result<(), String> {
    let mut w = crate::create_output(path)?;
    memscope_report::write_html_with(snapshots, crate::sites::wrappers(), &mut w).map_err(|e| {
        format!(
            "cannot write {}: {}",
            crate::text::term(&path.display().to_string()),
            load::io_reason(&e)
        )
    })?;
    crate::finish_output(w, path)
}
