//! The report opened in a real browser (headless Chromium, Debian's
//! `chromium`; `.ci/run` installs it): scripts run without an error, every
//! chart paints, the interactive site table shows the snapshot's numbers,
//! and a huge report opens quickly. Without Chromium these tests fail saying
//! how to install it (unless MEMSCOPE_TESTS_ALLOW_MISSING opts out).

mod report_common;

use memscope_tests::*;
use report_common::*;
use scraper::Html;
use std::path::{Path, PathBuf};

#[track_caller]
fn browser() -> Option<PathBuf> {
    chromium()
}

/// Opens `page`, checks it finished without a script error or console
/// message, and returns the DOM the scripts built.
fn open(bin: &Path, page: &Path) -> Html {
    let (dom, log) = dump_dom(bin, page, 1400);
    let doc = Html::parse_document(&dom);
    let html = one(&doc, "html");
    assert_eq!(
        html.value().attr("data-errors"),
        None,
        "script errors: {:?}",
        all(&doc, "[data-js-error]").into_iter().map(text).collect::<Vec<_>>()
    );
    assert_eq!(
        html.value().attr("data-ready"),
        Some("1"),
        "the start-up script did not finish"
    );
    assert_eq!(
        html.value().attr("data-selftest"),
        Some("ok"),
        "driving the controls failed"
    );
    assert_eq!(console_messages(&log), Vec::<&str>::new());
    doc
}

/// Every chart and table of the sections `proc-{i}` for each of `anchors`
/// reports that it drew, and every canvas has painted pixels.
fn assert_drawn(doc: &Html, anchors: impl IntoIterator<Item = usize>) {
    for i in anchors {
        for part in ["timeline", "rate", "flame", "lifetimes"] {
            let e = one(doc, &format!("#proc-{i} [data-chart={part}]"));
            let drawn: u64 = e.value().attr("data-drawn").unwrap_or("0").parse().unwrap();
            assert!(drawn > 0, "process {i}: {part} not drawn");
            let canvas = e.select(&sel("canvas")).next().unwrap();
            let ink: u64 = canvas.value().attr("data-ink").unwrap_or("0").parse().unwrap();
            assert!(ink > 500, "process {i}: {part} canvas painted {ink} pixels");
        }
        assert!(all(doc, &format!("#proc-{i} [data-table=sites] tbody tr")).len() > 0);
    }
}

#[test]
fn a_real_run_report_runs_clean_and_draws_everything() {
    let Some(bin) = browser() else { return };
    let run = traced(
        "report_browser_real",
        &c_program("report_workload", &["-lpthread"]),
        &["1"],
        &[],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let s = run.only();
    let page = run.dir.join("report.html");
    std::fs::write(&page, render(std::slice::from_ref(s))).unwrap();
    let doc = open(&bin, &page);
    assert_drawn(&doc, 0..1);
    // The script-built site table: one row per site, the snapshot's numbers.
    let rows = all(&doc, "#proc-0 [data-table=sites] tbody tr");
    assert_eq!(rows.len(), s.callsites.len().min(100));
    for row in rows {
        let id: u64 = row.value().attr("data-site").unwrap().parse().unwrap();
        let c = s.callsite(id).unwrap();
        let cells: Vec<u64> = row.select(&sel("td.num")).map(v).collect();
        let want = [c.allocations, c.bytes, c.peak_live_bytes, c.live_at_exit_bytes];
        assert_eq!(cells[..4], want, "site {id}");
        assert_eq!(
            cells[4..],
            [c.lifetime_ns.p50, c.lifetime_ns.p99, c.lifetime_ns.max],
            "site {id}"
        );
    }
    let caption = text(one(&doc, "#proc-0 [data-caption=lifetimes]"));
    assert!(
        caption.contains(&format!(
            "All {} blocks",
            fmt_count(s.summary.total_allocations + s.summary.reallocs)
        )),
        "{caption}"
    );
    let png = run.dir.join("report.png");
    screenshot(&bin, &page, &png, (1400, 2600));
    assert!(
        std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0) > 10_000,
        "no screenshot"
    );
    println!("screenshot: {}", png.display());
}

fn fmt_count(n: u64) -> String {
    let d = n.to_string();
    let mut o = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            o.push(',');
        }
        o.push(c);
    }
    o
}

#[test]
fn flamegraph_of_real_frames_and_hostile_names_in_the_browser() {
    let Some(bin) = browser() else { return };
    let dir = scratch("report_browser_framed");
    let snaps = [framed_snapshot(), synthetic(300, 10_000)];
    let page = dir.join("framed.html");
    std::fs::write(&page, render(&snaps)).unwrap();
    let doc = open(&bin, &page);
    assert_drawn(&doc, 0..2);
    // The scripts put hostile names on the page as text only.
    assert!(all(&doc, "img").is_empty() && all(&doc, "[onerror]").is_empty());
    assert_eq!(all(&doc, "script").len(), 5);
    // Every node of the small tree is wide enough to draw.
    let nodes = framed_flame_by_hand().len();
    let flame = one(&doc, "#proc-0 [data-chart=flame]");
    assert_eq!(flame.value().attr("data-drawn"), Some(nodes.to_string().as_str()));
    // Sites sorted by bytes, named after their caller past the allocation
    // wrappers (parse_config called strdup), as the terminal names them.
    let names: Vec<String> = all(&doc, "#proc-0 [data-table=sites] tbody td.site .fn")
        .into_iter()
        .map(text)
        .collect();
    let hostile = format!("{HOSTILE_FN} ({HOSTILE_FILE}:1)");
    assert_eq!(
        names,
        [
            "tree_insert (tree.c:88)",
            "node_new (tree.h:7)",
            "parse_config (config.c:12)",
            "[no stack]",
            &hostile
        ]
    );
    let index = all(&doc, "#processes .process-index tbody tr a");
    assert_eq!(index.len(), 2);
}

#[test]
fn a_huge_report_opens_quickly() {
    let Some(bin) = browser() else { return };
    let dir = scratch("report_browser_huge");
    let s = synthetic(50_000, 1_000_000);
    let page = dir.join("huge.html");
    std::fs::write(&page, render(std::slice::from_ref(&s))).unwrap();
    let doc = open(&bin, &page);
    assert_drawn(&doc, 0..1);
    let ms: u64 = one(&doc, "html")
        .value()
        .attr("data-render-ms")
        .unwrap()
        .parse()
        .unwrap();
    let size = std::fs::metadata(&page).unwrap().len() as f64 / (1024.0 * 1024.0);
    println!("huge report ({size:.1} MiB, 50 000 sites, 1 M allocations): drawn {ms} ms after navigation start");
    // Generous bounds (see report_model.rs): several times what it measures.
    assert!(size < HUGE_REPORT_MAX_MIB, "{size:.1} MiB");
    assert!(ms < 60_000, "{ms} ms to draw");
    let rows = all(&doc, "#proc-0 [data-table=sites] tbody tr");
    assert_eq!(rows.len(), 100, "the first page of sites");
    let caption = text(one(&doc, "#proc-0 [data-caption=sites]"));
    assert!(caption.starts_with("50,000 of 50,000 sites"), "{caption}");
}

#[test]
fn a_script_error_would_be_caught() {
    let Some(bin) = browser() else { return };
    let dir = scratch("report_browser_error");
    let page = dir.join("broken.html");
    let html = render(&[framed_snapshot()]).replace("</body>", "<script>no_such_function();</script></body>");
    std::fs::write(&page, html).unwrap();
    let (dom, log) = dump_dom(&bin, &page, 1000);
    let doc = Html::parse_document(&dom);
    assert_eq!(one(&doc, "html").value().attr("data-errors"), Some("1"));
    assert!(text(one(&doc, "[data-js-error]")).contains("no_such_function"));
    assert!(
        console_messages(&log).iter().any(|l| l.contains("no_such_function")),
        "{log}"
    );
}

#[test]
fn a_run_of_300_processes_is_grouped_and_opens_quickly() {
    use report_common::many;
    let dir = scratch("report_browser_many");
    // Read as `run` reads: one process at a time, a row kept of each, the
    // heaviest read again for their sections.
    let n = many::run_size();
    assert_eq!(n, 300);
    let rows: Vec<memscope_report::ProcessRow> = (0..n)
        .map(|i| memscope_report::ProcessRow::of(&many::member(i)))
        .collect();
    let sections = memscope_report::render_sections(&rows, |i| Some(many::member(i)));
    let chosen: Vec<usize> = sections.iter().map(|s| s.index).collect();
    assert_eq!(chosen.len(), memscope_report::MAX_DETAILED);
    assert!(
        chosen.iter().all(|&i| !many::inherited_only(i)),
        "an inherited-only fork detailed"
    );
    assert!(
        (0..n).filter(|&i| many::heavy(i)).all(|i| chosen.contains(&i)),
        "every heavy one detailed"
    );
    let mut out = Vec::new();
    memscope_report::write_page(&rows, &sections, &mut out).unwrap();
    let page = dir.join("many.html");
    std::fs::write(&page, &out).unwrap();

    // The index: a group per executable, heaviest first, each with its rows.
    let doc = Html::parse_document(&String::from_utf8(out).unwrap());
    let groups = all(&doc, "#processes details.group");
    assert_eq!(groups.len(), many::EXECUTABLES.len());
    let attr = |e: &scraper::ElementRef, k: &str| e.value().attr(k).unwrap().parse::<u64>().unwrap();
    let weights: Vec<u64> = groups.iter().map(|g| attr(g, "data-bytes")).collect();
    assert!(weights.windows(2).all(|w| w[0] >= w[1]), "heaviest first: {weights:?}");
    assert_eq!(groups[0].value().attr("data-exe"), Some(many::EXECUTABLES[0].0));
    for g in &groups {
        let exe = g.value().attr("data-exe").unwrap();
        let members: Vec<usize> = (0..n).filter(|&i| many::exe_of(i) == exe).collect();
        let own: u64 = members
            .iter()
            .filter(|&&i| !many::inherited_only(i))
            .map(|&i| rows[i].summary.total_allocated_bytes)
            .sum();
        assert_eq!(attr(g, "data-processes"), members.len() as u64, "{exe}");
        assert_eq!(attr(g, "data-bytes"), own, "{exe}: inherited-only forks add nothing");
        let inherited = members.iter().filter(|&&i| many::inherited_only(i)).count();
        assert_eq!(attr(g, "data-inherited-only"), inherited as u64, "{exe}");
        let pids: Vec<u64> = g.select(&sel("tbody tr")).map(|tr| attr(&tr, "data-pid")).collect();
        assert_eq!(pids.len(), members.len(), "{exe}");
        // Within a group: the heaviest first, inherited-only forks last.
        let first = rows.iter().find(|r| u64::from(r.pid) == pids[0]).unwrap();
        assert!(members.iter().all(|&i| rows[i].inherited_only()
            || rows[i].summary.total_allocated_bytes <= first.summary.total_allocated_bytes));
    }
    // Two executables named `ls` are told apart by their paths.
    assert_eq!(
        all(&doc, "details.group summary .exe")
            .iter()
            .filter(|e| text(**e).ends_with("ls"))
            .count(),
        2
    );
    assert!(all(&doc, "details.group summary .exe")
        .iter()
        .any(|e| text(*e) == "/opt/x/bin/ls"));
    assert_eq!(all(&doc, "section.process").len(), chosen.len());
    assert_eq!(all(&doc, "tr.detailed").len(), chosen.len());
    assert_eq!(all(&doc, "tr.brief").len(), n - chosen.len());
    let note = text(one(&doc, "#processes [data-field=run]"));
    assert!(note.contains("300 process images of 12 executables"), "{note}");
    assert!(
        note.contains(&format!("the other {} are told in their row", n - chosen.len())),
        "{note}"
    );

    // The same page from snapshots in memory.
    let small: Vec<_> = (0..40).map(many::member).collect();
    let rows40: Vec<_> = small.iter().map(memscope_report::ProcessRow::of).collect();
    let sections40 = memscope_report::render_sections(&rows40, |i| Some(&small[i]));
    let mut streamed = Vec::new();
    memscope_report::write_page(&rows40, &sections40, &mut streamed).unwrap();
    assert!(
        render(&small).as_bytes() == streamed.as_slice(),
        "write_html and the streamed page differ"
    );

    // In the browser: every detailed section draws and every control works
    // (#selftest), and the page as a reader opens it is drawn quickly.
    let Some(bin) = browser() else { return };
    let doc = open(&bin, &page);
    assert_drawn(&doc, chosen.iter().copied());
    let started = std::time::Instant::now();
    let (dom, _) = dump_dom_at(&bin, &page, 1400, "");
    let wall = started.elapsed();
    let doc = Html::parse_document(&dom);
    let html = one(&doc, "html");
    assert_eq!(html.value().attr("data-ready"), Some("1"));
    assert_eq!(html.value().attr("data-errors"), None);
    let ms: u64 = html.value().attr("data-render-ms").unwrap().parse().unwrap();
    let size = std::fs::metadata(&page).unwrap().len() as f64 / (1024.0 * 1024.0);
    println!(
        "report of 300 processes ({size:.1} MiB, {} detailed): first screen drawn {ms} ms after navigation \
         start; headless Chromium start to exit {} ms",
        chosen.len(),
        wall.as_millis()
    );
    // Sections far below the first screen wait until they are scrolled to.
    let drawn = all(&doc, "section.process[data-drawn]").len();
    assert!(drawn >= 1 && drawn < chosen.len(), "{drawn} sections drawn at once");
    let png = dir.join("many.png");
    let started = std::time::Instant::now();
    screenshot(&bin, &page, &png, (1400, 1000));
    println!(
        "  headless Chromium start, open and paint a screenshot: {} ms",
        started.elapsed().as_millis()
    );
    // A sanity bound only: the measured time is printed above.
    assert!(ms < 20_000, "{ms} ms to draw the first screen");
}
