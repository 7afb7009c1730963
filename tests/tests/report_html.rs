//! The HTML report (SPEC §5) rendered from real snapshots and read back with
//! an HTML parser: every section is there, the numbers are the snapshot's,
//! and nothing the traced program controls becomes markup.

mod report_common;

use memscope_tests::*;
use report_common::*;
use scraper::Html;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

const SECTIONS: [&str; 6] = ["heap", "sites", "lifetimes", "leaks", "variables", "threads"];

fn workload() -> std::path::PathBuf {
    c_program("report_workload", &["-lpthread"])
}

/// The header cards carry the summary's exact numbers.
fn assert_cards(doc: &Html, i: usize, s: &memscope_format::Snapshot) {
    let m = &s.summary;
    for (field, want) in [
        ("total_allocations", m.total_allocations),
        ("total_allocated_bytes", m.total_allocated_bytes),
        ("peak_live_bytes", m.peak_live_bytes),
        ("live_at_exit_bytes", m.live_at_exit_bytes),
        ("total_frees", m.total_frees),
        ("events_dropped", m.events_dropped),
    ] {
        let card = one(doc, &format!("#proc-{i} .stat[data-field={field}]"));
        assert_eq!(v(card), want, "{field}");
    }
}

#[test]
fn report_of_a_real_run_states_the_snapshot() {
    let run = traced("report_real_run", &workload(), &["1"], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let s = run.only();
    check_invariants(s);
    let doc = Html::parse_document(&render(std::slice::from_ref(s)));
    for sec in SECTIONS {
        one(&doc, &format!("section#proc-0 #proc-0-{sec}"));
    }
    assert_cards(&doc, 0, s);
    assert_eq!(text(one(&doc, "#proc-0 .exe")), "report_workload");
    assert_eq!(text(one(&doc, "#proc-0 [data-field=end]")), "exit 0");
    let argv: Vec<String> = all(&doc, "#proc-0 [data-field=argv] code")
        .into_iter()
        .map(text)
        .collect();
    assert_eq!(argv, s.process.argv);
    // Threads: one row per thread with its exact counts.
    let rows = all(&doc, "#proc-0-threads tbody tr");
    assert_eq!(rows.len(), s.threads.len());
    for t in &s.threads {
        let row = rows
            .iter()
            .find(|r| v(r.select(&sel("td")).next().unwrap()) == t.thread_id)
            .unwrap_or_else(|| panic!("thread {}", t.thread_id));
        let cells: Vec<_> = row.select(&sel("td")).collect();
        assert_eq!(text(cells[1]), t.name);
        assert_eq!(
            (v(cells[2]), v(cells[3]), v(cells[4]), v(cells[5])),
            (t.allocations, t.bytes, t.frees, t.live_at_exit_bytes)
        );
    }
    for name in ["worker-1", "worker-2"] {
        assert!(rows.iter().any(|r| text(*r).contains(name)), "thread {name}");
    }
    // Leaks: grouped by site, each group's totals are the site's.
    let groups = all(&doc, "#proc-0-leaks details.leak");
    let leaking: Vec<_> = s.callsites.iter().filter(|c| c.live_at_exit_allocations > 0).collect();
    assert_eq!(groups.len(), leaking.len());
    let attr = |e: scraper::ElementRef, a: &str| e.value().attr(a).unwrap().parse::<u64>().unwrap();
    let sum_bytes: u64 = groups.iter().map(|g| attr(*g, "data-bytes")).sum();
    let sum_blocks: u64 = groups.iter().map(|g| attr(*g, "data-blocks")).sum();
    assert_eq!(
        (sum_blocks, sum_bytes),
        (s.summary.live_at_exit_allocations, s.summary.live_at_exit_bytes)
    );
    // The program leaks 40 blocks of 128 bytes and one of 4096.
    let sizes: String = all(&doc, "#proc-0-leaks .sizes").into_iter().map(text).collect();
    assert!(
        sizes.contains("40 × 128 B") && sizes.contains("1 × 4.00 KiB"),
        "{sizes}"
    );
    // The view model the scripts draw: what write_html embeds, and exact.
    let model = embedded_model(&doc);
    assert_eq!(model, memscope_report::view_model(std::slice::from_ref(s)));
    let p = &model["processes"][0];
    let rows = p["sites"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), s.callsites.len());
    let col = |name: &str| {
        p["sites"]["cols"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c == name)
            .unwrap()
    };
    let sum = |c: usize| rows.iter().map(|r| r[c].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum(col("allocations")), s.summary.total_allocations);
    assert_eq!(sum(col("bytes")), s.summary.total_allocated_bytes);
    assert_eq!(sum(col("live_at_exit_bytes")), s.summary.live_at_exit_bytes);
    assert_eq!(p["flame"]["b"][0], s.summary.total_allocated_bytes);
    assert_eq!(p["flame"]["n"][0], s.summary.total_allocations);
    let hist: u64 = p["lifetimes"]["global"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(hist, s.summary.total_allocations + s.summary.reallocs);
    let peak = p["timeline"]["b"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.as_u64())
        .max();
    assert_eq!(peak, Some(s.summary.peak_live_bytes));
}

#[test]
fn tracked_variables_all_have_a_lifetime() {
    let run = traced("report_variables", &c_program("variables", &[]), &["plain"], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let s = run.only();
    let doc = Html::parse_document(&render(std::slice::from_ref(s)));
    let rows = all(&doc, "#proc-0-variables tbody tr");
    assert_eq!(rows.len(), s.variables.len());
    for var in &s.variables {
        let row = rows
            .iter()
            .find(|r| text(r.select(&sel("td.name")).next().unwrap()) == var.var_name)
            .unwrap_or_else(|| panic!("{}", var.var_name));
        let cells: Vec<_> = row.select(&sel("td")).collect();
        assert_eq!(
            (text(cells[1]), text(cells[2])),
            (var.type_name.clone(), var.scope_name.clone())
        );
        assert_eq!(v(cells[3]), var.size);
        let life = row.select(&sel("td.life")).next().unwrap();
        assert_eq!(v(life), var.lifetime_ns, "{}", var.var_name);
        assert!(
            !text(life).trim().is_empty(),
            "{}: an empty lifetime cell",
            var.var_name
        );
        assert_eq!(text(life).contains("live at exit"), var.is_leaked, "{}", var.var_name);
        let origin = s.process.start_unix_ns.min(s.timeline[0].0);
        assert_eq!(v(cells[5]), var.timestamp_alloc - origin);
        assert_eq!(v(cells[6]), var.timestamp_dealloc - origin);
    }
    let buffer = rows.iter().find(|r| text(**r).contains("buffer")).unwrap();
    assert!(text(buffer.select(&sel("td.life")).next().unwrap()).ends_with(" ms"));
}

#[test]
fn hostile_argv_thread_and_symbol_names_stay_text() {
    let prog = c_program("hostile", &["-lpthread"]);
    let dir = scratch("report_hostile");
    let weird = b"\xff</script><img src=x onerror=alert(1)>\"\\\n\x1b[2J&amp;";
    let out = Command::new(&prog)
        .arg("names")
        .arg(std::ffi::OsStr::from_bytes(weird))
        .current_dir(&dir)
        .env("LD_PRELOAD", lib_path())
        .env("MEMSCOPE_EXPORT_PATH", dir.join("snap.json"))
        .env("MEMSCOPE_RUN_PPID", std::process::id().to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let real = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    // Add hostile symbols and file names, as a program's debug info could have.
    let framed = framed_snapshot();
    let snaps = [real.clone(), framed.clone()];
    let html = render(&snaps);
    let doc = Html::parse_document(&html);
    // Nothing became an element: only our own scripts, no images.
    assert!(all(&doc, "img").is_empty(), "an <img> was injected");
    let scripts = all(&doc, "script");
    assert_eq!(scripts.len(), 5, "the data and four scripts, nothing else");
    assert!(scripts[1..].iter().all(|s| s.value().attr("src").is_none()));
    assert!(all(&doc, "[onerror]").is_empty());
    // Argv and thread names come back as the same text, control
    // characters shown as escapes.
    let argv: Vec<String> = all(&doc, "#proc-0 [data-field=argv] code")
        .into_iter()
        .map(text)
        .collect();
    assert_eq!(
        argv[1..],
        [
            "names",
            "\u{fffd}</script><img src=x onerror=alert(1)>\"\\\\n\\x1b[2J&amp;"
        ]
    );
    let mut names: Vec<String> = all(&doc, "#proc-0-threads td.name").into_iter().map(text).collect();
    names.sort();
    assert_eq!(
        names,
        ["</script>\\x1b[31m", "\\x01\\x02\\x7f", "a\"b\\c\\n\\t", "hostile"]
    );
    // Symbols and files: as text in the leak stacks, and intact in the data.
    let stacks: String = all(&doc, "#proc-1-leaks ol.stack").into_iter().map(text).collect();
    assert!(stacks.contains(HOSTILE_FN) && stacks.contains(HOSTILE_FILE), "{stacks}");
    let model = embedded_model(&doc);
    assert_eq!(flame_by_path(&model["processes"][1]), framed_flame_by_hand());
    assert!(model["processes"][1]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f[0] == HOSTILE_FN && f[1] == HOSTILE_FILE));
    let data = text(one(&doc, "script#memscope-data"));
    assert!(
        !data.contains('<') && !data.contains('&'),
        "raw markup characters in the data"
    );
    assert_eq!(text(one(&doc, "title")), "memscope · hostile");
}

#[test]
fn a_multi_process_run_gets_an_index_linking_each_section() {
    let run = traced("report_processes", &c_program("processes", &[]), &["exec"], &[]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let snaps: Vec<_> = run.snapshots.iter().map(|(_, s)| s.clone()).collect();
    assert!(snaps.len() >= 3, "{:?}", run.paths());
    let doc = Html::parse_document(&render(&snaps));
    // One group per executable; every process is a row of its group and
    // links to its section.
    let mut seen = vec![false; snaps.len()];
    for group in all(&doc, "#processes details.group") {
        let exe = group.value().attr("data-exe").unwrap();
        for row in group.select(&sel(".process-index tbody tr")) {
            let cells: Vec<_> = row.select(&sel("td")).collect();
            let link = cells[0].select(&sel("a")).next().expect("a link to the section");
            let href = link.value().attr("href").unwrap();
            let i: usize = href.strip_prefix("#proc-").unwrap().parse().unwrap();
            let s = &snaps[i];
            assert!(!std::mem::replace(&mut seen[i], true), "{href} listed twice");
            assert_eq!(exe, s.process.exe);
            assert_eq!(
                (v(cells[0]), v(cells[1])),
                (u64::from(s.process.pid), u64::from(s.process.ppid))
            );
            assert!(text(cells[2]).starts_with(s.process.end.as_str()), "{}", text(cells[2]));
            assert_eq!(v(cells[3]), s.summary.total_allocations);
            assert_eq!(v(cells[4]), s.summary.total_allocated_bytes);
            assert_eq!(text(cells[7]), s.process.argv.join(" "));
        }
    }
    assert!(seen.iter().all(|&s| s), "every process has a row");
    for (i, s) in snaps.iter().enumerate() {
        assert_eq!(
            text(one(&doc, &format!("section#proc-{i} .pid"))),
            format!("pid {}", s.process.pid)
        );
        assert_cards(&doc, i, s);
        for sec in SECTIONS {
            one(&doc, &format!("section#proc-{i} #proc-{i}-{sec}"));
        }
    }
    assert!(snaps.iter().any(|s| s.process.end == memscope_format::EndKind::Exec));
    assert_eq!(embedded_model(&doc)["processes"].as_array().unwrap().len(), snaps.len());
}

#[test]
fn the_library_writes_the_report_itself() {
    let dir = scratch("report_from_library");
    let out = Command::new(workload())
        .arg("1")
        .current_dir(&dir)
        .env("LD_PRELOAD", lib_path())
        .env("MEMSCOPE_EXPORT_PATH", dir.join("snap.json"))
        .env("MEMSCOPE_EXPORT_FORMAT", "both")
        .env("MEMSCOPE_RUN_PPID", std::process::id().to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = memscope_format::read_snapshot_file(&dir.join("snap.json")).unwrap();
    let html = std::fs::read_to_string(dir.join("snap.html")).expect("snap.html next to snap.json");
    let doc = Html::parse_document(&html);
    assert_cards(&doc, 0, &s);
    assert_eq!(
        embedded_model(&doc),
        memscope_report::view_model(std::slice::from_ref(&s))
    );
}

#[test]
fn dropped_events_are_shouted() {
    let run = traced(
        "report_dropped",
        &c_program("behaviours", &[]),
        &["many-live", "5"],
        &[],
    );
    let mut s = run.only().clone();
    let quiet = Html::parse_document(&render(std::slice::from_ref(&s)));
    assert!(all(&quiet, ".alert").is_empty());
    s.summary.events_dropped = 1234;
    let doc = Html::parse_document(&render(std::slice::from_ref(&s)));
    let alert = one(&doc, "#proc-0 .alert[data-field=events_dropped]");
    assert!(text(alert).contains("1,234 EVENTS DROPPED"), "{}", text(alert));
    let card = one(&doc, "#proc-0 .stat[data-field=events_dropped]");
    assert_eq!(card.value().attr("class"), Some("stat loud"));
}
