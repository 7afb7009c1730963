//! The snapshot of an image as it ends: on exit, `_exit`, a fatal signal
//! ([`crate::signals`], often through the collector thread) or before
//! `exec` (SPEC §2/§3 `process.end`). Drains what is left, builds the
//! snapshot from the collector's finished state and writes it where
//! [`crate::destination`] says.

use crate::clock::{self, Calibration};
use crate::config::{self, ExportFormat};
use crate::consumer::{self, Mode, ENGINE};
use crate::image::{self, ENABLED, FINISHED, SHUT_DOWN, UNRECORDABLE};
use crate::inherited;
use crate::process::ProcessInfo;
use crate::snapshot::{self, Ending};
use crate::thread::Guard;
use memscope_format::EndKind;
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};

/// `_exit`/`_Exit`.
pub fn before_underscore_exit(status: c_int) {
    finish(EndKind::UnderscoreExit, Some(status), None);
}

/// Set by memscope-rs's panic hook: a process that then exits with Rust's
/// panic status (101) or aborts ended by a panic.
static PANICKED: AtomicBool = AtomicBool::new(false);

pub fn note_panic() {
    PANICKED.store(true, Ordering::Release);
}

/// Takes the final snapshot of this image (once) and stops recording.
pub fn finish(kind: EndKind, exit_code: Option<i32>, signal: Option<i32>) {
    let panicked = PANICKED.load(Ordering::Acquire);
    let kind = match kind {
        EndKind::Exit if panicked && exit_code == Some(101) => EndKind::Panic,
        EndKind::Abort if panicked => EndKind::Panic,
        k => k,
    };
    if crate::select::skipped() || image::in_foreign_child() || FINISHED.swap(true, Ordering::AcqRel) {
        return;
    }
    // The program may end on a thread with a small stack.
    crate::alt_stack::with_room(|| finish_now(kind, exit_code, signal));
}

fn finish_now(kind: EndKind, exit_code: Option<i32>, signal: Option<i32>) {
    let end = inherited::End {
        kind,
        exit_code,
        signal,
        keep: false,
        in_signal: signal.is_some(),
        at: None,
    };
    let detach = {
        let _g = Guard::enter();
        // A running snapshot being written completes first (the collector
        // thread never waits here: it is not busy when it finishes the image).
        crate::running::wait_idle(5_000_000_000);
        crate::control::withdraw();
        // No wait for hooks that passed the ENABLED check just before: one that
        // read the clock before the snapshot's end reserved its slot first, and
        // the final drain waits for that slot; one that reads it later records
        // an event after the end, which no snapshot of this image shows.
        ENABLED.store(false, Ordering::SeqCst);
        crate::unwind::disable();
        let detach = signal.is_none() && crate::detach::possible();
        if !detach {
            finish_image(end);
        }
        detach
    };
    if detach {
        // Read here, not in the helper: the image ends now.
        let at = clock::now();
        let end = inherited::End { at: Some(at), ..end };
        if let Some(work) = crate::detach::spawn_at_exit(Box::new(move || finish_image(end))) {
            work();
        }
    }
}

/// The final snapshot's work, on the image's thread or in its helper
/// ([`crate::detach`]).
fn finish_image(end: inherited::End) {
    let _g = Guard::enter();
    if inherited::write_if_inherited_only(end) {
        SHUT_DOWN.store(true, Ordering::Release);
        return;
    }
    write_snapshot(end.kind, end.exit_code, end.signal, true, end.at);
    if end.signal.is_none() {
        crate::unwind::rule_store::save(crate::rss::no_seccomp_filter);
    }
}

/// Writes the snapshot of the image as it is now, before `exec`.
pub fn before_exec() {
    if FINISHED.load(Ordering::Acquire) || crate::select::skipped() {
        return;
    }
    crate::alt_stack::with_room(|| {
        let _g = Guard::enter();
        crate::running::wait_idle(5_000_000_000);
        crate::control::withdraw();
        let end = inherited::End {
            kind: EndKind::Exec,
            exit_code: None,
            signal: None,
            keep: true,
            in_signal: false,
            at: None,
        };
        if !inherited::write_if_inherited_only(end) {
            write_snapshot(EndKind::Exec, None, None, false, None);
            crate::unwind::rule_store::save(crate::rss::no_seccomp_filter);
        }
    });
}

/// The `exec` counter for the next image of this pid. It counts the images
/// that record: a skipped image (no engine state, its own number as the
/// environment it was given said) passes its number on, since it wrote no file
/// the next could repeat — so under `run cargo run`, the program cargo
/// execs is still the run's first image and writes `-o`'s path itself.
pub fn next_exec_seq() -> u32 {
    if crate::select::skipped() {
        return crate::process::startup_exec_seq();
    }
    ENGINE.with(|slot| consumer::state(slot).process.as_ref().map_or(0, |p| p.exec_seq) + 1)
}

/// When each step of an ending finished (`clock::monotonic_ns`), for the
/// debug log: a short image's ending is a few hundred µs spread over these
/// steps (scripts/bench/README.md, "An ending, step by step").
#[derive(Clone, Copy, Default)]
struct Steps {
    start: u64,
    drained: u64,
    finished: u64,
    resident: u64,
    listed: u64,
    built: u64,
}

impl Steps {
    /// `"drain 25 µs, finish 30 µs, …"`, the last step ending at `published`.
    fn describe(&self, published: u64) -> impl std::fmt::Display + '_ {
        struct Described<'a>(&'a Steps, u64);
        impl std::fmt::Display for Described<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let s = self.0;
                let marks = [
                    ("drain", s.drained),
                    ("finish", s.finished),
                    ("resident set", s.resident),
                    ("listing", s.listed),
                    ("snapshot", s.built),
                    ("hand-over or write", self.1),
                ];
                let mut at = s.start;
                for (i, (name, t)) in marks.into_iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{name} {} µs", t.saturating_sub(at) / 1000)?;
                    at = at.max(t);
                }
                Ok(())
            }
        }
        Described(self, published)
    }
}

/// Takes the snapshot of the image as it ends (a running one is
/// `running::take`). `last`: the final one (the collector's state is
/// consumed and recording stops for good).
fn take_snapshot(
    kind: EndKind,
    exit_code: Option<i32>,
    signal: Option<i32>,
    last: bool,
    at: Option<u64>,
    steps: &mut Steps,
) -> (memscope_format::Snapshot, ProcessInfo) {
    let cfg = config::get();
    let start = image::start_anchor();
    ENGINE.with(|slot| {
        // The end is read under the lock: a drain that ran before this one
        // (bounded by its own, earlier "now") cannot have applied anything
        // later than it. The end anchor follows it: no event lies outside.
        // (`at`, read before a helper took the work over: the image had no
        // collector thread, so every drain before it ran on its thread.)
        let end = at.unwrap_or_else(clock::now);
        let cal = Calibration::until_now(start);
        let st = consumer::state(slot);
        st.drain(Mode::UpTo(end));
        st.refresh_names();
        steps.drained = clock::monotonic_ns();
        if last {
            SHUT_DOWN.store(true, Ordering::Release);
        }
        let process = st.process.clone().unwrap_or_else(|| ProcessInfo::capture(start));
        let dropped = st.inflight_lost + UNRECORDABLE.load(Ordering::Relaxed);
        // Before an exec the image may go on (the exec can fail): its
        // state is copied without its per-address tables (see
        // `Collector::copy_for_running`), not cloned whole.
        let finished = if last {
            std::mem::replace(&mut st.collector, crate::collector::Collector::new(end, 1.0, 0)).finish(end)
        } else {
            st.collector.copy_for_running(Vec::new()).finish(end, usize::MAX)
        };
        steps.finished = clock::monotonic_ns();
        let ending = Ending {
            kind,
            end_ticks: end,
            exit_code,
            signal,
            process_ends: last && kind.process_ends(),
            // Before `lists_records`, whose file calls need to know whether
            // a seccomp filter is on: this read tells.
            resident: snapshot::Resident::read(),
        };
        steps.resident = clock::monotonic_ns();
        let counts = snapshot::EngineCounts {
            events_dropped: dropped,
        };
        let lists = lists_records(cfg, &process, &finished);
        steps.listed = clock::monotonic_ns();
        let snap = if lists {
            snapshot::build(finished, &process, ending, &cal, cfg, counts)
        } else {
            let cfg = config::Config {
                max_records: 0,
                ..cfg.clone()
            };
            snapshot::build(finished, &process, ending, &cal, &cfg, counts)
        };
        (snap, process)
    })
}

/// Whether this image lists its blocks: under `run`, as the run's table
/// says ([`crate::listing`]); otherwise always (up to its cap).
fn lists_records(cfg: &config::Config, process: &ProcessInfo, fin: &crate::collector::Finished) -> bool {
    let Some(socket) = cfg.handoff.as_deref() else {
        return true;
    };
    if cfg.format != ExportFormat::Json || cfg.max_records == 0 || !crate::rss::no_seccomp_filter() {
        return true;
    }
    let Ok(table) = std::ffi::CString::new(crate::listing::table_path(socket)) else {
        return true;
    };
    // run's own child, as `run` itself decided before (an image its root
    // process exec'd included).
    let root = crate::process::launcher_pid() == Some(process.ppid);
    let weight = match &fin.at_fork {
        Some(at) => crate::listing::Weight {
            peak: 0,
            bytes: fin.totals.allocated_bytes.saturating_sub(at.allocated_bytes),
        },
        None => crate::listing::Weight {
            peak: fin.peak.bytes,
            bytes: fin.totals.allocated_bytes,
        },
    };
    crate::listing::lists(&table, &process.exe, root, weight)
}

fn write_snapshot(kind: EndKind, exit_code: Option<i32>, signal: Option<i32>, last: bool, at: Option<u64>) {
    let cfg = config::get();
    if !cfg.auto_export {
        // Nothing to build: only stop recording for good.
        if last {
            SHUT_DOWN.store(true, Ordering::Release);
        }
        return;
    }
    let mut steps = Steps {
        start: clock::monotonic_ns(),
        ..Steps::default()
    };
    let (snap, process) = take_snapshot(kind, exit_code, signal, last, at, &mut steps);
    steps.built = clock::monotonic_ns();
    let built_ms = (steps.built - steps.start) as f64 / 1e6;
    publish(cfg, &snap, &process, built_ms);
    let helper = if crate::detach::in_helper() {
        " (in a helper, after the image exited)"
    } else {
        ""
    };
    crate::debug!("ending: {}{helper}", steps.describe(clock::monotonic_ns()));
    let (rules, sites) = crate::unwind::mailbox::found_here();
    crate::debug!("{rules} unwind rules and {sites} call sites new to this image");
    crate::image::dispose(snap, last && kind.process_ends());
}

/// Hands the snapshot to `run`, or writes it (and its HTML report) where
/// the settings say, and lists what was written in the run's manifest.
fn publish(cfg: &config::Config, snap: &memscope_format::Snapshot, process: &ProcessInfo, built_ms: f64) {
    let overflowed = crate::unwind::sites::overflowed();
    if overflowed > 0 {
        crate::warn!(
            "{overflowed} allocations came from stacks beyond the {} distinct call sites memscope tells apart; \
             they are counted in call site 0 (no frames)",
            crate::unwind::sites::MAX_SITES
        );
    }
    let path = crate::destination::snapshot_path(process);
    let mut written = Vec::new();
    let t = clock::monotonic_ns();
    if cfg.format == ExportFormat::Json && hand_over(cfg, &path, snap) {
        // The same shape as a write's line (scripts/bench sums them).
        let ms = (clock::monotonic_ns() - t) as f64 / 1e6;
        crate::info!(
            "handed {path} over to memscope-cli run: snapshot built in {built_ms:.3} ms, written in {ms:.3} ms"
        );
        return;
    }
    if cfg.format != ExportFormat::Html {
        let t = clock::monotonic_ns();
        let r = snapshot::write_atomic(&path, |w| snap.write_json(w).map_err(std::io::Error::from));
        note_written(r, &path, built_ms, t, &mut written);
    }
    if cfg.format != ExportFormat::Json {
        let html = crate::paths::with_extension(&path, "html");
        let t = clock::monotonic_ns();
        let r = snapshot::write_atomic(&html, |w| memscope_report::write_html(std::slice::from_ref(snap), w));
        note_written(r, &html, built_ms, t, &mut written);
    }
    if let Some(m) = &cfg.manifest {
        for p in &written {
            let _ = snapshot::append_manifest(m, p);
        }
    }
}

/// Hands the JSON to `memscope-cli run`, which writes the file and lists
/// it (see [`crate::handoff`]); false when there is no run to take it.
fn hand_over(cfg: &config::Config, path: &str, snap: &memscope_format::Snapshot) -> bool {
    let Some(socket) = cfg.handoff.as_deref().and_then(|s| std::ffi::CString::new(s).ok()) else {
        return false;
    };
    crate::handoff::send_parts(&socket, path, crate::handoff::SEND_BUFFER, snap)
}

fn note_written(r: std::io::Result<()>, path: &str, built_ms: f64, start: u64, written: &mut Vec<String>) {
    match r {
        Ok(()) => {
            let ms = (clock::monotonic_ns() - start) as f64 / 1e6;
            crate::info!("wrote {path}: snapshot built in {built_ms:.3} ms, written in {ms:.3} ms");
            written.push(path.to_string());
        }
        Err(e) => crate::warn!("cannot write the snapshot to {path}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::Steps;

    /// Each step is the time since the one before it; a step that did not
    /// run (its mark left behind an earlier one) counts 0, not a wrap.
    #[test]
    fn an_endings_steps_are_told_as_the_time_each_took() {
        let steps = Steps {
            start: 1_000_000,
            drained: 1_025_000,
            finished: 1_055_000,
            resident: 1_095_000,
            listed: 0,
            built: 1_195_000,
        };
        assert_eq!(
            steps.describe(1_295_500).to_string(),
            "drain 25 µs, finish 30 µs, resident set 40 µs, listing 0 µs, snapshot 100 µs, hand-over or write 100 µs"
        );
    }
}
