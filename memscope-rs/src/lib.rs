//! memscope for Rust programs (SPEC §1, "memscope-rs").
//!
//! ```no_run
//! use memscope_rs::track_var;
//!
//! fn main() {
//!     memscope_rs::init();
//!     memscope_rs::enable_auto_export(Some("my_memory_analysis.json"));
//!     let my_vec = vec![1, 2, 3];
//!     let tracked_vec = track_var!(my_vec);
//!     assert_eq!(tracked_vec.len(), 3);
//! }
//! ```
//!
//! [`track_var!`] names a value: the snapshot's `variables` list its name
//! (the expression's text), type, enclosing function, thread, the heap block
//! it owns (see [`Trackable`]) and its exact lifetime — from the macro to the
//! wrapper's `Drop`, or to the end of the process (`is_leaked: true`).
//!
//! Two ways to run, decided once by [`init`]:
//! - under `LD_PRELOAD=libmemscope.so` (or `memscope-cli run`), the crate
//!   finds the library's `memscope_api_v1` and only names variables there:
//!   the library records every allocation, one snapshot, nothing twice;
//! - alone, the crate starts the same engine in this process. Allocations are
//!   recorded too when the program installs [`Allocator`] as its global
//!   allocator; without it, variables still get their lifetimes and sizes.
//!
//! `MEMSCOPE_RS=off` in the environment keeps the crate inert (a preloaded
//! library still traces the program): the same binary, without memscope-rs.

mod allocator;
mod backend;
mod panic;
mod track;
mod trackable;

pub use allocator::Allocator;
pub use backend::{enable_auto_export, export, init, mode, Mode};
pub use track::Tracked;
pub use trackable::{HeapBlock, Trackable};

/// What the macros expand to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::track::{enclosing_fn, Probe, ViaNothing, ViaTrackable};
}
