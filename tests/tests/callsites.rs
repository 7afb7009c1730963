//! Call sites: stacks captured in the hot path, named at export. A C program
//! allocates from known functions at known lines (directly, through an
//! inlined helper, a linked library, a dlopen'ed library closed before the
//! end, and a 21-deep recursion); the snapshot must name them with exact
//! counts, built with frame pointers and without.

use memscope_format::{Callsite, Snapshot};
use memscope_tests::*;
use std::path::Path;

/// Line of the `SITE:<tag>` marker in `tests/programs/<file>`.
fn site_line(file: &str, tag: &str) -> u32 {
    let text = std::fs::read_to_string(root().join("tests/programs").join(file)).unwrap();
    let marker = format!("SITE:{tag} ");
    let i = text
        .lines()
        .position(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no {marker} in {file}"));
    i as u32 + 1
}

fn is(f: &StackFrame, function: &str, file: &str, line: u32) -> bool {
    f.function.as_deref() == Some(function)
        && f.file.as_deref().is_some_and(|p| p.ends_with(file))
        && f.line == Some(line)
}

fn sites_where<'a>(s: &'a Snapshot, pred: impl Fn(&[StackFrame]) -> bool) -> Vec<&'a Callsite> {
    s.callsites.iter().filter(|c| pred(&stack(s, c))).collect()
}

/// Builds the call-site program (and its shared library) with `flags`;
/// returns it with the plugin's path, its argument.
fn build_callsites(test: &str, flags: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let lib = gcc(
        &format!("libcs_shared{test}.so"),
        &["cs_shared.c"],
        &[&["-shared", "-fPIC"], flags].concat(),
    );
    let lib_name = format!("-lcs_shared{test}");
    let rpath = format!("-Wl,-rpath,{}", programs_dir().display());
    let prog = gcc(
        &format!("callsites{test}"),
        &["callsites.c"],
        &[flags, &[&lib_name, &rpath, "-ldl"]].concat(),
    );
    let _ = lib;
    (prog, c_library("plugin"))
}

fn run_callsites(test: &str, flags: &[&str]) -> Run {
    let (prog, plugin) = build_callsites(test, flags);
    let run = traced(
        test,
        &prog,
        &[plugin.to_str().unwrap()],
        &[("MEMSCOPE_BACKTRACE", "32")],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    run
}

fn check_named_sites(s: &Snapshot) {
    check_invariants(s);
    let (a, inl, b, shared, deep) = (
        site_line("callsites.c", "a"),
        site_line("callsites.c", "inline"),
        site_line("callsites.c", "b"),
        site_line("cs_shared.c", "shared"),
        site_line("callsites.c", "deep"),
    );
    let main = |f: &StackFrame| {
        f.function.as_deref() == Some("main") && f.file.as_deref().is_some_and(|p| p.ends_with("callsites.c"))
    };

    let direct = sites_where(s, |f| {
        f.len() > 1 && is(&f[0], "from_a", "callsites.c", a) && main(&f[1])
    });
    assert_eq!(direct.len(), 1, "{:#?}", s.callsites);
    assert_eq!((direct[0].allocations, direct[0].bytes), (7, 700));
    assert_eq!(direct[0].live_at_exit_bytes, 0);

    let inlined = sites_where(s, |f| {
        f.len() > 2
            && is(&f[0], "inline_helper", "callsites.c", inl)
            && f[0].inlined
            && is(&f[1], "from_b", "callsites.c", b)
            && !f[1].inlined
            && main(&f[2])
    });
    assert_eq!(inlined.len(), 1, "{:#?}", s.callsites);
    assert_eq!((inlined[0].allocations, inlined[0].bytes), (5, 1000));

    let lib = sites_where(s, |f| {
        f.len() > 1
            && is(&f[0], "cs_shared_alloc", "cs_shared.c", shared)
            && f[0].module.contains("libcs_shared")
            && main(&f[1])
    });
    assert_eq!(lib.len(), 1, "{:#?}", s.callsites);
    assert_eq!((lib[0].allocations, lib[0].bytes), (3, 900));

    // from_a <- deep x 21 <- main: the whole recursion, in order.
    let rec = sites_where(s, |f| {
        f.len() > 22
            && is(&f[0], "from_a", "callsites.c", a)
            && f[1..22].iter().all(|g| is(g, "deep", "callsites.c", deep))
            && main(&f[22])
    });
    assert_eq!(rec.len(), 1, "{:#?}", s.callsites);
    assert_eq!(
        (rec[0].allocations, rec[0].bytes, rec[0].live_at_exit_bytes),
        (1, 400, 400)
    );

    // Same return address, stack and frame pointer, different callers:
    // told apart (a memoized walk must not merge them).
    let (leaf, twin_a, twin_b) = (
        site_line("callsites.c", "leaf"),
        site_line("callsites.c", "twin_a"),
        site_line("callsites.c", "twin_b"),
    );
    let twins = site_line("callsites.c", "twins");
    for (twin, line, n) in [("twin_a", twin_a, 10), ("twin_b", twin_b, 10)] {
        let sites = sites_where(s, |f| {
            f.len() > 2
                && is(&f[0], "shared_leaf", "callsites.c", leaf)
                && is(&f[1], twin, "callsites.c", line)
                && is(&f[2], "main", "callsites.c", twins)
        });
        assert_eq!(sites.len(), 1, "{twin}: {:#?}", s.callsites);
        assert_eq!((sites[0].allocations, sites[0].bytes), (n, 16 * n), "{twin}");
    }

    // The plugin was dlclose'd before the end and is still named.
    let plugin = sites_where(s, |f| {
        !f.is_empty()
            && f[0].function.as_deref() == Some("plugin_alloc")
            && f[0].file.as_deref().is_some_and(|p| p.ends_with("plugin.c"))
            && f[0].module.ends_with("libplugin.so")
    });
    assert_eq!(plugin.len(), 1, "{:#?}", s.callsites);
    assert_eq!((plugin[0].allocations, plugin[0].bytes), (100, 3200));

    // memscope's own frames never show, and every allocation has a site.
    for c in &s.callsites {
        assert!(!c.frames.is_empty(), "site {} has no frames", c.id);
        for f in stack(s, c) {
            assert!(!f.module.contains("libmemscope"), "memscope frame in {c:#?}");
        }
    }
    let total: u64 = s.callsites.iter().map(|c| c.allocations + c.reallocs).sum();
    assert_eq!(total, s.summary.total_allocations + s.summary.reallocs);
    let bytes: u64 = s.callsites.iter().map(|c| c.bytes).sum();
    assert_eq!(bytes, s.summary.total_allocated_bytes);
}

#[test]
fn sites_are_named_with_frame_pointers() {
    let run = run_callsites("cs_fp", &["-O0", "-fno-builtin", "-fno-omit-frame-pointer"]);
    check_named_sites(run.only());
}

#[test]
fn sites_are_named_from_unwind_tables_alone() {
    let run = run_callsites("cs_cfi", &["-O2", "-fno-builtin", "-fomit-frame-pointer"]);
    check_named_sites(run.only());
}

/// DWARF in compressed sections (`-gz`) names the same sites, lines and
/// inlined frames.
#[test]
fn sites_are_named_from_compressed_debug_info() {
    let run = run_callsites("cs_gz", &["-O2", "-fno-builtin", "-fomit-frame-pointer", "-gz"]);
    check_named_sites(run.only());
}

/// Split DWARF (`-gsplit-dwarf`): the program keeps a skeleton, and the
/// functions and inlined frames are read from the `.dwo` files beside it.
#[test]
fn sites_are_named_from_split_debug_info() {
    let run = run_callsites(
        "cs_split",
        &["-O2", "-fno-builtin", "-fomit-frame-pointer", "-gsplit-dwarf"],
    );
    check_named_sites(run.only());
}

/// Under `memscope-cli run` the images leave their frames unnamed and `run`
/// names them afterwards, once per run: the result is the same names,
/// lines and inlined frames (the dlclose'd plugin included).
#[test]
fn sites_are_named_by_run_after_the_fact() {
    let (prog, plugin) = build_callsites("cs_run", &["-O2", "-fno-builtin", "-fomit-frame-pointer"]);
    let dir = scratch("cs_run");
    let out_path = dir.join("cs.json");
    let out = memscope_tests::cli::cli(
        &dir,
        &[
            "run".as_ref(),
            "--backtrace".as_ref(),
            "32".as_ref(),
            "-o".as_ref(),
            out_path.as_os_str(),
            prog.as_os_str(),
            plugin.as_os_str(),
        ],
    );
    assert!(out.status.success(), "{}", memscope_tests::cli::stderr(&out));
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    assert!(raw.get("symbols_pending").is_none(), "run named the frames in the file");
    let s = memscope_format::read_snapshot_file(&out_path).unwrap();
    assert_eq!(s.module_info.len(), s.modules.len());
    check_named_sites(&s);
}

/// A snapshot whose frames were left for later (as under `run`) but that
/// `run` never named is named by the readers when they load it.
#[test]
fn readers_name_pending_frames() {
    let (prog, plugin) = build_callsites("cs_later", &["-O0", "-fno-builtin", "-fno-omit-frame-pointer"]);
    let run = traced(
        "cs_later",
        &prog,
        &[plugin.to_str().unwrap()],
        &[("MEMSCOPE_BACKTRACE", "32"), ("MEMSCOPE_SYMBOLIZE", "later")],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    let (path, s) = &run.snapshots[0];
    assert!(s.symbols_pending, "the library left the names for later");
    assert!(s.frames.iter().all(|f| f.function.is_none()));
    let mut named = s.clone();
    assert!(memscope_symbols::name_pending(
        &mut named,
        &mut memscope_symbols::Resolver::new()
    ));
    check_named_sites(&named);
    // The CLI's readers do the same on load: the summary names main's callees.
    let summary = memscope_tests::cli::cli(&run.dir, &["summary".as_ref(), path.as_os_str()]);
    let text = memscope_tests::cli::stdout(&summary);
    assert!(text.contains("from_a (callsites.c:"), "{text}");
}

#[test]
fn rust_frames_are_demangled() {
    let prog = rust_program("rust_alloc");
    let run = traced("cs_rust", &prog, &[], &[("MEMSCOPE_BACKTRACE", "32")]);
    assert!(run.output.status.success(), "{}", run.stderr());
    let s = run.only();
    check_invariants(s);
    let names: Vec<String> = s
        .callsites
        .iter()
        .flat_map(|c| stack(s, c))
        .filter_map(|f| f.function)
        .collect();
    for n in &names {
        assert!(!n.starts_with("_ZN") && !n.starts_with("_R"), "mangled: {n}");
    }
    // The leaked 5555-byte block comes from main, through Vec/Box code.
    let leak = s
        .callsites
        .iter()
        .find(|c| c.live_at_exit_bytes == 5555)
        .expect("the leak's site");
    assert!(
        stack(s, leak)
            .iter()
            .any(|f| f.function.as_deref() == Some("rust_alloc::main")
                && f.file.as_deref().is_some_and(|p| p.ends_with("rust_alloc.rs"))),
        "{leak:#?}"
    );
}

/// The name cache (`MEMSCOPE_CACHE`): a first process fills it, and the
/// next one names its frames from it — proven by a name changed in the
/// cache file showing up — while a cache file that is not one is ignored.
/// The callsites program built as `name` without frame pointers (every
/// step of a walk needs a rule from `.eh_frame`), and a function that runs
/// it traced as test `test`, 32 frames deep, with `cache` as the name cache.
fn runs_with_cache(name: &str, cache: &Path) -> impl Fn(&str) -> Run {
    let (prog, plugin) = build_callsites(name, &["-O2", "-fno-builtin", "-fomit-frame-pointer"]);
    let cache = cache.to_str().unwrap().to_string();
    move |test: &str| {
        let env = [("MEMSCOPE_BACKTRACE", "32"), ("MEMSCOPE_CACHE", cache.as_str())];
        let r = traced(test, &prog, &[plugin.to_str().unwrap()], &env);
        assert!(r.output.status.success(), "{}", r.stderr());
        r
    }
}

/// Rewrites every rule of a `.rules` file (the library's format: magic,
/// section count, then per module its build id and `(offset, rule)`
/// entries) to `rule`.
fn set_every_rule(bytes: &mut [u8], rule: u64) -> usize {
    let count = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let (mut at, mut set) = (12, 0);
    for _ in 0..count {
        at += 1 + bytes[at] as usize;
        let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        for _ in 0..n {
            bytes[at + 4..at + 12].copy_from_slice(&rule.to_le_bytes());
            at += 12;
            set += 1;
        }
    }
    set
}

#[test]
fn stacks_are_walked_with_rules_kept_from_earlier_processes() {
    let cache = scratch("cs_rules_cache");
    let run = runs_with_cache("cs_rules", &cache);
    let sites = |s: &Snapshot| -> Vec<Vec<Option<String>>> {
        let mut all: Vec<_> = s
            .callsites
            .iter()
            .map(|c| s.frames_of(c).map(|f| f.function.clone()).collect())
            .collect();
        all.sort();
        all
    };
    let first = run("cs_rules_1");
    check_named_sites(first.only());
    // One file for the program, beside the names, owner-only.
    let build = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap().path();
    let rules: Vec<_> = std::fs::read_dir(&build)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    assert_eq!(rules.len(), 1, "{rules:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&rules[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The next process walks the same stacks with the kept rules, and the
    // file, which already holds every rule it needed, is not written again.
    use std::os::unix::fs::MetadataExt;
    let written = std::fs::metadata(&rules[0]).unwrap().ino();
    let second = run("cs_rules_2");
    check_named_sites(second.only());
    assert_eq!(sites(second.only()), sites(first.only()));
    assert_eq!(
        std::fs::metadata(&rules[0]).unwrap().ino(),
        written,
        "the file was replaced"
    );

    // It really takes them from the file: with every kept rule "stop
    // here", its stacks end where the first kept rule was needed.
    let mut bytes = std::fs::read(&rules[0]).unwrap();
    assert!(set_every_rule(&mut bytes, 4) > 10);
    std::fs::write(&rules[0], &bytes).unwrap();
    let third = run("cs_rules_3");
    let deepest = third.only().callsites.iter().map(|c| c.frames.len()).max().unwrap();
    assert!(
        deepest <= 2,
        "stacks were walked past the kept rules: {:#?}",
        sites(third.only())
    );

    // A damaged file is not used: the stacks are whole again.
    std::fs::write(&rules[0], b"MSRULES1 not a rules file").unwrap();
    let fourth = run("cs_rules_4");
    check_named_sites(fourth.only());
}

#[test]
fn sites_are_named_from_the_name_cache() {
    let cache = scratch("cs_cache_names");
    let run = runs_with_cache("cs_cache", &cache);
    let first = run("cs_cache_1");
    check_named_sites(first.only());
    // One directory for this build of memscope, one file per module.
    let builds: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert!(builds[0].file_name().unwrap().to_str().unwrap().starts_with("names-"));
    let files: Vec<_> = std::fs::read_dir(&builds[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let program_file = files
        .iter()
        .find(|f| std::fs::read(f).unwrap().windows(6).any(|w| w == b"from_a"))
        .unwrap_or_else(|| panic!("no cache file names from_a: {files:?}"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(program_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let mut bytes = std::fs::read(program_file).unwrap();
    for i in 0..bytes.len().saturating_sub(6) {
        if &bytes[i..i + 6] == b"from_a" {
            bytes[i + 5] = b'Q';
        }
    }
    std::fs::write(program_file, &bytes).unwrap();
    let second = run("cs_cache_2");
    let s = second.only();
    let from_cache = s.frames.iter().any(|f| f.function.as_deref() == Some("from_Q"));
    assert!(from_cache, "the second process took its names from the cache");

    std::fs::write(program_file, b"MSNC\x01 not a cache file").unwrap();
    let third = run("cs_cache_3");
    check_named_sites(third.only());
}

/// Fork children that derive the same rules write the file once: the first
/// one to end adds them, and the others (and the parent, whose rules came
/// with them) find every rule they derived in it. A shell's subshells each
/// rewrote it, and on ext4 a file renamed over another is flushed to disk.
#[test]
fn a_rules_file_is_written_only_when_it_gains_rules() {
    let prog = c_program("fork_worker", &[]);
    let cache = scratch("cs_rules_once_cache");
    let cache = cache.to_str().unwrap();
    let writes = |test: &str| {
        let env = [("MEMSCOPE_CACHE", cache), ("MEMSCOPE_LOG", "debug")];
        let run = traced(test, &prog, &["1000"], &env);
        assert!(run.output.status.success(), "{}", run.stderr());
        assert_eq!(run.snapshots.len(), 3, "{:?}", run.paths());
        run.stderr().lines().filter(|l| l.contains("unwind rules in")).count()
    };
    // The worker's child ends first and writes what it, the worker and the
    // parent derived; the worker and the parent then add nothing.
    assert_eq!(writes("cs_rules_once_1"), 1);
    // The next run's processes find every rule they need at start-up.
    assert_eq!(writes("cs_rules_once_2"), 0);
}
