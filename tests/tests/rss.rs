//! Resident memory beside the heap (issue 15): `summary.peak_rss_bytes`
//! (VmHWM at snapshot time) and the resident value in timeline entries,
//! checked against what tests/programs/resident.c touches; the note that
//! most memory did not come through malloc appears exactly when it is so.

use memscope_format::resident::OUTSIDE_MALLOC;
use memscope_tests::*;
use std::process::Command;

const MIB: u64 = 1 << 20;

fn summary_text(run: &Run) -> String {
    let out = Command::new(cli_path())
        .arg("summary")
        .arg(&run.snapshots[0].0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn memory_mapped_without_malloc_shows_as_resident_with_the_note() {
    let prog = c_program("resident", &[]);
    let run = traced("rss_mmap", &prog, &["mmap", "128"], &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.stdout().trim(), (128 * MIB).to_string());
    let s = run.only();
    let rss = s.summary.peak_rss_bytes.expect("peak_rss_bytes");
    assert!(rss >= 128 * MIB, "peak resident {rss} below the 128 MiB touched");
    assert!(
        s.summary.peak_live_bytes < MIB,
        "no big heap block: {}",
        s.summary.peak_live_bytes
    );
    assert!(memscope_format::resident::mostly_outside_malloc(&s.summary));
    // The last timeline entry carries the resident bytes at the end, the
    // mapping still in place.
    let last = s.timeline.last().unwrap();
    assert!(
        last.2.expect("resident value in the last entry") >= 128 * MIB,
        "{last:?}"
    );
    let text = summary_text(&run);
    assert!(text.contains(OUTSIDE_MALLOC), "{text}");
    assert!(text.contains("peak resident:"), "{text}");
}

#[test]
fn a_malloc_only_program_gets_no_note() {
    let prog = c_program("resident", &[]);
    let run = traced("rss_malloc", &prog, &["malloc", "128"], &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.stderr());
    let s = run.only();
    let heap = s.summary.peak_live_bytes;
    assert!((128 * MIB..129 * MIB).contains(&heap), "peak heap {heap}");
    let rss = s.summary.peak_rss_bytes.expect("peak_rss_bytes");
    assert!(rss >= 128 * MIB, "peak resident {rss}");
    assert!(!memscope_format::resident::mostly_outside_malloc(&s.summary));
    let text = summary_text(&run);
    assert!(!text.contains(OUTSIDE_MALLOC), "{text}");
}

#[test]
fn run_names_the_process_that_resided_most() {
    let prog = c_program("resident", &[]);
    let dir = scratch("rss_run");
    let script = format!("{p} malloc 4 >/dev/null; {p} mmap 128", p = prog.display());
    let out = Command::new(cli_path())
        .current_dir(&dir)
        .args([
            "run",
            "-o",
            dir.join("snap.json").to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("resided most"))
        .unwrap_or_else(|| panic!("{err}"));
    // The mmap image (128 MiB resident, no heap) resided most; the malloc
    // one (4 MiB of heap) allocated most.
    assert!(line.contains(&format!("{} (pid", prog.display())), "{line}");
    assert!(
        err.contains(&format!("{} (pid", prog.display())) && err.contains("allocated most"),
        "{err}"
    );
    assert!(err.contains(OUTSIDE_MALLOC), "{err}");
}
