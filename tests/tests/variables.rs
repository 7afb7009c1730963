//! The C API memscope-rs uses to name variables in a preloaded library's
//! records (SPEC §1: one snapshot, names attached, nothing counted twice).

use memscope_format::EndKind;
use memscope_tests::*;

fn program() -> std::path::PathBuf {
    c_program("variables", &[])
}

#[test]
fn named_variables_have_exact_lifetimes_and_name_their_blocks() {
    let run = traced("variables_plain", &program(), &["plain"], &[]);
    assert!(run.output.status.success(), "{:?} {}", run.output.status, run.stderr());
    let s = run.only();
    check_invariants(s);
    let var = |n: &str| {
        s.variables
            .iter()
            .find(|v| v.var_name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let buffer = var("buffer");
    assert_eq!(
        (buffer.type_name.as_str(), buffer.scope_name.as_str(), buffer.size),
        ("char[]", "main", 64)
    );
    assert!(!buffer.is_leaked);
    assert!(
        buffer.lifetime_ns >= 100_000_000 && buffer.lifetime_ms >= 100,
        "{}",
        buffer.lifetime_ns
    );
    assert_eq!(buffer.lifetime_ns, buffer.timestamp_dealloc - buffer.timestamp_alloc);
    let kept = var("kept");
    assert!(kept.is_leaked);
    assert_eq!(kept.timestamp_dealloc, s.process.end_unix_ns);
    assert!(!var("counter").is_leaked && var("counter").size == 0);
    assert_eq!(s.variables.len(), 4);
    // Records of named blocks carry the names and come first.
    let named: Vec<(&str, u64, bool)> = s
        .allocations
        .iter()
        .take_while(|a| a.var_name.is_some())
        .map(|a| (a.var_name.as_deref().unwrap(), a.size, a.is_leaked))
        .collect();
    assert!(named.contains(&("buffer", 64, false)), "{named:?}");
    assert!(named.contains(&("kept", 200, true)), "{named:?}");
    // The realloc'd buffer of "grown" keeps its owner's name.
    assert!(
        named.contains(&("grown", 16, false)) && named.contains(&("grown", 4096, false)),
        "{named:?}"
    );
    assert_eq!(
        s.allocations.iter().filter(|a| a.var_name.is_some()).count(),
        named.len()
    );
    let b = s
        .allocations
        .iter()
        .find(|a| a.var_name.as_deref() == Some("buffer"))
        .unwrap();
    assert_eq!(
        (b.type_name.as_deref(), b.scope_name.as_deref()),
        (Some("char[]"), Some("main"))
    );
    // Naming adds no allocations: 4 malloc/realloc'd blocks, that is all.
    assert_eq!((s.summary.total_allocations, s.summary.reallocs), (3, 1));
}

#[test]
fn export_on_demand_writes_a_running_snapshot() {
    let dir = scratch("variables_export_target");
    let mid = dir.join("mid.json");
    let run = traced("variables_export", &program(), &["export", mid.to_str().unwrap()], &[]);
    assert!(run.output.status.success());
    let m = memscope_format::read_snapshot_file(&mid).unwrap();
    assert_eq!(m.process.end, EndKind::Running);
    check_invariants(&m);
    assert_eq!(m.variables.len(), 4);
    assert_eq!(run.only().process.end, EndKind::Exit, "recording went on to the end");
}

#[test]
fn the_programs_own_path_is_used_unless_the_environment_says_otherwise() {
    let dir = scratch("variables_path_target");
    let own = dir.join("own.json");
    let prog = program();
    // No MEMSCOPE_EXPORT_PATH: the program's path wins.
    let out = std::process::Command::new(&prog)
        .args(["path", own.to_str().unwrap()])
        .current_dir(&dir)
        .env("LD_PRELOAD", lib_path())
        .env_remove("MEMSCOPE_EXPORT_PATH")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(memscope_format::read_snapshot_file(&own).unwrap().variables.len(), 4);
    // With it set (by the user or `run -o`), the environment wins.
    std::fs::remove_file(&own).unwrap();
    let run = traced("variables_path_env", &prog, &["path", own.to_str().unwrap()], &[]);
    assert_eq!(run.only().variables.len(), 4);
    assert!(!own.exists());
}

#[test]
fn a_noted_panic_ends_the_image_as_panic() {
    let run = traced("variables_panic", &program(), &["panic"], &[]);
    assert_eq!(run.output.status.code(), Some(101));
    let s = run.only();
    assert_eq!((s.process.end, s.process.exit_code), (EndKind::Panic, Some(101)));
}
