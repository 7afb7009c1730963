//! What a snapshot's end means: the process ended (blocks still live were
//! leaked), or it was taken while the process went on (SPEC §3
//! `"running"`: blocks live then are live now, not leaked). Readers word
//! and count them through these.

use crate::{Allocation, EndKind, Snapshot};

impl Snapshot {
    /// Taken while the process went on (`memscope-cli snapshot`,
    /// `--every`, `memscope_rs::export`).
    pub fn is_running(&self) -> bool {
        self.process.end == EndKind::Running
    }

    /// Whether `a` was live at the snapshot's end: leaked at exit, or live
    /// at the moment of a running snapshot.
    pub fn live_at_end(&self, a: &Allocation) -> bool {
        a.is_leaked || (self.is_running() && a.timestamp_dealloc == self.process.end_unix_ns)
    }

    /// How to say "live at the end": `"live now"` or `"live at exit"`.
    pub fn live_label(&self) -> &'static str {
        if self.is_running() {
            "live now"
        } else {
            "live at exit"
        }
    }
}
