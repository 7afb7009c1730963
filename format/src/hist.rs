//! Log-bucketed histogram of nanosecond values (lifetimes).
//!
//! Values below 16 get a bucket each; above, every power of two is split into
//! 8 equal sub-buckets, so a bucket `[lo, hi]` has `hi - lo + 1 <= lo / 8`.
//! A percentile is reported as the bucket's midpoint clamped to the exact
//! min/max, so its relative error is at most 1/16 (6.25 %). 496 buckets
//! cover all of `u64`; a histogram stores only the window of buckets it has
//! seen, so a call site whose lifetimes span a few octaves costs a few dozen
//! counters.

use crate::LifetimeStats;

/// Number of buckets needed to cover every `u64`.
pub const BUCKETS: usize = 496;
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;

/// The bucket holding `v`.
pub fn bucket_of(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= 4
    let m = (v >> (e - SUB_BITS)) & (SUB - 1);
    (2 * SUB as usize) + ((e - (SUB_BITS + 1)) as usize) * SUB as usize + m as usize
}

/// Smallest value in bucket `b`.
pub fn bucket_lower(b: usize) -> u64 {
    if b < 2 * SUB as usize {
        return b as u64;
    }
    let k = b - 2 * SUB as usize;
    let e = (k / SUB as usize) as u32 + SUB_BITS + 1;
    let m = (k % SUB as usize) as u64;
    (SUB + m) << (e - SUB_BITS)
}

/// Largest value in bucket `b`.
pub fn bucket_upper(b: usize) -> u64 {
    if b + 1 >= BUCKETS {
        u64::MAX
    } else {
        bucket_lower(b + 1) - 1
    }
}

/// Counts per bucket over a window of buckets, plus the exact extremes.
#[derive(Debug, Clone, Default)]
pub struct LogHistogram {
    lo: usize,
    counts: Vec<u64>,
    total: u64,
    /// Exact sum of every value recorded (DHAT's total lifetime).
    sum: u128,
    min: u64,
    max: u64,
}

impl LogHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn record(&mut self, v: u64) {
        self.record_in(bucket_of(v), v)
    }

    /// Records `v`, whose bucket the caller already computed.
    #[inline]
    pub fn record_in(&mut self, bucket: usize, v: u64) {
        let i = bucket.wrapping_sub(self.lo);
        if i < self.counts.len() {
            self.counts[i] += 1;
            self.total += 1;
            self.sum += v as u128;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        } else {
            self.record_outside(bucket, v);
        }
    }

    /// Grows the window to take `bucket`.
    #[cold]
    fn record_outside(&mut self, b: usize, v: u64) {
        if self.counts.is_empty() {
            self.lo = b;
            self.counts.push(0);
            self.min = v;
            self.max = v;
        } else if b < self.lo {
            let grow = self.lo - b;
            self.counts.splice(0..0, std::iter::repeat(0).take(grow));
            self.lo = b;
        } else {
            self.counts.resize(b - self.lo + 1, 0);
        }
        self.record_in(b, v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The exact sum of the values recorded.
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// The value at quantile `q` (0.0..=1.0): midpoint of the bucket holding
    /// the `ceil(q * n)`-th smallest value, clamped to [min, max]. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        if self.min == self.max {
            // One value (most call sites of a big program have one block):
            // no need to read the counts, a heap block of their own.
            return self.min;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let b = self.lo + i;
                let (lo, hi) = (bucket_lower(b), bucket_upper(b));
                let mid = lo + (hi - lo) / 2;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub fn stats(&self) -> LifetimeStats {
        LifetimeStats {
            min: if self.total == 0 { 0 } else { self.min },
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            max: self.max,
            total: Some(self.sum.min(u64::MAX as u128) as u64),
        }
    }

    /// Non-empty buckets as `(bucket index, count)`.
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c != 0)
            .map(move |(i, &c)| (self.lo + i, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_u64_range() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for b in 0..BUCKETS - 1 {
            assert_eq!(bucket_upper(b) + 1, bucket_lower(b + 1), "bucket {b}");
            assert_eq!(bucket_of(bucket_lower(b)), b);
            assert_eq!(bucket_of(bucket_upper(b)), b);
        }
    }

    #[test]
    fn bucket_width_is_at_most_an_eighth() {
        for b in 16..BUCKETS - 1 {
            let (lo, hi) = (bucket_lower(b), bucket_upper(b));
            assert!(hi - lo < lo / 8 + 1, "bucket {b}: {lo}..{hi}");
        }
    }

    #[test]
    fn quantiles_are_within_a_sixteenth() {
        let mut h = LogHistogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 7);
        }
        for (q, exact) in [(0.5, 350_000.0), (0.99, 693_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact <= 1.0 / 16.0, "q{q}: {got} vs {exact}");
        }
        let s = h.stats();
        assert_eq!((s.min, s.max), (7, 700_000));
    }

    #[test]
    fn small_values_are_exact_and_window_grows_both_ways() {
        let mut h = LogHistogram::new();
        h.record(1000);
        h.record(3);
        h.record(1 << 40);
        assert_eq!(h.count(), 3);
        assert_eq!(h.quantile(0.0), 3);
        assert_eq!(h.stats().max, 1 << 40);
        let got: Vec<_> = h.buckets().map(|(b, _)| b).collect();
        assert_eq!(got, vec![3, bucket_of(1000), bucket_of(1 << 40)]);
        assert_eq!(h.sum(), 1000 + 3 + (1 << 40), "the sum is exact");
        assert_eq!(h.stats().total, Some(1000 + 3 + (1 << 40)));
        let empty = LifetimeStats {
            total: Some(0),
            ..LifetimeStats::default()
        };
        assert_eq!(LogHistogram::new().stats(), empty);
    }

    #[test]
    fn one_repeated_value_is_every_quantile() {
        // Values inside wide buckets too, whose midpoint is not the value:
        // the answer is the value itself (the midpoint clamped to [min, max]).
        for v in [0u64, 1, 15, 16, 17, 1000, 123_456_789, u64::MAX / 3] {
            let mut h = LogHistogram::new();
            for _ in 0..3 {
                h.record(v);
            }
            let s = h.stats();
            assert_eq!((s.min, s.p50, s.p99, s.max), (v, v, v, v));
            assert_eq!(s.total, Some(3 * v));
        }
    }
}
