//! memscope's own Rust allocations never go through the hooks, so they are
//! never recorded and can never recurse, and never through the program's
//! `malloc`, so the program's heap is the one it has un-traced
//! (`memscope_engine::own_heap`). In a `fork()` child they come from fresh
//! memory of memscope's own first (`memscope_engine::arena`: the parent's
//! pages are shared, and each one written there is copied).

use memscope_engine::{arena, own_heap};
use std::alloc::{GlobalAlloc, Layout};

/// The alignment `arena` hands out at least (glibc's `malloc`'s).
const MIN_ALIGN: usize = 16;

pub struct OwnAllocator;

// SAFETY: `own_heap` and `arena` hand out distinct, live blocks of the
// size and alignment asked for; a block is freed where it came from.
unsafe impl GlobalAlloc for OwnAllocator {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if let Some(p) = arena::alloc(l.size(), l.align().max(MIN_ALIGN)) {
            return p;
        }
        own_heap::alloc(l.size(), l.align())
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // The arena hands out each byte once, from pages no process wrote.
        if let Some(p) = arena::alloc(l.size(), l.align().max(MIN_ALIGN)) {
            return p;
        }
        own_heap::alloc_zeroed(l.size(), l.align())
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if !arena::contains(p) {
            own_heap::dealloc(p, l.size(), l.align())
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if !arena::contains(p) {
            return own_heap::realloc(p, l.size(), l.align(), new_size);
        }
        if arena::resize_last(p, l.size(), new_size) {
            return p;
        }
        let q = self.alloc(Layout::from_size_align_unchecked(new_size, l.align()));
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
        }
        q
    }
}
