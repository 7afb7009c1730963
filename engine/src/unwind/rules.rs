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

use super::modules::{self, Cfi};
use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, LittleEndian, RegisterRule, UnwindContext, UnwindSection, X86_64,
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
/// Two levels: a rule goes to the small cache (32 KiB) when its entry there
/// is free, else to the big one (256 KiB). A short process's few hundred
/// addresses then touch a few pages rather than one page each (measured:
/// ~37 page faults less per `ls`, ~5% of a traced shell loop); a big one
/// keeps the big cache. Entries only go from free to taken (until
/// [`clear_cache`] empties both), so an address whose small entry is free
/// was never put in the big one.
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
    let small = &SMALL_CACHE[index(addr, SMALL_CACHE_BITS)];
    if let Some(rule) = read(small, addr) {
        return rule;
    }
    if small[1].load(Ordering::Relaxed) != 0 {
        if let Some(rule) = read(&CACHE[index(addr, CACHE_BITS)], addr) {
            return rule;
        }
    }
    miss(addr, is_return)
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
    let small = &SMALL_CACHE[index(addr, SMALL_CACHE_BITS)];
    let s = if small[1].load(Ordering::Relaxed) == 0 {
        small
    } else {
        &CACHE[index(addr, CACHE_BITS)]
    };
    s[1].store(0, Ordering::Relaxed);
    s[0].store(addr ^ rule.0, Ordering::Relaxed);
    s[1].store(rule.0, Ordering::Relaxed);
    // After the entry: a clear that misses it sees the flag next time.
    if !CACHED_ANY.load(Ordering::Relaxed) {
        CACHED_ANY.store(true, Ordering::Relaxed);
    }
    rule
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
    let _g = crate::thread::Guard::enter();
    match m.cfi() {
        Ok(None) => Rule::FRAME_POINTER,
        Ok(Some(cfi)) => from_cfi(cfi, m.text_start, if is_return { addr - 1 } else { addr }).unwrap_or(Rule::STOP),
        // Closed since the list was made: nothing of it can be on a stack.
        Err(()) => Rule::STOP,
    }
}

fn from_cfi(cfi: &Cfi, text: u64, addr: u64) -> Option<Rule> {
    let bases = BaseAddresses::default()
        .set_eh_frame_hdr(cfi.hdr_addr)
        .set_eh_frame(cfi.frame_addr)
        .set_text(text);
    let hdr = EhFrameHdr::new(&cfi.hdr, LittleEndian).parse(&bases, 8).ok()?;
    let table = hdr.table()?;
    let frame = EhFrame::new(&cfi.frame, LittleEndian);
    let mut ctx = Box::new(UnwindContext::new());
    let row = table
        .unwind_info_for_address(&frame, &bases, &mut ctx, addr, EhFrame::cie_from_offset)
        .ok()?;
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
