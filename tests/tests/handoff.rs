//! `MEMSCOPE_HANDOFF` (set by `memscope-cli run`): each image hands its
//! final snapshot to run's socket instead of writing the file itself; with
//! no one listening it writes the file as before. The test listens itself
//! and reads the messages as run does (magic, path, JSON or parts, zeros,
//! length), with the `inherited` program: a parent, children without events of their
//! own (one ends by a fatal signal: handed over from the signal handler),
//! one that allocates, and an exec'd image.

use memscope_format::Snapshot;
use memscope_tests::*;
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// One message as the library sent it: its path and JSON, or `None` when
/// it is not complete. A message in parts (`MSH2`: the head's length and
/// JSON, the tables' length and bytes, then the bulk's JSON) is joined into
/// one JSON document as run joins it.
fn parse(m: &[u8]) -> Option<(PathBuf, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt;
    let (magic, rest) = m.split_at_checked(4)?;
    let (len, rest) = rest.split_at_checked(4)?;
    let path_len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    let (path, rest) = rest.split_at_checked(path_len)?;
    let (json, tail) = rest.split_at_checked(rest.len().checked_sub(16)?)?;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(path));
    if tail[..8] != [0; 8] {
        return None;
    }
    let claimed = u64::from_le_bytes(tail[8..].try_into().ok()?);
    match magic {
        b"MSH1" => (claimed == json.len() as u64).then(|| (path, json.to_vec())),
        b"MSH2" => {
            let (len, rest) = json.split_at_checked(4)?;
            let (head, rest) = rest.split_at_checked(u32::from_le_bytes(len.try_into().ok()?) as usize)?;
            let (len, rest) = rest.split_at_checked(8)?;
            let (tables, bulk) = rest.split_at_checked(u64::from_le_bytes(len.try_into().ok()?) as usize)?;
            if claimed != bulk.len() as u64 {
                return None;
            }
            let t = memscope_format::parts::assemble(head, tables).expect("the parts fit together");
            let mut whole = Vec::new();
            memscope_format::parts::write_spliced(&mut whole, head, &t, bulk).unwrap();
            Some((path, whole))
        }
        _ => None,
    }
}

/// Every message waiting on `listener` (the program has ended).
fn received(listener: &UnixListener) -> Vec<(PathBuf, Snapshot)> {
    listener.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    while let Ok((mut conn, _)) = listener.accept() {
        conn.set_nonblocking(false).unwrap();
        let mut m = Vec::new();
        conn.read_to_end(&mut m).unwrap();
        let (path, json) = parse(&m).unwrap_or_else(|| panic!("an incomplete message of {} bytes", m.len()));
        let s = memscope_format::read_snapshot_bytes(&json).expect("a snapshot");
        check_invariants(&s);
        out.push((path, s));
    }
    out
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect()
}

/// What every run of `inherited` shows: the parent (3 allocations, 2
/// frees), three children with only the parent's summary at the fork, the
/// one that allocated, and what the first child exec'd.
fn check_inherited_run(snaps: &[&Snapshot]) {
    assert_eq!(snaps.len(), 6);
    let parent: Vec<_> = snaps
        .iter()
        .filter(|s| !s.process.forked && s.process.exe.ends_with("/inherited"))
        .collect();
    assert_eq!(parent.len(), 1);
    let m = &parent[0].summary;
    assert_eq!((m.total_allocations, m.total_frees), (3, 2));
    let only: Vec<_> = snaps.iter().filter(|s| s.summary.inherited_only).collect();
    assert_eq!(only.len(), 3, "exec, _exit and SIGTERM children");
    for s in &only {
        let m = &s.summary;
        assert_eq!((m.total_allocations, m.total_frees, m.live_at_exit_bytes), (3, 1, 400));
        assert!(s.allocations.is_empty() && s.callsites.is_empty());
    }
    assert!(only.iter().any(|s| s.process.signal == Some(libc::SIGTERM)));
    assert!(only.iter().any(|s| s.process.exit_code == Some(5)));
    let full: Vec<_> = snaps
        .iter()
        .filter(|s| s.process.forked && !s.summary.inherited_only)
        .collect();
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].process.exit_code, Some(7));
    assert_eq!(full[0].summary.total_allocations, 4, "the parent's 3 and its own");
}

/// `inherited` traced with `MEMSCOPE_HANDOFF` naming `socket`; it must
/// succeed with nothing on stderr.
fn inherited_with_handoff(test: &str, socket: &Path) -> Run {
    let prog = c_program("inherited", &[]);
    let run = traced(
        test,
        &prog,
        &["/bin/true"],
        &[("MEMSCOPE_HANDOFF", socket.to_str().unwrap())],
    );
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(run.stderr(), "");
    run
}

#[test]
fn images_hand_their_snapshots_over_and_write_no_file() {
    // Not in the run's directory, which `traced` makes afresh.
    let socket = scratch("handoff_listened_socket").join("s.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let run = inherited_with_handoff("handoff_listened", &socket);
    let got = received(&listener);
    // Nothing written or listed by the images: run does both.
    assert!(run.snapshots.is_empty(), "{:?}", run.paths());
    assert!(json_files(&run.dir).is_empty(), "{:?}", json_files(&run.dir));
    // Each at the path its file would have had, every path distinct.
    let mut paths: Vec<_> = got.iter().map(|(p, _)| p.clone()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), got.len());
    for (p, s) in &got {
        assert_eq!(p.parent(), Some(run.dir.as_path()));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("snap") && name.ends_with(".json"), "{name}");
        assert!(s.process.pid > 0);
    }
    check_inherited_run(&got.iter().map(|(_, s)| s).collect::<Vec<_>>());
}

#[test]
fn with_no_one_listening_images_write_their_files() {
    let absent = scratch("handoff_absent_socket").join("nobody.sock");
    let run = inherited_with_handoff("handoff_absent", &absent);
    for (_, s) in &run.snapshots {
        check_invariants(s);
    }
    check_inherited_run(&run.snapshots.iter().map(|(_, s)| s).collect::<Vec<_>>());
}

/// `sandboxed ARGS` under `memscope-cli run -o DIR/s.json` (so with
/// handoff): its output and that snapshot path.
fn run_sandboxed(test: &str, args: &[&str]) -> (std::process::Output, PathBuf) {
    let dir = scratch(test);
    let path = dir.join("s.json");
    let out = memscope_tests::cli::command(&dir)
        .args(["run", "-o", path.to_str().unwrap()])
        .arg(c_program("sandboxed", &[]))
        .args(args)
        .output()
        .expect("run memscope-cli");
    (out, path)
}

/// A program under a seccomp filter that kills on `socket` and on
/// `prctl(PR_GET_SECCOMP)` (as Chromium's sandbox does): the library makes
/// neither call, writes the snapshot itself, and the program keeps its
/// exit code (before, the filter killed it at exit with SIGSYS).
#[test]
fn a_sandboxed_image_writes_its_own_file_and_keeps_its_exit_code() {
    let (out, path) = run_sandboxed("handoff_sandboxed", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let s = memscope_format::read_snapshot_file(&path).expect("the image's own snapshot");
    check_invariants(&s);
    let m = &s.summary;
    // 5 blocks of 100 bytes before the filter, 7 of 200 after, all freed.
    assert_eq!((m.total_allocations, m.total_frees), (12, 12));
    assert_eq!(m.total_allocated_bytes, 5 * 100 + 7 * 200);
    assert_eq!((m.peak_live_bytes, m.peak_live_allocations), (1900, 12));
    assert_eq!(s.process.exit_code, Some(3));
}

/// The same for a fork child that confines itself after the fork and ends
/// with no event of its own (the inherited-only snapshot, written from the
/// child's `_exit`): it keeps its exit code and writes its own file.
#[test]
fn a_fork_child_that_confines_itself_keeps_its_exit_code() {
    let (out, path) = run_sandboxed("handoff_sandboxed_fork", &["fork"]);
    let dir = path.parent().unwrap();
    // 3: the parent saw its child exit 4, not die of SIGSYS.
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let parent = memscope_format::read_snapshot_file(&path).expect("the parent's snapshot");
    let m = &parent.summary;
    assert_eq!((m.total_allocations, m.total_frees), (5, 5));
    let children: Vec<_> = json_files(dir)
        .into_iter()
        .filter(|p| p != &path && !p.to_string_lossy().ends_with(".run.json"))
        .map(|p| memscope_format::read_snapshot_file(&p).unwrap())
        .collect();
    assert_eq!(children.len(), 1, "the child's own snapshot");
    let c = &children[0];
    assert!(c.summary.inherited_only);
    assert_eq!(c.process.exit_code, Some(4));
    assert_eq!(c.summary.total_allocations, 5, "the parent's blocks at the fork");
}
