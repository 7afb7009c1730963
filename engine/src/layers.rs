//! Checks the dependency order drawn in the crate's doc comment: a module
//! uses only modules of lower layers (layer 0, the base, is one layer), so
//! there is no import circle among the engine's parts.

/// The layers of lib.rs's doc comment, bottom first.
const LAYERS: &[&[&str]] = &[
    &[
        "image",
        "detach",
        "destination",
        "handoff",
        "listing",
        "collector",
        "var_names",
        "alt_stack",
        "unwind",
        "registry",
        "ring",
        "thread",
        "rss",
        "control",
        "select",
        "process",
        "exec_seq",
        "paths",
        "event",
        "config",
        "clock",
        "log",
        "lock",
        "sys",
        "arena",
        "own_heap",
    ],
    &["snapshot"],
    &["consumer"],
    &["running", "inherited"],
    &["ending"],
    &["collector_thread"],
    &["recorder"],
    &["signals", "vars"],
    &["sigchain"],
    &["lifecycle", "api"],
];

/// Every engine source file, by the module it belongs to.
const SOURCES: &[(&str, &str)] = &[
    ("alt_stack", include_str!("alt_stack.rs")),
    ("api", include_str!("api.rs")),
    ("arena", include_str!("arena.rs")),
    ("own_heap", include_str!("own_heap.rs")),
    ("clock", include_str!("clock.rs")),
    ("collector", include_str!("collector/mod.rs")),
    ("collector", include_str!("collector/events.rs")),
    ("collector", include_str!("collector/finish.rs")),
    ("collector", include_str!("collector/live.rs")),
    ("collector", include_str!("collector/open_table.rs")),
    ("collector", include_str!("collector/records.rs")),
    ("collector", include_str!("collector/running.rs")),
    ("collector", include_str!("collector/sites.rs")),
    ("collector", include_str!("collector/test_blocks.rs")),
    ("collector", include_str!("collector/timeline.rs")),
    ("collector_thread", include_str!("collector_thread.rs")),
    ("config", include_str!("config.rs")),
    ("consumer", include_str!("consumer.rs")),
    ("control", include_str!("control.rs")),
    ("destination", include_str!("destination.rs")),
    ("detach", include_str!("detach.rs")),
    ("ending", include_str!("ending.rs")),
    ("event", include_str!("event.rs")),
    ("handoff", include_str!("handoff.rs")),
    ("image", include_str!("image.rs")),
    ("inherited", include_str!("inherited.rs")),
    ("lifecycle", include_str!("lifecycle.rs")),
    ("listing", include_str!("listing.rs")),
    ("lock", include_str!("lock.rs")),
    ("log", include_str!("log.rs")),
    ("paths", include_str!("paths.rs")),
    ("process", include_str!("process.rs")),
    ("exec_seq", include_str!("exec_seq.rs")),
    ("recorder", include_str!("recorder.rs")),
    ("registry", include_str!("registry.rs")),
    ("ring", include_str!("ring.rs")),
    ("rss", include_str!("rss.rs")),
    ("running", include_str!("running.rs")),
    ("select", include_str!("select.rs")),
    ("sigchain", include_str!("sigchain.rs")),
    ("signals", include_str!("signals.rs")),
    ("snapshot", include_str!("snapshot.rs")),
    ("sys", include_str!("sys.rs")),
    ("thread", include_str!("thread.rs")),
    ("unwind", include_str!("unwind/mod.rs")),
    ("unwind", include_str!("unwind/capture.rs")),
    ("unwind", include_str!("unwind/fde_rows.rs")),
    ("unwind", include_str!("unwind/memo.rs")),
    ("unwind", include_str!("unwind/modules.rs")),
    ("unwind", include_str!("unwind/mailbox.rs")),
    ("unwind", include_str!("unwind/rule_store.rs")),
    ("unwind", include_str!("unwind/rules.rs")),
    ("unwind", include_str!("unwind/sites.rs")),
    ("unwind", include_str!("unwind/symbolize.rs")),
    ("var_names", include_str!("var_names.rs")),
    ("vars", include_str!("vars.rs")),
];

/// The logging macros (`crate::warn!`…) live in `log`.
fn module_of(name: &str) -> &str {
    match name {
        "warn" | "info" | "debug" => "log",
        n => n,
    }
}

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is in no layer of lib.rs's drawing"))
}

/// The engine modules a source file names (`crate::x`, `use crate::{x, y}`),
/// outside comments.
fn uses(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                None => vec![rest],
            };
            for n in names {
                let n: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !n.is_empty() {
                    found.push(module_of(&n).to_string());
                }
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_lower_layers() {
    let mut wrong = Vec::new();
    for (module, source) in SOURCES {
        let own = layer(module);
        for dep in uses(source) {
            if dep == *module {
                continue;
            }
            let theirs = layer(&dep);
            if theirs > own || (theirs == own && own != 0) {
                wrong.push(format!("{module} (layer {own}) uses {dep} (layer {theirs})"));
            }
        }
    }
    assert!(wrong.is_empty(), "upward or sideways imports:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_grouped_and_plain_uses_but_not_comments() {
    let src = "use crate::{paths, registry::x};\n// crate::lifecycle\nlet a = crate::warn!(\"\");";
    assert_eq!(uses(src), ["paths", "registry", "log"]);
}

#[test]
fn every_source_file_is_checked() {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| match p.is_dir() {
                true => count(&p),
                false => usize::from(p.extension().is_some_and(|e| e == "rs")),
            })
            .sum()
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // lib.rs, this file and the unit-test files are not checked.
    let unchecked = ["lib.rs", "layers.rs", "collector/tests.rs"].len();
    assert_eq!(count(&src), SOURCES.len() + unchecked);
}
