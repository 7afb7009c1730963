//! Fresh memory for memscope's own allocations in a `fork()` child.
//!
//! A fork child shares every page of its parent's heap copy-on-write. When
//! memscope's code in the child allocates through `malloc` — adopting the
//! parent's rings, the child's own call sites, the snapshot it writes at
//! `exec` or exit — malloc walks and rewrites free chunks scattered over
//! that heap, and each page it writes is copied first: a shell's subshell
//! that allocates nothing itself took ~45 such faults (~2 µs each here) of
//! the ~120 that tracing added to its ~50.
//!
//! So a fork child serves memscope's allocations from a bump region of its
//! own instead: one anonymous reservation made in the first fork child of a
//! lineage and inherited by every later one, each child starting past the
//! part its ancestors used (pages no process touched are fresh zero pages,
//! never copies). Frees of this memory are no-ops, so each child's share is
//! bounded ([`CHILD_SHARE`]); past it — a forked worker that runs on, or a
//! child sixteen generations down — the allocations go to `malloc` again.
//! Only memscope's own allocations come here (the preload library's global
//! allocator asks [`alloc`]); the program's never do.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The lineage's reservation: pages exist once touched, and it is kept
/// small because a system with strict overcommit accounting
/// (`vm.overcommit_memory=2`) charges it whole, `MAP_NORESERVE` or not.
/// Sixteen generations of fork children take their share of it.
const RESERVED: usize = 16 << 20;
/// What one fork child may take from it: a shell's child that writes its
/// snapshot at `exec` or exit uses ~40-500 KB.
const CHILD_SHARE: usize = 1 << 20;

/// Start of the reservation, 0 while there is none.
static BASE: AtomicUsize = AtomicUsize::new(0);
/// The next free byte, and the end of this process's share (0: no share,
/// the process is not a fork child or its share is used up).
static NEXT: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);

/// In a fork child, before memscope's code allocates: gives this process
/// its share, past everything its ancestors took.
pub fn fork_child() {
    let mut base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RESERVED,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return;
        }
        base = p as usize;
        BASE.store(base, Ordering::Relaxed);
        NEXT.store(base, Ordering::Relaxed);
    }
    // The parent's share ends where its next byte is, or its own end.
    let page = 4096;
    let start = (NEXT.load(Ordering::Relaxed).max(base) + page - 1) & !(page - 1);
    let end = (start + CHILD_SHARE).min(base + RESERVED);
    NEXT.store(start, Ordering::Relaxed);
    END.store(if start < end { end } else { 0 }, Ordering::Release);
}

/// `size` bytes aligned to `align` (a power of two) from this process's
/// share, or None (not a fork child, or its share is used up).
#[inline]
pub fn alloc(size: usize, align: usize) -> Option<*mut u8> {
    let end = END.load(Ordering::Acquire);
    if end == 0 {
        return None;
    }
    let mut next = NEXT.load(Ordering::Relaxed);
    loop {
        let at = next.checked_add(align - 1)? & !(align - 1);
        let to = at.checked_add(size)?;
        if to > end {
            return None;
        }
        match NEXT.compare_exchange_weak(next, to, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(at as *mut u8),
            Err(seen) => next = seen,
        }
    }
}

/// Resizes the block at `p` of `old` bytes to `new` bytes where it is, when
/// it is the last one handed out and the share has room: a buffer that
/// grows by doubling (the snapshot's JSON) then neither copies itself nor
/// leaves its old pages behind, each page touched once. False otherwise
/// (the caller allocates anew and copies).
#[inline]
pub fn resize_last(p: *mut u8, old: usize, new: usize) -> bool {
    let end = END.load(Ordering::Acquire);
    let (Some(old_to), Some(new_to)) = ((p as usize).checked_add(old), (p as usize).checked_add(new)) else {
        return false;
    };
    end != 0
        && contains(p)
        && new_to <= end
        && NEXT
            .compare_exchange(old_to, new_to, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// True when `p` came from [`alloc`] (in this process or an ancestor):
/// freeing it is a no-op.
#[inline]
pub fn contains(p: *mut u8) -> bool {
    let base = BASE.load(Ordering::Relaxed);
    base != 0 && (p as usize).wrapping_sub(base) < RESERVED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_child_gets_aligned_fresh_memory_past_its_ancestors_and_none_past_its_share() {
        // One test: the state is the process's.
        assert!(alloc(16, 16).is_none(), "not a fork child yet");
        fork_child();
        let a = alloc(24, 8).unwrap();
        let b = alloc(100, 64).unwrap();
        assert!(contains(a) && contains(b));
        assert_eq!(b as usize % 64, 0);
        assert!(b as usize >= a as usize + 24);
        // SAFETY: both are fresh writable memory of the sizes asked.
        unsafe {
            a.write_bytes(1, 24);
            b.write_bytes(2, 100);
        }
        // A grandchild starts on a new page past everything taken so far.
        fork_child();
        let c = alloc(8, 8).unwrap();
        assert_eq!(c as usize % 4096, 0);
        assert!(c as usize > b as usize + 100);
        // The last block grows and shrinks where it is; an earlier one not.
        let d = alloc(100, 16).unwrap();
        assert!(resize_last(d, 100, 5000));
        assert!(resize_last(d, 5000, 64));
        assert_eq!(alloc(8, 8).unwrap() as usize, d as usize + 64);
        assert!(!resize_last(d, 64, 128), "no longer the last");
        assert!(!resize_last(c, 8, CHILD_SHARE), "past the share");
        assert!(alloc(CHILD_SHARE, 8).is_none(), "past the share");
        assert!(alloc(64, 8).is_some(), "what fits still comes");
        let mut x = 0u8;
        assert!(!contains(&mut x));
    }
}
