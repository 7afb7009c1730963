//! The opt-in global allocator for in-process tracking (no `LD_PRELOAD`):
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: memscope_rs::Allocator = memscope_rs::Allocator;
//!
//! fn main() {
//!     memscope_rs::init();
//!     let v = vec![1u8; 100]; // recorded
//! }
//! ```
//!
//! It forwards to [`System`] and, once [`crate::init`] has started the
//! engine in this process, records each event with the engine's recorder —
//! the same events, with the same SPEC §3 meaning, that libmemscope.so's
//! hooks record for the `malloc`/`posix_memalign`/`realloc`/`free` calls
//! `System` makes. Under `LD_PRELOAD` it only forwards: the library sees
//! those calls itself, so nothing is counted twice.
//!
//! Never panics and never recurses: the engine's own allocations run under
//! its thread guard, and [`record`] returns at once while it is held.

use memscope_engine::event::Kind;
use memscope_engine::recorder::{record, record_realloc};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Forwards to [`System`]; records every allocation, reallocation and free
/// while memscope-rs runs in-process (see the module docs).
pub struct Allocator;

/// True once the engine runs in this process (set by `init`, never unset:
/// after the final snapshot the recorder itself stops).
static RECORDING: AtomicBool = AtomicBool::new(false);

pub(crate) fn start_recording() {
    RECORDING.store(true, Ordering::Release);
}

#[inline(always)]
fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// The alignment `malloc` guarantees, as std's `System` assumes it.
const MIN_ALIGN: usize = if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
    16
} else {
    8
};

/// True when `System` serves `l` with `malloc`/`calloc`/`realloc` (as
/// opposed to `posix_memalign`): std's own rule.
#[inline(always)]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

/// Call-site id of the allocation being recorded (0 with backtraces off).
/// The walk keeps the allocator's own frames; the snapshot drops them.
#[inline(always)]
fn site() -> u64 {
    memscope_engine::unwind::in_process_site() as u64
}

/// Records the allocation `p` (if any) of layout `l`: as `plain_kind` when
/// `System` got it from `malloc`/`calloc`, else as an aligned allocation.
#[inline(always)]
fn noted(p: *mut u8, l: Layout, plain_kind: Kind) -> *mut u8 {
    if !p.is_null() && recording() {
        let kind = if plain(l.align(), l.size()) {
            plain_kind
        } else {
            Kind::Aligned
        };
        record(kind, p as usize, l.size(), site());
    }
    p
}

// SAFETY: every block comes from `System` with the caller's layout and goes
// back to it with the same layout; recording only reads the pointers.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        noted(System.alloc(l), l, Kind::Malloc)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        noted(System.alloc_zeroed(l), l, Kind::Calloc)
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // Before the real free: afterwards another thread may get `p`.
        if recording() {
            record(Kind::Free, p as usize, 0, 0);
        }
        System.dealloc(p, l)
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if plain(l.align(), new_size) {
            let q = System.realloc(p, l, new_size);
            if !q.is_null() && recording() {
                record_realloc(p as usize, q as usize, new_size, site());
            }
            return q;
        }
        // What `System` does here (a new aligned block, copy, free), spelled
        // out so that the free is recorded before the block is released.
        let q = self.alloc(Layout::from_size_align_unchecked(new_size, l.align()));
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
            self.dealloc(p, l);
        }
        q
    }
}
