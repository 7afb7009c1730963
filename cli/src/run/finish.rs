//! After the command: find every snapshot of the run (each process image
//! appends its path to the manifest), read them one at a time into digests
//! ([`digest`]), print the short summary — leading with the run's subject
//! ([`focus`]: the program cargo ran, else the process that allocated most
//! among non-launchers), since under `cargo run` or `make` the interesting
//! image is rarely the first one, then one line per executable — and write the
//! report over all of them; or say plainly why there is nothing to show.

use super::child::Ended;
use super::digest::{self, Digest, Digests};
use super::focus::{self, Focus};
use super::{Export, Plan};
use crate::summary::{ending, who};
use crate::text::{bytes, duration, signal_name, term};
use memscope_format::EndKind;
use memscope_report::ProcessRow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct Run<'a> {
    pub plan: &'a Plan,
    pub pid: u32,
    pub ended: Ended,
    pub cmd_name: &'a str,
    /// The command as given, for the run manifest.
    pub command: Vec<String>,
    pub elapsed: std::time::Duration,
    pub focus: &'a Focus,
    pub skip_log: &'a Path,
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

/// `named`: what the naming pass kept of the snapshots it rewrote.
pub fn finish(r: &Run, named: digest::Collected) {
    let paths = manifest(&r.plan.manifest);
    let Digests { mut all, lead, errors } = digest::read_all(paths, named);
    for e in errors {
        say(&format!("skipping a snapshot of this run: {e}"));
    }
    let skipped = focus::read_skip_log(r.skip_log);
    let recorded: Vec<String> = all.iter().map(|d| d.process.exe.clone()).collect();
    let warnings = r.focus.unmatched(&recorded, &skipped);
    let root_final = all
        .iter()
        .any(|d| d.process.pid == r.pid && d.process.end != EndKind::Exec && !d.process.forked);
    if r.focus.selects() && all.is_empty() {
        say(&r.focus.explain_nothing(r.cmd_name));
    } else if !root_final && !r.focus.selects() {
        explain_missing(r, &term(r.cmd_name), all.len());
    }
    // The subject of the run leads; its lines are made again when it is
    // not the heaviest, for which they were made while reading.
    let moved = r.focus.order(&mut all);
    let lead = match (moved, all.first()) {
        (true, Some(first)) => crate::load::snapshot(&first.path).ok().map(|s| digest::lead(&s)),
        _ => lead,
    };
    let Some(lead) = lead else {
        warnings.iter().for_each(|w| say(w));
        return;
    };
    let rows: Vec<ProcessRow> = all.iter().map(|d| d.row.clone()).collect();
    print_summary(r, &all, &rows, &lead, &skipped, moved);
    let root_path = all
        .iter()
        .find(|d| d.process.pid == r.pid && d.process.exec_seq == 0 && !d.process.forked)
        .unwrap_or(&all[0])
        .path
        .clone();
    let run_name = run_name(r.plan, &root_path);
    if r.plan.export != Export::Json {
        let report = report_path(r.plan, &run_name);
        match write_report(&all, &rows, &report) {
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
        let extra = all.len() - 1;
        let listed = write_manifest(r, &all, &run_name);
        say(&format!(
            "wrote {}{}{listed}",
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
    warnings.iter().for_each(|w| say(w));
}

/// Writes the run manifest ([`crate::runfile`]) beside the first snapshot;
/// returns what the summary adds about it (", listed in NAME").
fn write_manifest(r: &Run, all: &[Digest], root: &Path) -> String {
    use crate::runfile::{self, Image, Manifest};
    let path = runfile::path_for(root);
    let mut images: Vec<Image> = all
        .iter()
        .map(|d| Image {
            snapshot: Some(runfile::relative(&d.path, &path)),
            wrote_snapshot: true,
            pid: d.process.pid,
            ppid: d.process.ppid,
            exe: d.process.exe.clone(),
            argv: d.process.argv.clone(),
            exec_seq: d.process.exec_seq,
            forked: d.process.forked,
            start_unix_ns: d.process.start_unix_ns,
        })
        .collect();
    images.sort_by_key(|i| (i.start_unix_ns, i.pid, i.exec_seq));
    let m = Manifest {
        memscope_run: runfile::VERSION,
        command: r.command.clone(),
        images,
    };
    match runfile::write(&m, &path) {
        Ok(()) => format!(
            ", listed in {}",
            term(&path.file_name().unwrap_or_default().to_string_lossy())
        ),
        Err(e) => {
            say(&e);
            String::new()
        }
    }
}

/// What the run's report and manifest are named after: the path the user
/// gave when it names one file (`-o out/snapshot.json`), even when the
/// process that would have taken it recorded nothing (a launcher skipped
/// under `cargo test`); else the run's first snapshot.
fn run_name(plan: &Plan, root_snapshot: &Path) -> PathBuf {
    let literal = plan
        .template
        .file_name()
        .is_some_and(|n| !n.to_string_lossy().contains('%'));
    if plan.chosen && literal {
        plan.template.clone()
    } else {
        root_snapshot.to_path_buf()
    }
}

/// The report goes in the output directory, named after the run
/// ([`run_name`]).
fn report_path(plan: &Plan, run_name: &Path) -> PathBuf {
    let name = run_name
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| "memscope.json".into());
    let dir = plan.template.parent().unwrap_or(Path::new("/"));
    dir.join(name).with_extension("html")
}

/// Writes the report over every process of `all` (heaviest first; `rows`
/// their rows): the index from the digests, and a full section for each of
/// the heaviest, whose snapshots are read again one at a time.
fn write_report(all: &[Digest], rows: &[ProcessRow], path: &Path) -> Result<(), String> {
    let sections = memscope_report::render_sections_with(rows, crate::sites::wrappers(), |i| {
        crate::load::snapshot(&all[i].path)
            .map_err(|e| say(&format!("the report has no details of a process: {e}")))
            .ok()
    });
    let mut w = crate::create_output(path)?;
    memscope_report::write_page(rows, &sections, &mut w).map_err(|e| {
        format!(
            "cannot write {}: {}",
            term(&path.display().to_string()),
            crate::load::io_reason(&e)
        )
    })?;
    crate::finish_output(w, path)
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

/// The process with the largest peak resident set, when it is not the one
/// that allocated most (a browser or a compiler with an allocator of its
/// own allocates nothing memscope sees, yet holds the memory).
fn resided_most(all: &[Digest], top: &Digest) {
    let Some(big) = all
        .iter()
        .filter(|d| d.resident.peak_rss_bytes.is_some())
        .max_by_key(|d| d.resident.peak_rss_bytes)
    else {
        return;
    };
    // The lead's own lines already carry its resident figure and note.
    if std::ptr::eq(big, top) {
        return;
    }
    say(&format!(
        "{} resided most: peak resident {}, peak heap {}",
        who(&big.process),
        bytes(big.resident.peak_rss_bytes.unwrap_or(0)),
        bytes(big.resident.peak_live_bytes)
    ));
    if memscope_format::resident::mostly_outside_malloc(&big.resident) {
        say(&format!("  NOTE: {}", memscope_format::resident::OUTSIDE_MALLOC));
    }
}

/// The first line names the process the summary is about: the command,
/// or — under cargo or `--only`/`--skip` — the program chosen.
fn print_summary(r: &Run, all: &[Digest], rows: &[ProcessRow], lead: &digest::Lead, skipped: &[String], moved: bool) {
    let top = &all[0];
    let n = all.len();
    let how = match r.ended {
        Ended::Code(c) => format!("exited with code {c}"),
        Ended::Signal(s) => format!("was killed by {} (signal {s})", signal_name(s)),
    };
    let chosen = r.focus.is_cargo_program(&top.process.exe) || (r.focus.selects() && top.process.pid != r.pid);
    let subject = if chosen {
        format!("{} {}; ", who(&top.process), ending(&top.process))
    } else {
        String::new()
    };
    say(&format!(
        "{subject}{} {how} after {}; {} process image{} traced{}",
        term(r.cmd_name),
        duration(r.elapsed.as_nanos() as u64),
        n,
        if n == 1 { "" } else { "s" },
        r.focus.skipped_note(skipped)
    ));
    if n > 1 {
        let why = if r.focus.is_cargo_program(&top.process.exe) {
            "is the program cargo ran"
        } else if chosen {
            "allocated most of the processes chosen by --only/--skip"
        } else if moved {
            "allocated most apart from launchers (--only NAME chooses another)"
        } else {
            "allocated most"
        };
        say(&format!("{} {why} ({}):", who(&top.process), ending(&top.process)));
    }
    for l in &lead.heap {
        say(&format!("  {l}"));
    }
    if !lead.sites.is_empty() {
        say("  top sites by bytes:");
        for l in &lead.sites {
            say(&format!("    {l}"));
        }
    }
    resided_most(all, top);
    if n > 1 {
        say("  processes by executable, most bytes allocated first:");
        for l in super::groups::group_lines(rows) {
            say(&format!("    {l}"));
        }
        if !r.focus.selects() && !chosen {
            say("  (--only NAME traces just the processes of NAME; --skip NAME leaves them out)");
        }
    }
}
