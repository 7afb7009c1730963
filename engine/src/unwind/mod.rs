//! Call sites: who allocated each block.
//!
//! Measured here, a DWARF unwind through libgcc costs ~1200 ns for 12
//! frames and framehop ~10 ns a frame — both too slow for every malloc.
//! memscope walks the stack with unwind rules it derives once per code
//! address from `.eh_frame` and caches in a word ([`rules`]), so it needs no
//! frame pointers (Rust std and Debian's libraries have none) and costs a
//! few ns a frame. The stack is hashed into a call-site id in the hot path
//! ([`sites`]); names, files and lines are found only when a snapshot is
//! written ([`symbolize`]).

pub mod capture;
pub mod fde_rows;
pub mod memo;
pub mod modules;
pub mod rules;
pub mod sites;
pub mod symbolize;

use std::sync::atomic::{AtomicU32, Ordering};

/// Frames captured per allocation; 0 until [`enable`] (and when off).
static DEPTH: AtomicU32 = AtomicU32::new(0);

/// Turns capture on at `depth` frames: learns the loaded modules first.
pub fn enable(depth: u32) {
    if depth == 0 {
        return;
    }
    modules::refresh();
    capture::find_self();
    capture::note_main_stack();
    DEPTH.store(depth.min(capture::MAX_DEPTH as u32), Ordering::Release);
}

/// Where the program called an allocator entry point: its stack pointer
/// and frame pointer register at the call (the hook's entry trampoline
/// hands them over), so the walk starts in the program's own frame instead
/// of unwinding through memscope's.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// `rsp` at the hook's first instruction: it points at the return address.
    pub sp: usize,
    pub bp: usize,
}

impl Caller {
    /// Not known: walk from the capture itself, leaving out memscope's frames.
    pub const UNKNOWN: Caller = Caller { sp: 0, bp: 0 };
}

/// The call site of the current allocation, for a malloc hook of
/// libmemscope.so: its own frames are left out.
#[inline(always)]
pub fn preload_site(caller: Caller) -> u32 {
    match DEPTH.load(Ordering::Relaxed) {
        0 => 0,
        d if caller.sp != 0 => capture::site_of_caller(d as usize, caller),
        d => capture::site(d as usize, true),
    }
}

/// The same for code linked into the program itself (memscope-rs): the
/// walk keeps every frame above the capture; symbolization names them.
#[inline(always)]
pub fn in_process_site() -> u32 {
    match DEPTH.load(Ordering::Relaxed) {
        0 => 0,
        d => capture::site(d as usize, false),
    }
}
