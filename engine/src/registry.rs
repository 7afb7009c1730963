//! Every ring ever mapped, in one lock-free list. Rings are never unmapped:
//! when a thread has exited and its ring is drained, the collector marks the
//! ring FREE and the next new thread claims it.

use crate::ring::{Ring, BIG_SHIFT, FREE, OWNED, RETIRED};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Between FREE and OWNED while a new owner fills in its tid and name.
const CLAIMING: u32 = 2;

static HEAD: AtomicPtr<Ring> = AtomicPtr::new(ptr::null_mut());

/// Rings in the registry (the collector compares it with what it knows).
pub static COUNT: AtomicU32 = AtomicU32::new(0);
/// Big rings mapped so far, and how many may be.
static BIG: AtomicU32 = AtomicU32::new(0);
pub const MAX_BIG_RINGS: u32 = 16;

/// Iterates over every registered ring.
pub fn rings() -> impl Iterator<Item = &'static Ring> {
    let mut cur = HEAD.load(Ordering::Acquire);
    std::iter::from_fn(move || {
        // SAFETY: registered rings are never unmapped.
        let r = unsafe { cur.as_ref()? };
        cur = r.next.load(Ordering::Acquire);
        Some(r)
    })
}

/// Gives the calling thread (kernel id `tid`) a ring of `1 << shift` slots:
/// a recycled one if any is free, else a new mapping. `None` if `mmap` fails
/// or (for a big ring) the big-ring budget is spent.
pub fn claim(tid: u32, name: &[u8; 16], shift: u32) -> Option<&'static Ring> {
    let ring = match rings().find(|r| {
        r.shift() == shift
            && r.state
                .compare_exchange(FREE, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }) {
        Some(r) => r,
        None => {
            if shift == BIG_SHIFT && BIG.fetch_add(1, Ordering::Relaxed) >= MAX_BIG_RINGS {
                BIG.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
            // SAFETY: a fresh mapping that nothing else references yet.
            let r: &'static Ring = unsafe { Ring::map_new(shift)?.as_ref() };
            r.state.store(CLAIMING, Ordering::Relaxed);
            let mut head = HEAD.load(Ordering::Relaxed);
            loop {
                r.next.store(head, Ordering::Relaxed);
                match HEAD.compare_exchange_weak(
                    head,
                    r as *const Ring as *mut Ring,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(h) => head = h,
                }
            }
            COUNT.fetch_add(1, Ordering::Relaxed);
            r
        }
    };
    ring.claimed();
    ring.tid.store(tid, Ordering::Relaxed);
    // The previous owner's wish to move to a big ring is not the new one's.
    ring.want_upgrade(false);
    ring.set_name(name);
    ring.generation.fetch_add(1, Ordering::Relaxed);
    // Publishes tid, name and generation to the collector.
    ring.state.store(OWNED, Ordering::Release);
    Some(ring)
}

/// Returns a drained ring of a dead thread to the pool (collector only).
pub fn release(ring: &Ring) {
    ring.state.store(FREE, Ordering::Release);
}

/// Marks a ring its owner left for a bigger one: the collector drains it,
/// then releases it.
pub fn retire(ring: &Ring) {
    ring.state.store(RETIRED, Ordering::Release);
}
