//! `check SNAPSHOT.json [--max-peak SIZE] [--max-leaked SIZE] [--max-allocations N]`:
//! a CI gate. One line per limit on stdout; exit 1 when any measured value
//! is strictly greater than its limit (SPEC §4), 0 otherwise. Given a whole
//! run, every process of each gated executable is held to the limits
//! ([`crate::runcheck`]).

use crate::text::{bytes, count, parse_size, term};
use crate::{load, Outcome};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Fail (exit 1) when a snapshot exceeds memory limits.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshot written by libmemscope.so or memscope-rs, or a whole run
    /// (its NAME.run.json, or the directory holding it).
    snapshot: PathBuf,
    /// With a run: gate only the executables whose file name matches GLOB
    /// (repeatable; default: every executable with a process whose heap peak
    /// reached 16 KiB).
    #[arg(long = "process", value_name = "GLOB")]
    process: Vec<String>,
    /// Largest allowed heap peak: 1234, 64KiB, 10MiB, 2GiB (powers of 1024) or 64KB, 1.5GB (powers of 1000).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_peak: Option<u64>,
    /// Largest allowed number of bytes still live at exit (SIZE as for --max-peak).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_leaked: Option<u64>,
    /// Largest allowed number of allocations (realloc of a live block not counted).
    #[arg(long, value_name = "N")]
    max_allocations: Option<u64>,
}

/// One limit and what was measured against it.
pub struct Verdict {
    pub line: String,
    pub exceeded: bool,
}

/// Compares `measured` with `limit`: exceeded only when strictly greater.
pub fn verdict(what: &str, measured: u64, limit: u64, show: fn(u64) -> String) -> Verdict {
    let exceeded = measured > limit;
    Verdict {
        line: format!(
            "{} {what}: {} ({}limit {})",
            if exceeded { "FAIL" } else { "ok  " },
            show(measured),
            if exceeded { "over the " } else { "" },
            show(limit)
        ),
        exceeded,
    }
}

pub fn main(a: Args) -> Outcome {
    if a.max_peak.is_none() && a.max_leaked.is_none() && a.max_allocations.is_none() {
        return Err("check needs at least one limit: --max-peak, --max-leaked or --max-allocations".into());
    }
    if !a.process.is_empty() || matches!(crate::runfile::classify(&a.snapshot)?, crate::runfile::Input::Run(_)) {
        let limits = crate::runcheck::limits(a.max_peak, a.max_leaked, a.max_allocations);
        let (out, failed) = crate::runcheck::check(&a.snapshot, &a.process, &limits)?;
        crate::emit(&out)?;
        return exceeded(failed, &a.snapshot);
    }
    let s = load::snapshot(&a.snapshot)?;
    let m = &s.summary;
    let mut verdicts = Vec::new();
    if let Some(l) = a.max_peak {
        verdicts.push(verdict("peak heap", m.peak_live_bytes, l, bytes));
    }
    if let Some(l) = a.max_leaked {
        verdicts.push(verdict("live at exit", m.live_at_exit_bytes, l, bytes));
    }
    if let Some(l) = a.max_allocations {
        verdicts.push(verdict("allocations", m.total_allocations, l, count));
    }
    let mut out = format!("{}\n", crate::summary::who(&s.process));
    for v in &verdicts {
        let _ = writeln!(out, "{}", v.line);
    }
    if m.events_dropped > 0 {
        let _ = writeln!(
            out,
            "WARNING: {} events were dropped, the measured values may be too low",
            count(m.events_dropped)
        );
    }
    crate::emit(&out)?;
    exceeded(verdicts.iter().filter(|v| v.exceeded).count(), &a.snapshot)
}

/// Exit 1, with one line on stderr, when `failed` limits were exceeded.
fn exceeded(failed: usize, path: &std::path::Path) -> Outcome {
    if failed > 0 {
        eprintln!(
            "memscope-cli: {failed} memory limit{} exceeded in {}",
            if failed == 1 { "" } else { "s" },
            term(&path.display().to_string())
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_exceeded_only_when_strictly_greater() {
        assert!(!verdict("x", 10, 10, count).exceeded);
        assert!(verdict("x", 11, 10, count).exceeded);
        assert!(!verdict("x", 0, 0, bytes).exceeded);
        assert!(verdict("peak", 2048, 1024, bytes)
            .line
            .starts_with("FAIL peak: 2.00 KiB"));
    }
}
