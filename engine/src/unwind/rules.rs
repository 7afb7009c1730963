//! How to step from a frame to its caller at one code address, compressed
//! into a word and cached, so the hot path never parses DWARF twice for the
//! same return address.
//!
//! x86-64 code almost always obeys one of two shapes: the canonical frame
//! address (CFA, the caller's stack pointer) is `rsp + n` or `rbp + n`, the
//! return address sits at `CFA - 8`, and the caller's `rbp` is either
//! untouched or saved at `CFA + m`. A [`Rule`] holds exactly that; anything
//! else (DWARF expressions: PLT stubs, signal trampolines) ends the walk, so
//! a strange frame costs frames, never a crash.

use super::fde_rows;
use super::modules::{self, Cfi};
use super::rule_store;
use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EhFrameOffset, LittleEndian, RegisterRule, UnwindSection, X86_64,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A step rule packed in a `u64` (0 means "not cached").
///
/// bits 0..3 kind, bit 3 "caller's rbp saved", bits 4..32 CFA offset,
/// bits 32..64 the (signed) offset of the saved rbp from the CFA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// CFA = rsp + offset.
    Sp,
    /// CFA = rbp + offset.
    Bp,
    /// The outermost frame (`_start`, `clone`): the return address is undefined.
    End,
    /// A rule memscope cannot follow, or an address without unwind info in
    /// a module that has some: stop here.
    Stop,
    /// No unwind info for the module at all (hand-written code, JIT): try
    /// the frame-pointer chain.
    FramePointer,
}

const KIND_SP: u64 = 1;
const KIND_BP: u64 = 2;
const KIND_END: u64 = 3;
const KIND_STOP: u64 = 4;
const KIND_FP: u64 = 5;
const BP_SAVED: u64 = 1 << 3;
const MAX_CFA_OFFSET: i64 = (1 << 28) - 1;

impl Rule {
    pub const END: Rule = Rule(KIND_END);
    pub const STOP: Rule = Rule(KIND_STOP);
    pub const FRAME_POINTER: Rule = Rule(KIND_FP);

    /// CFA = `base` + `cfa_offset`; the caller's rbp at CFA + `bp_offset`.
    pub fn new(base_is_bp: bool, cfa_offset: i64, bp_offset: Option<i64>) -> Rule {
        if !(0..=MAX_CFA_OFFSET).contains(&cfa_offset) {
            return Rule::STOP;
        }
        let kind = if base_is_bp { KIND_BP } else { KIND_SP };
        let mut w = kind | (cfa_offset as u64) << 4;
        if let Some(off) = bp_offset {
            let Ok(off) = i32::try_from(off) else { return Rule::STOP };
            w |= BP_SAVED | (off as u32 as u64) << 32;
        }
        Rule(w)
    }

    #[inline(always)]
    pub fn step(self) -> Step {
        match self.0 & 7 {
            KIND_SP => Step::Sp,
            KIND_BP => Step::Bp,
            KIND_END => Step::End,
            KIND_FP => Step::FramePointer,
            _ => Step::Stop,
        }
    }

    #[inline(always)]
    pub fn cfa_offset(self) -> u64 {
        (self.0 >> 4) & MAX_CFA_OFFSET as u64
    }

    /// Where the caller's rbp was saved, relative to the CFA.
    #[inline(always)]
    pub fn bp_offset(self) -> Option<i64> {
        (self.0 & BP_SAVED != 0).then_some((self.0 >> 32) as u32 as i32 as i64)
    }
}

/// Direct-mapped caches of rules by code address, shared by all threads.
///
/// Each entry is two words written without a lock: `key ^ rule` and `rule`.
/// A reader accepts an entry only if the two agree on its key, so a torn
/// read (another thread halfway through replacing it) is a miss, never a
/// wrong rule.
///
/// Two levels: a rule goes to the small cache (32 KiB) when one of its two
/// entries there is free, else to the big one (256 KiB). A short process's
/// few hundred addresses then touch a few pages rather than one page each
/// (measured: ~37 page faults less per `ls`, ~5% of a traced shell loop); a
/// big one keeps the big cache. Two ways rather than one: with one, about
/// one address in ten of an `ls` found its entry taken and went to a fresh
/// page of the big cache (~5 of its page faults). Entries only go from free
/// to taken (until [`clear_cache`] empties both), so an address with a free
/// small entry was never put past it: not in the second way if the first
/// is free, not in the big cache if either is.
const CACHE_BITS: u32 = 14;
const SMALL_CACHE_BITS: u32 = 11;
type Entry = [AtomicU64; 2];
const FREE_ENTRY: Entry = [AtomicU64::new(0), AtomicU64::new(0)];
static CACHE: [Entry; 1 << CACHE_BITS] = [FREE_ENTRY; 1 << CACHE_BITS];
static SMALL_CACHE: [Entry; 1 << SMALL_CACHE_BITS] = [FREE_ENTRY; 1 << SMALL_CACHE_BITS];

#[inline(always)]
fn index(addr: u64, bits: u32) -> usize {
    // Code addresses spread well in their low bits; two shifts and a xor
    // keep this off the walk's critical path (one multiply costs more).
    ((addr ^ (addr >> bits)) & ((1 << bits) - 1)) as usize
}

/// The rule an entry holds for `addr`: None if it holds another address's.
#[inline(always)]
fn read(e: &Entry, addr: u64) -> Option<Rule> {
    let rule = e[1].load(Ordering::Relaxed);
    (rule != 0 && e[0].load(Ordering::Relaxed) ^ rule == addr).then_some(Rule(rule))
}

/// The rule for `addr`, computing and caching it on a miss. `is_return`:
/// `addr` is a return address, whose call instruction lies just before it
/// (the rule that applies is the one at `addr - 1`).
#[inline(always)]
pub fn lookup(addr: u64, is_return: bool) -> Rule {
    match cached(addr) {
        Some(rule) => rule,
        None => miss(addr, is_return),
    }
}

/// The rule cached for `addr`, if any.
#[inline(always)]
fn cached(addr: u64) -> Option<Rule> {
    let i = index(addr, SMALL_CACHE_BITS);
    let first = &SMALL_CACHE[i];
    if let Some(rule) = read(first, addr) {
        return Some(rule);
    }
    if first[1].load(Ordering::Relaxed) != 0 {
        let second = &SMALL_CACHE[i ^ 1];
        if let Some(rule) = read(second, addr) {
            return Some(rule);
        }
        if second[1].load(Ordering::Relaxed) != 0 {
            return read(&CACHE[index(addr, CACHE_BITS)], addr);
        }
    }
    None
}

/// Set when a rule is cached: clearing a cache nothing was put in would
/// only fault in its 256 KiB of zero pages (~80 µs at every start-up).
static CACHED_ANY: AtomicBool = AtomicBool::new(false);

/// Forgets every cached rule (after the set of loaded modules changed).
pub fn clear_cache() {
    if !CACHED_ANY.swap(false, Ordering::Relaxed) {
        return;
    }
    for s in SMALL_CACHE.iter().chain(&CACHE) {
        s[1].store(0, Ordering::Relaxed);
        s[0].store(0, Ordering::Relaxed);
    }
}

#[cold]
#[inline(never)]
fn miss(addr: u64, is_return: bool) -> Rule {
    let rule = compute(addr, is_return);
    put(addr, rule);
    super::mailbox::rule_found(addr, rule);
    rule
}

/// Caches a rule a fork child derived for `addr` (see
/// [`super::mailbox`]), unless one is cached already.
pub fn adopt(addr: u64, rule: Rule) {
    if cached(addr).is_none() {
        put(addr, rule);
    }
}

fn put(addr: u64, rule: Rule) {
    let i = index(addr, SMALL_CACHE_BITS);
    let free = |e: &Entry| e[1].load(Ordering::Relaxed) == 0;
    let s = [&SMALL_CACHE[i], &SMALL_CACHE[i ^ 1]]
        .into_iter()
        .find(|e| free(e))
        .unwrap_or(&CACHE[index(addr, CACHE_BITS)]);
    s[1].store(0, Ordering::Relaxed);
    s[0].store(addr ^ rule.0, Ordering::Relaxed);
    s[1].store(rule.0, Ordering::Relaxed);
    // After the entry: a clear that misses it sees the flag next time.
    if !CACHED_ANY.load(Ordering::Relaxed) {
        CACHED_ANY.store(true, Ordering::Relaxed);
    }
}

/// Parses the module's `.eh_frame` for the row that covers `addr`.
pub fn compute(addr: u64, is_return: bool) -> Rule {
    let m = match modules::current().find(addr) {
        Some(m) => m,
        None if modules::refresh_for_unknown_address() => match modules::current().find(addr) {
            Some(m) => m,
            None => return Rule::STOP,
        },
        None => return Rule::STOP,
    };
    if !(m.text_start..m.text_end).contains(&addr) {
        return Rule::STOP;
    }
    let at = if is_return { addr - 1 } else { addr };
    if let Some(rule) = rule_store::lookup(m, at) {
        return rule;
    }
    let _g = crate::thread::Guard::enter();
    let rule = match m.with_cfi(|cfi| from_cfi(cfi, m.text_start, at)) {
        Ok(None) => Rule::FRAME_POINTER,
        Ok(Some(rule)) => rule.unwrap_or(Rule::STOP),
        // Closed since the list was made: nothing of it can be on a stack.
        Err(()) => return Rule::STOP,
    };
    rule_store::note(m, at, rule);
    rule
}

fn from_cfi(cfi: &Cfi, text: u64, addr: u64) -> Option<Rule> {
    let bases = BaseAddresses::default()
        .set_eh_frame_hdr(cfi.hdr_addr)
        .set_eh_frame(cfi.frame_addr)
        .set_text(text);
    let frame = EhFrame::new(cfi.frame, LittleEndian);
    let found = fde_offset(cfi, addr);
    if let Some(Some((_, fde))) = found {
        if let Some(rule) = fde_rows::lookup(fde, addr) {
            return rule;
        }
    }
    let mut ctx = contexts::take();
    let rule = match found {
        Some(Some((offset, fde_addr))) => frame
            .fde_from_offset(&bases, offset, EhFrame::cie_from_offset)
            .ok()
            .filter(|fde| fde.contains(addr))
            .and_then(|fde| {
                // The whole function at once, for its other addresses.
                let mut rows = Vec::new();
                if let Ok(mut table) = fde.rows(&frame, &bases, &mut ctx) {
                    while let Ok(Some(row)) = table.next_row() {
                        let rule = rule_of_row(row).unwrap_or(Rule::STOP);
                        let (start, end) = (row.start_address(), row.end_address());
                        match rows.last_mut() {
                            // Rows that differ only in registers a rule does
                            // not hold (callee-saved ones) are one range.
                            Some((_, last_end, last)) if *last == rule && *last_end == start => *last_end = end,
                            _ => rows.push((start, end, rule)),
                        }
                    }
                }
                fde_rows::keep(fde_addr, rows, addr)
            }),
        // Before the first function the table lists.
        Some(None) => None,
        // A table memscope does not read itself: gimli's search.
        None => EhFrameHdr::new(cfi.hdr, LittleEndian)
            .parse(&bases, 8)
            .ok()
            .and_then(|hdr| {
                hdr.table()?
                    .unwind_info_for_address(&frame, &bases, &mut ctx, addr, EhFrame::cie_from_offset)
                    .ok()
            })
            .and_then(rule_of_row),
    };
    contexts::give_back(ctx);
    rule
}

/// The `.eh_frame` offset of the FDE that may cover `addr`, found by a
/// binary search of `.eh_frame_hdr`'s sorted table read directly: the
/// layout every linker emits (a 4-byte count, pairs of 4-byte offsets from
/// the header's start). gimli's generic search decodes each probed entry
/// through its pointer-encoding machinery, a third of a rule's first
/// derivation in a big program (cc1: ~45,000 entries). `None` for another
/// layout; `Some(None)` when `addr` lies before the first entry. With the
/// offset, the FDE's runtime address (which names the function).
fn fde_offset(cfi: &Cfi, addr: u64) -> Option<Option<(EhFrameOffset, u64)>> {
    const UDATA4: u8 = 0x03;
    const DATAREL_SDATA4: u8 = 0x3b;
    let hdr: &[u8] = cfi.hdr;
    if hdr.len() < 12 || hdr[0] != 1 || hdr[2] != UDATA4 || hdr[3] != DATAREL_SDATA4 {
        return None;
    }
    let word = |at: usize| -> Option<i32> { Some(i32::from_le_bytes(hdr.get(at..at + 4)?.try_into().ok()?)) };
    let count = word(8)? as u32 as usize;
    let table = hdr.get(12..12 + count.checked_mul(8)?)?;
    let start = |i: usize| i32::from_le_bytes(table[8 * i..8 * i + 4].try_into().unwrap()) as i64;
    let target = addr.wrapping_sub(cfi.hdr_addr) as i64;
    // Entries whose function starts at or before `addr`.
    let (mut lo, mut hi) = (0usize, count);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if start(mid) <= target {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let Some(i) = lo.checked_sub(1) else { return Some(None) };
    let fde = i32::from_le_bytes(table[8 * i + 4..8 * i + 8].try_into().unwrap()) as i64;
    let fde_addr = (cfi.hdr_addr as i64).wrapping_add(fde);
    let offset = fde_addr.checked_sub(cfi.frame_addr as i64)?;
    Some(
        usize::try_from(offset)
            .ok()
            .map(|o| (EhFrameOffset(o), fde_addr as u64)),
    )
}

/// gimli's storage for a row of register rules, sized for x86-64.
///
/// Rules are derived on the program's own threads, inside its `malloc`:
/// with gimli's default storage (192 rules, ~6 KiB a row) building a table
/// moved several rows through the stack, and a thread on a 16 KiB stack
/// (`PTHREAD_STACK_MIN`) died of a stack overflow at its first allocation
/// from code memscope had no rule for yet. 32 rules hold every register
/// x86-64 code saves (16 general ones, the return address); a program with
/// more is refused by gimli, and the walk stops there.
pub struct SmallRows;

impl gimli::UnwindContextStorage<usize> for SmallRows {
    type Rules = [(gimli::Register, RegisterRule<usize>); 32];
    type Stack = Box<[gimli::UnwindTableRow<usize, SmallRows>; 4]>;
}

/// Unwind contexts kept for the next derivation (on the heap): taken and
/// given back without a lock, so two threads deriving at once each get
/// one, and a `fork` in between leaves nothing held.
mod contexts {
    use super::SmallRows;
    use gimli::UnwindContext;
    use std::sync::atomic::{AtomicPtr, Ordering};

    pub type Ctx = Box<UnwindContext<usize, SmallRows>>;
    static SPARE: AtomicPtr<UnwindContext<usize, SmallRows>> = AtomicPtr::new(std::ptr::null_mut());

    pub fn take() -> Ctx {
        let p = SPARE.swap(std::ptr::null_mut(), Ordering::Acquire);
        if p.is_null() {
            Box::new(UnwindContext::new_in())
        } else {
            // SAFETY: made by Box::into_raw in `give_back`, and swapped out
            // of the slot: this thread is its only owner.
            unsafe { Box::from_raw(p) }
        }
    }

    pub fn give_back(ctx: Ctx) {
        let p = Box::into_raw(ctx);
        if SPARE
            .compare_exchange(std::ptr::null_mut(), p, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: not published: still ours.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

fn rule_of_row(row: &gimli::UnwindTableRow<usize, SmallRows>) -> Option<Rule> {
    match row.register(X86_64::RA) {
        Some(RegisterRule::Offset(-8)) => {}
        Some(RegisterRule::Undefined) => return Some(Rule::END),
        _ => return Some(Rule::STOP),
    }
    let (base_is_bp, cfa_offset) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RSP => (false, offset),
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RBP => (true, offset),
        _ => return Some(Rule::STOP),
    };
    let bp = match row.register(X86_64::RBP) {
        None | Some(RegisterRule::SameValue) | Some(RegisterRule::Undefined) => None,
        Some(RegisterRule::Offset(off)) => Some(off),
        Some(_) => return Some(Rule::STOP),
    };
    Some(Rule::new(base_is_bp, cfa_offset, bp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip() {
        let r = Rule::new(false, 56, Some(-16));
        assert_eq!(r.step(), Step::Sp);
        assert_eq!(r.cfa_offset(), 56);
        assert_eq!(r.bp_offset(), Some(-16));
        let r = Rule::new(true, 16, None);
        assert_eq!((r.step(), r.cfa_offset(), r.bp_offset()), (Step::Bp, 16, None));
        assert_eq!(Rule::new(false, -8, None), Rule::STOP);
        assert_eq!(Rule::new(false, 1 << 40, None), Rule::STOP);
        assert_eq!(Rule::END.step(), Step::End);
        assert_eq!(Rule::FRAME_POINTER.step(), Step::FramePointer);
    }

    #[test]
    fn rules_from_this_test_binarys_own_cfi() {
        modules::refresh();
        // This function's own entry: CFA = rsp + 8 before any push.
        let entry = rules_from_this_test_binarys_own_cfi as fn() as usize as u64;
        let r = compute(entry, false);
        assert_eq!((r.step(), r.cfa_offset()), (Step::Sp, 8), "{r:?}");
        // The cache returns the same rule.
        assert_eq!(lookup(entry, false), r);
        assert_eq!(lookup(entry, false), r);
        // An address no module holds stops the walk.
        assert_eq!(compute(16, true), Rule::STOP);
    }
}
