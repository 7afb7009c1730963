//! libmemscope.so: loaded with `LD_PRELOAD`, it records every heap
//! allocation of a dynamically linked program and writes a snapshot in which
//! every allocation has a birth, a death (or the end of the process) and so a
//! lifetime. See SPEC.md for the contract and `engine` for the design.
//!
//! Layout: [`ffi`] holds the exported symbols, thin shims over [`hooks`],
//! [`lifecycle`] and [`exec`]; behind them safe Rust — [`ring`] (per-thread
//! event buffers), [`engine`] (recording and merging), [`collector`]
//! (lifetimes and aggregates), [`snapshot`] (the JSON), [`clock`],
//! [`config`], [`paths`] — that the unit tests drive without `LD_PRELOAD`.

pub mod alloc;
pub mod api;
pub mod bootstrap;
pub mod clock;
pub mod collector;
pub mod config;
pub mod engine;
pub mod event;
pub mod exec;
pub mod hooks;
pub mod lifecycle;
pub mod lock;
pub mod log;
pub mod paths;
pub mod process;
pub mod real;
pub mod registry;
pub mod ring;
pub mod snapshot;
pub mod sys;
pub mod thread;
pub mod vars;

// The hooks, the constructor and the allocator only exist in the library
// itself: the unit-test binary must keep glibc's malloc.
#[cfg(not(test))]
mod ffi;

#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: alloc::RealAllocator = alloc::RealAllocator;

#[cfg(not(test))]
#[ctor::ctor(unsafe)]
fn memscope_init() {
    lifecycle::init();
}
