//! Per-thread event rings: the only thing the hot path writes to.
//!
//! Each thread owns one [`Ring`] (a fixed array of 32-byte [`Slot`]s in its
//! own `mmap`), and the collector is the single consumer of every ring.
//!
//! Producer: reserve slot numbers with a *non-locked* `xadd` on the ring's own
//! cache line (atomic with respect to a signal handler interrupting the hook on
//! the same thread, which is the only other producer a ring can have), wait if
//! the ring is full (backpressure: an event is never dropped), take the
//! timestamp, fill the slot and publish it by storing its `meta` word last.
//!
//! Consumer: a slot is ready when its `meta` carries the lap tag expected for
//! the consumer's position, so slots never need clearing and the consumer
//! writes nothing but its `consumed` counter (in batches). A reserved but not
//! yet published slot tells the consumer a hook is in flight on that thread.

use crate::event::{Kind, RawEvent};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// A new thread's ring: 8192 slots (256 KiB, touched lazily).
pub const SMALL_SHIFT: u32 = 13;
/// The ring of a thread that filled its small one: 131072 slots (4 MiB).
/// Measured here: with rings larger than the consumer's L2 cache, a
/// producer no longer finds the line it rewrites a lap later still held by
/// the consumer's core, which cut the traced cost of a malloc+free pair from
/// 37 ns to 25 ns.
pub const BIG_SHIFT: u32 = 17;

/// Ring states (CLAIMING = 2 is private to the registry).
pub const FREE: u32 = 0;
pub const OWNED: u32 = 1;
/// Left by its owner for a bigger ring; released once drained.
pub const RETIRED: u32 = 3;

/// One event. All fields are atomics so that both sides use plain loads and
/// stores; only `meta` needs ordering (release on publish, acquire on read).
#[repr(C, align(32))]
pub struct Slot {
    ts: AtomicU64,
    ptr: AtomicU64,
    aux: AtomicU64,
    /// size (48 bits) | kind (8 bits) | lap tag (8 bits).
    meta: AtomicU64,
}

#[repr(C, align(128))]
struct ProducerLine {
    reserved: AtomicU64,
    /// `consumed + capacity` as last seen by the producer.
    limit: AtomicU64,
    /// Capacity - 1 (immutable; a copy per side keeps lines unshared).
    mask: u64,
    shift: u32,
    /// Set when the owner should move to a bigger ring after this event.
    upgrade: AtomicBool,
}

#[repr(C, align(128))]
struct ConsumerLine {
    consumed: AtomicU64,
    mask: u64,
    shift: u32,
}

/// A ring and its bookkeeping. Lives in its own anonymous mapping and is never
/// unmapped: rings are recycled when their thread has exited.
#[repr(C)]
pub struct Ring {
    prod: ProducerLine,
    cons: ConsumerLine,
    /// [`FREE`], [`OWNED`] or [`RETIRED`].
    pub state: AtomicU32,
    /// Kernel thread id of the owner.
    pub tid: AtomicU32,
    /// Bumped each time the ring changes owner, so the collector notices.
    pub generation: AtomicU32,
    /// Producers waiting for space (the collector wakes them).
    pub waiters: AtomicU32,
    /// Thread name (`comm`), NUL padded.
    pub name: [AtomicU64; 2],
    /// Next ring in the global registry list.
    pub next: AtomicPtr<Ring>,
    /// The owner thread's recent stack walks (see [`OwnerMemo`]).
    pub memo: OwnerMemo,
    // The slots follow the header in the same mapping.
}

/// A thread's memo of recent stack walks ([`crate::unwind::memo`]), kept in
/// its ring's mapping rather than in thread-local storage: 13 KiB of static
/// TLS came out of every thread's stack, and glibc refuses a thread whose
/// stack cannot hold the static TLS blocks — `pthread_create` with a
/// `PTHREAD_STACK_MIN` (16 KiB) stack failed with EINVAL under memscope.
/// Only the ring's owner touches it (the collector never does); a ring
/// that changes owner has it cleared ([`Ring::claimed`]).
#[repr(C, align(64))]
pub struct OwnerMemo(pub crate::unwind::memo::Memo);

// SAFETY: only the thread that owns the ring reads or writes the memo
// (its hooks, through `thread::current().ring`); no other thread does.
unsafe impl Sync for OwnerMemo {}

/// What the consumer finds at its position.
pub enum Peek {
    Ready(RawEvent),
    /// Reserved by a producer that has not published it yet.
    InFlight,
    /// Nothing reserved beyond the consumer.
    Empty,
}

#[inline(always)]
fn lap_tag(seq: u64, shift: u32) -> u64 {
    // Never 0, so a fresh (zeroed) slot never looks published; differs from
    // the tag one lap earlier.
    ((seq >> shift) & 0x7f) + 1
}

#[inline(always)]
fn pack_meta(size: u64, kind: Kind, tag: u64) -> u64 {
    (size.min((1 << 48) - 1)) | ((kind as u64) << 48) | (tag << 56)
}

/// `xadd` without the `lock` prefix: atomic against a signal handler on the
/// same CPU (interrupts land between instructions), which is all a ring owned
/// by one thread needs, and several times cheaper than a locked add.
#[inline(always)]
fn reserve_on_owner_thread(cell: &AtomicU64, n: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut v = n;
        // SAFETY: `cell` is a valid, aligned u64; the only concurrent writers
        // are on this same thread (signal handlers), and readers on other
        // threads only load it (an aligned 8-byte store is single-copy atomic).
        unsafe {
            std::arch::asm!(
                "xadd qword ptr [{p}], {v}",
                p = in(reg) cell.as_ptr(),
                v = inout(reg) v,
                options(nostack)
            );
        }
        v
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        cell.fetch_add(n, Ordering::Relaxed)
    }
}

impl Ring {
    /// Maps a new, zeroed ring of `1 << shift` slots. `None` if the kernel
    /// refuses the mapping.
    pub fn map_new(shift: u32) -> Option<NonNull<Ring>> {
        let len = std::mem::size_of::<Ring>() + (std::mem::size_of::<Slot>() << shift);
        // SAFETY: anonymous private mapping; all-zero bytes are a valid Ring
        // header and valid slots (every field is an atomic or plain integer).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let ring = p.cast::<Ring>();
        // SAFETY: fresh mapping, not shared with anyone yet.
        unsafe {
            let mask = (1u64 << shift) - 1;
            (*ring).prod.mask = mask;
            (*ring).prod.shift = shift;
            (*ring).cons.mask = mask;
            (*ring).cons.shift = shift;
            (*ring).prod.limit.store(1 << shift, Ordering::Relaxed);
        }
        NonNull::new(ring)
    }

    /// Called by a thread that has just claimed this ring: a walk memoized
    /// by its previous owner is not kept (its stack may have been another).
    pub fn claimed(&self) {
        self.memo.0.clear();
    }

    /// log2 of the capacity.
    pub fn shift(&self) -> u32 {
        self.cons.shift
    }

    #[inline(always)]
    fn slot(&self, seq: u64, mask: u64) -> &Slot {
        // SAFETY: the slots follow the header in the ring's mapping and
        // `seq & mask` is below the capacity it was mapped with.
        unsafe { &*(self as *const Ring).add(1).cast::<Slot>().add((seq & mask) as usize) }
    }

    /// Reserves `n` consecutive slots (1 or 2) for the owner thread and
    /// returns the first sequence number. `wait` is called while the ring is
    /// full; it must make the consumer progress, or return false when no
    /// consumer will ever read again (the slots are then simply reused).
    #[inline(always)]
    pub fn reserve(&self, n: u64, mut wait: impl FnMut(&Ring) -> bool) -> u64 {
        let h = reserve_on_owner_thread(&self.prod.reserved, n);
        if h + n > self.prod.limit.load(Ordering::Relaxed) {
            self.wait_for_space(h + n, &mut wait);
        }
        h
    }

    #[cold]
    #[inline(never)]
    fn wait_for_space(&self, end: u64, wait: &mut dyn FnMut(&Ring) -> bool) {
        loop {
            let limit = self.cons.consumed.load(Ordering::Acquire) + (self.prod.mask + 1);
            self.prod.limit.fetch_max(limit, Ordering::Relaxed);
            if end <= limit || !wait(self) {
                return;
            }
        }
    }

    /// Fills and publishes slot `seq`.
    #[inline(always)]
    pub fn publish(&self, seq: u64, ts: u64, ptr: u64, aux: u64, size: u64, kind: Kind) {
        let s = self.slot(seq, self.prod.mask);
        s.ts.store(ts, Ordering::Relaxed);
        s.ptr.store(ptr, Ordering::Relaxed);
        s.aux.store(aux, Ordering::Relaxed);
        s.meta
            .store(pack_meta(size, kind, lap_tag(seq, self.prod.shift)), Ordering::Release);
    }

    /// True when `seq` starts a new quarter of the ring (the producer then
    /// nudges a sleeping consumer).
    #[inline(always)]
    pub fn at_quarter(&self, seq: u64) -> bool {
        seq & (self.prod.mask >> 2) == 0
    }

    /// Events the consumer has not read yet, as far as the producer knows
    /// (reads the consumer's counter: call it rarely).
    pub fn backlog(&self, seq: u64) -> u64 {
        let consumed = self.cons.consumed.load(Ordering::Acquire);
        self.prod
            .limit
            .fetch_max(consumed + (self.prod.mask + 1), Ordering::Relaxed);
        seq.saturating_sub(consumed)
    }

    /// Capacity in slots.
    pub fn capacity(&self) -> u64 {
        self.prod.mask + 1
    }

    /// True when the owner has been asked to move to a bigger ring.
    #[inline(always)]
    pub fn upgrade_wanted(&self) -> bool {
        self.prod.upgrade.load(Ordering::Relaxed)
    }

    /// Asks the owner to move to a bigger ring after its current event.
    pub fn want_upgrade(&self, yes: bool) {
        self.prod.upgrade.store(yes, Ordering::Relaxed);
    }

    // ---- consumer side (the collector, under the engine lock) ----

    /// Sequence number of the next slot the consumer will read.
    pub fn consumed(&self) -> u64 {
        self.cons.consumed.load(Ordering::Relaxed)
    }

    /// Number of slots reserved so far.
    pub fn reserved(&self) -> u64 {
        self.prod.reserved.load(Ordering::Acquire)
    }

    /// Looks at slot `seq` (>= consumed()). `reserved` is a recent value of
    /// [`Ring::reserved`]: reading the producer's counter on every peek would
    /// pull its cache line away from it on every event.
    pub fn peek(&self, seq: u64, reserved: u64) -> Peek {
        let s = self.slot(seq, self.cons.mask);
        let meta = s.meta.load(Ordering::Acquire);
        if meta >> 56 == lap_tag(seq, self.cons.shift) {
            return match RawEvent::decode(
                s.ts.load(Ordering::Relaxed),
                s.ptr.load(Ordering::Relaxed),
                s.aux.load(Ordering::Relaxed),
                meta,
            ) {
                Some(ev) => Peek::Ready(ev),
                // A kind this build does not know cannot be written by it.
                None => Peek::InFlight,
            };
        }
        if seq < reserved {
            Peek::InFlight
        } else {
            Peek::Empty
        }
    }

    /// Tells producers that every slot before `seq` may be reused.
    pub fn release_until(&self, seq: u64) {
        self.cons.consumed.store(seq, Ordering::Release);
        if self.waiters.load(Ordering::Acquire) != 0 {
            crate::sys::futex_wake_all(&self.cons.consumed);
        }
    }

    /// Address of the consumed counter, for producers to sleep on.
    pub fn consumed_word(&self) -> &AtomicU64 {
        &self.cons.consumed
    }

    /// Sets the stored thread name.
    pub fn set_name(&self, name: &[u8; 16]) {
        let a = u64::from_ne_bytes(name[0..8].try_into().unwrap_or([0; 8]));
        let b = u64::from_ne_bytes(name[8..16].try_into().unwrap_or([0; 8]));
        self.name[0].store(a, Ordering::Relaxed);
        self.name[1].store(b, Ordering::Relaxed);
    }

    pub fn name(&self) -> String {
        let mut bytes = [0u8; 16];
        bytes[0..8].copy_from_slice(&self.name[0].load(Ordering::Relaxed).to_ne_bytes());
        bytes[8..16].copy_from_slice(&self.name[1].load(Ordering::Relaxed).to_ne_bytes());
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Mapped(NonNull<Ring>);
    unsafe impl Send for Mapped {}
    unsafe impl Sync for Mapped {}
    impl Mapped {
        fn ring(&self) -> &Ring {
            unsafe { self.0.as_ref() }
        }
    }

    fn drain(r: &Ring, out: &mut Vec<RawEvent>) -> bool {
        let mut c = r.consumed();
        loop {
            match r.peek(c, r.reserved()) {
                Peek::Ready(ev) => {
                    out.push(ev);
                    c += 1;
                }
                Peek::InFlight => {
                    r.release_until(c);
                    return true;
                }
                Peek::Empty => {
                    r.release_until(c);
                    return false;
                }
            }
        }
    }

    #[test]
    fn events_come_out_in_order_across_many_laps_with_backpressure() {
        let m = Arc::new(Mapped(Ring::map_new(SMALL_SHIFT).unwrap()));
        let total = (5 << SMALL_SHIFT) + 123;
        let prod = {
            let m = m.clone();
            std::thread::spawn(move || {
                let r = m.ring();
                for i in 0..total {
                    let h = r.reserve(1, |_| {
                        std::thread::yield_now();
                        true
                    });
                    r.publish(h, i + 1, i * 16, 7, i % 1000, Kind::Malloc);
                }
            })
        };
        let mut got = Vec::new();
        while (got.len() as u64) < total {
            drain(m.ring(), &mut got);
            std::thread::yield_now();
        }
        prod.join().unwrap();
        assert!(!drain(m.ring(), &mut got));
        assert_eq!(got.len() as u64, total);
        for (i, ev) in got.iter().enumerate() {
            let i = i as u64;
            assert_eq!((ev.ts, ev.ptr, ev.aux, ev.size), (i + 1, i * 16, 7, i % 1000));
            assert_eq!(ev.kind, Kind::Malloc);
        }
    }

    #[test]
    fn a_reserved_unpublished_slot_is_in_flight() {
        let m = Mapped(Ring::map_new(SMALL_SHIFT).unwrap());
        let r = m.ring();
        assert!(matches!(r.peek(0, r.reserved()), Peek::Empty));
        let h = r.reserve(2, |_| panic!("not full"));
        assert!(matches!(r.peek(0, r.reserved()), Peek::InFlight));
        r.publish(h, 5, 0x10, 0, 8, Kind::ReallocFrom);
        assert!(matches!(r.peek(0, r.reserved()), Peek::Ready(_)));
        assert!(matches!(r.peek(1, r.reserved()), Peek::InFlight));
        r.publish(h + 1, 5, 0x20, 0, 16, Kind::ReallocTo);
        match r.peek(1, r.reserved()) {
            Peek::Ready(ev) => assert_eq!((ev.kind, ev.ptr, ev.size), (Kind::ReallocTo, 0x20, 16)),
            _ => panic!("slot 1 not ready"),
        }
        assert!(matches!(r.peek(2, r.reserved()), Peek::Empty));
    }

    #[test]
    fn names_round_trip() {
        let m = Mapped(Ring::map_new(SMALL_SHIFT).unwrap());
        let mut n = [0u8; 16];
        n[..6].copy_from_slice(b"worker");
        m.ring().set_name(&n);
        assert_eq!(m.ring().name(), "worker");
    }
}
