//! Shared by the report_* tests: rendering, HTML parsing helpers, a
//! hand-built snapshot with real frames (call sites may still come without
//! frames from the engine), a synthetic huge one, and headless Chromium.
#![allow(dead_code)]

pub mod many;

use memscope_format::*;
use scraper::{ElementRef, Html, Selector};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn render(snaps: &[Snapshot]) -> String {
    let mut out = Vec::new();
    memscope_report::write_html(snaps, &mut out).expect("write_html");
    String::from_utf8(out).expect("the report is UTF-8")
}

pub fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("selector {s}: {e:?}"))
}

pub fn all<'a>(doc: &'a Html, s: &str) -> Vec<ElementRef<'a>> {
    doc.select(&sel(s)).collect()
}

pub fn one<'a>(doc: &'a Html, s: &str) -> ElementRef<'a> {
    let found = all(doc, s);
    assert_eq!(found.len(), 1, "expected one {s}, found {}", found.len());
    found[0]
}

pub fn text(e: ElementRef) -> String {
    e.text().collect()
}

/// The `data-v` (exact value) of an element.
pub fn v(e: ElementRef) -> u64 {
    let raw = e
        .value()
        .attr("data-v")
        .unwrap_or_else(|| panic!("no data-v on {}", e.html()));
    raw.parse().unwrap_or_else(|_| panic!("data-v {raw:?}"))
}

/// The view model embedded in the page, as the page's script reads it.
pub fn embedded_model(doc: &Html) -> serde_json::Value {
    let data = text(one(doc, "script#memscope-data"));
    serde_json::from_str(&data).expect("the embedded data is JSON")
}

pub const HOSTILE_FN: &str = "</script><script>alert(1)</script>";
pub const HOSTILE_FILE: &str = "<img src=x onerror=alert(2)>.c";

/// The module paths of the synthetic snapshots, in table order.
const MODULES: [&str; 4] = [
    "/usr/bin/demo",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/bin/big",
    memscope_format::UNKNOWN_MODULE,
];

fn frame(ip: u64, function: &str, file: &str, line: u32, module: &str, inlined: bool) -> Frame {
    Frame {
        ip: hex_addr(ip),
        function: Some(function.into()),
        file: Some(file.into()),
        line: Some(line),
        module: MODULES.iter().position(|m| *m == module).expect("a listed module") as u32,
        inlined,
    }
}

fn alloc_rec(ptr: u64, size: u64, site: u64, born: u64, died: u64, leaked: bool) -> Allocation {
    Allocation {
        ptr: hex_addr(ptr),
        size,
        kind: "malloc".into(),
        thread_id: 101,
        timestamp_alloc: born,
        timestamp_dealloc: died,
        lifetime_ns: died - born,
        lifetime_ms: ns_to_ms(died - born),
        is_leaked: leaked,
        callsite: Some(site),
        var_name: None,
        type_name: None,
        scope_name: None,
        inherited: false,
    }
}

fn site(
    id: u64,
    frames: Vec<Frame>,
    allocations: u64,
    bytes: u64,
    live: (u64, u64),
    life: [u64; 4],
) -> (Callsite, Vec<Frame>) {
    let c = Callsite {
        id,
        frames: Vec::new(),
        allocations,
        bytes,
        live_at_exit_bytes: live.1,
        peak_live_bytes: bytes / 2,
        lifetime_ns: LifetimeStats {
            min: life[0],
            p50: life[1],
            p99: life[2],
            max: life[3],
            total: None,
        },
        live_at_exit_allocations: live.0,
        reallocs: 0,
        at_peak_bytes: bytes / 4,
        at_peak_allocations: 0,
        peak_live_allocations: None,
    };
    (c, frames)
}

/// A small, fully deterministic snapshot whose sites have real frames
/// (function, file, line, module, inlined), one site without frames, and a
/// hostile symbol and file name.
pub fn framed_snapshot() -> Snapshot {
    const T0: u64 = 1_790_000_000_000_000_000;
    let (main, exe, libc) = (0x401000, "/usr/bin/demo", "/lib/x86_64-linux-gnu/libc.so.6");
    let main_f = frame(main, "main", "src/main.c", 40, exe, false);
    let parse = frame(0x401200, "parse_config", "src/config.c", 12, exe, false);
    let strdup = frame(0x7f00_0000_1000, "strdup", "string/strdup.c", 42, libc, false);
    let node_new = frame(0x401400, "node_new", "src/tree.h", 7, exe, true);
    let insert = frame(0x401480, "tree_insert", "src/tree.c", 88, exe, false);
    let evil = frame(0x401600, HOSTILE_FN, HOSTILE_FILE, 1, exe, false);
    let unresolved = Frame {
        ip: hex_addr(0x7f00_dead_beef),
        module: 3,
        ..Frame::default()
    };
    let callsites = vec![
        site(0, vec![], 3, 300, (0, 0), [50, 100, 200, 200]),
        site(
            1,
            vec![strdup, parse.clone(), main_f.clone()],
            40,
            4_000,
            (2, 200),
            [1_000, 30_000, 900_000, 2_000_000],
        ),
        site(
            2,
            vec![node_new, insert.clone(), main_f.clone()],
            1_000,
            64_000,
            (10, 640),
            [200, 5_000, 70_000_000, 90_000_000],
        ),
        site(
            3,
            vec![insert, parse, main_f.clone()],
            7,
            70_000,
            (0, 0),
            [10_000_000, 20_000_000, 40_000_000, 40_000_000],
        ),
        site(
            4,
            vec![evil, unresolved, main_f],
            2,
            64,
            (1, 32),
            [7, 7, 100_000_000, 100_000_000],
        ),
    ];
    let mut allocations = vec![
        alloc_rec(0x1000, 100, 1, T0 + 1_000_000, T0 + 100_000_000, true),
        alloc_rec(0x1100, 100, 1, T0 + 2_000_000, T0 + 100_000_000, true),
        alloc_rec(0x2000, 64, 2, T0 + 3_000_000, T0 + 100_000_000, true),
        alloc_rec(0x3000, 32, 4, T0 + 4_000_000, T0 + 100_000_000, true),
    ];
    for i in 0..9 {
        allocations.push(alloc_rec(
            0x2100 + i * 64,
            64,
            2,
            T0 + 5_000_000 + i,
            T0 + 100_000_000,
            true,
        ));
    }
    for i in 0..20u64 {
        let born = T0 + 10_000_000 + i * 1_000_000;
        allocations.push(alloc_rec(0x9000 + i * 16, 64, 2, born, born + 5_000 + i * 100, false));
    }
    let summary = Summary {
        total_allocations: 1_052,
        total_frees: 1_039,
        total_allocated_bytes: 138_364,
        total_freed_bytes: 137_492,
        reallocs: 0,
        peak_live_bytes: 90_000,
        peak_live_allocations: 30,
        peak_unix_ns: T0 + 40_000_000,
        live_at_exit_allocations: 13,
        live_at_exit_bytes: 872,
        events_dropped: 0,
        records_omitted: 1_052 - 33,
        ..Summary::default()
    };
    let bucket = |lower_ns: u64, upper_ns: u64, count: u64| HistogramBucket {
        lower_ns,
        upper_ns,
        count,
        bytes: count * 64,
    };
    let mut snap = Snapshot {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        tool: Tool {
            name: "memscope".into(),
            version: "0.1.0".into(),
            mode: "preload".into(),
            backtrace_depth: 16,
            max_records: 33,
            clock: "tsc".into(),
            site_totals: false,
        },
        process: Process {
            pid: 4242,
            ppid: 1,
            exe: "/usr/bin/demo".into(),
            argv: vec!["demo".into(), "--input".into(), "a b.txt".into()],
            start_unix_ns: T0,
            end_unix_ns: T0 + 100_000_000,
            end: EndKind::Exit,
            exit_code: Some(0),
            signal: None,
            cwd: "/home/dev".into(),
            exec_seq: 0,
            forked: false,
        },
        summary,
        allocations,
        modules: Vec::new(),
        module_info: Vec::new(),
        frames: Vec::new(),
        symbols_pending: false,
        callsites: Vec::new(),
        variables: vec![Variable {
            var_name: "config".into(),
            type_name: "Config".into(),
            scope_name: "main".into(),
            ptr: hex_addr(0x1000),
            size: 100,
            thread_id: 101,
            timestamp_alloc: T0 + 1_000_000,
            timestamp_dealloc: T0 + 100_000_000,
            lifetime_ns: 99_000_000,
            lifetime_ms: 99,
            is_leaked: true,
        }],
        threads: vec![
            ThreadStats {
                thread_id: 101,
                name: "demo".into(),
                allocations: 1_000,
                bytes: 100_000,
                frees: 990,
                live_at_exit_bytes: 800,
            },
            ThreadStats {
                thread_id: 102,
                name: "io".into(),
                allocations: 52,
                bytes: 38_364,
                frees: 49,
                live_at_exit_bytes: 72,
            },
        ],
        lifetime_histogram: vec![
            bucket(7, 7, 1),
            bucket(64, 71, 2),
            bucket(4_608, 5_119, 500),
            bucket(5_120, 5_631, 400),
            bucket(25_165_824, 27_262_975, 136),
            bucket(92_274_688, 100_663_295, 13),
        ],
        timeline: [
            (T0, 0),
            (T0 + 10_000_000, 20_000),
            (T0 + 40_000_000, 90_000),
            (T0 + 60_000_000, 5_000),
            (T0 + 100_000_000, 872),
        ]
        .into_iter()
        .map(TimelinePoint::from)
        .collect(),
    };
    memscope_tests::install_sites(&mut snap, &MODULES, callsites);
    snap
}

/// The most the report of `synthetic(50_000, 1_000_000)` may weigh: four
/// times the 10.1 MiB it weighs.
pub const HUGE_REPORT_MAX_MIB: f64 = 40.0;

/// A synthetic run the size of a big real one: `sites` call sites with
/// stacks 6–20 frames deep over a few thousand functions, `allocations`
/// blocks spread over them, 20 000 listed records, a full timeline.
pub fn synthetic(sites: u64, allocations: u64) -> Snapshot {
    let mut s = framed_snapshot();
    let t0 = s.process.start_unix_ns;
    let span = 60_000_000_000u64;
    s.process.end_unix_ns = t0 + span;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut callsites = Vec::with_capacity(sites as usize);
    let (mut total_n, mut total_b, mut live_n, mut live_b) = (0, 0, 0, 0);
    for id in 0..sites {
        let depth = 6 + (next() % 15) as usize;
        // Outer frames are shared widely, inner ones less and less.
        let frames: Vec<Frame> = (0..depth)
            .rev()
            .map(|d| {
                let f = if d + 1 == depth {
                    0
                } else {
                    next() % (4 + (depth - d) as u64 * 40)
                };
                let name = format!("crate{}::module{}::function_{}_{}", f % 13, f % 97, d, f);
                frame(
                    0x400000 + (f << 8) + d as u64,
                    &name,
                    &format!("src/m{}.rs", f % 97),
                    (f % 900) as u32,
                    "/usr/bin/big",
                    d % 5 == 3,
                )
            })
            .collect();
        let n = 1 + allocations / sites / 2 + if id % 100 == 0 { allocations / sites * 50 } else { 0 };
        let b = n * (16 + next() % 4096);
        let live = if id % 7 == 0 { (1, b / n) } else { (0, 0) };
        total_n += n;
        total_b += b;
        live_n += live.0;
        live_b += live.1;
        let life = [
            100 + next() % 1000,
            10_000 + next() % 1_000_000,
            50_000_000 + next() % 1_000_000_000,
            2_000_000_000,
        ];
        callsites.push(site(id, frames, n, b, live, life));
    }
    memscope_tests::install_sites(&mut s, &MODULES, callsites);
    let listed = 20_000.min(total_n / 2);
    s.allocations = (0..listed)
        .map(|i| {
            let born = t0 + next() % span;
            let site = next() % sites;
            let died = if i < listed / 10 {
                t0 + span
            } else {
                born + (next() % (t0 + span - born)) / (1 + next() % 1000)
            };
            alloc_rec(
                0x10_0000 + i * 32,
                16 + next() % 2048,
                site,
                born,
                died,
                i < listed / 10,
            )
        })
        .collect();
    s.timeline = (0..1024u64)
        .map(|i| {
            TimelinePoint(
                t0 + i * span / 1023,
                (i * 7_919 % 1_000) * 1_000_000 + i * 100_000,
                None,
            )
        })
        .collect();
    let peak = s.timeline.iter().max_by_key(|p| p.1).copied().unwrap_or_default();
    s.summary.total_allocations = total_n;
    s.summary.total_allocated_bytes = total_b;
    s.summary.live_at_exit_allocations = live_n;
    s.summary.live_at_exit_bytes = live_b;
    s.summary.total_frees = total_n - live_n;
    s.summary.total_freed_bytes = total_b - live_b;
    s.summary.peak_live_bytes = peak.1;
    s.summary.peak_unix_ns = peak.0;
    s.summary.records_omitted = total_n - listed;
    s.lifetime_histogram = (16..400)
        .map(|b| HistogramBucket {
            lower_ns: hist::bucket_lower(b),
            upper_ns: hist::bucket_upper(b),
            count: total_n / 384 + u64::from(b < 16 + (total_n % 384) as usize),
            bytes: 0,
        })
        .collect();
    s.threads = (0..64)
        .map(|t| ThreadStats {
            thread_id: 1000 + t,
            name: format!("worker-{t}"),
            allocations: total_n / 64,
            bytes: total_b / 64,
            frees: 0,
            live_at_exit_bytes: 0,
        })
        .collect();
    s.variables = (0..1000u64)
        .map(|i| Variable {
            var_name: format!("var{i}"),
            type_name: "Vec<u8>".into(),
            scope_name: "main".into(),
            ptr: hex_addr(0x5000 + i),
            size: i,
            thread_id: 1000,
            timestamp_alloc: t0 + i * 1000,
            timestamp_dealloc: t0 + i * 2000,
            lifetime_ns: i * 1000,
            lifetime_ms: 0,
            is_leaked: false,
        })
        .collect();
    s
}

/// Chromium on PATH (as `.ci/run` finds it); when missing the test fails
/// saying how to install it, unless the user opted out (`None` then).
#[track_caller]
pub fn chromium() -> Option<PathBuf> {
    memscope_tests::tools::chromium()
}

/// Flags for a quiet, offline headless run as root in a sandboxless box.
fn chromium_cmd(bin: &Path, profile: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The DOM after the page's scripts ran (with `#selftest`: every section
/// drawn, every control driven), and what Chromium logged.
pub fn dump_dom(bin: &Path, page: &Path, width: u32) -> (String, String) {
    dump_dom_at(bin, page, width, "#selftest")
}

/// [`dump_dom`] of the page opened at `fragment` (`""`: as a reader opens it).
pub fn dump_dom_at(bin: &Path, page: &Path, width: u32, fragment: &str) -> (String, String) {
    let profile = page.with_extension("profile");
    let out = chromium_cmd(bin, &profile)
        .arg(format!("--window-size={width},1000"))
        .arg("--dump-dom")
        .arg(format!("file://{}{fragment}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium --dump-dom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn screenshot(bin: &Path, page: &Path, png: &Path, size: (u32, u32)) {
    let profile = page.with_extension("profile");
    let out = chromium_cmd(bin, &profile)
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium --screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Console messages the page logged (Chromium logs every level the same
/// way; the report itself never writes to the console).
pub fn console_messages(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// The flamegraph of `framed_snapshot()`, counted by hand from its five
/// sites: each node by its path from the root (outermost first), with its
/// bytes, allocations and bytes live at exit.
pub fn framed_flame_by_hand() -> Vec<(String, u64, u64, u64)> {
    let evil = format!("main;0x7f00deadbeef;{HOSTILE_FN}");
    let mut v: Vec<(String, u64, u64, u64)> = [
        // Sites 0–4: 300 + 4 000 + 64 000 + 70 000 + 64 bytes, 3 + 40 +
        // 1 000 + 7 + 2 blocks, 0 + 200 + 640 + 0 + 32 live.
        ("all", 138_364, 1_052, 872),
        ("[no stack]", 300, 3, 0),
        ("main", 138_064, 1_049, 872),
        ("main;parse_config", 74_000, 47, 200),
        ("main;parse_config;strdup", 4_000, 40, 200),
        ("main;parse_config;tree_insert", 70_000, 7, 0),
        ("main;tree_insert", 64_000, 1_000, 640),
        ("main;tree_insert;node_new", 64_000, 1_000, 640),
        ("main;0x7f00deadbeef", 64, 2, 32),
        (evil.as_str(), 64, 2, 32),
    ]
    .iter()
    .map(|&(p, b, n, l)| (p.to_string(), b, n, l))
    .collect();
    v.sort();
    v
}

/// A process's flamegraph in the view model, as [`framed_flame_by_hand`]
/// writes it.
pub fn flame_by_path(p: &serde_json::Value) -> Vec<(String, u64, u64, u64)> {
    let f = &p["flame"];
    let label = |i: usize| match f["f"][i].as_i64().unwrap() {
        -1 => "all".to_string(),
        -2 => "[no stack]".to_string(),
        k => p["frames"][k as usize][0].as_str().unwrap().to_string(),
    };
    let n = f["f"].as_array().unwrap().len();
    let mut v: Vec<(String, u64, u64, u64)> = (0..n)
        .map(|i| {
            let mut path = vec![];
            let mut j = i as i64;
            while j > 0 {
                path.push(label(j as usize));
                j = f["p"][j as usize].as_i64().unwrap();
            }
            path.reverse();
            let name = if i == 0 { "all".to_string() } else { path.join(";") };
            let num = |m: &str| f[m][i].as_u64().unwrap();
            (name, num("b"), num("n"), num("l"))
        })
        .collect();
    v.sort();
    v
}
