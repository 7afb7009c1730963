//! `diff` over whole runs: the processes of base and new matched by
//! executable and order of start ([`crate::matching`]); every matched pair
//! of a gated executable is held to the growth limits; one section per
//! executable, heaviest change first, bounded so that a run of hundreds of
//! processes still reads as a pull-request comment ([`render`]).

mod render;

use crate::diff::{growth_pct, pct, site_diffs, SiteDiff, Total};
use crate::matching::{groups, ordinal, Group, RunSet, Select};
use crate::run::digest::Digest;
use crate::text::{bytes, term};
use std::path::Path;

/// Executables given a section of their own; the rest get one line.
pub const MAX_SECTIONS: usize = 8;
/// Processes of one executable listed in its section.
pub const PAIRS_PER_SECTION: usize = 3;
/// Changed sites listed in a section.
pub const SITES_PER_SECTION: usize = 5;
/// Names in a list (failures, appeared, vanished, not gated) before "… and N more".
pub const MAX_LIST: usize = 10;

/// The growth limits of `diff`.
pub struct Limits {
    pub peak_growth: Option<f64>,
    pub leak_growth: Option<u64>,
}

/// One executable present in both runs and gated.
pub struct Section {
    /// The executable's name as matched, with the number of processes.
    pub title: String,
    pub failed: bool,
    /// Over all its processes: largest peak; sums of the rest.
    pub totals: Vec<Total>,
    /// For an executable that ran several times: its most changed pairs.
    pub pairs: Vec<String>,
    /// Sites that changed in its most changed pair, and which pair that is.
    pub sites: Vec<SiteDiff>,
    pub sites_of: String,
    weight: u128,
    /// Index of its group.
    group: usize,
}

/// Everything `diff` shows about two runs; raw text, escaped when rendered.
pub struct Comparison {
    pub base: String,
    pub new: String,
    pub gated: String,
    pub failures: Vec<String>,
    pub sections: Vec<Section>,
    /// Gated executables beyond [`MAX_SECTIONS`], and unchanged ones.
    pub more_sections: usize,
    /// Of those, how many are over a limit.
    pub more_failed: usize,
    pub unchanged: Vec<String>,
    pub appeared: Vec<String>,
    pub vanished: Vec<String>,
    pub not_gated: Vec<String>,
}

/// `bytes` when `is_bytes`, else a count.
fn total(name: &'static str, base: u64, new: u64, is_bytes: bool) -> Total {
    Total {
        name,
        base,
        new,
        is_bytes,
    }
}

/// Peak, live at exit, own bytes and allocations of `d`.
fn figures(d: &Digest) -> [u64; 4] {
    let s = &d.row.summary;
    [
        s.peak_live_bytes,
        s.live_at_exit_bytes,
        d.row.own_allocated_bytes(),
        d.row.own_allocations(),
    ]
}

/// A group's totals: its largest peak, the sums of the rest.
fn group_totals(g: &Group) -> Vec<Total> {
    let side = |v: &[&Digest]| {
        v.iter().fold([0u64; 4], |mut acc, d| {
            let f = figures(d);
            acc[0] = acc[0].max(f[0]);
            for i in 1..4 {
                acc[i] += f[i];
            }
            acc
        })
    };
    let (b, n) = (side(&g.base), side(&g.new));
    vec![
        total("peak heap", b[0], n[0], true),
        total("live at exit", b[1], n[1], true),
        total("bytes allocated", b[2], n[2], true),
        total("allocations", b[3], n[3], false),
    ]
}

/// How much a pair changed: peak and live at exit, in bytes.
fn pair_weight(b: &Digest, n: &Digest) -> u128 {
    let (fb, fn_) = (figures(b), figures(n));
    (fb[0] as i128 - fn_[0] as i128).unsigned_abs() + (fb[1] as i128 - fn_[1] as i128).unsigned_abs()
}

/// "prog" or "cc (2nd of 12 by start, pid 345)".
fn who(g: &Group, i: usize, n: &Digest) -> String {
    if g.base.len().max(g.new.len()) == 1 {
        g.key.clone()
    } else {
        format!(
            "{} ({} of {} by start, pid {})",
            g.key,
            ordinal(i + 1),
            g.new.len(),
            n.process.pid
        )
    }
}

/// The limits a matched pair exceeds.
fn pair_failures(name: &str, b: &Digest, n: &Digest, l: &Limits) -> Vec<String> {
    let mut out = Vec::new();
    let (fb, fn_) = (figures(b), figures(n));
    if let Some(limit) = l.peak_growth {
        let g = growth_pct(fb[0], fn_[0]);
        if g > limit {
            out.push(format!(
                "{name}: peak heap grew {} ({} → {}), over the limit of {limit}%",
                pct(g),
                bytes(fb[0]),
                bytes(fn_[0])
            ));
        }
    }
    if let Some(limit) = l.leak_growth {
        if fn_[1] > fb[1] && fn_[1] - fb[1] > limit {
            out.push(format!(
                "{name}: bytes live at exit grew by {} ({} → {}), over the limit of {}",
                bytes(fn_[1] - fb[1]),
                bytes(fb[1]),
                bytes(fn_[1]),
                bytes(limit)
            ));
        }
    }
    out
}

/// `key ×N (largest peak X)` for a list of processes of one executable.
fn listed(key: &str, v: &[&Digest]) -> String {
    let peak = v.iter().map(|d| d.row.summary.peak_live_bytes).max().unwrap_or(0);
    let times = if v.len() > 1 {
        format!(" ×{}", v.len())
    } else {
        String::new()
    };
    let pids: Vec<String> = v.iter().take(3).map(|d| d.process.pid.to_string()).collect();
    format!(
        "{key}{times} (pid {}{}; peak {})",
        pids.join(", "),
        if v.len() > 3 { ", …" } else { "" },
        bytes(peak)
    )
}

/// Compares two runs. Fails (exit 2) when they share no gated executable:
/// the baseline then comes from another program.
pub fn compare(base: &RunSet, new: &RunSet, sel: &Select, limits: &Limits, top: usize) -> Result<Comparison, String> {
    let gs = groups(&base.images, &new.images, sel)?;
    let common = |g: &&Group| !g.base.is_empty() && !g.new.is_empty();
    if !gs.iter().filter(|g| g.gated).any(|g| common(&g)) {
        let names = |new: bool| {
            let v: Vec<&str> = gs
                .iter()
                .filter(|g| g.gated && if new { !g.new.is_empty() } else { !g.base.is_empty() })
                .take(4)
                .map(|g| g.key.as_str())
                .collect();
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.join(", ")
            }
        };
        return Err(format!(
            "base and new have no gated executable in common (base: {}; new: {}): is the baseline from another program?",
            term(&names(false)),
            term(&names(true))
        ));
    }
    let mut c = Comparison {
        base: base.describe(),
        new: new.describe(),
        gated: sel.describe(),
        failures: Vec::new(),
        sections: Vec::new(),
        more_sections: 0,
        more_failed: 0,
        unchanged: Vec::new(),
        appeared: Vec::new(),
        vanished: Vec::new(),
        not_gated: Vec::new(),
    };
    let mut sections = Vec::new();
    for (gi, g) in gs.iter().enumerate() {
        let (extra_new, extra_base) = (g.new.get(g.base.len()..), g.base.get(g.new.len()..));
        for (extra, list) in [(extra_new, &mut c.appeared), (extra_base, &mut c.vanished)] {
            if let Some(v) = extra.filter(|v| !v.is_empty()) {
                list.push(listed(&g.key, v) + if g.gated { "" } else { ", not gated" });
            }
        }
        if !g.gated {
            c.not_gated
                .push(listed(&g.key, if g.new.is_empty() { &g.base } else { &g.new }));
            continue;
        }
        if !common(&g) {
            continue;
        }
        sections.push(section(g, gi, limits, &mut c.failures));
    }
    sections.sort_by(|a, b| {
        b.failed
            .cmp(&a.failed)
            .then(b.weight.cmp(&a.weight))
            .then(a.title.cmp(&b.title))
    });
    for s in sections {
        if !s.failed && s.weight == 0 {
            c.unchanged.push(s.title);
        } else if c.sections.len() < MAX_SECTIONS {
            c.sections.push(s);
        } else {
            c.more_sections += 1;
            c.more_failed += usize::from(s.failed);
        }
    }
    for s in &mut c.sections {
        fill_sites(s, &gs, top)?;
    }
    Ok(c)
}

/// A gated executable's section (its sites filled later, only if shown).
fn section(g: &Group, group: usize, limits: &Limits, failures: &mut Vec<String>) -> Section {
    let mut pairs: Vec<(u128, String)> = Vec::new();
    let mut failed = false;
    let mut weight = 0u128;
    for (i, (b, n)) in g.pairs().enumerate() {
        let (Some(b), Some(n)) = (b, n) else { continue };
        let name = who(g, i, n);
        let f = pair_failures(&name, b, n, limits);
        failed |= !f.is_empty();
        failures.extend(f);
        let w = pair_weight(b, n);
        weight += w;
        let (pb, pn) = (b.row.summary.peak_live_bytes, n.row.summary.peak_live_bytes);
        pairs.push((
            w,
            format!(
                "{}: pid {} → {}, peak {} → {} ({})",
                ordinal(i + 1),
                b.process.pid,
                n.process.pid,
                bytes(pb),
                bytes(pn),
                pct(growth_pct(pb, pn))
            ),
        ));
    }
    pairs.sort_by_key(|p| std::cmp::Reverse(p.0)); // stable: the earlier start first among equals
    let n = g.base.len().max(g.new.len());
    Section {
        title: if n > 1 {
            format!("{} ×{n}", g.key)
        } else {
            g.key.clone()
        },
        failed,
        totals: group_totals(g),
        pairs: if n > 1 {
            pairs
                .into_iter()
                .filter(|p| p.0 > 0)
                .take(PAIRS_PER_SECTION)
                .map(|p| p.1)
                .collect()
        } else {
            Vec::new()
        },
        sites: Vec::new(),
        sites_of: String::new(),
        weight,
        group,
    }
}

/// Reads the most changed pair of the section's executable again for its
/// sites that changed.
fn fill_sites(s: &mut Section, gs: &[Group], top: usize) -> Result<(), String> {
    let g = &gs[s.group];
    // The first of the most changed, as the section lists its pairs.
    let best = g
        .pairs()
        .filter_map(|(b, n)| Some((b?, n?)))
        .fold(None, |best: Option<(&Digest, &Digest)>, (b, n)| match best {
            Some((bb, bn)) if pair_weight(bb, bn) >= pair_weight(b, n) => best,
            _ => Some((b, n)),
        });
    let Some((b, n)) = best else { return Ok(()) };
    let (sb, sn) = (read(&b.path)?, read(&n.path)?);
    let mut sites = site_diffs(&sb, &sn);
    sites.truncate(top.min(SITES_PER_SECTION));
    s.sites = sites;
    s.sites_of = format!("pid {} → pid {}", b.process.pid, n.process.pid);
    Ok(())
}

fn read(p: &Path) -> Result<memscope_format::Snapshot, String> {
    crate::load::snapshot(p)
}

pub use render::{json, markdown, text};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::digest::{read_all, Collected};

    /// A process of `exe` started at `start` with this peak, written to `dir`.
    fn image(dir: &Path, pid: u32, exe: &str, start: u64, peak: u64) -> Digest {
        let mut s = memscope_format::read_snapshot(crate::export::tests::MINIMAL.as_bytes()).unwrap();
        (s.process.pid, s.process.exe, s.process.start_unix_ns) = (pid, exe.into(), start);
        (
            s.summary.peak_live_bytes,
            s.summary.total_allocated_bytes,
            s.summary.total_allocations,
        ) = (peak, peak, 1);
        let path = dir.join(format!("{pid}.json"));
        s.write_json(std::fs::File::create(&path).unwrap()).unwrap();
        let mut c = Collected::default();
        c.add(path, &s);
        read_all(Vec::new(), c).all.remove(0)
    }

    fn run(images: Vec<Digest>) -> RunSet {
        RunSet {
            label: "run of test".into(),
            images,
            left_out: 0,
        }
    }

    const LIMITS: Limits = Limits {
        peak_growth: Some(10.0),
        leak_growth: None,
    };

    #[test]
    fn pairs_follow_the_order_of_start_and_extra_processes_are_listed() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        let evil = "/tmp/\x1b[31mevil|<b>";
        let base = run(vec![
            image(d, 1, "/bin/dash", 0, 2048),
            image(d, 3, "/usr/bin/cc", 30, 200 << 10),
            image(d, 2, "/usr/bin/cc", 20, 100 << 10),
            image(d, 4, evil, 40, 50 << 10),
        ]);
        let new = run(vec![
            image(d, 11, "/bin/dash", 0, 4096),
            image(d, 12, "/usr/bin/cc", 20, 100 << 10),
            image(d, 13, "/usr/bin/cc", 30, 250 << 10),
            image(d, 15, "/usr/bin/cc", 50, 300 << 10),
            image(d, 14, evil, 40, 50 << 10),
        ]);
        let c = compare(&base, &new, &Select::new(&[]).unwrap(), &LIMITS, 10).unwrap();
        assert_eq!(
            c.failures,
            ["cc (2nd of 3 by start, pid 13): peak heap grew +25.0% (200 KiB → 250 KiB), over the limit of 10%"]
        );
        assert_eq!(c.appeared, ["cc (pid 15; peak 300 KiB)"]);
        assert!(c.vanished.is_empty());
        assert_eq!(c.not_gated, ["dash (pid 11; peak 4.00 KiB)"], "+100 % but trivial");
        assert_eq!(c.sections.len(), 1);
        assert_eq!(c.sections[0].title, "cc ×3");
        assert_eq!(c.sections[0].totals[0].new, 300 << 10, "the group's largest peak");
        assert_eq!(c.unchanged, [format!("{}", &evil[5..])]);
        for out in [text(&c), markdown(&c), json(&c)] {
            assert!(!out.contains('\x1b'), "{out}");
        }
        assert!(markdown(&c).contains("\\x1b\\[31mevil\\|&lt;b&gt;"), "{}", markdown(&c));

        // Gating only the shell: a 100 % growth over the limit.
        let c = compare(&base, &new, &Select::new(&["da*".into()]).unwrap(), &LIMITS, 10).unwrap();
        assert_eq!(c.failures.len(), 1, "{:?}", c.failures);
        assert!(c.failures[0].starts_with("dash: peak heap grew +100.0%"));
        assert!(compare(&base, &new, &Select::new(&["nope".into()]).unwrap(), &LIMITS, 10).is_err());
    }

    #[test]
    fn runs_with_no_gated_executable_in_common_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        let base = run(vec![image(d, 1, "/bin/dash", 0, 2048), image(d, 2, "/t/a", 1, 1 << 20)]);
        let new = run(vec![image(d, 3, "/bin/dash", 0, 2048), image(d, 4, "/t/b", 1, 1 << 20)]);
        let e = compare(&base, &new, &Select::new(&[]).unwrap(), &LIMITS, 10)
            .err()
            .unwrap();
        assert_eq!(
            e,
            "base and new have no gated executable in common (base: a; new: b): is the baseline from another program?"
        );
    }
}
