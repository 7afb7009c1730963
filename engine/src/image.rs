//! Facts and switches of this process image that every layer of the engine
//! reads: its pid as the engine knows it, who hosts the engine, the
//! lineage's first clock reading, and whether recording goes on. They live
//! at the bottom so that the hot path, the consumer and the snapshot writer
//! can read them without importing the modules that set them
//! ([`crate::lifecycle`], [`crate::ending`]).

use crate::clock::Anchor;
use crate::lock::Locked;
use crate::sys;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// False once the final snapshot is being taken: hooks then only forward.
pub static ENABLED: AtomicBool = AtomicBool::new(true);
/// True once the final snapshot has drained the rings: nothing reads them
/// any more (drains become no-ops), so a producer still waiting for room may
/// simply go on.
pub static SHUT_DOWN: AtomicBool = AtomicBool::new(false);
/// This image's pid as the engine knows it (updated in a fork child).
pub static PID: AtomicU32 = AtomicU32::new(0);
/// Events that could not be recorded at all (no ring could be mapped).
pub static UNRECORDABLE: AtomicU64 = AtomicU64::new(0);
/// Pid of the process for which a collector thread was started (or tried):
/// a thread other than the main one made an event, or a running snapshot
/// was asked for (see `collector_thread`).
pub static COLLECTOR_STARTED_FOR: AtomicU32 = AtomicU32::new(0);

/// True when this process started (or tried to start) its collector thread.
pub fn collector_ever_started() -> bool {
    COLLECTOR_STARTED_FOR.load(Ordering::Acquire) == PID.load(Ordering::Relaxed)
}

/// Set once the final snapshot has been taken (or is being taken).
pub static FINISHED: AtomicBool = AtomicBool::new(false);

/// True when this call runs in a `vfork()` child (or a raw `clone`), which
/// shares the parent's memory: such a child must not touch memscope's state.
pub fn in_foreign_child() -> bool {
    sys::getpid() != PID.load(Ordering::Relaxed) && !crate::detach::in_helper()
}

/// Whether this image is still being traced (its snapshot not yet written).
pub fn tracing() -> bool {
    PID.load(Ordering::Relaxed) != 0 && !FINISHED.load(Ordering::Acquire)
}

/// The first clock reading of this process lineage: taken by whatever runs
/// first in an image, and kept by a `fork()` child (its own start is in its
/// `ProcessInfo`), so that every event a snapshot shows, inherited ones
/// included, lies between this anchor and the snapshot's (see
/// [`crate::clock::Calibration`]).
pub(crate) static START: Locked<Option<Anchor>> = Locked::new(None);

/// The first clock reading of this image, or of its parent's when it is a
/// `fork()` child.
pub fn start_anchor() -> Anchor {
    START.with(|s| *s.get_or_insert_with(Anchor::take))
}

/// Who runs the engine: libmemscope.so (its own copy of std, its own panic
/// hook) or a program that links memscope-rs (whose std it shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Preload,
    InProcess,
}

static IN_PROCESS: AtomicBool = AtomicBool::new(false);

/// Who runs the engine (set once by `lifecycle::start`).
pub fn host() -> Host {
    if IN_PROCESS.load(Ordering::Relaxed) {
        Host::InProcess
    } else {
        Host::Preload
    }
}

pub(crate) fn set_host(host: Host) {
    IN_PROCESS.store(host == Host::InProcess, Ordering::Relaxed);
}

/// Drops `v`, or where the process ends right after this snapshot leaves
/// its memory to the kernel, which takes the whole heap back at once:
/// freeing a big image's collector state, names and snapshot block by
/// block first cost cc1 (10,000 call sites) ~2 ms of its exit. Only at an
/// ending after which no code of the image runs: a snapshot taken while it
/// runs, or before an `exec` that may fail, frees as usual.
pub fn dispose<T>(v: T, process_ends: bool) {
    if process_ends {
        std::mem::forget(v);
    } else {
        drop(v);
    }
}
