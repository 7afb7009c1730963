//! `summary SNAPSHOT.json`: what heaptrack_print's header and memray's
//! `stats` tell, as plain text — the process, its heap totals and peak, the
//! top sites by bytes, by count and by leaked bytes, the lifetime
//! distribution and the threads.

use crate::sites::site_names;
use crate::text::{bytes, count, duration, term};
use crate::{load, Outcome};
use memscope_format::{Callsite, EndKind, Process, Snapshot};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Print a readable summary of a snapshot.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshot written by libmemscope.so or memscope-rs.
    snapshot: PathBuf,
    /// How many sites each top list shows.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[command(flatten)]
    wrappers: crate::sites::WrapperArgs,
}

pub fn main(a: Args) -> Outcome {
    crate::sites::configure(&a.wrappers)?;
    let s = load::snapshot(&a.snapshot)?;
    crate::emit(&render(&s, a.top))?;
    Ok(ExitCode::SUCCESS)
}

/// The whole text summary.
pub fn render(s: &Snapshot, top: usize) -> String {
    let mut o = String::new();
    header(&mut o, s);
    heap(&mut o, s);
    top_sites(&mut o, s, top);
    lifetimes(&mut o, s);
    threads(&mut o, s, top);
    o
}

/// `exited with code 0`, `killed by SIGSEGV (signal 11)`…
pub fn ending(p: &Process) -> String {
    match (p.end, p.exit_code, p.signal) {
        (EndKind::Signal, _, Some(sig)) => format!("killed by {} (signal {sig})", crate::text::signal_name(sig)),
        (EndKind::Abort, _, _) => "aborted (abort())".to_string(),
        (EndKind::Exec, _, _) => "replaced itself with exec".to_string(),
        (EndKind::Panic, c, _) => format!("panicked{}", c.map(|c| format!(", exit code {c}")).unwrap_or_default()),
        (EndKind::Running, _, _) => "still running (snapshot taken on request)".to_string(),
        (EndKind::UnderscoreExit, Some(c), _) => format!("exited with _exit({c})"),
        (_, Some(c), _) => format!("exited with code {c}"),
        (_, None, Some(sig)) => format!("killed by {} (signal {sig})", crate::text::signal_name(sig)),
        (k, None, None) => format!("ended ({})", k.as_str()),
    }
}

/// The program's name and pid, escaped.
pub fn who(p: &Process) -> String {
    let name = if p.exe.is_empty() {
        p.argv.first().map(String::as_str).unwrap_or("?")
    } else {
        &p.exe
    };
    format!("{} (pid {})", term(name), p.pid)
}

fn header(o: &mut String, s: &Snapshot) {
    let p = &s.process;
    let _ = writeln!(o, "memscope summary of {}", who(p));
    let argv: Vec<String> = p.argv.iter().map(|a| term(a)).collect();
    let _ = writeln!(o, "  command:      {}", argv.join(" "));
    let ran = p.end_unix_ns.saturating_sub(p.start_unix_ns);
    let _ = writeln!(o, "  ended:        {} after {}", ending(p), duration(ran));
    if p.forked {
        let _ = writeln!(o, "  forked from:  pid {}", p.ppid);
    }
    let _ = writeln!(o);
}

/// The heap totals, in the order a reader asks: how high, how much, what stayed.
pub fn heap_lines(s: &Snapshot) -> Vec<String> {
    let m = &s.summary;
    let mut v = vec![
        format!(
            "peak heap:    {} in {} blocks, at +{}",
            bytes(m.peak_live_bytes),
            count(m.peak_live_allocations),
            duration(m.peak_unix_ns.saturating_sub(s.process.start_unix_ns))
        ),
        format!(
            "allocated:    {} in {} allocations{}",
            bytes(m.total_allocated_bytes),
            count(m.total_allocations),
            if m.reallocs > 0 {
                format!(
                    " and {} realloc{}",
                    count(m.reallocs),
                    if m.reallocs == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        ),
        format!(
            "freed:        {} in {} frees",
            bytes(m.total_freed_bytes),
            count(m.total_frees)
        ),
        format!(
            "{:<14}{} in {} blocks",
            format!("{}:", s.live_label()),
            bytes(m.live_at_exit_bytes),
            count(m.live_at_exit_allocations)
        ),
    ];
    if let Some(rss) = m.peak_rss_bytes {
        v.push(format!(
            "peak resident: {} (the whole process, heap or not)",
            bytes(rss)
        ));
    }
    if memscope_format::resident::mostly_outside_malloc(m) {
        v.push(format!("NOTE: {}", memscope_format::resident::OUTSIDE_MALLOC));
    }
    if m.events_dropped > 0 {
        v.push(format!(
            "WARNING: {} events were dropped: the counts above are incomplete",
            count(m.events_dropped)
        ));
    }
    v
}

fn heap(o: &mut String, s: &Snapshot) {
    let _ = writeln!(o, "heap");
    for l in heap_lines(s) {
        let _ = writeln!(o, "  {l}");
    }
    let m = &s.summary;
    if m.inherited_allocations > 0 {
        let _ = writeln!(
            o,
            "  inherited:    {} in {} blocks from the parent at fork()",
            bytes(m.inherited_bytes),
            count(m.inherited_allocations)
        );
    }
    // A fork child's records and sites are its own; what it inherited
    // untouched is the parent's (listed in the parent's snapshot).
    let parents = m.at_fork.map_or(0, |f| f.total_allocations + f.reallocs);
    if let Some(f) = m.at_fork {
        let _ = writeln!(
            o,
            "  before fork:  {} in {} allocations made by the parent are in the counts above; \
             the sites below are this process's own",
            bytes(f.total_allocated_bytes),
            count(f.total_allocations)
        );
    }
    if m.inherited_live_at_exit_allocations > 0 {
        let _ = writeln!(
            o,
            "  of the live:  {} in {} blocks are the parent's, untouched since fork() (listed in its snapshot)",
            bytes(m.inherited_live_at_exit_bytes),
            count(m.inherited_live_at_exit_allocations)
        );
    }
    // Blocks the parent made before the fork are its records, except those
    // the child itself freed (listed here).
    let parents_listed = s.allocations.iter().filter(|a| a.inherited).count() as u64;
    let omitted = m.records_omitted.saturating_sub(parents.saturating_sub(parents_listed));
    if omitted > 0 {
        let _ = writeln!(
            o,
            "  records:      {} blocks not listed individually (MEMSCOPE_MAX_RECORDS; `run` lists them for a few images of each executable); every total is exact",
            count(omitted)
        );
    }
    let _ = writeln!(o);
}

/// Sites sorted by `key`, largest first, zero values left out.
pub fn sorted_sites(s: &Snapshot, key: impl Fn(&Callsite) -> u64) -> Vec<&Callsite> {
    let mut v: Vec<&Callsite> = s.callsites.iter().filter(|c| key(c) > 0).collect();
    v.sort_by(|a, b| key(b).cmp(&key(a)).then(a.id.cmp(&b.id)));
    v
}

fn top_sites(o: &mut String, s: &Snapshot, top: usize) {
    if s.callsites.iter().all(|c| c.frames.is_empty()) {
        let _ = writeln!(
            o,
            "allocation sites: not recorded (backtraces were off; `memscope-cli run --backtrace 16 …` records them)\n"
        );
        return;
    }
    let names = site_names(s);
    type Key = fn(&Callsite) -> u64;
    let live_title = if s.is_running() {
        "top sites by bytes live now"
    } else {
        "top sites by bytes live at exit (leaks)"
    };
    let at_end = if s.is_running() { "live now" } else { "at exit" };
    let lists: [(&str, Key); 3] = [
        ("top sites by bytes allocated", |c| c.bytes),
        ("top sites by allocations", |c| c.allocations),
        (live_title, |c| c.live_at_exit_bytes),
    ];
    for (title, key) in lists {
        let sites = sorted_sites(s, key);
        if sites.is_empty() {
            let _ = writeln!(o, "{title}: none\n");
            continue;
        }
        let _ = writeln!(o, "{title}");
        let _ = writeln!(
            o,
            "  {:>10} {:>11} {:>11} {:>10}  site",
            "bytes", "allocs", at_end, "peak"
        );
        for c in sites.iter().take(top) {
            let _ = writeln!(
                o,
                "  {:>10} {:>11} {:>11} {:>10}  {}",
                bytes(c.bytes),
                count(c.allocations),
                bytes(c.live_at_exit_bytes),
                bytes(c.peak_live_bytes),
                term(&names[&c.id])
            );
        }
        if sites.len() > top {
            let _ = writeln!(o, "  … and {} more sites", count((sites.len() - top) as u64));
        }
        let _ = writeln!(o);
    }
}

/// Decades of lifetime, as people think of them.
const DECADES: [(u64, &str); 9] = [
    (1_000, "< 1 µs"),
    (10_000, "1–10 µs"),
    (100_000, "10–100 µs"),
    (1_000_000, "0.1–1 ms"),
    (10_000_000, "1–10 ms"),
    (100_000_000, "10–100 ms"),
    (1_000_000_000, "0.1–1 s"),
    (10_000_000_000, "1–10 s"),
    (u64::MAX, "≥ 10 s"),
];

fn lifetimes(o: &mut String, s: &Snapshot) {
    let mut per = [(0u64, 0u64); DECADES.len()];
    for b in &s.lifetime_histogram {
        let mid = b.lower_ns + (b.upper_ns - b.lower_ns) / 2;
        let i = DECADES
            .iter()
            .position(|&(hi, _)| mid < hi)
            .unwrap_or(DECADES.len() - 1);
        per[i].0 += b.count;
        per[i].1 += b.bytes;
    }
    let total: u64 = per.iter().map(|p| p.0).sum();
    if total == 0 {
        return;
    }
    let _ = writeln!(
        o,
        "block lifetimes ({} blocks; blocks {} count up to the end)",
        count(total),
        s.live_label()
    );
    let widest = per.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    for (i, &(n, b)) in per.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let bar = "█".repeat(((n as f64 / widest as f64) * 30.0).ceil() as usize);
        let _ = writeln!(
            o,
            "  {:>10} {:>11} {:>5.1}% {:>10}  {bar}",
            DECADES[i].1,
            count(n),
            100.0 * n as f64 / total as f64,
            bytes(b)
        );
    }
    let _ = writeln!(o);
}

fn threads(o: &mut String, s: &Snapshot, top: usize) {
    if s.threads.is_empty() {
        return;
    }
    let mut t: Vec<_> = s.threads.iter().collect();
    t.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.thread_id.cmp(&b.thread_id)));
    let _ = writeln!(o, "threads ({})", count(t.len() as u64));
    let _ = writeln!(
        o,
        "  {:>8} {:>11} {:>10} {:>11} {:>10}  name",
        "tid",
        "allocs",
        "bytes",
        "frees",
        if s.is_running() { "live now" } else { "at exit" }
    );
    for th in t.iter().take(top) {
        let _ = writeln!(
            o,
            "  {:>8} {:>11} {:>10} {:>11} {:>10}  {}",
            th.thread_id,
            count(th.allocations),
            bytes(th.bytes),
            count(th.frees),
            bytes(th.live_at_exit_bytes),
            term(&th.name)
        );
    }
    if t.len() > top {
        let _ = writeln!(o, "  … and {} more threads", count((t.len() - top) as u64));
    }
}
