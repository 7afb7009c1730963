//! memscope's own heap: the memory of every allocation memscope's Rust code
//! makes inside a traced program (the preload library's global allocator
//! asks here), apart from the program's.
//!
//! memscope's tables, names and snapshots used to come from the program's
//! own `malloc`, and so they moved every block the program got after them:
//! a program that prints or hashes its addresses (the low bits, which
//! address-space randomisation leaves alone) saw other values traced than
//! un-traced, and a layout-dependent bug reproduced differently. Served
//! from pages of our own, the program's heap is block for block the one it
//! has without memscope.
//!
//! Small blocks (up to 256 KiB) come in power-of-two classes, each carved
//! from page-aligned runs and recycled through its own free list (a block
//! of class `c` is aligned to `min(c, 4096)`); larger ones are mappings of
//! their own, grown with `mremap` (a table that doubles is never copied)
//! and returned at once when freed. One lock guards it: memscope allocates
//! off the program's hot path.
//!
//! A `fork()` child forgets the lock ([`reset_in_child`]): a thread of the
//! parent that held it does not exist there. Every change under the lock
//! ends with the one store that publishes it, so the child finds either
//! the state before that change or after it — at worst a block or a run
//! no list holds any more. The child also leaves its parent's pages alone:
//! it takes new runs from chunks of its own, and a block of its parent's
//! chunks that it frees stays where it is (pushing it on a list would
//! write the page, and the kernel would copy it first: ~2 µs a page here;
//! a shell's `(:)` subshell loop ran ~5% faster without those writes).
//! What a child leaks that way is bounded by what its parent had.

use crate::lock::Locked;
use std::sync::atomic::{compiler_fence, Ordering};

const PAGE: usize = 4096;
/// The smallest class: glibc's alignment, and room for a free-list link.
const MIN_SHIFT: u32 = 4;
/// The largest class (256 KiB); anything larger is a mapping of its own.
const MAX_SHIFT: u32 = 18;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Runs of a class come from chunks this large, mapped as needed.
const CHUNK: usize = 1 << 20;
/// A class's run: this much (or one block of a larger class).
const RUN: usize = 64 << 10;
/// Chunks remembered, this process's and its ancestors' (memscope's own
/// small blocks rarely take more than a few chunks).
const TRACKED: usize = 32;

/// Address ranges of chunks.
#[derive(Clone, Copy)]
struct Chunks {
    ranges: [(usize, usize); TRACKED],
    len: usize,
}

impl Chunks {
    const EMPTY: Chunks = Chunks {
        ranges: [(0, 0); TRACKED],
        len: 0,
    };

    fn add(&mut self, start: usize, end: usize) {
        if self.len < TRACKED {
            self.ranges[self.len] = (start, end);
            compiler_fence(Ordering::SeqCst);
            self.len += 1;
        }
    }

    fn contains(&self, p: usize) -> bool {
        self.ranges[..self.len].iter().any(|&(a, b)| p.wrapping_sub(a) < b - a)
    }
}

#[derive(Clone, Copy)]
struct Class {
    /// The last block freed (its first word links the one before), or null.
    free: *mut u8,
    /// What is left of the class's current run.
    next: usize,
    end: usize,
}

struct State {
    classes: [Class; CLASSES],
    chunk_next: usize,
    chunk_end: usize,
    /// The chunks this process mapped.
    own: Chunks,
    /// Its ancestors' (in a fork child): their blocks are never written.
    ancestors: Chunks,
}

// SAFETY: the raw pointers are only reached under the lock.
unsafe impl Send for State {}

static HEAP: Locked<State> = Locked::new(State {
    classes: [Class {
        free: std::ptr::null_mut(),
        next: 0,
        end: 0,
    }; CLASSES],
    chunk_next: 0,
    chunk_end: 0,
    own: Chunks::EMPTY,
    ancestors: Chunks::EMPTY,
});

/// The class of a request, or None when it is a mapping of its own.
fn class_of(size: usize, align: usize) -> Option<usize> {
    if align > PAGE {
        return None;
    }
    let size = size.max(align).max(1 << MIN_SHIFT);
    let shift = size.checked_next_power_of_two()?.trailing_zeros();
    (shift <= MAX_SHIFT).then(|| (shift - MIN_SHIFT) as usize)
}

fn block_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

fn map(len: usize) -> Option<usize> {
    // SAFETY: a new private anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as usize)
}

fn round_to_page(n: usize) -> Option<usize> {
    Some(n.checked_add(PAGE - 1)? & !(PAGE - 1))
}

impl State {
    /// A page-aligned run of `len` bytes (a multiple of the page).
    fn take_run(&mut self, len: usize) -> Option<usize> {
        if self.chunk_end - self.chunk_next < len {
            let size = CHUNK.max(len);
            let start = map(size)?;
            self.own.add(start, start + size);
            // Empty first, so that a child forked midway sees no chunk.
            self.chunk_end = 0;
            compiler_fence(Ordering::SeqCst);
            self.chunk_next = start;
            compiler_fence(Ordering::SeqCst);
            self.chunk_end = start + size;
        }
        let at = self.chunk_next;
        self.chunk_next = at + len;
        Some(at)
    }

    fn alloc(&mut self, class: usize) -> *mut u8 {
        let size = block_size(class);
        let c = self.classes[class];
        if !c.free.is_null() {
            // SAFETY: a block on the list holds the link to the one before.
            self.classes[class].free = unsafe { *(c.free as *mut *mut u8) };
            return c.free;
        }
        if c.end - c.next < size {
            let len = RUN.max(size);
            let Some(run) = self.take_run(len) else {
                return std::ptr::null_mut();
            };
            let c = &mut self.classes[class];
            c.end = 0;
            compiler_fence(Ordering::SeqCst);
            c.next = run;
            compiler_fence(Ordering::SeqCst);
            c.end = run + len;
        }
        let c = &mut self.classes[class];
        let p = c.next;
        c.next = p + size;
        p as *mut u8
    }

    /// # Safety
    /// `p` is a block of `class` from [`State::alloc`], no longer used.
    unsafe fn free(&mut self, p: *mut u8, class: usize) {
        if self.ancestors.contains(p as usize) {
            return;
        }
        *(p as *mut *mut u8) = self.classes[class].free;
        compiler_fence(Ordering::SeqCst);
        self.classes[class].free = p;
    }
}

/// `size` bytes aligned to `align` (a power of two), or null.
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    match class_of(size, align) {
        Some(class) => HEAP.with(|h| h.alloc(class)),
        None => map_large(size, align).map_or(std::ptr::null_mut(), |p| p as *mut u8),
    }
}

/// Like [`alloc`], the bytes zeroed: a mapping of its own is already.
pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    let p = alloc(size, align);
    if !p.is_null() && class_of(size, align).is_some() {
        // SAFETY: `p` has room for `size` bytes.
        unsafe { p.write_bytes(0, size) };
    }
    p
}

/// # Safety
/// `p` came from this heap with the same `size` and `align`.
pub unsafe fn dealloc(p: *mut u8, size: usize, align: usize) {
    match class_of(size, align) {
        Some(class) => HEAP.with(|h| h.free(p, class)),
        None => unmap_large(p, size),
    }
}

/// # Safety
/// `p` came from this heap with `size` and `align`; on success it is
/// gone and the result holds its first `min(size, new_size)` bytes.
pub unsafe fn realloc(p: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8 {
    let (old, new) = (class_of(size, align), class_of(new_size, align));
    if old.is_some() && old == new {
        return p;
    }
    if old.is_none() && new.is_none() && align <= PAGE {
        let (Some(from), Some(to)) = (round_to_page(size), round_to_page(new_size)) else {
            return std::ptr::null_mut();
        };
        let q = libc::mremap(p.cast(), from, to, libc::MREMAP_MAYMOVE);
        return if q == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            q.cast()
        };
    }
    let q = alloc(new_size, align);
    if !q.is_null() {
        std::ptr::copy_nonoverlapping(p, q, size.min(new_size));
        dealloc(p, size, align);
    }
    q
}

/// A mapping of its own for a large block (or a large alignment): the
/// pages past the block's end, and before its aligned start, are returned.
fn map_large(size: usize, align: usize) -> Option<usize> {
    let len = round_to_page(size.max(1))?;
    if align <= PAGE {
        return map(len);
    }
    let start = map(len.checked_add(align)?)?;
    let at = (start + align - 1) & !(align - 1);
    // SAFETY: both ranges are parts of the mapping just made, unused.
    unsafe {
        if at > start {
            libc::munmap(start as *mut _, at - start);
        }
        let tail = start + len + align - (at + len);
        if tail > 0 {
            libc::munmap((at + len) as *mut _, tail);
        }
    }
    Some(at)
}

/// # Safety
/// `p` came from [`map_large`] with `size` (its length past the alignment
/// was returned there).
unsafe fn unmap_large(p: *mut u8, size: usize) {
    if let Some(len) = round_to_page(size.max(1)) {
        libc::munmap(p.cast(), len);
    }
}

/// In a `fork()` child, before memscope's code there allocates or frees:
/// the lock's holder, if another thread of the parent, is not here; and
/// what the parent mapped becomes the ancestors', never written again.
pub fn reset_in_child() {
    HEAP.reset_in_child();
    HEAP.with(|h| {
        let own = h.own;
        for &(a, b) in &own.ranges[..own.len] {
            h.ancestors.add(a, b);
        }
        h.own = Chunks::EMPTY;
        h.chunk_end = 0;
        h.chunk_next = 0;
        for c in &mut h.classes {
            *c = Class {
                free: std::ptr::null_mut(),
                next: 0,
                end: 0,
            };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_apart_and_recycled_by_class() {
        let mut blocks = Vec::new();
        for (size, align) in [
            (1, 1),
            (16, 16),
            (24, 8),
            (100, 64),
            (4000, 16),
            (5000, 4096),
            (200_000, 16),
        ] {
            let p = alloc(size, align);
            assert!(!p.is_null());
            assert_eq!(p as usize % align.max(16), 0, "{size} aligned to {align}");
            // SAFETY: `p` has room for `size` bytes.
            unsafe { p.write_bytes(0xa5, size) };
            blocks.push((p, size, align));
        }
        for (i, &(p, size, _)) in blocks.iter().enumerate() {
            for &(q, qsize, _) in &blocks[i + 1..] {
                let (a, b) = (p as usize, q as usize);
                assert!(a + size <= b || b + qsize <= a, "blocks overlap");
            }
        }
        // A freed block is the next one of its class.
        let (p, size, align) = blocks[3];
        // SAFETY: from alloc with these parameters, unused from here.
        unsafe { dealloc(p, size, align) };
        assert_eq!(alloc(120, 16), p, "the class's last freed block comes first");
        let z = alloc_zeroed(120, 16);
        // SAFETY: 120 bytes were asked for.
        assert!(unsafe { std::slice::from_raw_parts(z, 120) }.iter().all(|&b| b == 0));
    }

    #[test]
    fn large_blocks_are_mappings_that_grow_in_place_or_move_with_their_bytes() {
        let p = alloc_zeroed(1 << 20, 16);
        assert_eq!(p as usize % PAGE, 0);
        // SAFETY: 1 MiB was asked for; it grows to 8 MiB, then shrinks.
        unsafe {
            assert!(std::slice::from_raw_parts(p, 1 << 20).iter().all(|&b| b == 0));
            p.write_bytes(7, 1 << 20);
            let q = realloc(p, 1 << 20, 16, 8 << 20);
            assert!(!q.is_null());
            assert!(std::slice::from_raw_parts(q, 1 << 20).iter().all(|&b| b == 7));
            q.add(8 << 20).sub(1).write(1);
            let r = realloc(q, 8 << 20, 16, 100);
            assert!(std::slice::from_raw_parts(r, 100).iter().all(|&b| b == 7));
            dealloc(r, 100, 16);
        }
        let a = alloc(10_000, 1 << 16);
        assert_eq!(a as usize % (1 << 16), 0);
        // SAFETY: as asked.
        unsafe {
            a.write_bytes(1, 10_000);
            dealloc(a, 10_000, 1 << 16);
        }
    }

    #[test]
    fn after_a_fork_the_parents_blocks_are_never_handed_out_or_written() {
        // In a child process: the state is the process's.
        // SAFETY: fork in a test process; the child only runs the checks
        // below and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                let before: Vec<*mut u8> = (0..64).map(|_| alloc(48, 16)).collect();
                for &p in &before[..32] {
                    // SAFETY: from alloc(48, 16), unused from here.
                    unsafe { dealloc(p, 48, 16) };
                }
                reset_in_child();
                // The parent's last freed blocks are not handed out again…
                let after: Vec<*mut u8> = (0..64).map(|_| alloc(48, 16)).collect();
                assert!(after.iter().all(|p| !before.contains(p)));
                // …and freeing one of its blocks leaves its bytes alone.
                let kept = before[40];
                // SAFETY: 48 bytes of ours; freed after the write.
                unsafe {
                    kept.write_bytes(0x5a, 48);
                    dealloc(kept, 48, 16);
                    assert!(std::slice::from_raw_parts(kept, 48).iter().all(|&b| b == 0x5a));
                }
                assert_ne!(alloc(48, 16), kept);
                // A block of its own is recycled as before.
                let mine = after[0];
                // SAFETY: from alloc(48, 16), unused from here.
                unsafe { dealloc(mine, 48, 16) };
                assert_eq!(alloc(48, 16), mine);
            })
            .is_ok();
            // SAFETY: leaving the forked test process at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child's checks: {status}"
        );
    }

    #[test]
    fn threads_allocating_at_once_get_distinct_blocks() {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..20_000usize {
                        let size = 16 << (i % 6);
                        let p = alloc(size, 16);
                        // SAFETY: `size` bytes, ours alone until freed.
                        unsafe { p.write_bytes(t as u8, size) };
                        mine.push((p, size));
                        if i % 3 == 0 {
                            let (q, s) = mine.swap_remove(i % mine.len());
                            // SAFETY: still holds this thread's byte, then freed.
                            unsafe {
                                assert!(std::slice::from_raw_parts(q, s).iter().all(|&b| b == t as u8));
                                dealloc(q, s, 16);
                            }
                        }
                    }
                    for (q, s) in mine {
                        // SAFETY: as above.
                        unsafe {
                            assert!(std::slice::from_raw_parts(q, s).iter().all(|&b| b == t as u8));
                            dealloc(q, s, 16);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
