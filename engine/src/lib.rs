//! memscope's recording engine, shared by libmemscope.so (which feeds it
//! from its malloc hooks) and memscope-rs (which feeds it from a Rust global
//! allocator and `track_var!`). No hooks live here: whoever links the engine
//! calls [`recorder::record`] after each allocation and before each free.
//!
//! Record, then analyze: [`recorder`] appends fixed-size events to per-thread
//! [`ring`]s; a background thread merges them in timestamp order into the
//! [`collector`] (lifetimes, exact aggregates); [`lifecycle`] writes the
//! [`snapshot`] on every way a process image can end. Everything here is
//! unit-tested without `LD_PRELOAD`.

pub mod api;
pub mod clock;
pub mod collector;
pub mod collector_thread;
pub mod config;
pub mod control;
pub mod event;
pub mod inherited;
pub mod lifecycle;
pub mod lock;
pub mod log;
pub mod paths;
pub mod process;
pub mod recorder;
pub mod registry;
pub mod ring;
pub mod rss;
pub mod running;
pub mod select;
pub mod sigchain;
pub mod snapshot;
pub mod sys;
pub mod thread;
pub mod unwind;
pub mod vars;
