//! The HTML report (SPEC §5): one self-contained page, no network needed.
//!
//! [`write_html`] is a pure function from snapshots to bytes, used by
//! `memscope-cli analyze`/`run --export html` and by libmemscope.so itself
//! (`MEMSCOPE_EXPORT_FORMAT=html`), so this crate depends on serde_json only.
//! Everything that comes from the traced program (names, paths, argv,
//! symbols) is escaped: the data travels as JSON inside a `<script>` element
//! with `<`, `>`, `&` and the line separators escaped, and is only ever put on
//! the page through `textContent`.

mod flame;
mod fmt;
mod model;
mod page;
mod tables;

use memscope_format::Snapshot;
use std::io::{self, Write};

/// The page's scripts, in load order: helpers, charts, flamegraph, start-up.
const SCRIPTS: [&str; 4] = [
    include_str!("../assets/util.js"),
    include_str!("../assets/charts.js"),
    include_str!("../assets/flame.js"),
    include_str!("../assets/report.js"),
];

/// The data the page's scripts draw from (see [`model`]): one entry per
/// process image, in the order given. Public so tests can compare it with
/// a blessed copy.
pub fn view_model(snapshots: &[Snapshot]) -> serde_json::Value {
    let processes: Vec<_> = snapshots
        .iter()
        .enumerate()
        .map(|(i, s)| model::process(s, i))
        .collect();
    serde_json::json!({ "view_model_version": 1, "processes": processes })
}

/// Writes the report for one or more process images of a run.
pub fn write_html(snapshots: &[Snapshot], out: &mut dyn Write) -> io::Result<()> {
    let data = serde_json::to_string(&view_model(snapshots)).map_err(io::Error::other)?;
    let title = snapshots.first().map_or_else(
        || "memscope report".to_string(),
        |s| format!("memscope · {}", page::basename(&s.process.exe)),
    );
    let mut body = String::new();
    page::body(snapshots, &mut body);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>",
        fmt::esc(&title)
    )?;
    out.write_all(include_str!("../assets/report.css").as_bytes())?;
    out.write_all(b"</style></head><body>\n")?;
    out.write_all(body.as_bytes())?;
    out.write_all(b"<script id=\"memscope-data\" type=\"application/json\">")?;
    out.write_all(escape_script_json(&data).as_bytes())?;
    out.write_all(b"</script>\n")?;
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
