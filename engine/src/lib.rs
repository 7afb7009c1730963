//! memscope's recording engine, shared by libmemscope.so (which feeds it
//! from its malloc hooks) and memscope-rs (which feeds it from a Rust global
//! allocator and `track_var!`). No hooks live here: whoever links the engine
//! calls [`recorder::record`] after each allocation and before each free.
//!
//! Record, then analyze: [`recorder`] (the hot path) appends fixed-size
//! events to per-thread [`ring`]s; the [`consumer`] merges them in timestamp
//! order into the [`collector`] (lifetimes, exact aggregates), on the
//! [`collector_thread`] or on a producer's own thread; [`snapshot`] turns the
//! collector's finished state into the file, written by [`ending`] on every
//! way a process image can end and by [`running`] while it goes on.
//! Everything here is unit-tested without `LD_PRELOAD`.
//!
//! # Layers
//!
//! Each module `use`s only modules of its own line or of lines below it
//! (the test `layers::every_module_uses_only_lower_layers` checks it); a
//! lower layer that must reach a higher one is handed a callback or data
//! (`thread::on_deferred_signal`, the collector's `Finished`).
//!
//! ```text
//!  9  lifecycle  api                    start, fork; the hosts' entry points
//!  8  sigchain                          the program's view of our signals
//!  7  signals  vars                     fatal signals; track_var! events
//!  6  recorder                          the hot path (record, record_realloc)
//!  5  collector_thread                  background merge, final request
//!  4  ending                            the final snapshot of an image
//!  3  running  inherited                running snapshots; fork-only children
//!  2  consumer                          drain: rings -> collector (EngineState)
//!  1  snapshot                          Finished -> memscope_format::Snapshot
//!  0  image detach destination handoff listing collector var_names alt_stack
//!     unwind registry ring thread rss control select process paths event
//!     config clock log own_heap lock sys arena
//! ```
//!
//! Layer 0 is ordered too (left above right, most of it independent).

pub mod alt_stack;
pub mod api;
pub mod arena;
pub mod clock;
pub mod collector;
pub mod collector_thread;
pub mod config;
pub mod consumer;
pub mod control;
pub mod destination;
pub mod detach;
pub mod ending;
pub mod event;
pub mod exec_seq;
pub mod handoff;
pub mod image;
pub mod inherited;
pub mod lifecycle;
pub mod listing;
pub mod lock;
pub mod log;
pub mod own_heap;
pub mod paths;
pub mod process;
pub mod recorder;
pub mod registry;
pub mod ring;
pub mod rss;
pub mod running;
pub mod select;
pub mod sigchain;
pub mod signals;
pub mod snapshot;
pub mod sys;
pub mod thread;
pub mod unwind;
pub mod var_names;
pub mod vars;

#[cfg(test)]
mod layers;
