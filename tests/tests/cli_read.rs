//! `summary`, `check`, `diff`, `export` and `analyze` on snapshots of real
//! traced runs, and on snapshots given call-site frames by hand (to show
//! what the site views do with symbolized frames).

use memscope_format::{Callsite, Frame, LifetimeStats, Snapshot};
use memscope_tests::cli::*;
use memscope_tests::*;
use std::path::{Path, PathBuf};

fn frame(ip: u64, function: &str, file: &str, line: u32) -> Frame {
    Frame {
        ip: format!("{ip:#x}"),
        function: Some(function.into()),
        file: (!file.is_empty()).then(|| file.into()),
        line: (line != 0).then_some(line),
        module: 0,
        inlined: false,
    }
}

/// A call site and its frames (module `/usr/bin/app`).
type SiteSpec = (Callsite, Vec<Frame>);

fn site(id: u64, frames: Vec<Frame>, allocations: u64, bytes: u64, leaked: u64) -> SiteSpec {
    let c = Callsite {
        id,
        frames: Vec::new(),
        allocations,
        bytes,
        live_at_exit_bytes: leaked,
        peak_live_bytes: bytes,
        lifetime_ns: LifetimeStats::default(),
        live_at_exit_allocations: u64::from(leaked > 0),
        reallocs: 0,
        at_peak_bytes: 0,
        at_peak_allocations: 0,
        peak_live_allocations: None,
    };
    (c, frames)
}

/// A real snapshot whose call sites are replaced by `sites` (records point
/// at the first one), written to `<dir>/<name>.json`.
fn with_sites(dir: &Path, name: &str, mut s: Snapshot, sites: Vec<SiteSpec>) -> PathBuf {
    for a in &mut s.allocations {
        a.callsite = Some(sites[0].0.id);
    }
    install_sites(&mut s, &["/usr/bin/app"], sites);
    let p = dir.join(format!("{name}.json"));
    s.write_json(std::fs::File::create(&p).unwrap()).unwrap();
    p
}

/// Three sites with frames: "big" (most bytes), "busy" (most allocations,
/// leaks), "mid".
fn three_sites(ip_base: u64, busy_line: u32) -> Vec<SiteSpec> {
    let main = |o| frame(ip_base + o, "main", "/src/app/main.c", 10);
    vec![
        site(
            1,
            vec![
                frame(ip_base + 0x10, "malloc", "", 0),
                frame(ip_base + 1, "big", "/src/app/big.c", 5),
                main(2),
            ],
            3,
            3000,
            0,
        ),
        site(
            2,
            vec![frame(ip_base + 3, "busy", "/src/app/busy.c", busy_line), main(4)],
            500,
            1000,
            800,
        ),
        site(
            3,
            vec![frame(ip_base + 5, "mid", "/src/app/mid.c", 7), main(6)],
            10,
            2000,
            0,
        ),
    ]
}

/// `1234567` → `1,234,567`, as the CLI prints counts.
fn grouped(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.split("\n\n")
        .find(|s| s.starts_with(title))
        .unwrap_or_else(|| panic!("no section {title:?} in {text}"))
        .lines()
        .skip(2)
        .collect()
}

#[test]
fn summary_reports_the_snapshot() {
    let dir = scratch("cli_read_summary");
    let (path, s, _) = run_prog(&dir, "s", &["alloc", "1000", "64", "10", "0"]);
    let out = cli(&dir, &["summary", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let m = &s.summary;
    assert!(text.contains(&format!("(pid {})", s.process.pid)), "{text}");
    assert!(
        text.contains(&format!("{} allocations", grouped(m.total_allocations))),
        "{text}"
    );
    assert!(text.contains("live at exit: 640 B in 10 blocks"), "{text}");
    assert!(
        text.contains(&format!(
            "block lifetimes ({} blocks",
            grouped(m.total_allocations + m.reallocs)
        )),
        "{text}"
    );
    let threads = section(&text, "threads (1)");
    assert!(
        threads[0].trim_start().starts_with(&s.process.pid.to_string()),
        "{text}"
    );
    // Backtraces are on by default: the 1000 blocks of `alloc 1000 64`
    // come from one line of main, the array that holds them from the line
    // above; both sites lead the tables with their exact counts.
    let line_of = |needle: &str| {
        let src = std::fs::read_to_string(root().join("tests/programs/cli_prog.c")).unwrap();
        src.lines().position(|l| l.contains(needle)).expect("line") + 1
    };
    let blocks = format!("main (cli_prog.c:{})", line_of("blocks[i] = malloc(size)"));
    let array = format!("main (cli_prog.c:{})", line_of("void **blocks = malloc"));
    let by_bytes = section(&text, "top sites by bytes allocated");
    assert!(by_bytes[0].contains("1,000") && by_bytes[0].contains(&blocks), "{text}");
    assert!(
        by_bytes[1].contains(&array) && by_bytes[1].contains("7.81 KiB"),
        "{text}"
    );
}

#[test]
fn summary_lists_sites_by_bytes_count_and_leaks() {
    let dir = scratch("cli_read_summary_sites");
    let (_, s, _) = run_prog(&dir, "s", &["alloc", "10", "8", "0", "0"]);
    let p = with_sites(&dir, "sites", s, three_sites(0x1000, 20));
    let out = cli(&dir, &["summary", p.to_str().unwrap()]);
    let text = stdout(&out);
    let by_bytes = section(&text, "top sites by bytes allocated");
    assert!(
        by_bytes[0].ends_with("  big (big.c:5)"),
        "allocator frame skipped, the caller alone names a site no other shares: {text}"
    );
    assert!(by_bytes[1].contains("mid (mid.c:7)") && by_bytes[2].contains("busy (busy.c:20)"));
    assert!(section(&text, "top sites by allocations")[0].contains("busy"));
    let leaks = section(&text, "top sites by bytes live at exit");
    assert_eq!(leaks.len(), 1);
    assert!(leaks[0].contains("800 B") && leaks[0].contains("busy"), "{text}");
}

#[test]
fn check_limits_are_strict_and_sizes_have_units() {
    let dir = scratch("cli_read_check");
    let (path, s, _) = run_prog(&dir, "c", &["alloc", "1000", "64", "10", "0"]);
    let p = path.to_str().unwrap();
    let m = &s.summary;
    let peak = m.peak_live_bytes;
    let code = |args: &[&str]| {
        let mut a = vec!["check", p];
        a.extend_from_slice(args);
        let out = cli(&dir, &a);
        (out.status.code(), stdout(&out))
    };
    assert_eq!(code(&["--max-peak", &peak.to_string()]).0, Some(0), "equal is not over");
    let (c, text) = code(&["--max-peak", &(peak - 1).to_string()]);
    assert_eq!(c, Some(1));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAIL peak heap")).count(),
        1,
        "{text}"
    );
    // peak is 1000*64 + 1000*8 = 72000 bytes = 72KB = 70.3125KiB.
    assert_eq!(peak, 72_000);
    assert_eq!(code(&["--max-peak", "72KB"]).0, Some(0));
    assert_eq!(code(&["--max-peak", "70.3125KiB"]).0, Some(0));
    assert_eq!(code(&["--max-peak", "70KiB"]).0, Some(1));
    assert_eq!(code(&["--max-peak", "0.000072GB"]).0, Some(0));
    let n = m.total_allocations.to_string();
    let n1 = (m.total_allocations - 1).to_string();
    assert_eq!(code(&["--max-allocations", &n]).0, Some(0));
    let leak = m.live_at_exit_bytes.to_string();
    let (c, text) = code(&["--max-allocations", &n1, "--max-leaked", "639", "--max-peak", "1MiB"]);
    assert_eq!(c, Some(1));
    assert_eq!(text.lines().filter(|l| l.starts_with("FAIL")).count(), 2, "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("ok")).count(), 1, "{text}");
    assert_eq!(code(&["--max-leaked", &leak, "--max-allocations", &n]).0, Some(0));
}

#[test]
fn diff_gates_on_peak_and_leak_growth() {
    let dir = scratch("cli_read_diff");
    let (b, bs, _) = run_prog(&dir, "base", &["alloc", "1000", "64", "10", "0"]);
    let (n, ns, _) = run_prog(&dir, "new", &["alloc", "1500", "64", "20", "0"]);
    let (b, n) = (b.to_str().unwrap(), n.to_str().unwrap());
    let (bp, np) = (bs.summary.peak_live_bytes as f64, ns.summary.peak_live_bytes as f64);
    let growth = (np - bp) * 100.0 / bp;
    let leak = ns.summary.live_at_exit_bytes - bs.summary.live_at_exit_bytes;
    let code = |args: &[&str]| cli(&dir, &[&["diff", b, n][..], args].concat()).status.code();
    assert_eq!(code(&["--max-peak-growth", &format!("{growth}")]), Some(0));
    assert_eq!(code(&["--max-peak-growth", &format!("{}%", growth - 0.1)]), Some(1));
    assert_eq!(code(&["--max-leak-growth", &leak.to_string()]), Some(0));
    assert_eq!(code(&["--max-leak-growth", &(leak - 1).to_string()]), Some(1));
    assert_eq!(code(&[]), Some(0), "no limit, no failure");

    let out = cli(&dir, &["diff", b, n, "--format", "json", "--max-leak-growth", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["totals"]["peak_heap"]["base"], bs.summary.peak_live_bytes);
    assert_eq!(v["totals"]["peak_heap"]["new"], ns.summary.peak_live_bytes);
    assert_eq!(v["totals"]["live_at_exit"]["change"], leak);
    assert_eq!(v["ok"], false);
    assert_eq!(v["limits_exceeded"].as_array().unwrap().len(), 1);

    let out = cli(&dir, &["diff", b, n, "--format", "markdown", "--max-peak-growth", "10"]);
    let md = stdout(&out);
    assert!(md.contains("| peak heap |") && md.contains("|---|"), "{md}");
    assert!(md.contains("❌") && md.contains("over the limit of 10%"), "{md}");
}

#[test]
fn diff_matches_sites_by_frames_across_builds() {
    let dir = scratch("cli_read_diff_sites");
    let (_, s, _) = run_prog(&dir, "s", &["alloc", "10", "8", "0", "0"]);
    let base = with_sites(&dir, "b", s.clone(), three_sites(0x1000, 20));
    // Another build: every address moved; "busy" now allocates twice as
    // much; "mid" moved to another line (so it is a different site).
    let mut sites = three_sites(0x7f00_0000, 20);
    sites[1].0.bytes = 2000;
    sites[1].0.allocations = 1000;
    sites[2].1[0].line = Some(8);
    let new = with_sites(&dir, "n", s, sites);
    let out = cli(
        &dir,
        &[
            "diff",
            base.to_str().unwrap(),
            new.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changed: Vec<(String, bool, bool)> = v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["site"].as_str().unwrap().to_string(),
                !s["base"].is_null(),
                !s["new"].is_null(),
            )
        })
        .collect();
    assert_eq!(changed.len(), 3, "big is unchanged and not listed: {changed:?}");
    assert!(
        changed.iter().any(|(l, b, n)| l.starts_with("busy") && *b && *n),
        "busy matched: {changed:?}"
    );
    assert!(changed
        .iter()
        .any(|(l, b, n)| l.starts_with("mid (mid.c:7)") && *b && !*n));
    assert!(changed
        .iter()
        .any(|(l, b, n)| l.starts_with("mid (mid.c:8)") && !*b && *n));
    let busy = v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"].as_str().unwrap().starts_with("busy"))
        .unwrap();
    assert_eq!(
        busy["new"]["bytes"].as_u64().unwrap() - busy["base"]["bytes"].as_u64().unwrap(),
        1000
    );
}

#[test]
fn dhat_export_matches_valgrind_dhat() {
    let dir = scratch("cli_read_dhat");
    let args = ["alloc", "200", "48", "7", "0"];
    let (path, _, _) = run_prog(&dir, "d", &args);
    let out_path = dir.join("dhat-export.json");
    let out = cli(
        &dir,
        &[
            "export",
            path.to_str().unwrap(),
            "--to",
            "dhat",
            out_path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    // What dh_view.html's buildTree() and checkPP() require.
    for f in [
        "dhatFileVersion",
        "mode",
        "verb",
        "bklt",
        "bkacc",
        "tu",
        "Mtu",
        "cmd",
        "pid",
        "te",
        "pps",
        "ftbl",
        "tg",
        "tuth",
    ] {
        assert!(v.get(f).is_some(), "missing {f}");
    }
    assert_eq!(v["dhatFileVersion"], 2);
    assert_eq!(v["ftbl"][0], "[root]");
    for pp in v["pps"].as_array().unwrap() {
        for f in ["tb", "tbk", "fs", "mb", "mbk", "gb", "gbk", "eb", "ebk", "tl"] {
            assert!(pp.get(f).is_some(), "pp missing {f}");
        }
    }
    // The program's two call sites, by its design: the array of 200
    // pointers (1 600 bytes, freed) and 200 blocks of 48 bytes, 7 kept; at
    // the peak the array and all 200 blocks are live.
    assert_eq!(
        dhat::points(&out_path),
        [[1, 1600, 1, 1600, 0, 0], [200, 200 * 48, 200, 200 * 48, 7, 7 * 48]]
    );
    if !dhat::available() {
        return;
    }
    // And each program point as valgrind's DHAT records it.
    let theirs = dhat::run(&prog(), &args, &dir);
    assert_eq!(
        dhat::read(&out_path),
        theirs,
        "totals: memscope's export vs valgrind's DHAT"
    );
    assert_eq!(
        dhat::points(&out_path),
        dhat::points(&dir.join("dhat.json")),
        "program points: memscope's export vs valgrind's DHAT"
    );
}

/// `alloc 100 24 5 0`: one array of 100 pointers (800 bytes, line 41 of
/// cli_prog.c), 100 blocks of 24 bytes (line 42), 5 of them never freed;
/// cli_prog uses no stdio, so nothing else allocates. The folded export
/// weighs each stack by what the program did there.
#[test]
fn folded_export_sums_to_the_totals_root_first() {
    let dir = scratch("cli_read_folded");
    let (path, _, _) = run_prog(&dir, "f", &["alloc", "100", "24", "5", "0"]);
    let folded = |p: &Path, weight: &str| -> Vec<(String, u64)> {
        let out = dir.join(format!("{weight}.folded"));
        let o = cli(
            &dir,
            &[
                "export",
                p.to_str().unwrap(),
                "--to",
                "folded",
                out.to_str().unwrap(),
                "--weight",
                weight,
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let mut lines: Vec<(String, u64)> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| {
                let (stack, n) = l.rsplit_once(' ').unwrap();
                (stack.to_string(), n.parse::<u64>().unwrap())
            })
            .collect();
        lines.sort();
        lines
    };
    // Root first: `_start (in cli_prog);` libc's start-up frames, then the
    // line of main that called malloc, innermost (the hook is not shown).
    let by_line = |lines: &[(String, u64)]| -> Vec<(u32, u64)> {
        lines
            .iter()
            .map(|(stack, n)| {
                assert!(stack.starts_with("_start (in cli_prog);"), "{stack}");
                let (_, main) = stack.rsplit_once(';').unwrap();
                let line = main.strip_prefix("main (cli_prog.c:").and_then(|l| l.strip_suffix(')'));
                (line.unwrap_or_else(|| panic!("{stack}")).parse().unwrap(), *n)
            })
            .collect()
    };
    assert_eq!(by_line(&folded(&path, "bytes")), [(41, 800), (42, 2400)]);
    assert_eq!(by_line(&folded(&path, "allocations")), [(41, 1), (42, 100)]);
    assert_eq!(by_line(&folded(&path, "leaked")), [(42, 5 * 24)]);
    // Hand-built sites: every stack written root first, innermost last.
    let base = run_prog(&dir, "g", &["alloc", "1", "8", "0", "0"]).1;
    let p = with_sites(&dir, "sites", base, three_sites(0x1000, 20));
    let line = |s: &str, n: u64| (s.to_string(), n);
    assert_eq!(
        folded(&p, "bytes"),
        [
            line("main (main.c:10);big (big.c:5);malloc (in app)", 3000),
            line("main (main.c:10);busy (busy.c:20)", 1000),
            line("main (main.c:10);mid (mid.c:7)", 2000),
        ]
    );
    assert_eq!(folded(&p, "leaked"), [line("main (main.c:10);busy (busy.c:20)", 800)]);
}

#[test]
fn analyze_writes_a_self_contained_escaped_report() {
    let dir = scratch("cli_read_analyze");
    let evil = "</script><img src=x onerror=alert(1)>";
    let path = dir.join("a.json");
    let out = command(&dir)
        .arg("run")
        .arg("-o")
        .arg(&path)
        .arg(prog())
        .arg(evil)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "cli_prog rejects the unknown mode");
    let report = dir.join("a.html");
    let out = cli(&dir, &["analyze", path.to_str().unwrap(), report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains(evil) && !html.contains("<img"), "argv is escaped");
    for external in ["src=\"http", "href=\"http", "@import", "src=\"//"] {
        assert!(!html.contains(external), "self-contained: {external}");
    }
}

#[test]
fn hostile_names_never_reach_the_terminal_or_markdown_raw() {
    let dir = scratch("cli_read_hostile");
    let evil_exe = dir.join("evil\x1b[2J\x07|name");
    std::fs::copy(prog(), &evil_exe).unwrap();
    let path = dir.join("h.json");
    let out = command(&dir)
        .arg("run")
        .arg("-o")
        .arg(&path)
        .arg(&evil_exe)
        .args(["thread-name", "\x1b]0;pwned\x07"])
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = memscope_format::read_snapshot_file(&path).unwrap();
    assert!(s.process.exe.contains('\x1b'), "the name really is hostile");
    let raw = |b: &[u8]| b.iter().any(|&c| c == 0x1b || c == 0x07 || c == 0x9b);
    assert!(!raw(&out.stderr), "run's summary: {:?}", stderr(&out));
    assert!(
        stderr(&out).contains("\\x1b[2J\\x07"),
        "shown escaped: {}",
        stderr(&out)
    );
    let p = path.to_str().unwrap();
    let sites = with_sites(&dir, "sites", s.clone(), {
        let mut v = three_sites(0x1000, 20);
        v[1].1[0].function = Some("evil\x1b[31m|fn<script>\n`x`".into());
        v
    });
    let sp = sites.to_str().unwrap();
    for args in [
        vec!["summary", p],
        vec!["summary", sp],
        vec!["check", p, "--max-peak", "1"],
        vec!["diff", p, sp],
        vec!["diff", p, sp, "--format", "markdown"],
    ] {
        let out = cli(&dir, &args);
        assert!(!raw(&out.stdout) && !raw(&out.stderr), "{args:?}: {}", stdout(&out));
    }
    let md = stdout(&cli(&dir, &["diff", p, sp, "--format", "markdown"]));
    assert!(
        !md.contains("<script>") && !md.replace("\\|", "").contains("|fn"),
        "{md}"
    );
    assert!(
        md.contains("evil\\\\x1b\\[31m\\|fn&lt;script&gt;"),
        "escaped, still readable: {md}"
    );
    for row in md.lines().filter(|l| l.starts_with('|')) {
        let cells = row.replace("\\|", "").matches('|').count();
        assert!(cells == 6 || cells == 5, "a name cannot add columns: {row}");
    }
}

/// A version-1 file (frames inline in each call site, module paths inline)
/// made from a real version-2 snapshot reads everywhere and says the same.
#[test]
fn version_1_snapshots_read_the_same() {
    let dir = scratch("cli_read_v1");
    let (v2_path, s, _) = run_prog(&dir, "v2", &["alloc", "40", "24", "3", "0"]);
    assert_eq!(s.format_version, 2);
    assert!(!s.frames.is_empty(), "the run recorded call sites");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&v2_path).unwrap()).unwrap();
    let modules = v["modules"].clone();
    let frames = v["frames"].clone();
    let obj = v.as_object_mut().unwrap();
    obj.remove("modules");
    obj.remove("frames");
    obj.insert("format_version".into(), 1.into());
    for c in obj["callsites"].as_array_mut().unwrap() {
        let inline: Vec<serde_json::Value> = c["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let mut f = frames[i.as_u64().unwrap() as usize].clone();
                f["module"] = modules[f["module"].as_u64().unwrap() as usize].clone();
                f
            })
            .collect();
        c["frames"] = inline.into();
    }
    let v1_path = dir.join("v1.json");
    std::fs::write(&v1_path, serde_json::to_vec(&v).unwrap()).unwrap();
    let v1 = memscope_format::read_snapshot_file(&v1_path).unwrap();
    assert_eq!(v1.format_version, 1);
    assert_eq!((v1.frames.len(), v1.modules.len()), (s.frames.len(), s.modules.len()));
    for (a, b) in v1.callsites.iter().zip(&s.callsites) {
        let names = |s: &Snapshot, c: &Callsite| {
            stack(s, c)
                .into_iter()
                .map(|f| (f.ip, f.function, f.module))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&v1, a), names(&s, b));
    }
    let (p1, p2) = (v1_path.to_str().unwrap(), v2_path.to_str().unwrap());
    let same = |args: &dyn Fn(&str) -> Vec<String>| {
        let (a, b) = (cli(&dir, &args(p1)), cli(&dir, &args(p2)));
        assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
        (stdout(&a), stdout(&b))
    };
    let (a, b) = same(&|p| vec!["summary".into(), p.into()]);
    assert_eq!(a.replace("v1.json", "X"), b.replace("v2.json", "X"));
    let folded = |name: &str| dir.join(name).to_str().unwrap().to_string();
    same(&|p| {
        let out = folded(if p == p1 { "1.folded" } else { "2.folded" });
        vec!["export".into(), p.into(), "--to".into(), "folded".into(), out]
    });
    assert_eq!(
        std::fs::read_to_string(folded("1.folded")).unwrap(),
        std::fs::read_to_string(folded("2.folded")).unwrap()
    );
    // The other readers take it too: the report and DHAT's format.
    for (args, out) in [
        (vec!["analyze", p1], dir.join("v1.html")),
        (vec!["export", p1, "--to", "dhat"], dir.join("v1.dhat.json")),
    ] {
        let o = cli(&dir, &[args, vec![out.to_str().unwrap()]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(std::fs::metadata(&out).unwrap().len() > 0);
    }
    let (d, _) = same(&|p| vec!["diff".into(), p1.into(), p.into(), "--format".into(), "json".into()]);
    let d: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert_eq!(d["ok"], true, "{d}");
    assert!(d["sites"].as_array().unwrap().is_empty(), "v1 and v2 sites match: {d}");
}
