//! `check` over a whole run: each absolute limit is held to every process
//! of every gated executable ([`crate::matching`]); one line per
//! executable and limit, showing its process with the largest value, so
//! the output stays short on a run of hundreds of processes.

use crate::check::{verdict, Verdict};
use crate::matching::{groups, load, Select};
use crate::run::digest::Digest;
use crate::text::{bytes, count, term};
use std::fmt::Write as _;

/// One absolute limit: its name, how a process measures against it, its
/// value and how to show it.
pub struct Limit {
    pub what: &'static str,
    pub measure: fn(&Digest) -> u64,
    pub limit: u64,
    pub show: fn(u64) -> String,
}

/// The limits of `check`, in its order.
pub fn limits(peak: Option<u64>, leaked: Option<u64>, allocations: Option<u64>) -> Vec<Limit> {
    let mut v = Vec::new();
    let mut add = |what, limit: Option<u64>, measure: fn(&Digest) -> u64, show| {
        if let Some(limit) = limit {
            v.push(Limit {
                what,
                measure,
                limit,
                show,
            });
        }
    };
    add("peak heap", peak, |d| d.row.summary.peak_live_bytes, bytes);
    add("live at exit", leaked, |d| d.row.summary.live_at_exit_bytes, bytes);
    add("allocations", allocations, |d| d.row.own_allocations(), count);
    v
}

/// The report and how many limits were exceeded (counted per executable).
pub fn check(path: &std::path::Path, process: &[String], limits: &[Limit]) -> Result<(String, usize), String> {
    let sel = Select::new(process)?;
    let run = load(path)?;
    let gs = groups(&run.images, &[], &sel)?;
    let mut out = format!("{}\ngated: {}\n", term(&run.describe()), sel.describe());
    let mut failed = 0;
    let mut not_gated = Vec::new();
    for g in &gs {
        if !g.gated {
            not_gated.push(term(&g.key));
            continue;
        }
        let _ = writeln!(
            out,
            "{}{}",
            term(&g.key),
            if g.base.len() > 1 {
                format!(" ×{}", g.base.len())
            } else {
                String::new()
            }
        );
        for l in limits {
            let Some(worst) = g.base.iter().max_by_key(|d| (l.measure)(d)) else {
                continue;
            };
            let Verdict { line, exceeded } = verdict(l.what, (l.measure)(worst), l.limit, l.show);
            let over = g.base.iter().filter(|d| (l.measure)(d) > l.limit).count();
            let whose = if g.base.len() > 1 {
                format!(
                    ", largest: pid {}{}",
                    worst.process.pid,
                    if over > 0 {
                        format!("; {over} of {} processes over", g.base.len())
                    } else {
                        String::new()
                    }
                )
            } else {
                String::new()
            };
            let _ = writeln!(out, "  {line}{whose}");
            failed += usize::from(exceeded);
        }
    }
    if !not_gated.is_empty() {
        let shown: Vec<String> = not_gated.iter().take(crate::rundiff::MAX_LIST).cloned().collect();
        let rest = not_gated.len().saturating_sub(shown.len());
        let _ = writeln!(
            out,
            "not gated: {}{}",
            shown.join(", "),
            if rest > 0 {
                format!(" … and {rest} more")
            } else {
                String::new()
            }
        );
    }
    let dropped: u64 = run.images.iter().map(|d| d.row.summary.events_dropped).sum();
    if dropped > 0 {
        let _ = writeln!(
            out,
            "WARNING: {} events were dropped, the measured values may be too low",
            count(dropped)
        );
    }
    Ok((out, failed))
}
