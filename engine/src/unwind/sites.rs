//! Call-site ids: a stack (its return addresses) interned by hash, in the
//! hot path, without a lock.
//!
//! An open-addressing table maps the 64-bit hash of a stack to a dense id
//! (1, 2, …; 0 is "no backtrace"). The first thread to see a stack claims a
//! slot with one compare-and-swap, copies the frames into an append-only
//! store and publishes the id; everyone after it finds the id with a probe
//! or two. Nothing is ever removed, so readers need no lock, and a `fork`
//! in the middle of an insertion leaves nothing locked in the child.
//!
//! Three levels: a stack is first looked for in a small table (16 KiB: four
//! pages, enough for a shell's few hundred sites) and goes to a middle one
//! (512 KiB), then the big one (4 MiB), only when its few slots there are
//! all taken by other stacks. A short process's few dozen sites then touch
//! four pages instead of one fresh page each (measured: ~40 page faults
//! less per `ls`, ~9% of a traced shell loop; 12 more at 16 KiB than 64).
//! Slots are never freed, so a stack's place is the same for every thread:
//! either it sits in one of its small slots, or all of those hold other
//! stacks for good.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

const TABLE_BITS: u32 = 18;
const TABLE_SLOTS: usize = 1 << TABLE_BITS;
const SMALL_BITS: u32 = 10;
const SMALL_SLOTS: usize = 1 << SMALL_BITS;
const MID_BITS: u32 = 15;
/// Slots of the small table a stack may take before it goes to the big one.
const SMALL_PROBES: usize = 16;
/// Sites beyond this (75 % of the table) share id 0 ("too many call
/// sites"): counts stay exact, their stacks are not told apart.
pub const MAX_SITES: usize = TABLE_SLOTS / 4 * 3;
/// Words of frame storage (all sites' return addresses together).
const STORE_WORDS: usize = 1 << 24;
/// Frames kept of a stack: its length is stored in 8 bits (`offset << 8 |
/// length`, here and in [`super::mailbox`]).
pub(super) const MAX_STORED: usize = 255;

struct Slot {
    hash: AtomicU64,
    id: AtomicU32,
}

const FREE_SLOT: Slot = Slot {
    hash: AtomicU64::new(0),
    id: AtomicU32::new(0),
};
static SMALL: [Slot; SMALL_SLOTS] = [FREE_SLOT; SMALL_SLOTS];
static MID: [Slot; 1 << MID_BITS] = [FREE_SLOT; 1 << MID_BITS];
static TABLE: [Slot; TABLE_SLOTS] = [FREE_SLOT; TABLE_SLOTS];
/// Per id: `offset << 8 | length` of its frames in the store.
static INFO: [AtomicU64; MAX_SITES + 1] = [const { AtomicU64::new(0) }; MAX_SITES + 1];
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
static STORE: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static STORE_USED: AtomicUsize = AtomicUsize::new(0);
/// Stacks that found the table full.
static OVERFLOWED: AtomicU64 = AtomicU64::new(0);

/// The id of the stack `frames` (innermost first) whose hash is `hash`.
#[inline(always)]
pub fn intern(hash: u64, frames: &[u64]) -> u32 {
    let hash = hash | 1; // 0 marks a free slot
    probe(&SMALL, SMALL_BITS, SMALL_PROBES, hash, frames).unwrap_or_else(|| intern_big(hash, frames))
}

/// The middle (512 KiB) and big tables: for a stack whose small slots all
/// hold other stacks. The big one never fills (ids stop at 75 % of its
/// slots); the middle one keeps a program with some ten thousand sites
/// (cc1) off it: its random slots cost a page fault each (~1,000 faults,
/// ~2 ms for cc1) and a TLB miss at every look-up.
#[inline(never)]
fn intern_big(hash: u64, frames: &[u64]) -> u32 {
    probe(&MID, MID_BITS, SMALL_PROBES, hash, frames)
        .or_else(|| probe(&TABLE, TABLE_BITS, usize::MAX, hash, frames))
        .unwrap_or(0)
}

/// Looks for `hash` in `table` from its home slot on, claiming the first
/// free slot for it; None when `probes` slots all hold other stacks.
#[inline(always)]
fn probe(table: &'static [Slot], bits: u32, probes: usize, hash: u64, frames: &[u64]) -> Option<u32> {
    let mut i = (hash >> (64 - bits)) as usize;
    for _ in 0..probes {
        let slot = &table[i];
        let h = slot.hash.load(Ordering::Acquire);
        if h == hash {
            return Some(wait_for_id(slot));
        }
        if h == 0 {
            return Some(insert(slot, hash, frames).unwrap_or_else(|| intern_after_race(hash, frames, slot)));
        }
        i = (i + 1) & (table.len() - 1);
    }
    None
}

#[cold]
fn intern_after_race(hash: u64, frames: &[u64], slot: &Slot) -> u32 {
    // Another thread took this free slot first; it may have been for this
    // very stack. Otherwise look again from the start: slots only ever
    // fill, so the stack's place is found the same way by every thread.
    if slot.hash.load(Ordering::Acquire) == hash {
        return wait_for_id(slot);
    }
    intern(hash | 1, frames)
}

#[cold]
#[inline(never)]
fn insert(slot: &Slot, hash: u64, frames: &[u64]) -> Option<u32> {
    if NEXT_ID.load(Ordering::Relaxed) as usize > MAX_SITES {
        OVERFLOWED.fetch_add(1, Ordering::Relaxed);
        return Some(0);
    }
    slot.hash
        .compare_exchange(0, hash, Ordering::AcqRel, Ordering::Acquire)
        .ok()?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if id as usize > MAX_SITES {
        // Lost a race for the last ids: this slot stays claimed, id 0.
        OVERFLOWED.fetch_add(1, Ordering::Relaxed);
        slot.id.store(u32::MAX, Ordering::Release);
        return Some(0);
    }
    INFO[id as usize].store(store(frames), Ordering::Release);
    slot.id.store(id, Ordering::Release);
    super::mailbox::site_found(hash, frames);
    Some(id)
}

/// The id of a slot whose claimer may still be publishing it.
#[inline(always)]
fn wait_for_id(slot: &Slot) -> u32 {
    for spin in 0u32.. {
        match slot.id.load(Ordering::Acquire) {
            0 if spin < 1 << 20 => {
                if spin > 64 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            // A claimer that never publishes (interrupted by a signal
            // handler that allocates on its own thread): no site.
            0 => return 0,
            u32::MAX => return 0,
            id => return id,
        }
    }
    0
}

/// Appends `frames` to the store; returns `offset << 8 | len` (len 0 when
/// the store is full: the site keeps its counts, loses its stack).
fn store(frames: &[u64]) -> u64 {
    let Some(base) = store_base() else { return 0 };
    let n = frames.len().min(MAX_STORED);
    let off = STORE_USED.fetch_add(n, Ordering::Relaxed);
    if off + n > STORE_WORDS {
        return 0;
    }
    for (k, &ip) in frames[..n].iter().enumerate() {
        // SAFETY: off + k < STORE_WORDS, inside the mapping; the range was
        // handed to this thread alone by the fetch_add above.
        unsafe { (*base.add(off + k)).store(ip, Ordering::Relaxed) };
    }
    (off as u64) << 8 | n as u64
}

fn store_base() -> Option<*mut AtomicU64> {
    let p = STORE.load(Ordering::Acquire);
    if !p.is_null() {
        return Some(p);
    }
    // SAFETY: an anonymous private mapping; NORESERVE, so only the pages
    // actually written cost memory.
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STORE_WORDS * 8,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if m == libc::MAP_FAILED {
        return None;
    }
    match STORE.compare_exchange(
        std::ptr::null_mut(),
        m as *mut AtomicU64,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Some(m as *mut AtomicU64),
        Err(winner) => {
            // SAFETY: our own mapping, never published.
            unsafe { libc::munmap(m, STORE_WORDS * 8) };
            Some(winner)
        }
    }
}

/// Number of ids handed out so far (ids are `1..count()+1`).
pub fn count() -> u32 {
    (NEXT_ID.load(Ordering::Acquire) - 1).min(MAX_SITES as u32)
}

/// Stacks that could not get an id of their own.
pub fn overflowed() -> u64 {
    OVERFLOWED.load(Ordering::Relaxed)
}

/// The return addresses of site `id`, innermost first, into `out` (cleared
/// first; left empty for 0 and for ids not yet published). A snapshot
/// reads every site's, cc1's 10,000 of them twice, through one buffer.
pub fn frames_into(id: u32, out: &mut Vec<u64>) {
    out.clear();
    let Some(info) = INFO.get(id as usize).map(|i| i.load(Ordering::Acquire)) else {
        return;
    };
    let (off, n) = ((info >> 8) as usize, (info & 0xff) as usize);
    let base = STORE.load(Ordering::Acquire);
    if n == 0 || base.is_null() {
        return;
    }
    // SAFETY: published ranges lie inside the mapping and are never rewritten.
    out.extend((off..off + n).map(|k| unsafe { (*base.add(k)).load(Ordering::Relaxed) }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(id: u32) -> Vec<u64> {
        let mut out = Vec::new();
        frames_into(id, &mut out);
        out
    }

    /// Every thread got the same id for each stack, and `stacks` distinct ids.
    fn assert_one_id_per_stack(ids: &[Vec<u32>], stacks: usize) {
        for t in &ids[1..] {
            assert_eq!(t, &ids[0]);
        }
        let mut distinct = ids[0].clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), stacks);
    }

    #[test]
    fn the_same_stack_gets_the_same_id_from_every_thread() {
        let stacks: Vec<Vec<u64>> = (0..500u64).map(|i| vec![0x1000 + i, 0x2000, 0x3000 + i % 7]).collect();
        let hash = |s: &[u64]| {
            s.iter()
                .fold(0x51u64, |h, &ip| (h ^ ip).wrapping_mul(0x100_0000_01b3).rotate_left(29))
        };
        let ids: Vec<Vec<u32>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|_| sc.spawn(|| stacks.iter().map(|s| intern(hash(s), s)).collect::<Vec<u32>>()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_one_id_per_stack(&ids, stacks.len());
        for (s, &id) in stacks.iter().zip(&ids[0]) {
            assert!(id > 0);
            assert_eq!(&frames(id), s);
        }
        assert!(count() as usize >= stacks.len());
    }

    /// More stacks than the small table holds, from several threads at once:
    /// every thread still gets one id per stack, through both levels.
    #[test]
    fn both_levels_agree_under_contention() {
        let n = SMALL_SLOTS as u64 * 3;
        // Hashes crowding the small table's first slots: most stacks must
        // go on to the big one.
        let hash = |i: u64| (i % 64) << (64 - SMALL_BITS) | (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> SMALL_BITS) | 1;
        let ids: Vec<Vec<u32>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4u64)
                .map(|t| {
                    sc.spawn(move || {
                        // Each thread walks the stacks from another start.
                        let mut v = vec![0u32; n as usize];
                        for k in 0..n {
                            let i = (k + t * n / 4) % n;
                            v[i as usize] = intern(hash(i), &[0x7000_0000 + i, 0x42]);
                        }
                        v
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_one_id_per_stack(&ids, n as usize);
        for (i, &id) in ids[0].iter().enumerate() {
            assert_eq!(frames(id), vec![0x7000_0000 + i as u64, 0x42]);
        }
    }
}
