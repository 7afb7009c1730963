//! The HTML report (SPEC §5): one self-contained page, no network needed.
//!
//! [`write_html`] is a pure function from snapshots to bytes, used by
//! `memscope-cli analyze`/`run --export html` and by libmemscope.so itself
//! (`MEMSCOPE_EXPORT_FORMAT=html`), so this crate depends on serde_json only.
//! Everything that comes from the traced program (names, paths, argv,
//! symbols) is escaped: the data travels as JSON inside a `<script>` element
//! with `<`, `>`, `&` and the line separators escaped, and is only ever put on
//! the page through `textContent`.
//!
//! A run of hundreds of processes is rendered without holding them all:
//! the caller keeps a [`ProcessRow`] per process (a few hundred bytes),
//! [`render_sections`] reads the snapshots of the heaviest again, one at a
//! time, and [`write_page`] assembles the page. [`write_html`] does the
//! same from snapshots in memory.

mod flame;
mod fmt;
pub mod groups;
mod index;
mod model;
mod page;
mod tables;

pub use groups::ProcessRow;
use memscope_format::Snapshot;
use memscope_sites::Wrappers;
use std::borrow::Borrow;
use std::io::{self, Write};

/// The page's scripts, in load order: helpers, charts, flamegraph, start-up.
const SCRIPTS: [&str; 4] = [
    include_str!("../assets/util.js"),
    include_str!("../assets/charts.js"),
    include_str!("../assets/flame.js"),
    include_str!("../assets/report.js"),
];

/// Processes that get a full section (charts, flamegraph, tables). Each one
/// costs the browser tens of milliseconds to draw, so a run of hundreds
/// shows its heaviest in full and the rest as rows of the index.
pub const MAX_DETAILED: usize = 20;

/// Bytes of markup and data the sections of one page may hold together (the
/// browser parses all of it before it shows anything): sections stop once
/// it is reached, however few. 20 sections of 1,500 sites each are ~18 MB
/// and show their first screen in ~0.7 s on this project's 2-core machine.
const SECTIONS_BUDGET: usize = 32 << 20;

/// One process image's full section, rendered: its HTML and its entry of
/// the view model, ready to be put on the page.
pub struct Section {
    /// The process's position in the rows of the page (anchor `proc-{index}`).
    pub index: usize,
    /// "live at exit", or "live now" for a running snapshot.
    pub live_label: &'static str,
    html: String,
    /// [`model::process`] as JSON, already escaped for `<script>`.
    model: String,
}

impl Section {
    /// Renders the section of `s`, which is row `index` of a page that will
    /// hold `sections` sections (they share a budget of markup, so that
    /// the page opens at once).
    /// Sites are named after their callers past `wrappers`.
    pub fn render(s: &Snapshot, index: usize, sections: usize, wrappers: &Wrappers) -> Section {
        let names = memscope_sites::site_names(s, wrappers);
        let mut html = String::new();
        page::section(s, index, sections, &names, &mut html);
        let model = serde_json::to_string(&model::process(s, index, &names)).unwrap_or_else(|_| "null".into());
        Section {
            index,
            live_label: s.live_label(),
            html,
            model: escape_script_json(&model),
        }
    }

    fn size(&self) -> usize {
        self.html.len() + self.model.len()
    }
}

/// The full sections of a page over `rows`: the first row (the run's
/// subject) and the heaviest others ([`groups::to_detail`]), at most
/// [`MAX_DETAILED`] and within the
/// page's budget, returned in the order of `rows`. `load(i)` gives row
/// `i`'s snapshot, read only now (None: it is left out), and it is dropped
/// before the next is asked for.
pub fn render_sections<S: Borrow<Snapshot>>(rows: &[ProcessRow], load: impl FnMut(usize) -> Option<S>) -> Vec<Section> {
    render_sections_with(rows, &Wrappers::builtin(), load)
}

/// [`render_sections`] naming sites past `wrappers` (the built-in list and
/// the user's patterns).
pub fn render_sections_with<S: Borrow<Snapshot>>(
    rows: &[ProcessRow],
    wrappers: &Wrappers,
    mut load: impl FnMut(usize) -> Option<S>,
) -> Vec<Section> {
    let planned = rows.len().min(MAX_DETAILED);
    let mut sections = Vec::with_capacity(planned);
    let mut size = 0;
    for i in groups::to_detail(rows, MAX_DETAILED) {
        if size >= SECTIONS_BUDGET {
            break;
        }
        if let Some(s) = load(i) {
            let section = Section::render(s.borrow(), i, planned, wrappers);
            size += section.size();
            sections.push(section);
        }
    }
    sections.sort_by_key(|s| s.index);
    sections
}

/// The data the page's scripts draw from (see [`model`]): one entry per
/// detailed process image, in the order given. Public so tests can compare
/// it with a blessed copy.
pub fn view_model(snapshots: &[Snapshot]) -> serde_json::Value {
    let rows: Vec<ProcessRow> = snapshots.iter().map(ProcessRow::of).collect();
    let processes: Vec<serde_json::Value> = render_sections(&rows, |i| Some(&snapshots[i]))
        .iter()
        .map(|s| serde_json::from_str(&s.model).unwrap_or_default())
        .collect();
    serde_json::json!({ "view_model_version": 1, "processes": processes })
}

/// Writes the report for one or more process images of a run.
pub fn write_html(snapshots: &[Snapshot], out: &mut dyn Write) -> io::Result<()> {
    write_html_with(snapshots, &Wrappers::builtin(), out)
}

/// [`write_html`] naming sites past `wrappers`.
pub fn write_html_with(snapshots: &[Snapshot], wrappers: &Wrappers, out: &mut dyn Write) -> io::Result<()> {
    let rows: Vec<ProcessRow> = snapshots.iter().map(ProcessRow::of).collect();
    let sections = render_sections_with(&rows, wrappers, |i| Some(&snapshots[i]));
    write_page(&rows, &sections, out)
}

/// Writes the page over a run: the index of every row and the given
/// sections (each [`Section::index`] a position in `rows`), in their order.
pub fn write_page(rows: &[ProcessRow], sections: &[Section], out: &mut dyn Write) -> io::Result<()> {
    if let Some(s) = sections.iter().find(|s| s.index >= rows.len()) {
        return Err(io::Error::other(format!(
            "section {} of a report over {} processes",
            s.index,
            rows.len()
        )));
    }
    let title = rows.first().map_or_else(
        || "memscope report".to_string(),
        |r| format!("memscope · {}", groups::basename(&r.exe)),
    );
    let mut body = String::new();
    page::body(rows, sections, &mut body);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>",
        fmt::esc(&title)
    )?;
    out.write_all(include_str!("../assets/report.css").as_bytes())?;
    out.write_all(b"</style></head><body>\n")?;
    out.write_all(body.as_bytes())?;
    out.write_all(b"<script id=\"memscope-data\" type=\"application/json\">{\"view_model_version\":1,\"processes\":[")?;
    for (k, s) in sections.iter().enumerate() {
        if k > 0 {
            out.write_all(b",")?;
        }
        out.write_all(s.model.as_bytes())?;
    }
    out.write_all(b"]}</script>\n")?;
    for js in SCRIPTS {
        out.write_all(b"<script>")?;
        out.write_all(js.as_bytes())?;
        out.write_all(b"</script>\n")?;
    }
    out.write_all(b"</body></html>\n")
}

/// Makes JSON safe inside `<script>`: no `</script>`, `<!--` or HTML entity
/// can be formed, and U+2028/U+2029 cannot end a JS line.
pub fn escape_script_json(json: &str) -> String {
    let mut s = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => s.push_str("\\u003c"),
            '>' => s.push_str("\\u003e"),
            '&' => s.push_str("\\u0026"),
            '\u{2028}' => s.push_str("\\u2028"),
            '\u{2029}' => s.push_str("\\u2029"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_cannot_close_their_elements() {
        for js in SCRIPTS {
            assert!(!js.to_ascii_lowercase().contains("</script") && !js.contains("<!--"));
        }
        assert!(!include_str!("../assets/report.css")
            .to_ascii_lowercase()
            .contains("</style"));
    }

    #[test]
    fn script_breakouts_are_escaped() {
        let e = escape_script_json(r#"{"exe":"</script><script>alert(1)</script>&lt;"}"#);
        assert!(!e.contains("</script>") && !e.contains('<') && !e.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(back["exe"], "</script><script>alert(1)</script>&lt;");
    }
}
