//! The report's controls in a real browser, read back from the DOM: each
//! test opens the hand-built snapshot's report with one small script of its
//! own appended that drives a control as a reader would (click a header,
//! type in a filter, search, click the flamegraph), then reads the DOM
//! Chromium dumps and compares it with what the snapshot's numbers make the
//! right answer — worked out by hand below, not by the report's code.
//!
//! The snapshot (`framed_snapshot`): sites (allocations, bytes)
//! 0 no stack (3, 300); 1 strdup←parse_config←main (40, 4 000);
//! 2 node_new←tree_insert←main (1 000, 64 000);
//! 3 tree_insert←parse_config←main (7, 70 000);
//! 4 evil←0x7f00deadbeef←main (2, 64); 138 364 bytes in all.
//! Threads 101 "demo" (100 000 bytes), 102 "io" (38 364); one variable
//! "config".

mod report_common;

use report_common::*;
use scraper::Html;

/// The report of `framed_snapshot()` opened as a reader opens it, `script`
/// run after the page's own, and the DOM afterwards. `None` only when
/// Chromium is missing and the user opted out.
fn after(test: &str, script: &str) -> Option<Html> {
    let bin = chromium()?;
    let dir = memscope_tests::scratch(test);
    let page = dir.join("page.html");
    let html =
        render(&[framed_snapshot()]).replace("</body>", &format!("<script>(() => {{ {script} }})();</script></body>"));
    std::fs::write(&page, html).unwrap();
    let (dom, log) = dump_dom_at(&bin, &page, 1400, "");
    let doc = Html::parse_document(&dom);
    let root = one(&doc, "html");
    assert_eq!(root.value().attr("data-ready"), Some("1"), "the page's script finished");
    assert_eq!(
        root.value().attr("data-errors"),
        None,
        "{:?}",
        all(&doc, "[data-js-error]").into_iter().map(text).collect::<Vec<_>>()
    );
    assert_eq!(console_messages(&log), Vec::<&str>::new());
    Some(doc)
}

/// The site ids of the site table's rows, top to bottom.
fn site_rows(doc: &Html) -> Vec<u64> {
    all(doc, "#proc-0 [data-table=sites] tbody tr[data-site]")
        .into_iter()
        .map(|tr| tr.value().attr("data-site").unwrap().parse().unwrap())
        .collect()
}

fn caption(doc: &Html, which: &str) -> String {
    text(one(doc, &format!("#proc-0 [data-caption={which}]")))
}

const SITES: &str = "const sec = document.getElementById('proc-0');";

#[test]
fn sorting_the_site_table_by_a_column_and_back() {
    let Some(doc) = after("report_ctl_sort_none", "") else {
        return;
    };
    assert_eq!(site_rows(&doc), [3, 2, 1, 0, 4], "by bytes, most first");
    let click = "sec.querySelector('[data-table=sites] th[data-key=allocations]').click();";
    let Some(doc) = after("report_ctl_sort_desc", &format!("{SITES} {click}")) else {
        return;
    };
    assert_eq!(site_rows(&doc), [2, 1, 3, 0, 4], "by allocations, most first");
    let th = one(&doc, "#proc-0 [data-table=sites] th[data-key=allocations]");
    assert_eq!(th.value().attr("data-dir"), Some("desc"));
    let Some(doc) = after("report_ctl_sort_asc", &format!("{SITES} {click} {click}")) else {
        return;
    };
    assert_eq!(site_rows(&doc), [4, 0, 3, 1, 2], "a second click: fewest first");
}

#[test]
fn filtering_the_site_table_by_frame_text() {
    let filter = |q: &str| {
        format!("{SITES} const f = sec.querySelector('[data-ctl=filter]'); f.value = '{q}'; f.dispatchEvent(new Event('input'));")
    };
    let Some(doc) = after("report_ctl_filter_strdup", &filter("strdup")) else {
        return;
    };
    assert_eq!(site_rows(&doc), [1]);
    assert!(
        caption(&doc, "sites").starts_with("1 of 5 sites"),
        "{}",
        caption(&doc, "sites")
    );
    // "tree" is in tree_insert's name and in node_new's file (src/tree.h).
    let Some(doc) = after("report_ctl_filter_tree", &filter("TREE")) else {
        return;
    };
    assert_eq!(site_rows(&doc), [3, 2]);
    assert!(caption(&doc, "sites").starts_with("2 of 5 sites"));
    let Some(doc) = after("report_ctl_filter_none", &filter("no such frame")) else {
        return;
    };
    assert_eq!(site_rows(&doc), Vec::<u64>::new());
    assert!(caption(&doc, "sites").starts_with("0 of 5 sites"));
}

#[test]
fn clicking_a_site_shows_its_stack() {
    let script = format!("{SITES} sec.querySelector('[data-table=sites] tr[data-site=\"2\"]').click();");
    let Some(doc) = after("report_ctl_row", &script) else {
        return;
    };
    let selected = all(&doc, "#proc-0 [data-table=sites] tbody tr.selected");
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0].value().attr("data-site"), Some("2"));
    let stack: Vec<String> = all(&doc, "#proc-0 [data-table=sites] tr.stackrow li .fn")
        .into_iter()
        .map(text)
        .collect();
    assert_eq!(stack, ["node_new", "tree_insert", "main"]);
}

#[test]
fn searching_the_flamegraph_counts_matching_frames_and_their_share() {
    let script = format!("{SITES} const s = sec.querySelector('[data-ctl=search]'); s.value = 'tree'; s.dispatchEvent(new Event('input'));");
    let Some(doc) = after("report_ctl_search", &script) else {
        return;
    };
    // tree_insert twice (under main, under parse_config) and node_new (file
    // src/tree.h) match; node_new lies under a match, so the share is
    // (64 000 + 70 000) / 138 364 = 96.85 %. The tree: all, main, [no stack],
    // parse_config, strdup, tree_insert ×2, node_new, 0x7f00deadbeef, evil.
    let c = caption(&doc, "flame");
    assert!(
        c.starts_with("3 frames match, 96.8% of the total") && c.ends_with("9 frames in the tree"),
        "{c}"
    );
}

/// The flamegraph's second row from the left edge: main's widest child.
const CLICK_DEPTH_2: &str =
    "const box = sec.querySelector('[data-chart=flame]'), r = box.querySelector('canvas').getBoundingClientRect(); \
     box.dispatchEvent(new MouseEvent('click', { clientX: r.left + 4, clientY: r.top + 2 * 18 + 9 }));";

#[test]
fn clicking_the_flamegraph_zooms_and_filters_the_sites() {
    // By bytes main's widest child is parse_config (74 000 of 138 364 =
    // 53.5 %), above sites 3 and 1.
    let Some(doc) = after("report_ctl_zoom", &format!("{SITES} {CLICK_DEPTH_2}")) else {
        return;
    };
    let c = caption(&doc, "flame");
    assert!(
        c.starts_with("zoomed to parse_config: ") && c.contains("(53.5%)"),
        "{c}"
    );
    assert_eq!(site_rows(&doc), [3, 1]);
    assert!(
        caption(&doc, "sites").starts_with("2 of 5 sites under parse_config"),
        "{}",
        caption(&doc, "sites")
    );
    // By allocations it is tree_insert (1 000 of 1 052 = 95.1 %), above site 2.
    let metric =
        "const m = sec.querySelector('[data-ctl=metric]'); m.value = 'n'; m.dispatchEvent(new Event('change'));";
    let Some(doc) = after("report_ctl_zoom_n", &format!("{SITES} {metric} {CLICK_DEPTH_2}")) else {
        return;
    };
    let c = caption(&doc, "flame");
    assert!(c.starts_with("zoomed to tree_insert: 1,000 (95.1%)"), "{c}");
    assert_eq!(site_rows(&doc), [2]);
    // Reset: everything again.
    let reset = "sec.querySelector('[data-ctl=reset]').click();";
    let Some(doc) = after("report_ctl_zoom_reset", &format!("{SITES} {CLICK_DEPTH_2} {reset}")) else {
        return;
    };
    assert!(!caption(&doc, "flame").contains("zoomed"));
    assert_eq!(site_rows(&doc), [3, 2, 1, 0, 4]);
}

#[test]
fn sorting_and_filtering_the_static_tables() {
    let threads = |doc: &Html| -> Vec<String> {
        all(doc, "#proc-0-threads-table tbody tr td:first-child")
            .into_iter()
            .map(text)
            .collect()
    };
    let Some(doc) = after("report_ctl_threads", "") else {
        return;
    };
    assert_eq!(threads(&doc), ["101", "102"], "most bytes first");
    let click = "document.querySelector('#proc-0-threads-table th').click();";
    let Some(doc) = after("report_ctl_threads_desc", click) else {
        return;
    };
    assert_eq!(threads(&doc), ["102", "101"], "by thread id, highest first");
    let Some(doc) = after("report_ctl_threads_asc", &format!("{click} {click}")) else {
        return;
    };
    assert_eq!(threads(&doc), ["101", "102"]);
    let filter = |q: &str| {
        format!("const f = document.querySelector('input[data-filter=\"proc-0-vars\"]'); f.value = '{q}'; f.dispatchEvent(new Event('input'));")
    };
    let hidden = |doc: &Html| -> Vec<bool> {
        all(doc, "#proc-0-vars tbody tr")
            .into_iter()
            .map(|tr| tr.value().attr("hidden").is_some())
            .collect()
    };
    let Some(doc) = after("report_ctl_vars_hit", &filter("CONF")) else {
        return;
    };
    assert_eq!(hidden(&doc), [false]);
    let Some(doc) = after("report_ctl_vars_miss", &filter("nothing")) else {
        return;
    };
    assert_eq!(hidden(&doc), [true]);
}
