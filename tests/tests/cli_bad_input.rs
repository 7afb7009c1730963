//! Every usage or input error: exit 2, exactly one line on stderr, never a
//! panic (SPEC §4), for each command that reads the input.

use memscope_tests::cli::*;
use memscope_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A real snapshot to damage.
fn good(dir: &Path) -> PathBuf {
    run_prog(dir, "good", &["alloc", "50", "16", "2", "0"]).0
}

/// Runs every reading command on `file` and checks each fails cleanly with
/// a line that contains `expect`.
fn every_reader_rejects(dir: &Path, file: &Path, expect: &str) {
    let f = file.to_str().unwrap();
    let g = good(dir);
    let g = g.to_str().unwrap();
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    let cases: [Vec<&str>; 7] = [
        vec!["summary", f],
        vec!["check", f, "--max-peak", "1GiB"],
        vec!["diff", f, g],
        vec!["diff", g, f],
        vec!["export", f, "--to", "dhat", o],
        vec!["export", f, "--to", "folded", o],
        vec!["analyze", f, o],
    ];
    for args in cases {
        let line = assert_one_line_error(&cli(dir, &args), &format!("{args:?}"));
        assert!(line.contains(expect), "{args:?}: {line:?} lacks {expect:?}");
    }
}

#[test]
fn missing_empty_directory_and_non_json_files() {
    let dir = scratch("cli_bad_files");
    every_reader_rejects(&dir, &dir.join("nope.json"), "No such file");
    // A directory without a run manifest (a directory holding one is a run:
    // check and diff read it, see cli_ci_script.rs).
    let no_run = dir.join("no_run");
    std::fs::create_dir_all(&no_run).unwrap();
    every_reader_rejects(&dir, &no_run, "directory");
    let empty = dir.join("empty.json");
    std::fs::write(&empty, "").unwrap();
    every_reader_rejects(&dir, &empty, "empty");
    let text = dir.join("text.json");
    std::fs::write(&text, "hello, world\n").unwrap();
    every_reader_rejects(&dir, &text, "not JSON");
    let utf = dir.join("utf.json");
    std::fs::write(&utf, b"{\"format\":\"mem\xff\xfe\"}").unwrap();
    every_reader_rejects(&dir, &utf, "utf.json");
}

#[test]
fn truncated_foreign_and_newer_snapshots() {
    let dir = scratch("cli_bad_snapshots");
    let bytes = std::fs::read(good(&dir)).unwrap();
    let cut = dir.join("cut.json");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    every_reader_rejects(&dir, &cut, "truncated");
    let other = dir.join("other.json");
    std::fs::write(&other, r#"{"format":"dhat","format_version":1}"#).unwrap();
    every_reader_rejects(&dir, &other, "not a memscope snapshot");
    let newer = dir.join("newer.json");
    let text = String::from_utf8(bytes)
        .unwrap()
        .replacen("\"format_version\":2", "\"format_version\":3", 1);
    std::fs::write(&newer, text).unwrap();
    every_reader_rejects(&dir, &newer, "format_version 3");
    let huge = dir.join("huge.json");
    std::fs::write(
        &huge,
        r#"{"format":"memscope","format_version":1,"process":{"pid":1e400}}"#,
    )
    .unwrap();
    every_reader_rejects(&dir, &huge, "huge.json");
    let deep = dir.join("deep.json");
    std::fs::write(&deep, "[".repeat(200_000)).unwrap();
    every_reader_rejects(&dir, &deep, "deep.json");
}

/// A real version-2 snapshot whose tables are broken: a call site's frame
/// index past `frames`, a frame's module past `modules`, a table missing.
#[test]
fn broken_frame_tables() {
    let dir = scratch("cli_bad_tables");
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(good(&dir)).unwrap()).unwrap();
    let frames = good["frames"].as_array().unwrap().len();
    let modules = good["modules"].as_array().unwrap().len();
    assert!(frames > 0 && modules > 0, "the run recorded call sites");
    let site = good["callsites"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| !c["frames"].as_array().unwrap().is_empty())
        .unwrap();
    let write = |name: &str, v: &serde_json::Value| {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p
    };
    let mut v = good.clone();
    v["callsites"][site]["frames"][0] = frames.into();
    every_reader_rejects(
        &dir,
        &write("frame.json", &v),
        &format!("but the snapshot has {frames} frames"),
    );
    let mut v = good.clone();
    v["frames"][0]["module"] = modules.into();
    every_reader_rejects(
        &dir,
        &write("module.json", &v),
        &format!("but the snapshot has {modules} modules"),
    );
    for table in ["frames", "modules"] {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(table);
        every_reader_rejects(
            &dir,
            &write(&format!("no-{table}.json"), &v),
            &format!("no \"{table}\" table"),
        );
    }
}

/// Damaged copies of a real snapshot: cut at many points and with bytes
/// flipped. Each either still reads (a digit changed) or fails cleanly.
#[test]
fn damaged_snapshots_never_panic() {
    let dir = scratch("cli_bad_damaged");
    let bytes = std::fs::read(good(&dir)).unwrap();
    let f = dir.join("damaged.json");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut truncated, mut damaged_read) = (0, 0);
    for i in 0..60 {
        let mut b = bytes.clone();
        let cut = i % 2 == 0;
        if cut {
            // Cut before the closing brace (the file is one JSON object),
            // so no cut copy is still whole.
            b.truncate((next() as usize) % bytes.trim_ascii_end().len());
        } else {
            for _ in 0..3 {
                let at = (next() as usize) % b.len();
                b[at] = next() as u8;
            }
        }
        std::fs::write(&f, &b).unwrap();
        let out = cli(&dir, &["summary", f.to_str().unwrap()]);
        match out.status.code() {
            Some(0) if !cut => damaged_read += 1,
            _ => {
                assert_one_line_error(&out, &format!("damage #{i} (cut: {cut})"));
                truncated += usize::from(cut);
            }
        }
    }
    assert_eq!(truncated, 30, "every truncated copy is rejected");
    println!("{damaged_read} of 30 copies with changed bytes still read");
}

#[test]
fn usage_errors() {
    let dir = scratch("cli_bad_usage");
    let g = good(&dir);
    let g = g.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "a command is required"),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (vec!["summary", g, "--bogus"], "--bogus"),
        (vec!["run"], "required"),
        (vec!["run", "--bogus", "true"], "--bogus"),
        (vec!["check", g], "at least one limit"),
        (vec!["check", g, "--max-peak", "10XB"], "invalid size"),
        (vec!["check", g, "--max-leaked", "-5"], "-5"),
        (vec!["check", g, "--max-allocations", "many"], "--max-allocations"),
        (vec!["diff", g, g, "--max-peak-growth", "ten"], "invalid percentage"),
        (vec!["diff", g, g, "--max-leak-growth", "1.5QB"], "invalid size"),
        (vec!["diff", g, g, "--format", "xml"], "xml"),
        (vec!["export", g, "--to", "xml", "o"], "possible values: dhat, folded"),
        (vec!["export", g, "o"], "--to"),
        (vec!["run", "--export", "pdf", "true"], "pdf"),
        (vec!["run", "--backtrace", "lots", "true"], "--backtrace"),
    ];
    for (args, expect) in cases {
        let line = assert_one_line_error(&cli(&dir, &args), &format!("{args:?}"));
        assert!(line.contains(expect), "{args:?}: {line:?} lacks {expect:?}");
    }
    for help in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["diff", "--help"],
        vec!["--version"],
    ] {
        let out = cli(&dir, &help);
        assert_eq!(out.status.code(), Some(0), "{help:?}");
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn unwritable_outputs() {
    let dir = scratch("cli_bad_outputs");
    let g = good(&dir);
    let g = g.to_str().unwrap();
    let cases: [Vec<&str>; 4] = [
        vec!["export", g, "--to", "dhat", "/nonexistent-dir/x.json"],
        vec!["export", g, "--to", "folded", "/proc/version"],
        vec!["analyze", g, dir.to_str().unwrap()],
        vec!["run", "-o", "/nonexistent-dir/x.json", "true"],
    ];
    for args in cases {
        let line = assert_one_line_error(&cli(&dir, &args), &format!("{args:?}"));
        assert!(line.contains("cannot write"), "{args:?}: {line}");
    }
    let line = assert_one_line_error(&cli(&dir, &["run", "-o", "/tmp", "true"]), "-o dir");
    assert!(line.contains("is a directory"), "{line}");
    let out = cli(&dir, &["export", g, "--to", "dhat", "/dev/full"]);
    let line = assert_one_line_error(&out, "/dev/full");
    assert!(line.contains("No space left"), "{line}");
}

#[test]
fn commands_run_cannot_trace() {
    let dir = scratch("cli_bad_commands");
    let plain = dir.join("plain.txt");
    std::fs::write(&plain, "not a program").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "no-such-command-anywhere"], "command not found"),
        (vec!["run", "./no-such-file"], "command not found"),
        (vec!["run", "/"], "is a directory"),
        (vec!["run", plain.to_str().unwrap()], "not executable"),
        (vec!["run", ""], "empty"),
    ];
    for (args, expect) in cases {
        let line = assert_one_line_error(&cli(&dir, &args), &format!("{args:?}"));
        assert!(line.contains(expect), "{args:?}: {line:?} lacks {expect:?}");
    }
    assert!(json_files(&dir).is_empty(), "nothing ran");
}

#[test]
fn a_statically_linked_program_is_refused_before_it_runs() {
    let dir = scratch("cli_bad_static");
    let exe = dir.join("static_prog");
    let marker = dir.join("it-ran");
    let src = dir.join("s.c");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\nint main(void) {{ return fopen(\"{}\", \"w\") ? 0 : 1; }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let built = std::process::Command::new("gcc")
        .args(["-static", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap();
    if !built.status.success() {
        eprintln!("gcc -static: {}", stderr(&built));
        return tools::missing(tools::STATIC_LIBC);
    }
    let line = assert_one_line_error(&cli(&dir, &["run", exe.to_str().unwrap()]), "static");
    assert!(line.contains("statically linked"), "{line}");
    assert!(!marker.exists(), "refused before starting it");
    // A script whose interpreter is static is refused the same way.
    let script = dir.join("script");
    std::fs::write(&script, format!("#!{}\n", exe.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let line = assert_one_line_error(&cli(&dir, &["run", script.to_str().unwrap()]), "static script");
    assert!(
        line.contains("is run by") && line.contains("statically linked"),
        "{line}"
    );
}

/// A set-user-ID program runs in secure-execution mode, where the loader
/// ignores LD_PRELOAD: `run` says so instead of writing nothing.
#[test]
fn a_setuid_program_is_refused_with_the_reason() {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        return tools::missing(tools::ROOT);
    }
    let dir = scratch("cli_bad_setuid");
    let exe = dir.join("suid_prog");
    std::fs::copy(prog(), &exe).unwrap();
    std::os::unix::fs::chown(&exe, Some(65534), None).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let line = assert_one_line_error(
        &cli(&dir, &["run", exe.to_str().unwrap(), "alloc", "1", "1", "0", "0"]),
        "suid",
    );
    assert!(line.contains("set-user-ID") && line.contains("LD_PRELOAD"), "{line}");
    // Running it by hand under LD_PRELOAD shows why: no snapshot appears.
    let out = std::process::Command::new(&exe)
        .args(["alloc", "1", "1", "0", "0"])
        .current_dir(&dir)
        .env("LD_PRELOAD", lib_path())
        .env("MEMSCOPE_EXPORT_PATH", dir.join("direct.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!dir.join("direct.json").exists(), "the loader ignored LD_PRELOAD");
}
