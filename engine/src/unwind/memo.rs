//! What a thread remembers of its stack walks: its last one, which the
//! next walk reuses the outer part of ([`super::trace`]).
//!
//! (It once held the last 16 walks whole, looked up by return address and
//! stack pointer; the trace finds every stack those did, and the many more
//! that share only their outer frames, in a quarter of the thread-local
//! memory every thread and process image pays for.)

/// Per-thread walk state (lives in the thread's state).
pub struct Memo {
    /// The thread's last walk.
    pub trace: super::trace::Trace,
}

impl Default for Memo {
    fn default() -> Self {
        Self::new()
    }
}

impl Memo {
    pub const fn new() -> Memo {
        Memo {
            trace: super::trace::Trace::new(),
        }
    }
}
