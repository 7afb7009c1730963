//! The hot path: what a hook calls after each allocation and before each
//! free. It appends a fixed-size event to the calling thread's ring —
//! `reserve → rdtsc → four stores` — and nothing else; the consumer
//! ([`crate::consumer`]) turns events into lifetimes and aggregates.
//!
//! The slow paths are here too, out of line: a thread's first event (its
//! ring), a filled small ring (a big one), a quarter ring (nudge or relieve
//! the collector; poll for requests in a thread-less image) and a full ring
//! (make room: an event is never dropped for lack of room).

use crate::clock;
use crate::collector_thread;
use crate::consumer::{state, Mode, ENGINE};
use crate::event::{Kind, OneSlotRealloc};
use crate::image::UNRECORDABLE;
use crate::image::{ENABLED, SHUT_DOWN};
use crate::registry;
use crate::ring::{Ring, BIG_SHIFT, SMALL_SHIFT};
use crate::sys;
use crate::thread;
use std::sync::atomic::Ordering;

/// Records a one-slot event on the calling thread.
#[inline(always)]
pub fn record(kind: Kind, ptr: usize, size: usize, site: u64) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let ts = thread::current();
    let Some(r) = ring_of(ts) else { return };
    let h = r.reserve(1, wait_for_space);
    r.publish(h, clock::now(), ptr as u64, site, size as u64, kind);
    if r.at_quarter(h) {
        quarter_checkpoint(r, h);
    }
    if r.upgrade_wanted() {
        upgrade(ts, r);
    }
}

/// Records a successful `realloc(old, size)` that returned `new`: one slot
/// ([`OneSlotRealloc`]), or where the addresses do not fit it two slots with
/// one timestamp, reserved together so nothing comes between them.
#[inline(always)]
pub fn record_realloc(old: usize, new: usize, size: usize, site: u64) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let Some((ptr, aux)) = OneSlotRealloc::pack(old as u64, new as u64, site) else {
        return record_realloc_in_two(old, new, size, site);
    };
    record(Kind::ReallocOne, ptr as usize, size, aux);
}

#[cold]
#[inline(never)]
fn record_realloc_in_two(old: usize, new: usize, size: usize, site: u64) {
    let ts = thread::current();
    let Some(r) = ring_of(ts) else { return };
    let h = r.reserve(2, wait_for_space);
    let now = clock::now();
    r.publish(h, now, old as u64, 0, 0, Kind::ReallocFrom);
    r.publish(h + 1, now, new as u64, site, size as u64, Kind::ReallocTo);
    if r.at_quarter(h) || r.at_quarter(h + 1) {
        quarter_checkpoint(r, h + 1);
    }
    if r.upgrade_wanted() {
        upgrade(ts, r);
    }
}

/// The calling thread's ring, or `None` while memscope's own code runs on
/// this thread (or no ring could be had).
#[inline(always)]
fn ring_of(ts: &thread::ThreadState) -> Option<&'static Ring> {
    if ts.guard.get() != 0 {
        return None;
    }
    let r = ts.ring.get();
    if !r.is_null() {
        // SAFETY: rings are never unmapped.
        return Some(unsafe { &*r });
    }
    attach(ts)
}

#[cold]
#[inline(never)]
fn attach(ts: &thread::ThreadState) -> Option<&'static Ring> {
    let _g = thread::Guard::enter();
    if crate::select::skipped() {
        // A skipped image (MEMSCOPE_ONLY/SKIP): hooks only forward from now on.
        ENABLED.store(false, Ordering::Relaxed);
        return None;
    }
    match registry::claim(sys::gettid(), &sys::thread_name(), SMALL_SHIFT) {
        Some(r) => {
            ts.ring.set(r);
            note_name_at_exit(r);
            // A second thread's first event starts the collector.
            collector_thread::ensure_if_threaded();
            Some(r)
        }
        None => {
            UNRECORDABLE.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A thread may name itself after its first allocation: its ring's name is
/// taken again when it exits (a pthread key destructor), before the
/// collector can see the thread gone and recycle the ring.
fn note_name_at_exit(ring: &'static Ring) {
    static KEY: std::sync::OnceLock<libc::pthread_key_t> = std::sync::OnceLock::new();
    extern "C" fn at_exit(ring: *mut libc::c_void) {
        // SAFETY: the value is a ring, and rings are never unmapped.
        if let Some(r) = unsafe { (ring as *const Ring).as_ref() } {
            r.set_name(&sys::thread_name());
        }
    }
    let key = *KEY.get_or_init(|| {
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: plain key creation with a C destructor.
        unsafe { libc::pthread_key_create(&mut k, Some(at_exit)) };
        k
    });
    // SAFETY: a valid key; the value outlives the thread (never unmapped).
    unsafe { libc::pthread_setspecific(key, ring as *const Ring as *const libc::c_void) };
}

/// Moves the calling thread from its small ring, which it filled, to a big
/// one (if the big-ring budget allows); the old ring is drained and recycled.
#[cold]
#[inline(never)]
fn upgrade(ts: &thread::ThreadState, old: &'static Ring) {
    old.want_upgrade(false);
    let _g = thread::Guard::enter();
    if let Some(big) = registry::claim(sys::gettid(), &sys::thread_name(), BIG_SHIFT) {
        ts.ring.set(big);
        note_name_at_exit(big);
        registry::retire(old);
    }
}

/// Every quarter ring: if the collector is more than half a ring behind —
/// it is starved of CPU, typically because the program keeps every core
/// busy — this thread drains instead of running on until it has to sleep on
/// a full ring; if it is more than a quarter behind, it wakes a sleeping
/// collector. A collector that keeps up is left to its own timer (it
/// wakes every millisecond while there is work): a wake-up is a system
/// call, and in a VM an inter-processor interrupt. Waking it at every
/// quarter ring cost alloc_bench (1 thread, 4 M iterations) ~1,200 context
/// switches per run, now ~280.
#[cold]
#[inline(never)]
fn quarter_checkpoint(r: &Ring, h: u64) {
    if !collector_thread::running() {
        collector_thread::poll_without_thread();
    }
    let backlog = r.backlog(h);
    if backlog > r.capacity() / 2 {
        let _g = thread::Guard::enter();
        // This thread's stack may be small (see crate::alt_stack).
        let drained = crate::alt_stack::with_room(|| ENGINE.try_with(|st| state(st).drain(Mode::Running)));
        if drained.is_some() {
            return;
        }
    }
    if backlog > r.capacity() / 4 && collector_thread::sleeping() {
        collector_thread::wake();
    }
}

/// Called while the caller's ring is full: get the consumer to make room.
/// False once nothing consumes any more (see [`SHUT_DOWN`]).
#[cold]
#[inline(never)]
fn wait_for_space(ring: &Ring) -> bool {
    if SHUT_DOWN.load(Ordering::Acquire) {
        return false;
    }
    if ring.shift() < BIG_SHIFT {
        // A thread this busy gets a big ring after the current event.
        ring.want_upgrade(true);
    }
    let _g = thread::Guard::enter();
    if !collector_thread::running() || crate::running::busy() {
        // No collector thread in this process (yet), or it is taking a
        // running snapshot: drain here.
        let drained = crate::alt_stack::with_room(|| ENGINE.try_with(|st| state(st).drain(Mode::Running)));
        if drained.is_none() {
            sys::sleep_ns(20_000);
        }
        return true;
    }
    collector_thread::wake();
    ring.waiters.fetch_add(1, Ordering::SeqCst);
    let seen = ring.consumed_word().load(Ordering::SeqCst);
    sys::futex_wait_u64(ring.consumed_word(), seen as u32, 2_000_000);
    ring.waiters.fetch_sub(1, Ordering::SeqCst);
    true
}
