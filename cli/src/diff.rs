//! `diff BASE.json NEW.json`: what grew between two runs, in total and per
//! allocation site. Sites are matched by their symbolized frames
//! ([`crate::sites::site_key`]), so two builds of a program compare even
//! though every address moved. Text for a terminal, markdown for a pull
//! request, JSON for scripts; exit 1 when a growth limit is exceeded.

use crate::sites::{site_key, wrappers};
use crate::text::{bytes, bytes_delta, count, markdown, parse_percent, parse_size, term};
use crate::{load, Outcome};
use memscope_format::Snapshot;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Markdown,
    Json,
}

/// Compare two snapshots or two runs (base, then new) and fail on growth.
#[derive(clap::Args)]
pub struct Args {
    /// The reference (e.g. from the main branch): a snapshot, or a whole run
    /// (its NAME.run.json, or the directory holding it).
    base: PathBuf,
    /// What to judge: a snapshot or a run, as BASE.
    new: PathBuf,
    /// Gate only the executables whose file name matches GLOB (repeatable;
    /// default: every executable with a process whose heap peak reached 16 KiB).
    #[arg(long = "process", value_name = "GLOB")]
    process: Vec<String>,
    /// Fail when the heap peak grew by more than PCT percent (e.g. 10 or 2.5%).
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    max_peak_growth: Option<f64>,
    /// Fail when the bytes live at exit grew by more than SIZE (1234, 64KiB, 1.5MB…).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_leak_growth: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// How many changed sites to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[command(flatten)]
    wrappers: crate::sites::WrapperArgs,
}

/// One site's numbers (several callsites of one snapshot may share a key).
#[derive(Default, Clone, Copy)]
struct Nums {
    allocations: u64,
    bytes: u64,
    live_at_exit_bytes: u64,
}

pub struct SiteDiff {
    /// Unique among the listed sites (see [`name_rows`]).
    pub label: String,
    /// What names the site ([`memscope_sites::Naming::parts`]) and its
    /// id in the snapshot it was first seen in.
    parts: Vec<String>,
    id: u64,
    base: Option<Nums>,
    new: Option<Nums>,
}

impl SiteDiff {
    fn delta(&self, f: fn(&Nums) -> u64) -> i128 {
        let get = |n: &Option<Nums>| n.as_ref().map(f).unwrap_or(0) as i128;
        get(&self.new) - get(&self.base)
    }
    fn weight(&self) -> i128 {
        self.delta(|n| n.bytes).abs() + self.delta(|n| n.live_at_exit_bytes).abs()
    }
}

pub fn site_diffs(base: &Snapshot, new: &Snapshot) -> Vec<SiteDiff> {
    let growth = crate::growth::two_moments(base, new);
    let mut map: HashMap<Vec<String>, SiteDiff> = HashMap::new();
    for (snap, is_new) in [(base, false), (new, true)] {
        for c in &snap.callsites {
            let e = map.entry(site_key(snap, c)).or_insert_with(|| SiteDiff {
                label: String::new(),
                parts: match memscope_sites::naming(snap, c, wrappers()).parts {
                    p if p.is_empty() => vec![memscope_sites::names::no_stack_label(snap).to_string()],
                    p => p,
                },
                id: c.id,
                base: None,
                new: None,
            });
            let slot = if is_new { &mut e.new } else { &mut e.base };
            let n = slot.get_or_insert_with(Nums::default);
            n.allocations += c.allocations;
            n.bytes += c.bytes;
            n.live_at_exit_bytes += c.live_at_exit_bytes;
        }
    }
    let mut v: Vec<SiteDiff> = map
        .into_values()
        .filter(|d| d.weight() != 0 || d.delta(|n| n.allocations) != 0)
        .collect();
    name_rows(&mut v);
    if growth {
        // Two moments of one process: the sites whose live bytes grew most.
        let live = |d: &SiteDiff| d.delta(|n| n.live_at_exit_bytes);
        v.sort_by(|a, b| live(b).cmp(&live(a)).then_with(|| a.label.cmp(&b.label)));
    } else {
        v.sort_by(|a, b| b.weight().cmp(&a.weight()).then_with(|| a.label.cmp(&b.label)));
    }
    v
}

/// Names the listed sites after their callers, no two alike (a site seen
/// only in one snapshot is tagged with its id there).
fn name_rows(v: &mut [SiteDiff]) {
    let parts: Vec<Vec<String>> = v.iter().map(|d| d.parts.clone()).collect();
    let tags: Vec<String> = v.iter().map(|d| format!("site {}", d.id)).collect();
    for (d, name) in v.iter_mut().zip(memscope_sites::unique_names(&parts, &tags)) {
        d.label = name;
    }
}

/// Percentage growth from `a` to `b`; infinite when `a` is 0 and `b` is not.
pub fn growth_pct(a: u64, b: u64) -> f64 {
    if a == 0 {
        return if b == 0 { 0.0 } else { f64::INFINITY };
    }
    (b as f64 - a as f64) * 100.0 / a as f64
}

pub fn pct(p: f64) -> String {
    if p.is_infinite() {
        "new".into()
    } else {
        format!("{p:+.1}%")
    }
}

pub struct Total {
    pub name: &'static str,
    pub base: u64,
    pub new: u64,
    pub is_bytes: bool,
}

fn totals(b: &Snapshot, n: &Snapshot) -> Vec<Total> {
    let live = if crate::growth::two_moments(b, n) || n.is_running() {
        "live now"
    } else {
        "live at exit"
    };
    let t = |name, f: fn(&Snapshot) -> u64, is_bytes| Total {
        name,
        base: f(b),
        new: f(n),
        is_bytes,
    };
    vec![
        t("peak heap", |s| s.summary.peak_live_bytes, true),
        t(live, |s| s.summary.live_at_exit_bytes, true),
        t("bytes allocated", |s| s.summary.total_allocated_bytes, true),
        t("allocations", |s| s.summary.total_allocations, false),
        t("reallocs", |s| s.summary.reallocs, false),
    ]
}

fn show(t: &Total, v: u64) -> String {
    if t.is_bytes {
        bytes(v)
    } else {
        count(v)
    }
}

fn show_delta(t: &Total) -> String {
    let d = t.new as i128 - t.base as i128;
    if t.is_bytes {
        bytes_delta(d)
    } else if d >= 0 {
        format!("+{}", count(d as u64))
    } else {
        format!("-{}", count(d.unsigned_abs() as u64))
    }
}

pub fn main(a: Args) -> Outcome {
    use crate::runfile::{classify, Input};
    crate::sites::configure(&a.wrappers)?;
    let single = matches!(classify(&a.base)?, Input::Snapshot(_)) && matches!(classify(&a.new)?, Input::Snapshot(_));
    if !single || !a.process.is_empty() {
        return runs(a);
    }
    let base = load::snapshot(&a.base)?;
    let new = load::snapshot(&a.new)?;
    let totals = totals(&base, &new);
    let sites = site_diffs(&base, &new);
    let mut failures = Vec::new();
    let (bp, np) = (base.summary.peak_live_bytes, new.summary.peak_live_bytes);
    if let Some(limit) = a.max_peak_growth {
        if growth_pct(bp, np) > limit {
            failures.push(format!(
                "peak heap grew {} ({} → {}), over the limit of {limit}%",
                pct(growth_pct(bp, np)),
                bytes(bp),
                bytes(np)
            ));
        }
    }
    let (bl, nl) = (base.summary.live_at_exit_bytes, new.summary.live_at_exit_bytes);
    if let Some(limit) = a.max_leak_growth {
        if nl > bl && nl - bl > limit {
            failures.push(format!(
                "bytes live at exit grew by {} ({} → {}), over the limit of {}",
                bytes(nl - bl),
                bytes(bl),
                bytes(nl),
                bytes(limit)
            ));
        }
    }
    let out = match a.format {
        Format::Text => text(&base, &new, &totals, &sites, a.top, &failures),
        Format::Markdown => md(&base, &new, &totals, &sites, a.top, &failures),
        Format::Json => json(&totals, &sites, &failures, crate::growth::two_moments(&base, &new)),
    };
    verdict(&out, &failures)
}

/// `diff` where either side is a whole run (or processes are chosen).
fn runs(a: Args) -> Outcome {
    use crate::rundiff;
    let sel = crate::matching::Select::new(&a.process)?;
    let base = crate::matching::load(&a.base)?;
    let new = crate::matching::load(&a.new)?;
    let limits = rundiff::Limits {
        peak_growth: a.max_peak_growth,
        leak_growth: a.max_leak_growth,
    };
    let c = rundiff::compare(&base, &new, &sel, &limits, a.top)?;
    let out = match a.format {
        Format::Text => rundiff::text(&c),
        Format::Markdown => rundiff::markdown(&c),
        Format::Json => rundiff::json(&c),
    };
    verdict(&out, &c.failures)
}

/// Prints `out`; exit 1 when a limit was exceeded.
fn verdict(out: &str, failures: &[String]) -> Outcome {
    crate::emit(out)?;
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "memscope-cli: {} memory growth limit{} exceeded",
            failures.len(),
            if failures.len() == 1 { "" } else { "s" }
        );
        Ok(ExitCode::from(1))
    }
}

/// Name, base, new, change, relative change.
pub fn total_cells(t: &Total) -> [String; 5] {
    [
        t.name.to_string(),
        show(t, t.base),
        show(t, t.new),
        show_delta(t),
        pct(growth_pct(t.base, t.new)),
    ]
}

pub fn site_cells(d: &SiteDiff) -> [String; 3] {
    let allocs = d.delta(|n| n.allocations);
    [
        bytes_delta(d.delta(|n| n.bytes)),
        if allocs >= 0 {
            format!("+{}", count(allocs as u64))
        } else {
            format!("-{}", count(allocs.unsigned_abs() as u64))
        },
        bytes_delta(d.delta(|n| n.live_at_exit_bytes)),
    ]
}

pub fn tag(d: &SiteDiff) -> &'static str {
    match (&d.base, &d.new) {
        (None, Some(_)) => " (new site)",
        (Some(_), None) => " (gone)",
        _ => "",
    }
}

fn text(b: &Snapshot, n: &Snapshot, totals: &[Total], sites: &[SiteDiff], top: usize, fails: &[String]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "base: {}\nnew:  {}\n",
        crate::summary::who(&b.process),
        crate::summary::who(&n.process)
    );
    let _ = writeln!(
        o,
        "  {:<16} {:>12} {:>12} {:>13} {:>8}",
        "", "base", "new", "change", ""
    );
    for t in totals {
        let [a, b, c, d, e] = total_cells(t);
        let _ = writeln!(o, "  {a:<16} {b:>12} {c:>12} {d:>13} {e:>8}");
    }
    let growth = crate::growth::two_moments(b, n);
    if growth {
        let _ = writeln!(o, "\n{}", crate::growth::interval(b, n));
    }
    if !sites.is_empty() {
        let (title, live) = if growth {
            ("sites by growth of live bytes (the most grown first)", "live")
        } else {
            ("sites that changed (by bytes allocated and live at exit)", "at exit")
        };
        let _ = writeln!(o, "\n{title}");
        let _ = writeln!(o, "  {:>12} {:>12} {:>12}  site", "bytes", "allocs", live);
        for d in sites.iter().take(top) {
            let [x, y, z] = site_cells(d);
            let _ = writeln!(o, "  {x:>12} {y:>12} {z:>12}  {}{}", term(&d.label), tag(d));
        }
        if sites.len() > top {
            let _ = writeln!(o, "  … and {} more", count((sites.len() - top) as u64));
        }
    }
    for f in fails {
        let _ = writeln!(o, "\nFAIL {f}");
    }
    o
}

fn md(b: &Snapshot, n: &Snapshot, totals: &[Total], sites: &[SiteDiff], top: usize, fails: &[String]) -> String {
    let mut o = String::from("### memscope: heap changes\n\n");
    if fails.is_empty() {
        o.push_str("✅ within the limits\n\n");
    }
    for f in fails {
        let _ = writeln!(o, "❌ **{}**\n", markdown(f));
    }
    let _ = writeln!(
        o,
        "Base: {}, new: {}.\n",
        markdown(&crate::summary::who(&b.process)),
        markdown(&crate::summary::who(&n.process))
    );
    o.push_str("| | base | new | change | |\n|---|---:|---:|---:|---:|\n");
    for t in totals {
        let [a, b, c, d, e] = total_cells(t);
        let _ = writeln!(o, "| {a} | {b} | {c} | {d} | {e} |");
    }
    if !sites.is_empty() {
        if crate::growth::two_moments(b, n) {
            let _ = writeln!(o, "\n{}: sites by growth of live bytes", crate::growth::interval(b, n));
            o.push_str("\n<details><summary>Sites by growth of live bytes</summary>\n\n");
            o.push_str("| bytes | allocations | live | site |\n|---:|---:|---:|---|\n");
        } else {
            o.push_str("\n<details><summary>Sites that changed</summary>\n\n");
            o.push_str("| bytes | allocations | live at exit | site |\n|---:|---:|---:|---|\n");
        }
        for d in sites.iter().take(top) {
            let [x, y, z] = site_cells(d);
            let _ = writeln!(o, "| {x} | {y} | {z} | {}{} |", markdown(&d.label), tag(d));
        }
        if sites.len() > top {
            let _ = writeln!(o, "\n… and {} more", count((sites.len() - top) as u64));
        }
        o.push_str("\n</details>\n");
    }
    o
}

fn json(totals: &[Total], sites: &[SiteDiff], fails: &[String], growth: bool) -> String {
    use serde_json::json;
    let t: serde_json::Map<String, serde_json::Value> = totals
        .iter()
        .map(|t| {
            (
                // Stable keys for scripts, whatever the rows are called.
                t.name.replace("live now", "live at exit").replace(' ', "_"),
                json!({"base": t.base, "new": t.new, "change": t.new as i128 - t.base as i128}),
            )
        })
        .collect();
    let nums = |n: &Option<Nums>| {
        n.map(|n| json!({"allocations": n.allocations, "bytes": n.bytes, "live_at_exit_bytes": n.live_at_exit_bytes}))
    };
    let s: Vec<_> = sites
        .iter()
        .map(|d| json!({"site": d.label, "base": nums(&d.base), "new": nums(&d.new)}))
        .collect();
    let ranked_by = if growth { "live_bytes_growth" } else { "change" };
    let v = json!({"totals": t, "sites": s, "sites_ranked_by": ranked_by, "limits_exceeded": fails, "ok": fails.is_empty()});
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::tests::{frame, with_sites as snap};

    #[test]
    fn sites_match_by_frames_not_addresses() {
        let b = snap(vec![
            (1, vec![frame(0x1000, Some("grow"), Some("a.c"), Some(10))], 10, 1000),
            (2, vec![frame(0x2000, Some("same"), Some("a.c"), Some(20))], 5, 50),
            (3, vec![frame(0x3000, Some("gone"), Some("a.c"), Some(30))], 1, 7),
        ]);
        let n = snap(vec![
            (7, vec![frame(0x7000, Some("grow"), Some("a.c"), Some(10))], 30, 3000),
            (8, vec![frame(0x8000, Some("same"), Some("a.c"), Some(20))], 5, 50),
            (9, vec![frame(0x9000, Some("fresh"), Some("b.c"), Some(1))], 2, 64),
        ]);
        let d = site_diffs(&b, &n);
        let labels: Vec<&str> = d.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["grow (a.c:10)", "fresh (b.c:1)", "gone (a.c:30)"]);
        assert_eq!(d[0].delta(|n| n.bytes), 2000);
        assert_eq!(d[0].delta(|n| n.allocations), 20);
        assert_eq!(tag(&d[1]), " (new site)");
        assert_eq!(d[2].delta(|n| n.bytes), -7);
    }

    #[test]
    fn growth_is_relative_to_base() {
        assert_eq!(growth_pct(100, 110), 10.0);
        assert_eq!(growth_pct(0, 0), 0.0);
        assert!(growth_pct(0, 1).is_infinite());
        assert_eq!(growth_pct(200, 100), -50.0);
    }
}
