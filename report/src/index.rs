//! The index of a run's processes: one collapsible group per executable,
//! heaviest first (see [`crate::groups`]), each listing its processes
//! heaviest first. A process with a detailed section links to it; the
//! others are told in their row alone, so a run of hundreds of processes
//! stays one readable page that opens at once.

use crate::fmt::{bytes, count, esc};
use crate::groups::{self, ProcessRow};
use crate::tables::num_cell;
use memscope_format::EndKind;
use std::fmt::Write;

/// Processes listed per group (the heaviest; a note says how many more).
const MAX_ROWS_PER_GROUP: usize = 500;
/// A group this small starts open; bigger ones start collapsed to their
/// one-line summary.
const OPEN_GROUP_MAX: usize = 20;

/// `exit 0`, `signal 11`, `panic`, … and the badge class that colours it.
pub fn ending(end: EndKind, exit_code: Option<i32>, signal: Option<i32>) -> (String, &'static str) {
    let text = match (exit_code, signal) {
        (_, Some(sig)) => format!("{} {sig}", end.as_str()),
        (Some(code), None) => format!("{} {code}", end.as_str()),
        (None, None) => end.as_str().to_string(),
    };
    let ok = matches!(end, EndKind::Exit | EndKind::UnderscoreExit) && exit_code == Some(0);
    let neutral = matches!(end, EndKind::Exec | EndKind::Running);
    let class = if ok {
        "ok"
    } else if neutral {
        "neutral"
    } else {
        "bad"
    };
    (text, class)
}

/// `detailed[i]`: row `i` has a full section (anchor `proc-i`).
pub fn index(rows: &[ProcessRow], detailed: &[bool], o: &mut String) {
    let groups = groups::by_executable(rows);
    let names = groups::display_names(&groups);
    let shown = detailed.iter().filter(|&&d| d).count();
    let _ = write!(
        o,
        "<section class=\"card\" id=\"processes\"><h2>Processes</h2><p class=\"note\" data-field=\"run\">\
         {} process images of {} executable{}, grouped by executable, heaviest first (by bytes allocated).",
        count(rows.len() as u64),
        count(groups.len() as u64),
        if groups.len() == 1 { "" } else { "s" }
    );
    if shown < rows.len() {
        let _ = write!(
            o,
            " Detailed sections follow for the {shown} heaviest processes; the other {} are told in their row \
             of this index only.",
            count((rows.len() - shown) as u64)
        );
    }
    o.push_str("</p>\n");
    for (k, (g, name)) in groups.iter().zip(&names).enumerate() {
        let peak = &rows[g.peak_member];
        let _ = write!(
            o,
            "<details class=\"group\" id=\"group-{k}\" data-exe=\"{}\" data-processes=\"{}\" data-bytes=\"{}\" \
             data-allocations=\"{}\" data-peak=\"{}\" data-inherited-only=\"{}\"{}><summary>\
             <span class=\"exe\" title=\"{}\">{}</span> <span class=\"n\">×{}</span> \
             <span class=\"tot\">total {} in {} allocations</span> <span class=\"pk\">largest peak {} (pid {})</span>",
            esc(&g.exe),
            g.members.len(),
            g.total_allocated_bytes,
            g.total_allocations,
            g.peak_live_bytes,
            g.inherited_only,
            if g.members.len() <= OPEN_GROUP_MAX { " open" } else { "" },
            esc(&g.exe),
            esc(name),
            count(g.members.len() as u64),
            bytes(g.total_allocated_bytes),
            count(g.total_allocations),
            bytes(g.peak_live_bytes),
            peak.pid,
        );
        if g.inherited_only > 0 {
            let _ = write!(
                o,
                " <span class=\"inh\">{} fork{} that only inherited</span>",
                count(g.inherited_only as u64),
                if g.inherited_only == 1 { "" } else { "s" }
            );
        }
        let _ = write!(
            o,
            "</summary><table class=\"sortable process-index\"><thead><tr><th data-type=\"num\">pid</th>\
             <th data-type=\"num\">ppid</th><th>end</th><th data-type=\"num\">allocations</th>\
             <th data-type=\"num\">allocated</th><th data-type=\"num\">peak live</th>\
             <th data-type=\"num\">live at exit</th><th>command</th></tr></thead><tbody>"
        );
        for &i in g.members.iter().take(MAX_ROWS_PER_GROUP) {
            row(&rows[i], i, detailed[i], o);
        }
        o.push_str("</tbody></table>");
        if g.members.len() > MAX_ROWS_PER_GROUP {
            let _ = write!(
                o,
                "<p class=\"note\">Showing the {} heaviest of {} processes.</p>",
                count(MAX_ROWS_PER_GROUP as u64),
                count(g.members.len() as u64)
            );
        }
        o.push_str("</details>\n");
    }
    o.push_str("</section>\n");
}

fn row(r: &ProcessRow, i: usize, detailed: bool, o: &mut String) {
    let (end, class) = ending(r.end, r.exit_code, r.signal);
    let m = &r.summary;
    let pid = if detailed {
        format!("<a href=\"#proc-{i}\">{}</a>", r.pid)
    } else {
        r.pid.to_string()
    };
    let mut tags = String::new();
    if m.inherited_only {
        tags.push_str(" <span class=\"tag\">fork, only inherited</span>");
    } else if r.forked {
        tags.push_str(" <span class=\"tag\">fork</span>");
    }
    let _ = write!(
        o,
        "<tr class=\"{}\" data-pid=\"{}\"><td class=\"num\" data-v=\"{}\">{pid}</td>\
         <td class=\"num\" data-v=\"{ppid}\">{ppid}</td><td><span class=\"badge {class}\">{}</span>{tags}</td>\
         {}{}{}{}<td class=\"path\" title=\"{cmd}\">{cmd}</td></tr>",
        if detailed { "detailed" } else { "brief" },
        r.pid,
        r.pid,
        esc(&end),
        num_cell(m.total_allocations, &count(m.total_allocations)),
        num_cell(m.total_allocated_bytes, &bytes(m.total_allocated_bytes)),
        num_cell(m.peak_live_bytes, &bytes(m.peak_live_bytes)),
        num_cell(m.live_at_exit_bytes, &bytes(m.live_at_exit_bytes)),
        ppid = r.ppid,
        cmd = esc(&r.command),
    );
}
