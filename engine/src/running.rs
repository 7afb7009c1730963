//! Snapshots taken while the process goes on (SPEC §3 `"end": "running"`):
//! on request (`memscope-cli snapshot`, see [`crate::control`]), every
//! `MEMSCOPE_EVERY`, and from `memscope_rs::export`.
//!
//! The program must not notice. The consumer lock — which a program thread
//! whose ring is full, or that calls `fork()`, may have to wait for — is
//! held only to drain what is pending and copy the collector's fixed-size
//! state into a buffer faulted in beforehand; the snapshot is built and
//! written after it is released. While the collector thread is busy with
//! that, a producer whose ring fills drains it itself instead of waiting
//! for the collector (see [`busy`]).

use crate::clock::{self, Calibration};
use crate::collector::Block;
use crate::config;
use crate::consumer::{self, Mode, ENGINE};
use crate::control;
use crate::destination;
use crate::event::Kind;
use crate::image;
use crate::process::ProcessInfo;
use crate::snapshot::{self, Ending};
use crate::sys;
use memscope_format::{self as fmt, control::POLL_MS, EndKind};
use std::sync::atomic::{AtomicU32, Ordering};

/// 1 while the collector thread builds or writes a running snapshot.
static BUSY: AtomicU32 = AtomicU32::new(0);

/// True while the collector thread is taken up by a running snapshot:
/// producers then make room in their rings themselves.
#[inline]
pub fn busy() -> bool {
    BUSY.load(Ordering::Acquire) != 0
}

/// Waits (at most `timeout_ns`) until no running snapshot is being written,
/// so that an image that ends or calls `exec` meanwhile does not cut one
/// off half-written.
pub fn wait_idle(timeout_ns: u64) {
    let deadline = clock::monotonic_ns() + timeout_ns;
    while BUSY.load(Ordering::SeqCst) != 0 && clock::monotonic_ns() < deadline {
        sys::futex_wait(&BUSY, 1, 20_000_000);
    }
}

/// A `fork()` child has no collector thread (yet): nothing is busy.
pub fn reset_in_child() {
    BUSY.store(0, Ordering::Relaxed);
}

/// Takes a running snapshot now (see the module docs for what it costs the
/// program's threads).
pub fn take() -> (fmt::Snapshot, ProcessInfo) {
    take_as(false)
}

/// [`take`], or with `light` only the aggregates (no records; the live
/// blocks are counted, not copied).
fn take_as(light: bool) -> (fmt::Snapshot, ProcessInfo) {
    let cfg = config::get();
    let start = image::start_anchor();
    // Room for the live blocks, allocated and faulted in before the lock.
    // The backlog is applied first, in a critical section of its own: the
    // one that copies then starts with every ring nearly empty, so a busy
    // thread has a whole ring of room before it could have to wait.
    let n = ENGINE.with(|slot| {
        let st = consumer::state(slot);
        st.drain(Mode::Running);
        if light {
            0
        } else {
            st.collector.live_count()
        }
    });
    let room = n + n / 8 + 1024;
    let mut blocks: Vec<(u64, Block)> = Vec::with_capacity(room);
    let blank = Block {
        size: 0,
        birth: 0,
        site: 0,
        thread: 0,
        kind: Kind::Malloc as u8,
    };
    blocks.resize(room, (0, blank));
    blocks.clear();
    let (locked_at, locked_cpu) = (clock::monotonic_ns(), clock::thread_cpu_ns());
    let (copy, process, dropped, end, cal) = ENGINE.with(|slot| {
        let end = clock::now();
        let cal = Calibration::until_now(start);
        let st = consumer::state(slot);
        st.drain(Mode::UpTo(end));
        st.refresh_names();
        let process = st.process.clone().unwrap_or_else(|| ProcessInfo::capture(start));
        let dropped = st.inflight_lost + image::UNRECORDABLE.load(Ordering::Relaxed);
        let copy = if light {
            st.collector.copy_aggregates()
        } else {
            st.collector.copy_for_running(blocks)
        };
        (copy, process, dropped, end, cal)
    });
    let locked_ms = (clock::monotonic_ns() - locked_at) as f64 / 1e6;
    let locked_cpu_ms = (clock::thread_cpu_ns() - locked_cpu) as f64 / 1e6;
    let ending = Ending {
        kind: EndKind::Running,
        end_ticks: end,
        exit_code: None,
        signal: None,
        process_ends: false,
        resident: crate::snapshot::Resident::read(),
    };
    let counts = snapshot::EngineCounts {
        events_dropped: dropped,
    };
    let fin = copy.finish(end, if light { 0 } else { cfg.max_records as usize });
    let snap = if light {
        let cfg = config::Config {
            max_records: 0,
            ..cfg.clone()
        };
        snapshot::build(fin, &process, ending, &cal, &cfg, counts)
    } else {
        snapshot::build(fin, &process, ending, &cal, cfg, counts)
    };
    crate::debug!("running snapshot: the consumer lock was held {locked_ms:.1} ms ({locked_cpu_ms:.1} ms CPU)");
    (snap, process)
}

/// Writes `snap` to `path`: the HTML report when it ends in `.html`, else
/// JSON.
pub fn write(path: &str, snap: &fmt::Snapshot) -> std::io::Result<()> {
    if path.ends_with(".html") {
        snapshot::write_atomic(path, |w| memscope_report::write_html(std::slice::from_ref(snap), w))
    } else {
        snapshot::write_atomic(path, |w| snap.write_json(w).map_err(std::io::Error::from))
    }
}

/// Writes a snapshot of the image as it is now to `path` (JSON, or the
/// HTML report when the path ends in `.html`); recording goes on
/// (memscope-rs's `export`).
pub fn export_now(path: &str) -> std::io::Result<()> {
    let _g = crate::thread::Guard::enter();
    let (snap, _) = take();
    write(path, &snap)
}

/// The default path of a running snapshot taken at `unix_ns`: the image's
/// export path (or `MEMSCOPE_RUNNING_PATH`) with `.at-<unix_ms>` before the
/// extension — names that sort in time order.
pub fn default_path(process: &ProcessInfo, unix_ns: u64) -> String {
    let base = destination::snapshot_path_with(process, config::get().running_path.as_deref());
    let base = crate::paths::with_extension(&base, "json");
    crate::paths::insert_before_extension(&base, &format!(".at-{:013}", unix_ns / 1_000_000))
}

/// The collector thread's schedule of running snapshots.
pub struct Server {
    next_poll: u64,
    tried_advertising: bool,
    advertised: bool,
    every: Option<u64>,
    next_due: u64,
}

impl Server {
    /// The schedule of a new collector thread. The image advertises itself
    /// for `memscope-cli snapshot` at the first poll, [`POLL_MS`] later: a
    /// short-lived process (most of a shell script's) never pays for it.
    pub fn start() -> Server {
        let every = config::get().every_ns;
        let now = clock::monotonic_ns();
        Server {
            next_poll: now + POLL_MS * 1_000_000,
            tried_advertising: false,
            advertised: false,
            every,
            next_due: now + every.unwrap_or(0),
        }
    }

    /// Called by the collector thread between rounds: answers requests and
    /// writes the periodic snapshot when one is due.
    pub fn tick(&mut self) {
        let now = clock::monotonic_ns();
        if now < self.next_poll {
            return;
        }
        let poll = self.every.map_or(POLL_MS * 1_000_000, |e| e.min(POLL_MS * 1_000_000));
        self.next_poll = now + poll;
        if !self.tried_advertising {
            self.tried_advertising = true;
            self.advertised = control::advertise();
        } else if self.advertised && !control::advertised() && image::tracing() {
            // An `exec` that failed took it back; the image goes on.
            control::advertise();
        }
        let requests = control::take_requests();
        let periodic = self.every.is_some_and(|_| now >= self.next_due);
        if let Some(every) = self.every.filter(|_| periodic) {
            // Late (a snapshot took longer than the period): the missed ones
            // are skipped, never queued.
            self.next_due += every * ((now - self.next_due) / every + 1);
        }
        if requests.is_empty() && !periodic {
            return;
        }
        BUSY.store(1, Ordering::SeqCst);
        if image::tracing() {
            serve(&requests, periodic);
        } else {
            for r in &requests {
                control::reply(
                    &r.id,
                    Err("the process is ending; its final snapshot is being written".into()),
                );
            }
        }
        BUSY.store(0, Ordering::SeqCst);
        sys::futex_wake_all_u32(&BUSY);
    }
}

/// One snapshot for every request seen together (and the periodic one).
fn serve(requests: &[control::Request], periodic: bool) {
    let (t0, cpu0) = (clock::monotonic_ns(), clock::thread_cpu_ns());
    // Light requests alone get a light snapshot; with anything else, all
    // share the full one.
    let light = !periodic && requests.iter().all(|r| r.light);
    let (snap, process) = take_as(light);
    let built_ms = (clock::monotonic_ns() - t0) as f64 / 1e6;
    let built_cpu_ms = (clock::thread_cpu_ns() - cpu0) as f64 / 1e6;
    let default = default_path(&process, snap.process.end_unix_ns);
    let mut paths: Vec<String> = requests
        .iter()
        .map(|r| {
            if r.path.is_empty() {
                default.clone()
            } else {
                r.path.clone()
            }
        })
        .collect();
    if periodic {
        paths.push(default.clone());
    }
    let mut done: Vec<(String, Result<(), String>)> = Vec::new();
    for p in &paths {
        if done.iter().any(|(q, _)| q == p) {
            continue;
        }
        let (t, cpu) = (clock::monotonic_ns(), clock::thread_cpu_ns());
        let r = write(p, &snap).map_err(|e| format!("cannot write {p}: {e}"));
        match &r {
            Ok(()) => crate::info!(
                "wrote running snapshot {p}: built in {built_ms:.1} ms ({built_cpu_ms:.1} ms CPU), written in {:.1} ms ({:.1} ms CPU)",
                (clock::monotonic_ns() - t) as f64 / 1e6,
                (clock::thread_cpu_ns() - cpu) as f64 / 1e6
            ),
            Err(e) => crate::warn!("{e}"),
        }
        done.push((p.clone(), r));
    }
    for (r, p) in requests.iter().zip(&paths) {
        let result = done
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, r)| r.clone())
            .unwrap_or(Ok(()));
        control::reply(&r.id, result.map(|()| p.as_str()));
    }
}
