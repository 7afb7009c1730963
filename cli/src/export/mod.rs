//! `export SNAPSHOT.json --to dhat|folded|pprof OUTPUT`: the snapshot in
//! formats other tools open — DHAT's JSON for valgrind's `dh_view.html`,
//! folded stacks for inferno, flamegraph.pl and speedscope, pprof's
//! profile.proto for `go tool pprof` and continuous-profiling back ends.

mod dhat;
mod folded;
mod pprof;

use crate::{load, Outcome};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
enum To {
    /// DHAT's JSON (dhatFileVersion 2), for valgrind's dh_view.html.
    Dhat,
    /// `frame;frame;frame value` lines, outermost frame first.
    Folded,
    /// pprof's gzip-compressed profile.proto with Go heap profile sample
    /// types (alloc_objects, alloc_space, inuse_objects, inuse_space).
    Pprof,
}

/// What a folded line's value counts.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Weight {
    /// Bytes allocated (reallocs count their new size).
    Bytes,
    /// Number of allocations and reallocs.
    Allocations,
    /// Bytes still live at exit.
    Leaked,
    /// Bytes live at the moment of the heap peak.
    Peak,
}

/// Convert a snapshot for other tools.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshot written by libmemscope.so or memscope-rs.
    snapshot: PathBuf,
    /// Target format.
    #[arg(long, value_enum)]
    to: To,
    /// Where to write (replaced if it exists).
    output: PathBuf,
    /// For --to folded: what each stack's value counts.
    #[arg(long, value_enum, default_value = "bytes")]
    weight: Weight,
    /// For --to pprof, which starts each sample's stack at the site's
    /// caller, past the allocation wrappers.
    #[command(flatten)]
    wrappers: crate::sites::WrapperArgs,
}

pub fn main(a: Args) -> Outcome {
    crate::sites::configure(&a.wrappers)?;
    let s = load::snapshot(&a.snapshot)?;
    let mut w = crate::create_output(&a.output)?;
    let written = match a.to {
        To::Dhat => dhat::write(&s, &mut w),
        To::Folded => folded::write(&s, a.weight, &mut w),
        To::Pprof => pprof::write(&s, &mut w),
    };
    written.map_err(|e| {
        format!(
            "cannot write {}: {}",
            crate::text::term(&a.output.display().to_string()),
            load::io_reason(&e)
        )
    })?;
    crate::finish_output(w, &a.output)?;
    if a.to_is_dhat_estimate(&s) {
        eprintln!(
            "memscope-cli: note: {} blocks were not listed individually (MEMSCOPE_MAX_RECORDS; `run` lists \
             them for a few images of each executable), so DHAT's total lifetimes and block counts at the \
             peaks are estimates",
            crate::text::count(s.summary.records_omitted)
        );
    }
    Ok(ExitCode::SUCCESS)
}

impl Args {
    fn to_is_dhat_estimate(&self, s: &memscope_format::Snapshot) -> bool {
        matches!(self.to, To::Dhat)
            && s.summary.records_omitted > 0
            && s.callsites.iter().any(|c| c.dhat_aggregates().is_none())
    }
}

#[cfg(test)]
pub mod tests {
    /// The smallest valid snapshot, for building others in unit tests.
    pub const MINIMAL: &str = r#"{"format":"memscope","format_version":2,"modules":[],"frames":[],
      "process":{"pid":42,"ppid":1,"exe":"/bin/prog","argv":["prog","x"],"start_unix_ns":1000,
                 "end_unix_ns":11000,"end":"exit","exit_code":0},
      "summary":{"total_allocations":0,"total_frees":0,"total_allocated_bytes":0,"total_freed_bytes":0,
                 "reallocs":0,"peak_live_bytes":0,"peak_live_allocations":0,"peak_unix_ns":1000,
                 "live_at_exit_allocations":0,"live_at_exit_bytes":0,"events_dropped":0,"records_omitted":0},
      "allocations":[],"callsites":[],"variables":[],"timeline":[]}"#;
}
