//! memscope's own Rust allocations go straight to the real allocator, never
//! through the hooks, so they are never recorded and can never recurse. In
//! a `fork()` child they come from fresh memory of memscope's own first
//! (`memscope_engine::arena`: the heap's pages are the parent's, and each
//! one malloc writes there is copied).

use crate::real;
use memscope_engine::arena;
use std::alloc::{GlobalAlloc, Layout};

/// glibc's `malloc` alignment on 64-bit targets.
const MALLOC_ALIGN: usize = 16;

pub struct RealAllocator;

// SAFETY: forwards to the real malloc family, which meets GlobalAlloc's
// contract for the alignments routed to it.
unsafe impl GlobalAlloc for RealAllocator {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if let Some(p) = arena::alloc(l.size(), l.align().max(MALLOC_ALIGN)) {
            return p;
        }
        if l.align() <= MALLOC_ALIGN {
            real::malloc(l.size()).cast()
        } else {
            real::aligned(l.align(), l.size()).cast()
        }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // The arena hands out each byte once, from pages no process wrote.
        if let Some(p) = arena::alloc(l.size(), l.align().max(MALLOC_ALIGN)) {
            return p;
        }
        let p = self.alloc(l);
        if !p.is_null() {
            p.write_bytes(0, l.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, _: Layout) {
        if !arena::contains(p) {
            real::free(p.cast())
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if l.align() <= MALLOC_ALIGN && !arena::contains(p) {
            return real::realloc(p.cast(), new_size).cast();
        }
        if arena::resize_last(p, l.size(), new_size) {
            return p;
        }
        let q = self.alloc(Layout::from_size_align_unchecked(new_size, l.align()));
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
            self.dealloc(p, l);
        }
        q
    }
}
