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
pub mod mailbox;
pub mod memo;
pub mod modules;
pub mod rule_store;
pub mod rules;
pub mod sites;
pub mod symbolize;

use std::sync::atomic::{AtomicU32, Ordering};

/// Frames captured per allocation; 0 until [`enable`] (and when off).
static DEPTH: AtomicU32 = AtomicU32::new(0);

/// Turns capture on at `depth` frames: learns the loaded modules first.
pub fn enable(depth: u32) {
    // Also known without stacks: see crate::alt_stack.
    capture::note_main_stack();
    if depth == 0 {
        return;
    }
    modules::refresh();
    capture::find_self();
    load_rules();
    DEPTH.store(depth.min(capture::MAX_DEPTH as u32), Ordering::Release);
}

/// Stops capture for good (the image's final snapshot is being taken): the
/// program's last allocations, after it, are not recorded, and walking
/// their stacks would still add sites to the table the snapshot reads.
pub fn disable() {
    DEPTH.store(0, Ordering::Release);
}

/// Before a `fork()`, in the parent: takes the rules and call sites its
/// earlier children found, for the children to come (see [`mailbox`]).
/// Nothing to do when stacks are not captured.
pub fn before_fork() {
    if DEPTH.load(Ordering::Relaxed) != 0 {
        mailbox::before_fork();
    }
}

/// Reads the rules earlier images of this executable derived (see
/// [`rule_store`]), from the name cache of this memscope build. At
/// start-up: no seccomp filter of the program's own can be on yet.
fn load_rules() {
    let Some(dir) = own_cache() else { return };
    if let Some(exe) = modules::current().modules.iter().find(|m| m.path.is_empty()) {
        rule_store::load(dir, exe);
    }
}

/// The name cache the config chose, the part of this build of the library
/// (see `memscope_symbols::NameCache::for_namer`). Callers decide whether a
/// seccomp filter may be on when they use it.
pub(super) fn own_cache() -> Option<memscope_symbols::NameCache> {
    let here = own_cache as fn() -> Option<memscope_symbols::NameCache> as usize as u64;
    let own = modules::current().find(here).map(|m| m.build_id.as_slice());
    crate::config::get().name_cache.clone()?.for_namer(own)
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
