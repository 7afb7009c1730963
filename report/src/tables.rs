//! Static tables: leaks grouped by site, tracked variables, threads. They
//! are bounded (the biggest entries first, a note says how many more), so a
//! huge run still gives a page the browser lays out at once.

use crate::fmt::{bytes, count, duration, esc};
use crate::model::origin;
use memscope_format::{Allocation, Callsite, Snapshot};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Leak sites listed (each with its stack and samples) in a page's only
/// section; with several sections they share [`LEAK_SITES_PER_PAGE`].
const MAX_LEAK_SITES: usize = 200;
/// Leak sites all the sections of one page list together: each is a few
/// kilobytes of markup the browser must parse before it shows anything.
const LEAK_SITES_PER_PAGE: usize = 500;
/// Leak sites a section lists however many share the page.
const MIN_LEAK_SITES: usize = 25;

/// Leak sites each section lists when `sections` share the page.
pub fn leak_sites_per_section(sections: usize) -> usize {
    (LEAK_SITES_PER_PAGE / sections.max(1)).clamp(MIN_LEAK_SITES, MAX_LEAK_SITES)
}
const MAX_LEAK_SAMPLES: usize = 8;
const MAX_VARIABLES: usize = 5000;
const MAX_THREADS: usize = 1000;

/// A right-aligned number cell whose exact value sorts it.
pub fn num_cell(v: u64, shown: &str) -> String {
    format!("<td class=\"num\" data-v=\"{v}\">{shown}</td>")
}

fn more(o: &mut String, shown: usize, total: usize, what: &str) {
    if total > shown {
        let _ = write!(o, "<p class=\"note\">Showing {shown} of {total} {what}.</p>");
    }
}

/// Renders a site's stack, innermost frame first, as an ordered list; the
/// allocation wrappers (the frames before `caller`) dimmed.
pub fn stack(s: &Snapshot, site: &Callsite, caller: usize, o: &mut String) {
    if site.frames.is_empty() {
        o.push_str("<p class=\"note\">No stack recorded (backtraces off: MEMSCOPE_BACKTRACE=0).</p>");
        return;
    }
    o.push_str("<ol class=\"stack\">");
    for (k, f) in s.frames_of(site).enumerate() {
        let name = f.function.as_deref().unwrap_or(&f.ip);
        let class = if k < caller {
            " class=\"wrapper\" title=\"allocation wrapper\""
        } else {
            ""
        };
        let _ = write!(o, "<li{class}><span class=\"fn\">{}</span>", esc(name));
        if f.inlined {
            o.push_str(" <span class=\"tag\">inlined</span>");
        }
        if let Some(file) = &f.file {
            let line = f.line.map(|l| format!(":{l}")).unwrap_or_default();
            let _ = write!(o, " <span class=\"loc\">{}{line}</span>", esc(file));
        }
        if let Some(module) = s.module_of(f) {
            let _ = write!(
                o,
                " <span class=\"mod\">{}</span>",
                esc(crate::groups::basename(module))
            );
        }
        let _ = write!(o, " <span class=\"ip\">{}</span></li>", esc(&f.ip));
    }
    o.push_str("</ol>");
}

/// Live-at-exit blocks grouped by site: exact totals from the site, sizes
/// and samples from the listed records; the first `max_sites` sites, named
/// by `names` (per site of `s.callsites`: caller index and name).
pub fn leaks(s: &Snapshot, i: usize, max_sites: usize, names: &[(usize, String)], o: &mut String) {
    let title = if s.is_running() { "Live now" } else { "Live at exit" };
    let _ = write!(o, "<div class=\"card\" id=\"proc-{i}-leaks\"><h3>{title}</h3>");
    let mut records: HashMap<Option<u64>, Vec<&Allocation>> = HashMap::new();
    for a in s.allocations.iter().filter(|a| s.live_at_end(a)) {
        records.entry(a.callsite).or_default().push(a);
    }
    let mut sites: Vec<(&Callsite, &(usize, String))> = s
        .callsites
        .iter()
        .zip(names)
        .filter(|(c, _)| c.live_at_exit_bytes > 0 || c.live_at_exit_allocations > 0)
        .collect();
    sites.sort_by(|(a, _), (b, _)| {
        (b.live_at_exit_bytes, b.live_at_exit_allocations, a.id).cmp(&(
            a.live_at_exit_bytes,
            a.live_at_exit_allocations,
            b.id,
        ))
    });
    if sites.is_empty() {
        o.push_str(if s.is_running() {
            "<p class=\"good\">Nothing was live when the snapshot was taken.</p></div>\n"
        } else {
            "<p class=\"good\">Nothing was live at exit: every block was freed.</p></div>\n"
        });
        return;
    }
    let when = if s.is_running() {
        "were live when the snapshot was taken (the process went on)"
    } else {
        "were still live when the process ended"
    };
    let _ = write!(
        o,
        "<p>{} blocks ({}) {when}, from {} site{}.</p><div class=\"leaks\">",
        count(s.summary.live_at_exit_allocations),
        bytes(s.summary.live_at_exit_bytes),
        count(sites.len() as u64),
        if sites.len() == 1 { "" } else { "s" }
    );
    let t0 = origin(s);
    for &(c, (caller, label)) in sites.iter().take(max_sites) {
        let recs = records.get(&Some(c.id)).map_or(&[][..], |v| v.as_slice());
        let _ = write!(
            o,
            "<details class=\"leak\" data-site=\"{id}\" data-bytes=\"{b}\" data-blocks=\"{n}\"><summary>\
             <span class=\"bytes\">{}</span><span class=\"blocks\">{} blocks</span>\
             <span class=\"fn\">{}</span><span class=\"site\">site {id}</span></summary>",
            bytes(c.live_at_exit_bytes),
            count(c.live_at_exit_allocations),
            esc(label),
            id = c.id,
            b = c.live_at_exit_bytes,
            n = c.live_at_exit_allocations,
        );
        let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
        for a in recs {
            *sizes.entry(a.size).or_default() += 1;
        }
        let mut sizes: Vec<(u64, u64)> = sizes.into_iter().collect();
        sizes.sort_by_key(|&(size, n)| std::cmp::Reverse((n.saturating_mul(size), n)));
        if !sizes.is_empty() {
            o.push_str("<p class=\"sizes\">");
            for (size, n) in sizes.iter().take(12) {
                let _ = write!(o, "<span>{} × {}</span> ", count(*n), bytes(*size));
            }
            o.push_str("</p>");
        }
        stack(s, c, *caller, o);
        if !recs.is_empty() {
            o.push_str("<table class=\"samples\"><thead><tr><th>address</th><th>size</th><th>thread</th><th>born at</th><th>variable</th></tr></thead><tbody>");
            for a in recs.iter().take(MAX_LEAK_SAMPLES) {
                let born = a.timestamp_alloc.saturating_sub(t0);
                let _ = write!(
                    o,
                    "<tr><td class=\"mono\">{}</td>{}<td class=\"num\">{}</td>{}<td>{}</td></tr>",
                    esc(&a.ptr),
                    num_cell(a.size, &bytes(a.size)),
                    a.thread_id,
                    num_cell(born, &format!("+{}", duration(born))),
                    esc(a
                        .var_name
                        .as_deref()
                        .unwrap_or(if a.inherited { "(inherited)" } else { "" }))
                );
            }
            o.push_str("</tbody></table>");
            more(o, recs.len().min(MAX_LEAK_SAMPLES), recs.len(), "listed blocks");
        }
        o.push_str("</details>");
    }
    o.push_str("</div>");
    more(o, sites.len().min(max_sites), sites.len(), "sites");
    o.push_str("</div>\n");
}

/// `track_var!` variables with birth, death and a lifetime in every row.
pub fn variables(s: &Snapshot, i: usize, o: &mut String) {
    let _ = write!(
        o,
        "<div class=\"card\" id=\"proc-{i}-variables\"><h3>Tracked variables</h3>"
    );
    if s.variables.is_empty() {
        o.push_str("<p class=\"note\">No variables were named with <code>track_var!</code>.</p></div>\n");
        return;
    }
    let _ = write!(
        o,
        "<div class=\"controls\"><input type=\"search\" data-filter=\"proc-{i}-vars\" placeholder=\"filter variables\"></div>\
         <table class=\"sortable\" id=\"proc-{i}-vars\"><thead><tr><th>name</th><th>type</th><th>scope</th>\
         <th data-type=\"num\">size</th><th data-type=\"num\">thread</th><th data-type=\"num\">birth</th>\
         <th data-type=\"num\">death</th><th data-type=\"num\">lifetime</th></tr></thead><tbody>"
    );
    let t0 = origin(s);
    let mut vars: Vec<_> = s.variables.iter().collect();
    vars.sort_by_key(|v| v.timestamp_alloc);
    for v in vars.iter().take(MAX_VARIABLES) {
        let (birth, death) = (
            v.timestamp_alloc.saturating_sub(t0),
            v.timestamp_dealloc.saturating_sub(t0),
        );
        let live = v.is_leaked || (s.is_running() && v.timestamp_dealloc == s.process.end_unix_ns);
        let (death_text, life_text) = if live {
            (
                s.live_label().to_string(),
                format!("≥ {} ({})", duration(v.lifetime_ns), s.live_label()),
            )
        } else {
            (format!("+{}", duration(death)), duration(v.lifetime_ns))
        };
        let _ = write!(
            o,
            "<tr{}><td class=\"name\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td>{}\
             <td class=\"num\" data-v=\"{}\">{}</td>{}{}<td class=\"num life\" data-v=\"{}\" title=\"{} ns\">{}</td></tr>",
            if v.is_leaked { " class=\"leaked\"" } else { "" },
            esc(&v.var_name),
            esc(&v.type_name),
            esc(&v.scope_name),
            num_cell(v.size, &bytes(v.size)),
            v.thread_id,
            v.thread_id,
            num_cell(birth, &format!("+{}", duration(birth))),
            num_cell(death, &death_text),
            v.lifetime_ns,
            v.lifetime_ns,
            life_text,
        );
    }
    o.push_str("</tbody></table>");
    more(
        o,
        vars.len().min(MAX_VARIABLES),
        vars.len(),
        "variables (earliest first)",
    );
    o.push_str("</div>\n");
}

/// Per-thread totals, the busiest threads first.
pub fn threads(s: &Snapshot, i: usize, o: &mut String) {
    let _ = write!(o, "<div class=\"card\" id=\"proc-{i}-threads\"><h3>Threads</h3>");
    if s.threads.is_empty() {
        o.push_str("<p class=\"note\">The snapshot has no per-thread totals.</p></div>\n");
        return;
    }
    let _ = write!(
        o,
        "<table class=\"sortable\" id=\"proc-{i}-threads-table\"><thead><tr><th data-type=\"num\">thread</th>\
         <th>name</th><th data-type=\"num\">allocations</th><th data-type=\"num\">bytes</th>\
         <th data-type=\"num\">frees</th><th data-type=\"num\">live at exit</th><th data-type=\"num\">share</th></tr></thead><tbody>"
    );
    let total = s.threads.iter().map(|t| t.bytes).sum::<u64>().max(1);
    let mut threads: Vec<_> = s.threads.iter().collect();
    threads.sort_by(|a, b| (b.bytes, a.thread_id).cmp(&(a.bytes, b.thread_id)));
    for t in threads.iter().take(MAX_THREADS) {
        let share = t.bytes as f64 * 100.0 / total as f64;
        let _ = write!(
            o,
            "<tr><td class=\"num\" data-v=\"{id}\">{id}</td><td class=\"name\">{}</td>{}{}{}{}\
             <td class=\"num\" data-v=\"{share:.4}\"><span class=\"bar\" style=\"width:{share:.1}%\"></span>{share:.1}%</td></tr>",
            esc(&t.name),
            num_cell(t.allocations, &count(t.allocations)),
            num_cell(t.bytes, &bytes(t.bytes)),
            num_cell(t.frees, &count(t.frees)),
            num_cell(t.live_at_exit_bytes, &bytes(t.live_at_exit_bytes)),
            id = t.thread_id,
        );
    }
    o.push_str("</tbody></table>");
    more(
        o,
        threads.len().min(MAX_THREADS),
        threads.len(),
        "threads (most bytes first)",
    );
    o.push_str("</div>\n");
}
