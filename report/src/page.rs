//! The static part of the page: header, process index and the skeleton of
//! each process's section. Numbers are written here (not by the scripts) so
//! the page states its facts even with scripting off, and so tests can read
//! them with an HTML parser. Every program-controlled string goes through
//! [`esc`].

use crate::fmt::{bytes, count, duration, esc, utc};
use crate::groups::{basename, ProcessRow};
use crate::index::ending;
use crate::{tables, Section};
use memscope_format::Snapshot;
use std::fmt::Write;

/// The `<body>` content: top bar, index (several processes), the detailed
/// sections (already rendered, in the order given).
pub fn body(rows: &[ProcessRow], sections: &[Section], o: &mut String) {
    let title = rows.first().map_or("memscope report", |r| basename(&r.exe));
    let _ = write!(
        o,
        "<header class=\"topbar\"><span class=\"brand\">memscope</span><span class=\"prog\">{}</span>\
         <span class=\"grow\"></span><nav>",
        esc(title),
    );
    if rows.len() > 1 {
        o.push_str("<a href=\"#processes\">processes</a>");
    }
    if let Some(first) = sections.first() {
        for (anchor, name) in [
            ("heap", "heap"),
            ("sites", "sites"),
            ("lifetimes", "lifetimes"),
            ("leaks", first.live_label),
            ("variables", "variables"),
            ("threads", "threads"),
        ] {
            let _ = write!(o, "<a href=\"#proc-{}-{anchor}\">{name}</a>", first.index);
        }
    }
    let _ = write!(
        o,
        "</nav><span class=\"meta\">{} process{}</span></header>\n<main id=\"report\">",
        count(rows.len() as u64),
        if rows.len() == 1 { "" } else { "es" }
    );
    if rows.len() > 1 {
        let mut detailed = vec![false; rows.len()];
        for s in sections {
            detailed[s.index] = true;
        }
        crate::index::index(rows, &detailed, o);
    }
    for s in sections {
        o.push_str(&s.html);
    }
    o.push_str("</main>\n<div id=\"tooltip\" hidden></div>\n");
}

/// The full section of process image `s`, anchored `proc-{i}`, on a page
/// of `sections` sections; `names`: each site's caller index and name
/// ([`memscope_sites::site_names`]).
pub fn section(s: &Snapshot, i: usize, sections: usize, names: &[(usize, String)], o: &mut String) {
    let p = &s.process;
    let m = &s.summary;
    let (end, class) = ending(p.end, p.exit_code, p.signal);
    let _ = write!(
        o,
        "<section class=\"process\" id=\"proc-{i}\" data-proc=\"{i}\">\n<div class=\"card head\">\
         <h2><span class=\"exe\">{}</span> <span class=\"pid\">pid {}</span> \
         <span class=\"badge {class}\" data-field=\"end\">{}</span></h2><div class=\"argv\" data-field=\"argv\">",
        esc(basename(&p.exe)),
        p.pid,
        esc(&end)
    );
    for a in &p.argv {
        let _ = write!(o, "<code>{}</code> ", esc(a));
    }
    o.push_str("</div><dl class=\"facts\">");
    let wall = p.end_unix_ns.saturating_sub(p.start_unix_ns);
    let mut facts = vec![
        ("executable", esc(&p.exe)),
        ("working directory", esc(&p.cwd)),
        ("pid / ppid", format!("{} / {}", p.pid, p.ppid)),
        ("started", utc(p.start_unix_ns)),
        ("wall time", duration(wall)),
        (
            "traced by",
            esc(&format!(
                "{} {} ({}, {} frames, {} clock)",
                s.tool.name, s.tool.version, s.tool.mode, s.tool.backtrace_depth, s.tool.clock
            )),
        ),
    ];
    if p.forked {
        facts.push((
            "forked",
            format!(
                "yes, inherited {} blocks ({})",
                count(m.inherited_allocations),
                bytes(m.inherited_bytes)
            ),
        ));
    }
    if p.exec_seq > 0 {
        facts.push(("exec", format!("image {} of this pid", p.exec_seq + 1)));
    }
    for (k, v) in facts {
        let _ = write!(o, "<dt>{k}</dt><dd>{v}</dd>");
    }
    o.push_str("</dl>");
    if m.events_dropped > 0 {
        let _ = write!(
            o,
            "<div class=\"alert\" data-field=\"events_dropped\">{} EVENTS DROPPED — memscope lost track of \
             them, so every count in this report is incomplete.</div>",
            count(m.events_dropped)
        );
    }
    cards(s, o);
    if let Some(f) = m.at_fork {
        let _ = write!(
            o,
            "<p class=\"note\" data-field=\"at_fork\">A fork() child: the totals include {} allocations ({}) its \
             parent made before the fork; the sites, lifetimes and listed blocks are the child's own. {} blocks \
             ({}) live at exit are the parent's, untouched since the fork (the parent's snapshot lists them).</p>",
            count(f.total_allocations),
            bytes(f.total_allocated_bytes),
            count(m.inherited_live_at_exit_allocations),
            bytes(m.inherited_live_at_exit_bytes)
        );
    } else if m.records_omitted > 0 {
        let _ = write!(
            o,
            "<p class=\"note\">{} of {} blocks are listed individually (MEMSCOPE_MAX_RECORDS; <code>run</code> lists them for a few images of each executable); totals, sites, \
             timeline and the lifetime histogram cover every block, the allocation-rate chart and per-site \
             lifetime bars show the listed ones.</p>",
            count(s.allocations.len() as u64),
            count(m.total_allocations + m.reallocs)
        );
    }
    o.push_str("</div>\n");
    charts(i, o);
    tables::leaks(s, i, tables::leak_sites_per_section(sections), names, o);
    tables::variables(s, i, o);
    tables::threads(s, i, o);
    o.push_str("</section>\n");
}

/// The headline numbers, each with its exact value in `data-v`.
fn cards(s: &Snapshot, o: &mut String) {
    let m = &s.summary;
    let peak_at = m.peak_unix_ns.saturating_sub(s.process.start_unix_ns);
    o.push_str("<div class=\"cards\">");
    let mut card = |field: &str, label: &str, v: u64, shown: String, sub: String| {
        let loud = if field == "events_dropped" && v > 0 {
            " loud"
        } else {
            ""
        };
        let _ = write!(
            o,
            "<div class=\"stat{loud}\" data-field=\"{field}\" data-v=\"{v}\"><div class=\"label\">{label}</div>\
             <div class=\"value\">{shown}</div><div class=\"sub\">{sub}</div></div>"
        );
    };
    let n = m.total_allocations;
    card(
        "total_allocations",
        "allocations",
        n,
        count(n),
        format!("{} reallocs", count(m.reallocs)),
    );
    let b = m.total_allocated_bytes;
    card(
        "total_allocated_bytes",
        "allocated",
        b,
        bytes(b),
        format!("{} bytes", count(b)),
    );
    let sub = format!("{} blocks, at +{}", count(m.peak_live_allocations), duration(peak_at));
    card(
        "peak_live_bytes",
        "peak live",
        m.peak_live_bytes,
        bytes(m.peak_live_bytes),
        sub,
    );
    let sub = format!("{} blocks", count(m.live_at_exit_allocations));
    card(
        "live_at_exit_bytes",
        s.live_label(),
        m.live_at_exit_bytes,
        bytes(m.live_at_exit_bytes),
        sub,
    );
    let sub = format!("{} freed", bytes(m.total_freed_bytes));
    card("total_frees", "frees", m.total_frees, count(m.total_frees), sub);
    let sub = format!("{} unmatched frees", count(m.unmatched_frees));
    card(
        "events_dropped",
        "events dropped",
        m.events_dropped,
        count(m.events_dropped),
        sub,
    );
    o.push_str("</div>");
}

/// Containers the scripts draw into.
fn charts(i: usize, o: &mut String) {
    let _ = write!(
        o,
        "<div class=\"card\" id=\"proc-{i}-heap\"><h3>Heap over time</h3>\
         <div class=\"chart\" data-chart=\"timeline\"><canvas></canvas></div>\
         <h4>Allocation rate · <span class=\"hint\" data-caption=\"rate\"></span></h4>\
         <div class=\"chart small\" data-chart=\"rate\"><canvas></canvas></div></div>\n\
         <div class=\"card\" id=\"proc-{i}-sites\"><h3>Allocation sites</h3>\
         <div class=\"controls\"><label>size by <select data-ctl=\"metric\"><option value=\"b\">bytes allocated</option>\
         <option value=\"n\">allocations</option><option value=\"l\">live at exit</option></select></label>\
         <input type=\"search\" data-ctl=\"search\" placeholder=\"search functions, files, modules\">\
         <button data-ctl=\"reset\">reset zoom</button><span class=\"hint\" data-caption=\"flame\"></span></div>\
         <div class=\"flame\" data-chart=\"flame\"><canvas></canvas></div>\
         <div class=\"controls\"><input type=\"search\" data-ctl=\"filter\" placeholder=\"filter sites by function, file or id\">\
         <span class=\"hint\" data-caption=\"sites\"></span></div><div class=\"sites\" data-table=\"sites\"></div></div>\n\
         <div class=\"card\" id=\"proc-{i}-lifetimes\"><h3>Lifetimes</h3>\
         <div class=\"hint\" data-caption=\"lifetimes\"></div>\
         <div class=\"chart\" data-chart=\"lifetimes\"><canvas></canvas></div></div>\n"
    );
}
