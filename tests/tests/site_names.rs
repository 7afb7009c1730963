//! Sites are named by their caller, not by the allocator wrapper (issue 17):
//! real programs (sqlite3, a C++ program using `new` and std::vector, a
//! Rust program growing a Vec, python3) run under `memscope-cli run`, and
//! the names of their top sites are the functions we know asked for the
//! memory, no two alike; the report names them the same way and dims the
//! wrappers; `--wrapper` / `MEMSCOPE_WRAPPERS` add patterns.

use memscope_format::Snapshot;
use memscope_tests::cli::*;
use memscope_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// `memscope-cli run -o <dir>/snap.json argv…` (stdin from `input`).
fn run(dir: &Path, argv: &[&Path], input: Option<&Path>) -> (PathBuf, Snapshot) {
    let path = dir.join("snap.json");
    let mut c = command(dir);
    c.arg("run").arg("-o").arg(&path).args(argv);
    c.stdin(input.map_or(Stdio::null(), |f| std::fs::File::open(f).unwrap().into()));
    let out = c.output().expect("run memscope-cli");
    assert!(out.status.success(), "{argv:?}: {}", stderr(&out));
    let snap = memscope_format::read_snapshot_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, snap)
}

/// The site names of `summary`'s "top sites by bytes allocated" table.
fn top_names(o: &Output) -> Vec<String> {
    let text = stdout(o);
    assert!(o.status.success(), "{text}{}", stderr(o));
    let table = text
        .split("\n\n")
        .find(|s| s.starts_with("top sites by bytes allocated"))
        .unwrap_or_else(|| panic!("no site table in {text}"));
    // Columns: bytes, allocs, at exit, peak (49 characters), then the name.
    let names: Vec<String> = table
        .lines()
        .skip(2)
        .filter(|l| !l.trim_start().starts_with('…'))
        .map(|l| l.chars().skip(49).collect())
        .collect();
    let mut distinct = names.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), names.len(), "two sites read alike: {names:#?}");
    names
}

fn summary(dir: &Path, snap: &Path, extra: &[&str]) -> Output {
    command(dir)
        .arg("summary")
        .arg(snap)
        .args(["--top", "5"])
        .args(extra)
        .output()
        .unwrap()
}

/// 1-based line of `tests/programs/<file>` that holds `marker`.
fn line_of(file: &str, marker: &str) -> usize {
    let src = std::fs::read_to_string(root().join("tests/programs").join(file)).unwrap();
    src.lines().position(|l| l.contains(marker)).expect("marker") + 1
}

#[test]
fn sqlite3_sites_are_named_after_sqlite_functions_not_its_allocator() {
    let dir = scratch("site_names_sqlite3");
    let script = dir.join("q.sql");
    std::fs::write(
        &script,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n\
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000)\n\
         INSERT INTO t SELECT x, 'v' || x FROM c;\n\
         CREATE INDEX tv ON t(v);\n\
         SELECT count(*), max(v) FROM t;\n",
    )
    .unwrap();
    let Some(sqlite3) = tools::program("sqlite3", "sqlite3") else {
        return;
    };
    let (path, _) = run(&dir, &[&sqlite3, Path::new(":memory:")], Some(&script));
    let names = top_names(&summary(&dir, &path, &[]));
    assert_eq!(names.len(), 5, "{names:#?}");
    for n in &names {
        assert!(
            n.starts_with("sqlite3") && !n.starts_with("sqlite3Malloc") && !n.starts_with("sqlite3Realloc"),
            "a top site of sqlite3 named {n:?}: {names:#?}"
        );
    }
    // Inserting 2000 rows allocates b-tree pages.
    assert!(names.iter().any(|n| n.starts_with("sqlite3BtreeInsert ")), "{names:#?}");
}

#[test]
fn cpp_sites_are_the_functions_that_called_new_or_grew_a_vector() {
    let dir = scratch("site_names_cpp");
    let (path, s) = run(&dir, &[&cpp_program("site_names")], None);
    let at = |marker| format!("(site_names.cpp:{})", line_of("site_names.cpp", marker));
    let names = top_names(&summary(&dir, &path, &[]));
    // 2000 rows × 50 cells grown by push_back; one new int[100000]; the
    // vector of rows; the row names.
    assert_eq!(names[0], format!("load_rows {}", at("// CELLS")), "{names:#?}");
    assert_eq!(names[1], format!("make_table {}", at("// TABLE")), "{names:#?}");
    assert!(names.contains(&format!("load_rows {}", at("// ROWS"))), "{names:#?}");
    let table = s
        .callsites
        .iter()
        .find(|c| c.bytes == 400_000)
        .expect("the table's site");
    assert_eq!(table.allocations, 1);

    // A user pattern makes make_table a wrapper: its caller names the site.
    let mine = top_names(&summary(&dir, &path, &["--wrapper", "make_tab?e"]));
    assert_eq!(
        mine[1],
        format!(
            "main (site_names.cpp:{})",
            line_of("site_names.cpp", "make_table(100000)")
        )
    );
    let by_env = command(&dir)
        .env("MEMSCOPE_WRAPPERS", "nothing_*;make_table")
        .args(["summary", "--top", "5"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(top_names(&by_env)[1], mine[1]);

    // `diff` names them the same way.
    let (other, _, _) = run_prog(&dir, "other", &["alloc", "1", "8", "0", "0"]);
    let d = cli(
        &dir,
        &[std::ffi::OsStr::new("diff"), path.as_os_str(), other.as_os_str()],
    );
    let d = stdout(&d);
    assert!(d.contains(&format!("make_table {} (gone)", at("// TABLE"))), "{d}");
    assert!(!d.contains("operator new") && !d.contains("allocator"), "{d}");

    // The report: the same names, the wrapper frames marked for dimming.
    let html = dir.join("r.html");
    let out = command(&dir).arg("analyze").arg(&path).arg(&html).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    let data = page
        .split("<script id=\"memscope-data\" type=\"application/json\">")
        .nth(1)
        .and_then(|r| r.split("</script>").next())
        .expect("the view model");
    let model: serde_json::Value = serde_json::from_str(data).unwrap();
    let p = &model["processes"][0];
    let cols: Vec<&str> = p["sites"]["cols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let col = |name: &str| cols.iter().position(|c| *c == name).unwrap();
    let row = p["sites"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[col("bytes")] == 400_000)
        .expect("the table's row");
    assert_eq!(row[col("name")], format!("make_table {}", at("// TABLE")));
    let caller = row[col("caller")].as_u64().unwrap() as usize;
    let stack = row[col("stack")].as_array().unwrap();
    assert!(caller >= 1, "operator new comes first");
    let wrappers = p["wrappers"].as_array().unwrap();
    for f in &stack[..caller] {
        let name = p["frames"][f.as_u64().unwrap() as usize][0].as_str().unwrap();
        assert!(wrappers.contains(f), "{name} not marked as a wrapper");
        assert!(name.starts_with("operator new"), "{name}");
    }
}

#[test]
fn rust_vec_growth_is_named_after_the_function_that_pushed() {
    let dir = scratch("site_names_rust");
    let (path, s) = run(&dir, &[&rust_program("site_names_rs")], None);
    let names = top_names(&summary(&dir, &path, &[]));
    let push = format!(
        "site_names_rs::build_table (site_names_rs.rs:{})",
        line_of("site_names_rs.rs", "// PUSH")
    );
    assert!(names[0].starts_with(&push), "{names:#?}");
    assert!(
        names.iter().any(|n| n.starts_with("site_names_rs::make_names ")),
        "{names:#?}"
    );
    assert!(
        !names.iter().any(|n| n.contains("alloc::") || n.contains("RawVec")),
        "{names:#?}"
    );
    // Vec<u64> grows 4, 8, … 131072 elements to hold 100 000: one block,
    // then 15 reallocations, all of them from build_table.
    let grown: u64 = s
        .callsites
        .iter()
        .zip(memscope_sites::site_names(&s, &memscope_sites::Wrappers::builtin()))
        .filter(|(_, (_, n))| n.starts_with(&push))
        .map(|(c, _)| c.allocations + c.reallocs)
        .sum();
    assert_eq!(grown, 16);
}

#[test]
fn python3_sites_are_past_the_pymem_allocators() {
    let dir = scratch("site_names_python3");
    let script = dir.join("t.py");
    std::fs::write(
        &script,
        "def make_blobs(n):\n    return [bytearray(1000) for _ in range(n)]\n\
         blobs = make_blobs(2000)\nprint(len(blobs))\n",
    )
    .unwrap();
    let Some(python3) = tools::program("python3", "python3") else {
        return;
    };
    let (path, s) = run(&dir, &[&python3, &script], None);
    let names = top_names(&summary(&dir, &path, &[]));
    for n in &names {
        assert!(
            ![
                "PyMem_",
                "_PyMem_",
                "PyObject_Malloc",
                "_PyObject_Malloc",
                "PyObject_Realloc",
                "_PyObject_Realloc"
            ]
            .iter()
            .any(|w| n.starts_with(w)),
            "{names:#?}"
        );
    }
    // 2000 bytearrays of 1000 bytes (plus their terminating NUL) are
    // allocated by PyByteArray_Resize.
    assert!(names[0].starts_with("PyByteArray_Resize "), "{names:#?}");
    let top = s.callsites.iter().max_by_key(|c| c.bytes).unwrap();
    assert!(
        top.allocations >= 2000 && top.bytes >= 2000 * 1001,
        "{} {}",
        top.allocations,
        top.bytes
    );
}

#[test]
fn an_invalid_wrapper_pattern_is_one_line_and_exit_2() {
    let dir = scratch("site_names_bad_pattern");
    let (path, _, _) = run_prog(&dir, "s", &["alloc", "10", "8", "0", "0"]);
    let p = path.to_str().unwrap();
    let e = assert_one_line_error(
        &cli(&dir, &["summary", p, "--wrapper", "[oops"]),
        "summary --wrapper [oops",
    );
    assert!(e.contains("[oops"), "{e}");
    assert_one_line_error(&cli(&dir, &["diff", p, p, "--wrapper", "a***"]), "diff");
    let html = dir.join("r.html");
    assert_one_line_error(
        &cli(&dir, &["analyze", p, html.to_str().unwrap(), "--wrapper", ""]),
        "analyze with an empty pattern",
    );
    assert!(!html.exists(), "no report half-written");
    // `run` refuses before it starts the command.
    let out = command(&dir)
        .env("MEMSCOPE_WRAPPERS", "ok_*;[bad")
        .args(["run", "-o"])
        .arg(dir.join("never.json"))
        .arg(prog())
        .args(["alloc", "1", "8", "0", "0"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "run with MEMSCOPE_WRAPPERS=ok_*;[bad");
    assert!(!dir.join("never.json").exists());
}
