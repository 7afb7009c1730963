//! Unwind rules and call sites a `fork()` child found, passed back to its
//! parent.
//!
//! A child starts with its parent's caches and site table, but what it adds
//! to them dies with it. A shell's children all run the same code its main
//! process never does (between `fork` and `exec`: redirections, the `exec`
//! itself), so every child derived the same few rules and interned the same
//! few stacks again: each a page fault or two on a page shared with the
//! parent (copied on the child's first write) or on `.eh_frame`, and each
//! `exec`ing child then read the rules file back to learn that it held its
//! new rules already. In the bash loop of scripts/bench a child's rules
//! cost it ~100 µs from `fork` to `execve`.
//!
//! So a process that forks makes a small shared mapping (its mailbox)
//! before its first fork; its children append what they add to it, and it
//! takes that into its own caches before each later fork, for the children
//! still to come:
//! - a rule `(address, rule)`, only while neither process changed its list
//!   of modules since the child's fork: a rule is a function of the code at
//!   its address, and the two address spaces are the same until one of
//!   them loads or unloads a module ([`super::modules::generation`]);
//! - a stack `(hash, return addresses)`, always: a call site is its
//!   addresses and nothing else, named only when a snapshot is written.
//!   The parent's snapshots list only sites it allocated from, so the ones
//!   it takes change nothing in them but the numbers of later sites.
//!
//! Only a child's direct parent reads its entries; a vfork or `_Fork`
//! child (whose statics are its parent's) neither writes nor reads. Nothing
//! here locks or allocates: a child writes with atomics into the shared
//! pages, the parent reads them at its fork. The only system calls are the
//! mailbox's `mmap`, a child's `munmap` of its grandparent's, and a
//! `getpid` per rule or site found in a child. A full mailbox takes no
//! more, and what it did not carry is found again, as before.

use super::rules::Rule;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Rules a mailbox holds (24 bytes each).
const RULES: usize = 1536;
/// Stacks a mailbox holds, and their return addresses in all.
const SITES: usize = 512;
const SITE_WORDS: usize = 8192;

#[repr(C)]
struct RuleEntry {
    addr: AtomicU64,
    /// The parent's module list generation at the writer's fork.
    generation: AtomicU64,
    /// The rule (never 0), stored last: 0 means not written yet.
    rule: AtomicU64,
}

#[repr(C)]
struct SiteEntry {
    hash: AtomicU64,
    /// `offset << 8 | length` of its addresses in `words` (length ≥ 1),
    /// stored last: 0 means not written yet.
    at: AtomicU64,
}

/// Counters first, then the entries, each touched only as it is used.
#[repr(C)]
struct Mailbox {
    rules_claimed: AtomicU32,
    sites_claimed: AtomicU32,
    words_claimed: AtomicU32,
    rules: [RuleEntry; RULES],
    sites: [SiteEntry; SITES],
    words: [AtomicU64; SITE_WORDS],
}

/// This process's mailbox, for its children (made at its first fork).
static MINE: AtomicPtr<Mailbox> = AtomicPtr::new(std::ptr::null_mut());
/// Entries of `MINE` taken.
static RULES_TAKEN: AtomicU32 = AtomicU32::new(0);
static SITES_TAKEN: AtomicU32 = AtomicU32::new(0);
/// The module list's generation when this process last forked.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
/// In a fork child: its parent's mailbox, and the generation of the
/// parent's module list at the fork.
static PARENT: AtomicPtr<Mailbox> = AtomicPtr::new(std::ptr::null_mut());
static PARENT_GENERATION: AtomicU64 = AtomicU64::new(0);
/// Rules and sites this image found itself (since it began or was forked).
static RULES_FOUND: AtomicU32 = AtomicU32::new(0);
static SITES_FOUND: AtomicU32 = AtomicU32::new(0);
/// Set while this process takes its children's sites (not found here).
static TAKING: AtomicBool = AtomicBool::new(false);

/// How many unwind rules and call sites this image had to find itself
/// since it began or was forked (what neither its parent's tables nor the
/// mailbox gave it): told in the debug log as it ends.
pub fn found_here() -> (u32, u32) {
    (RULES_FOUND.load(Ordering::Relaxed), SITES_FOUND.load(Ordering::Relaxed))
}

/// In the parent, before a fork (one thread forks at a time: the engine's
/// lock is held): takes what earlier children found, and makes the
/// mailbox for this one.
pub fn before_fork() {
    if crate::image::in_foreign_child() {
        // A vfork or `_Fork` child: its statics are its parent's.
        return;
    }
    let mine = MINE.load(Ordering::Acquire);
    if mine.is_null() {
        MINE.store(map(), Ordering::Release);
    } else {
        // SAFETY: a mailbox this process mapped, never unmapped here.
        take(unsafe { &*mine });
    }
    FORK_GENERATION.store(super::modules::generation(), Ordering::Relaxed);
}

/// In a child, after the fork: its parent's mailbox is the one it writes
/// to; it makes its own if it forks in turn.
pub fn fork_child() {
    let parents = MINE.swap(std::ptr::null_mut(), Ordering::AcqRel);
    for n in [&RULES_TAKEN, &SITES_TAKEN, &RULES_FOUND, &SITES_FOUND] {
        n.store(0, Ordering::Relaxed);
    }
    PARENT_GENERATION.store(FORK_GENERATION.load(Ordering::Relaxed), Ordering::Relaxed);
    let grandparents = PARENT.swap(parents, Ordering::AcqRel);
    if !grandparents.is_null() {
        // SAFETY: the grandparent's mailbox, mapped whole by `map`; nothing
        // in this process reads it any more.
        unsafe { libc::munmap(grandparents.cast(), std::mem::size_of::<Mailbox>()) };
    }
}

/// The parent's mailbox, in a fork child (not in a vfork or `_Fork` child
/// of one: its statics are its parent's, and so is the mailbox they name).
#[inline]
fn parent() -> Option<&'static Mailbox> {
    if PARENT.load(Ordering::Relaxed).is_null() || crate::image::in_foreign_child() {
        return None;
    }
    // SAFETY: the parent's mailbox, mapped whole (shared) before the fork;
    // only a child of this process unmaps it (its grandparent's), in itself.
    unsafe { PARENT.load(Ordering::Relaxed).as_ref() }
}

/// Claims `n` consecutive slots of `counter` below `cap`: the first.
fn claim(counter: &AtomicU32, n: usize, cap: usize) -> Option<usize> {
    if counter.load(Ordering::Relaxed) as usize + n > cap {
        return None;
    }
    let first = counter.fetch_add(n as u32, Ordering::AcqRel) as usize;
    (first + n <= cap).then_some(first)
}

/// A rule derived here (in a fork child: for its parent too). Not a
/// `STOP`: one derived for a module this child closed (without a new list)
/// would end its parent's walks through a module still loaded there.
#[inline]
pub fn rule_found(addr: u64, rule: Rule) {
    RULES_FOUND.fetch_add(1, Ordering::Relaxed);
    let Some(b) = parent() else { return };
    let generation = PARENT_GENERATION.load(Ordering::Relaxed);
    if rule.0 == 0 || rule == Rule::STOP || super::modules::generation() != generation {
        return;
    }
    if let Some(i) = claim(&b.rules_claimed, 1, RULES) {
        let e = &b.rules[i];
        e.addr.store(addr, Ordering::Relaxed);
        e.generation.store(generation, Ordering::Relaxed);
        e.rule.store(rule.0, Ordering::Release);
    }
}

/// A stack interned here for the first time (in a fork child: for its
/// parent too). `hash` as [`super::sites::intern`] takes it.
#[inline]
pub fn site_found(hash: u64, frames: &[u64]) {
    if !TAKING.load(Ordering::Relaxed) {
        SITES_FOUND.fetch_add(1, Ordering::Relaxed);
    }
    let Some(b) = parent() else { return };
    let n = frames.len().min(super::sites::MAX_STORED);
    if n == 0 {
        return;
    }
    let Some(i) = claim(&b.sites_claimed, 1, SITES) else {
        return;
    };
    let Some(off) = claim(&b.words_claimed, n, SITE_WORDS) else {
        // The entry stays claimed and unwritten: it ends what the parent takes.
        return;
    };
    for (w, &ip) in b.words[off..off + n].iter().zip(frames) {
        w.store(ip, Ordering::Relaxed);
    }
    let e = &b.sites[i];
    e.hash.store(hash, Ordering::Relaxed);
    e.at.store((off as u64) << 8 | n as u64, Ordering::Release);
}

/// Takes the entries written since the last time; each kind stops at one
/// claimed but not written yet (a child still at it, or killed there:
/// later ones wait; a mailbox gives what it can, never more than it holds).
fn take(b: &Mailbox) {
    let generation = super::modules::generation();
    take_each(&b.rules_claimed, RULES, &RULES_TAKEN, |i| {
        let e = &b.rules[i];
        let rule = e.rule.load(Ordering::Acquire);
        if rule != 0 && e.generation.load(Ordering::Relaxed) == generation {
            super::rules::adopt(e.addr.load(Ordering::Relaxed), Rule(rule));
        }
        rule != 0
    });
    let mut frames = [0u64; super::sites::MAX_STORED];
    TAKING.store(true, Ordering::Relaxed);
    take_each(&b.sites_claimed, SITES, &SITES_TAKEN, |i| {
        let e = &b.sites[i];
        let at = e.at.load(Ordering::Acquire);
        let (off, n) = ((at >> 8) as usize, (at & 0xff) as usize);
        if at == 0 || off + n > SITE_WORDS {
            return false;
        }
        for (f, w) in frames.iter_mut().zip(&b.words[off..off + n]) {
            *f = w.load(Ordering::Relaxed);
        }
        super::sites::intern(e.hash.load(Ordering::Relaxed), &frames[..n]);
        true
    });
    TAKING.store(false, Ordering::Relaxed);
}

/// Calls `one` on entries `taken..claimed` until it says one is not written.
fn take_each(claimed: &AtomicU32, cap: usize, taken: &AtomicU32, mut one: impl FnMut(usize) -> bool) {
    let claimed = (claimed.load(Ordering::Acquire) as usize).min(cap);
    let mut i = taken.load(Ordering::Relaxed) as usize;
    while i < claimed && one(i) {
        i += 1;
    }
    taken.store(i as u32, Ordering::Relaxed);
}

fn map() -> *mut Mailbox {
    // SAFETY: a new shared anonymous mapping of the mailbox's size (zeroed:
    // nothing claimed); its pages are shared with every later child.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<Mailbox>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_stop_at_the_cap_and_never_overlap() {
        let c = AtomicU32::new(0);
        assert_eq!(claim(&c, 3, 8), Some(0));
        assert_eq!(claim(&c, 5, 8), Some(3));
        assert_eq!(claim(&c, 1, 8), None);
        assert_eq!(c.load(Ordering::Relaxed), 8, "a refused claim takes nothing");
    }

    #[test]
    fn taking_stops_at_the_first_entry_not_written() {
        let claimed = AtomicU32::new(4);
        let taken = AtomicU32::new(0);
        let written = [true, true, false, true];
        let mut seen = Vec::new();
        take_each(&claimed, 8, &taken, |i| {
            seen.push(i);
            written[i]
        });
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(
            taken.load(Ordering::Relaxed),
            2,
            "the unwritten one is looked at again next time"
        );
    }

    #[test]
    fn a_new_mailbox_is_empty() {
        let b = map();
        assert!(!b.is_null());
        // SAFETY: mapped just above, whole.
        let b = unsafe { &*b };
        assert_eq!(b.rules_claimed.load(Ordering::Relaxed), 0);
        assert_eq!(b.sites_claimed.load(Ordering::Relaxed), 0);
        assert!(b.sites.iter().all(|e| e.at.load(Ordering::Relaxed) == 0));
    }
}
