//! A static arena for the allocations made while the real allocator is being
//! looked up (`dlsym` allocates). Blocks are never reused: `free` of an arena
//! pointer is ignored and never reaches glibc, `realloc` moves the block out.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

const ARENA_SIZE: usize = 256 * 1024;
const HEADER: usize = 16;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);

// SAFETY: bytes are only reached through pointers handed out by `alloc`, each
// range to one caller (the bump pointer is atomic).
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn base() -> usize {
    ARENA.0.get() as usize
}

/// True when `p` points into the arena.
#[inline(always)]
pub fn contains(p: *const c_void) -> bool {
    (p as usize).wrapping_sub(base()) < ARENA_SIZE
}

/// Bump-allocates `size` bytes aligned to `align` (a power of two), with the
/// size stored just before the block. Zeroed (the arena is never reused).
/// Null when the arena is exhausted.
pub fn alloc(size: usize, align: usize) -> *mut c_void {
    let align = align.max(HEADER);
    let mut cur = NEXT.load(Ordering::Relaxed);
    loop {
        let start = (base() + cur + HEADER + align - 1) & !(align - 1);
        let end = match start.checked_add(size) {
            Some(e) if e - base() <= ARENA_SIZE => e - base(),
            _ => return std::ptr::null_mut(),
        };
        match NEXT.compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                // SAFETY: [start - HEADER, end) lies inside the arena and was
                // reserved by the CAS for this call alone.
                unsafe { ((start - HEADER) as *mut usize).write(size) };
                return start as *mut c_void;
            }
            Err(now) => cur = now,
        }
    }
}

/// The size `alloc` stored for arena block `p`.
///
/// # Safety
/// `p` must come from [`alloc`].
pub unsafe fn size_of(p: *const c_void) -> usize {
    ((p as usize - HEADER) as *const usize).read()
}

/// Moves arena block `p` into memory from `alloc_fn`, copying what fits.
///
/// # Safety
/// `p` must come from [`alloc`].
pub unsafe fn move_out(p: *mut c_void, size: usize, alloc_fn: impl FnOnce(usize) -> *mut c_void) -> *mut c_void {
    let q = alloc_fn(size);
    if !q.is_null() {
        std::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, size.min(size_of(p)));
    }
    q
}
