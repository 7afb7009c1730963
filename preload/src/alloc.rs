//! memscope's own Rust allocations go straight to the real allocator, never
//! through the hooks, so they are never recorded and can never recurse.

use crate::real;
use std::alloc::{GlobalAlloc, Layout};

/// glibc's `malloc` alignment on 64-bit targets.
const MALLOC_ALIGN: usize = 16;

pub struct RealAllocator;

// SAFETY: forwards to the real malloc family, which meets GlobalAlloc's
// contract for the alignments routed to it.
unsafe impl GlobalAlloc for RealAllocator {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.align() <= MALLOC_ALIGN {
            real::malloc(l.size()).cast()
        } else {
            real::aligned(l.align(), l.size()).cast()
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, _: Layout) {
        real::free(p.cast())
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if l.align() <= MALLOC_ALIGN {
            return real::realloc(p.cast(), new_size).cast();
        }
        let q = self.alloc(Layout::from_size_align_unchecked(new_size, l.align()));
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
            self.dealloc(p, l);
        }
        q
    }
}
