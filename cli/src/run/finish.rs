//! After the command: find every snapshot of the run (each process image
//! appends its path to the manifest), write the report over all of them,
//! and print the short summary — leading with the process that allocated
//! most, since under `cargo run` or `make` the interesting image is rarely
//! the first one — or say plainly why there is nothing to show.

use super::child::Ended;
use super::{Export, Plan};
use crate::sites::site_label;
use crate::summary::{ending, heap_lines, sorted_sites, who};
use crate::text::{bytes, count, duration, signal_name, term};
use memscope_format::{EndKind, Snapshot};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct Run<'a> {
    pub plan: &'a Plan,
    pub pid: u32,
    pub ended: Ended,
    pub cmd_name: &'a str,
    pub elapsed: std::time::Duration,
}

/// Snapshot paths in the order the images finished, each once.
pub(super) fn manifest(path: &Path) -> Vec<PathBuf> {
    let text = std::fs::read(path).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.ends_with(b".html"))
        .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l)))
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

fn say(line: &str) {
    eprintln!("memscope: {line}");
}

pub fn finish(r: &Run) {
    let html = r.plan.export != Export::Json;
    let mut snaps: Vec<(PathBuf, Snapshot)> = Vec::new();
    for p in manifest(&r.plan.manifest) {
        match crate::load::snapshot(&p) {
            Ok(mut s) => {
                if !html {
                    // The summary needs aggregates only; drop the big part.
                    s.allocations = Vec::new();
                }
                snaps.push((p, s));
            }
            Err(e) => say(&format!("skipping a snapshot of this run: {e}")),
        }
    }
    let root_final = snaps
        .iter()
        .any(|(_, s)| s.process.pid == r.pid && s.process.end != EndKind::Exec && !s.process.forked);
    let cmd = term(r.cmd_name);
    if !root_final {
        explain_missing(r, &cmd, snaps.len());
    }
    if snaps.is_empty() {
        return;
    }
    // Lead with the process that allocated most.
    snaps.sort_by(|a, b| {
        b.1.summary
            .total_allocated_bytes
            .cmp(&a.1.summary.total_allocated_bytes)
            .then(a.1.process.start_unix_ns.cmp(&b.1.process.start_unix_ns))
    });
    print_summary(r, &snaps);
    let root_path = snaps
        .iter()
        .find(|(_, s)| s.process.pid == r.pid && s.process.exec_seq == 0 && !s.process.forked)
        .map(|(p, _)| p.clone())
        .unwrap_or_else(|| snaps[0].0.clone());
    if html {
        let name = root_path
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| "memscope.json".into());
        let dir = r.plan.template.parent().unwrap_or(Path::new("/"));
        let report = dir.join(name).with_extension("html");
        let all: Vec<Snapshot> = snaps.iter().map(|(_, s)| s.clone()).collect();
        match crate::analyze::write_report(&all, &report) {
            Ok(()) => say(&format!(
                "wrote {} (report over {} process{})",
                term(&report.display().to_string()),
                all.len(),
                if all.len() == 1 { "" } else { "es" }
            )),
            Err(e) => say(&e),
        }
    }
    if r.plan.export != Export::Html {
        let extra = snaps.len() - 1;
        say(&format!(
            "wrote {}{}",
            term(&root_path.display().to_string()),
            if extra > 0 {
                format!(
                    " and {extra} more snapshot{} beside it",
                    if extra == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        ));
    }
}

/// Why the command's own (last) image left no snapshot.
fn explain_missing(r: &Run, cmd: &str, others: usize) {
    let others = if others > 0 {
        format!(
            " ({others} snapshot{} of other processes of the run were written)",
            if others == 1 { "" } else { "s" }
        )
    } else {
        String::new()
    };
    match r.ended {
        Ended::Signal(9) => say(&format!(
            "{cmd} was killed by SIGKILL: a process killed that way cannot write its snapshot{others}"
        )),
        Ended::Signal(s) => say(&format!(
            "{cmd} was killed by {} and wrote no snapshot{others}",
            signal_name(s)
        )),
        Ended::Code(c) => say(&format!(
            "{cmd} exited with code {c} but wrote no snapshot: either writing it failed (see above) \
             or libmemscope.so never ran in it (it cleared LD_PRELOAD, or exec'd a static or privileged program){others}"
        )),
    }
}

fn print_summary(r: &Run, snaps: &[(PathBuf, Snapshot)]) {
    let (_, top) = &snaps[0];
    let n = snaps.len();
    let how = match r.ended {
        Ended::Code(c) => format!("exited with code {c}"),
        Ended::Signal(s) => format!("was killed by {} (signal {s})", signal_name(s)),
    };
    say(&format!(
        "{} {how} after {}; {} process image{} traced",
        term(r.cmd_name),
        duration(r.elapsed.as_nanos() as u64),
        n,
        if n == 1 { "" } else { "s" }
    ));
    if n > 1 {
        say(&format!(
            "{} allocated most ({}):",
            who(&top.process),
            ending(&top.process)
        ));
    }
    for l in heap_lines(top) {
        say(&format!("  {l}"));
    }
    let sites = sorted_sites(top, |c| c.bytes);
    if sites.iter().any(|c| !c.frames.is_empty()) {
        say("  top sites by bytes:");
        for c in sites.iter().take(5) {
            // A site that only reallocates (a growing buffer) counts its
            // reallocations: "0 allocs" would hide it.
            let (n, what) = if c.allocations == 0 && c.reallocs > 0 {
                (c.reallocs, "reallocs")
            } else {
                (c.allocations, "allocs")
            };
            say(&format!(
                "    {:>10} {:>9} {what:<8}  {}",
                bytes(c.bytes),
                count(n),
                term(&site_label(top, c))
            ));
        }
    }
    if n > 1 {
        say("  other processes:");
        for (_, s) in snaps.iter().skip(1).take(5) {
            say(&format!(
                "    {}: {} in {} allocations, peak {}",
                who(&s.process),
                bytes(s.summary.total_allocated_bytes),
                count(s.summary.total_allocations),
                bytes(s.summary.peak_live_bytes)
            ));
        }
        if n > 6 {
            say(&format!("    … and {} more", n - 6));
        }
    }
}
