//! Every row of a function's unwind table, derived once per function.
//!
//! A rule is cached per code address ([`super::rules`]), but a deep program
//! reaches many addresses of each function it passes (cc1: 5,656 return
//! addresses in 1,321 functions), and deriving one means evaluating the
//! function's DWARF program from its start up to that address — most of
//! the cost of a program's first stacks. So the first address of a function
//! evaluates the whole program once and keeps each row's rule here; the
//! function's other addresses are then a binary search.
//!
//! Lock-free and fork-safe like the rule cache: a direct-mapped table of
//! pointers to immutable, never-freed row lists, published with one store.
//! A slot another function takes over leaks its list, so the lists' total
//! size is capped ([`BUDGET`]); past it functions are derived per address
//! as before.

use super::rules::Rule;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// One function's rows: `(start, end, rule)`, sorted, not overlapping.
pub struct Rows {
    /// The FDE's runtime address: which function this is.
    fde: u64,
    rows: Box<[(u64, u64, Rule)]>,
}

/// Two tables, as for the rules: a function goes to the small one (one
/// page) while one of its two slots there is free, else to the big one, so
/// a short process's few dozen functions fault in one page rather than a
/// dozen (with one slot, an `ls` still put ~5 functions on fresh pages of
/// the big table).
const SMALL_BITS: u32 = 9;
const BITS: u32 = 13;
type Table<const N: usize> = [AtomicPtr<Rows>; N];
static SMALL: Table<{ 1 << SMALL_BITS }> = [const { AtomicPtr::new(std::ptr::null_mut()) }; 1 << SMALL_BITS];
static TABLE: Table<{ 1 << BITS }> = [const { AtomicPtr::new(std::ptr::null_mut()) }; 1 << BITS];
/// Bytes of row lists ever kept.
static USED: AtomicUsize = AtomicUsize::new(0);
const BUDGET: usize = 8 << 20;

/// A function's two slots in the small table, and its slot in the big one.
fn slots(fde: u64) -> ([&'static AtomicPtr<Rows>; 2], &'static AtomicPtr<Rows>) {
    let h = fde.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let i = (h >> (64 - SMALL_BITS)) as usize;
    ([&SMALL[i], &SMALL[i ^ 1]], &TABLE[(h >> (64 - BITS)) as usize])
}

/// The rule at `addr` in the function of the FDE at `fde`, if its rows are
/// kept: `Some(None)` when no row covers `addr`.
pub fn lookup(fde: u64, addr: u64) -> Option<Option<Rule>> {
    let (small, big) = slots(fde);
    // SAFETY: published lists are never freed.
    let kept = |slot: &AtomicPtr<Rows>| unsafe { slot.load(Ordering::Acquire).as_ref() }.filter(|r| r.fde == fde);
    // A function goes to its second slot only when the first is taken, and
    // to the big table only when both are (slots are never emptied): a
    // free one says it is in none past it.
    for slot in small {
        if let Some(rows) = kept(slot) {
            return Some(find(&rows.rows, addr));
        }
        if slot.load(Ordering::Relaxed).is_null() {
            return None;
        }
    }
    Some(find(&kept(big)?.rows, addr))
}

/// Keeps the rows of the function of the FDE at `fde` (unless over budget),
/// and returns the rule at `addr` among them.
pub fn keep(fde: u64, rows: Vec<(u64, u64, Rule)>, addr: u64) -> Option<Rule> {
    let rule = find(&rows, addr);
    let bytes = std::mem::size_of::<Rows>() + rows.len() * std::mem::size_of::<(u64, u64, Rule)>();
    if USED.fetch_add(bytes, Ordering::Relaxed) + bytes <= BUDGET {
        let list = Box::into_raw(Box::new(Rows {
            fde,
            rows: rows.into_boxed_slice(),
        }));
        let (small, big) = slots(fde);
        let slot = small
            .into_iter()
            .find(|s| s.load(Ordering::Relaxed).is_null())
            .unwrap_or(big);
        slot.store(list, Ordering::Release);
    }
    rule
}

fn find(rows: &[(u64, u64, Rule)], addr: u64) -> Option<Rule> {
    let i = rows.partition_point(|r| r.0 <= addr).checked_sub(1)?;
    let (start, end, rule) = rows[i];
    (start..end).contains(&addr).then_some(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_functions_rows_answer_for_each_of_its_addresses() {
        let fde = 0x5555_0000_1000;
        assert_eq!(lookup(fde, 0x2000), None, "not kept yet");
        let (a, b) = (Rule::new(false, 8, None), Rule::new(false, 16, Some(-16)));
        let rows = vec![(0x2000, 0x2004, a), (0x2004, 0x2040, b)];
        assert_eq!(keep(fde, rows, 0x2003), Some(a));
        assert_eq!(lookup(fde, 0x2000), Some(Some(a)));
        assert_eq!(lookup(fde, 0x2004), Some(Some(b)));
        assert_eq!(lookup(fde, 0x203f), Some(Some(b)));
        assert_eq!(lookup(fde, 0x2040), Some(None), "past the function");
        assert_eq!(lookup(fde, 0x1fff), Some(None), "before it");
        assert_eq!(lookup(fde + 8, 0x2000), None, "another function");
    }

    #[test]
    fn functions_that_share_small_slots_are_each_found() {
        // Four functions whose first small slot is the same: two ways, then
        // the big table.
        let pair = |f: u64| slots(f).0[0] as *const _ as usize;
        let first = 0x7777_0000_0010u64;
        let mut fdes = vec![first];
        let mut f = first;
        while fdes.len() < 4 {
            f += 16;
            if pair(f) == pair(first) {
                fdes.push(f);
            }
        }
        for (n, &fde) in fdes.iter().enumerate() {
            let rule = Rule::new(false, 8 * (n as i64 + 1), None);
            assert_eq!(keep(fde, vec![(0x1000, 0x1100, rule)], 0x1000), Some(rule));
        }
        for (n, &fde) in fdes.iter().enumerate() {
            let rule = Rule::new(false, 8 * (n as i64 + 1), None);
            assert_eq!(lookup(fde, 0x10ff), Some(Some(rule)), "function {n}");
        }
    }
}
