//! The individual freed-block records a snapshot lists, bounded by
//! `MEMSCOPE_MAX_RECORDS`.
//!
//! Live-at-exit blocks are always listed first (they are in the live table
//! anyway). Of the freed blocks, the largest are kept (ties: the earliest),
//! which is deterministic and keeps what a reader most wants to see; every
//! aggregate is computed over all blocks regardless.

use std::cmp::Ordering;

/// A block with a known birth and death (ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub ptr: u64,
    pub size: u64,
    pub kind: u8,
    pub thread: u32,
    pub site: u32,
    pub birth: u64,
    pub death: u64,
    pub inherited: bool,
    /// The `track_var!` variable owning the block (0: none).
    pub var: u64,
}

/// Heap order: larger size is "greater"; for equal sizes the earlier birth is
/// greater, so the heap's minimum is the record to drop first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByValue(Record);

impl Ord for ByValue {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .size
            .cmp(&other.0.size)
            .then_with(|| other.0.birth.cmp(&self.0.birth))
            .then_with(|| other.0.ptr.cmp(&self.0.ptr))
    }
}

impl PartialOrd for ByValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keeps the `cap` best records seen, in amortized O(1) per offer: records
/// accumulate up to `2 * cap`, then one linear selection keeps the best
/// `cap` and raises the bar a new record must clear.
#[derive(Debug, Default, Clone)]
pub struct FreedRecords {
    cap: usize,
    kept: Vec<Record>,
    /// The worst record kept at the last selection: anything not better is
    /// rejected without being stored.
    bar: Option<Record>,
}

impl FreedRecords {
    pub fn new(cap: usize) -> Self {
        FreedRecords {
            cap,
            kept: Vec::new(),
            bar: None,
        }
    }

    #[inline]
    pub fn offer(&mut self, r: Record) {
        if self.cap == 0 {
            return;
        }
        if let Some(bar) = self.bar {
            if ByValue(r) <= ByValue(bar) {
                return;
            }
        }
        self.kept.push(r);
        if self.kept.len() >= 2 * self.cap {
            self.select();
        }
    }

    fn select(&mut self) {
        let cap = self.cap;
        self.kept
            .select_nth_unstable_by(cap - 1, |a, b| ByValue(*b).cmp(&ByValue(*a)));
        self.kept.truncate(cap);
        self.bar = self.kept.iter().copied().min_by(|a, b| ByValue(*a).cmp(&ByValue(*b)));
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.kept.len().min(self.cap)
    }

    /// The kept records, in no particular order.
    pub fn into_kept(mut self) -> Vec<Record> {
        if self.kept.len() > self.cap {
            self.select();
        }
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(size: u64, birth: u64) -> Record {
        Record {
            ptr: birth,
            size,
            kind: 0,
            thread: 0,
            site: 0,
            birth,
            death: birth + 1,
            inherited: false,
            var: 0,
        }
    }

    #[test]
    fn keeps_the_largest_then_the_earliest() {
        let mut f = FreedRecords::new(3);
        for (size, birth) in [(10, 1), (50, 2), (10, 3), (50, 4), (5, 5), (10, 0)] {
            f.offer(rec(size, birth));
        }
        let mut got: Vec<_> = f.into_kept().iter().map(|r| (r.size, r.birth)).collect();
        got.sort();
        assert_eq!(got, vec![(10, 0), (50, 2), (50, 4)]);
    }

    #[test]
    fn many_offers_keep_exactly_the_best() {
        let mut f = FreedRecords::new(100);
        let mut all = Vec::new();
        let mut x = 7u64;
        for birth in 0..10_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let r = rec((x >> 40) % 500, birth);
            all.push(r);
            f.offer(r);
        }
        all.sort_by(|a, b| ByValue(*b).cmp(&ByValue(*a)));
        all.truncate(100);
        let mut got = f.into_kept();
        got.sort_by(|a, b| ByValue(*b).cmp(&ByValue(*a)));
        assert_eq!(got, all);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut f = FreedRecords::new(0);
        f.offer(rec(1, 1));
        assert_eq!(f.len(), 0);
    }
}
