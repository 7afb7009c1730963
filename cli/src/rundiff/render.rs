//! A [`Comparison`] of two runs as text, markdown or JSON. Pure functions;
//! every name from the traced programs is escaped here ([`term`] for a
//! terminal, [`markdown`] for a pull request). Each list is bounded (see
//! the limits in [`super`]), so the markdown of a run of hundreds of
//! processes stays a few kilobytes.

use super::{Comparison, Section, MAX_LIST};
use crate::diff::{site_cells, tag, total_cells};
use crate::text::{count, markdown as md, term};
use std::fmt::Write as _;

/// The first [`MAX_LIST`] of `v`, escaped by `esc`, and "… and N more".
fn bounded(v: &[String], esc: fn(&str) -> String) -> String {
    let mut s: Vec<String> = v.iter().take(MAX_LIST).map(|x| esc(x)).collect();
    if v.len() > MAX_LIST {
        s.push(format!("… and {} more", count((v.len() - MAX_LIST) as u64)));
    }
    s.join("; ")
}

/// The lists after the sections: appeared, vanished, unchanged, not gated.
fn lists(c: &Comparison) -> [(&'static str, &[String]); 4] {
    [
        ("appeared in new (no base to compare with)", &c.appeared),
        ("vanished from new", &c.vanished),
        ("gated, unchanged", &c.unchanged),
        ("not gated", &c.not_gated),
    ]
}

fn more(c: &Comparison) -> Option<String> {
    (c.more_sections > 0).then(|| {
        format!(
            "… and {} more gated executable{} that changed, {}",
            count(c.more_sections as u64),
            if c.more_sections == 1 { "" } else { "s" },
            match c.more_failed {
                0 => "within the limits".to_string(),
                n => format!("{n} of them over a limit (see the list above)"),
            }
        )
    })
}

pub fn text(c: &Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "base:  {}\nnew:   {}\ngated: {}",
        term(&c.base),
        term(&c.new),
        c.gated
    );
    for s in &c.sections {
        text_section(&mut o, s);
    }
    if let Some(m) = more(c) {
        let _ = writeln!(o, "\n{m}");
    }
    for (what, v) in lists(c) {
        if !v.is_empty() {
            let _ = writeln!(o, "\n{what}: {}", bounded(v, term));
        }
    }
    for f in &c.failures {
        let _ = writeln!(o, "\nFAIL {}", term(f));
    }
    o
}

fn text_section(o: &mut String, s: &Section) {
    let _ = writeln!(
        o,
        "\n{}{}\n  {:<16} {:>12} {:>12} {:>13} {:>8}",
        term(&s.title),
        if s.failed { "  (over a limit)" } else { "" },
        "",
        "base",
        "new",
        "change",
        ""
    );
    for t in &s.totals {
        let [a, b, c, d, e] = total_cells(t);
        let _ = writeln!(o, "  {a:<16} {b:>12} {c:>12} {d:>13} {e:>8}");
    }
    for p in &s.pairs {
        let _ = writeln!(o, "  {}", term(p));
    }
    if !s.sites.is_empty() {
        let _ = writeln!(o, "  sites that changed ({}):", s.sites_of);
        for d in &s.sites {
            let [x, y, z] = site_cells(d);
            let _ = writeln!(o, "  {x:>12} {y:>12} {z:>12}  {}{}", term(&d.label), tag(d));
        }
    }
}

pub fn markdown(c: &Comparison) -> String {
    let mut o = String::from("### memscope: heap changes\n\n");
    if c.failures.is_empty() {
        o.push_str("✅ within the limits\n\n");
    }
    for f in c.failures.iter().take(MAX_LIST) {
        let _ = writeln!(o, "❌ **{}**\n", md(f));
    }
    if c.failures.len() > MAX_LIST {
        let _ = writeln!(o, "❌ … and {} more\n", count((c.failures.len() - MAX_LIST) as u64));
    }
    let _ = writeln!(
        o,
        "Base: {}. New: {}. Gated: {}.",
        md(&c.base),
        md(&c.new),
        md(&c.gated)
    );
    for s in &c.sections {
        md_section(&mut o, s);
    }
    if let Some(m) = more(c) {
        let _ = writeln!(o, "\n{m}.");
    }
    let mut first = true;
    for (what, v) in lists(c) {
        if !v.is_empty() {
            let _ = writeln!(o, "{}- {what}: {}", if first { "\n" } else { "" }, bounded(v, md));
            first = false;
        }
    }
    o
}

fn md_section(o: &mut String, s: &Section) {
    let _ = writeln!(o, "\n#### {} {}\n", if s.failed { "❌" } else { "✅" }, md(&s.title));
    o.push_str("| | base | new | change | |\n|---|---:|---:|---:|---:|\n");
    for t in &s.totals {
        let [a, b, c, d, e] = total_cells(t);
        let _ = writeln!(o, "| {a} | {b} | {c} | {d} | {e} |");
    }
    if !s.pairs.is_empty() {
        o.push_str("\nMost changed processes (matched by order of start):\n");
        for p in &s.pairs {
            let _ = writeln!(o, "- {}", md(p));
        }
    }
    if !s.sites.is_empty() {
        let _ = writeln!(
            o,
            "\n<details><summary>Sites that changed ({})</summary>\n\n| bytes | allocations | live at exit | site |\n|---:|---:|---:|---|",
            s.sites_of
        );
        for d in &s.sites {
            let [x, y, z] = site_cells(d);
            let _ = writeln!(o, "| {x} | {y} | {z} | {}{} |", md(&d.label), tag(d));
        }
        o.push_str("\n</details>\n");
    }
}

pub fn json(c: &Comparison) -> String {
    use serde_json::json;
    let sections: Vec<_> = c
        .sections
        .iter()
        .map(|s| {
            let totals: serde_json::Map<String, serde_json::Value> = s
                .totals
                .iter()
                .map(|t| {
                    (
                        t.name.replace(' ', "_"),
                        json!({"base": t.base, "new": t.new, "change": t.new as i128 - t.base as i128}),
                    )
                })
                .collect();
            json!({"executable": s.title, "over_a_limit": s.failed, "totals": totals, "processes": s.pairs})
        })
        .collect();
    let v = json!({
        "base": c.base, "new": c.new, "gated": c.gated,
        "executables": sections, "more_executables": c.more_sections,
        "unchanged": c.unchanged, "appeared": c.appeared, "vanished": c.vanished,
        "not_gated": c.not_gated,
        "limits_exceeded": c.failures, "ok": c.failures.is_empty(),
    });
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}
