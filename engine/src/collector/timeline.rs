//! Live bytes over time, in a bounded number of buckets.
//!
//! Buckets are `2^shift` ticks wide; when an event falls past the last bucket
//! the buckets are merged pairwise and the width doubles, so memory stays
//! fixed however long the process runs. Each bucket keeps its maximum (so the
//! peak is always a point of the timeline) and its last value (so drops show).

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    max: u64,
    max_ts: u64,
    last: u64,
    last_ts: u64,
    used: bool,
}

#[derive(Debug, Clone)]
pub struct Timeline {
    start: u64,
    shift: u32,
    buckets: Vec<Bucket>,
    /// The bucket being filled, kept out of `buckets` so an event costs a
    /// subtraction, a shift and a compare; written back when time moves on.
    cur_index: usize,
    cur: Bucket,
}

/// Buckets kept; the output has at most twice as many points.
pub const TIMELINE_BUCKETS: usize = 512;

impl Timeline {
    /// `start` is the first tick of the process; `initial_shift` the first
    /// bucket width (as a power of two of ticks).
    pub fn new(start: u64, initial_shift: u32) -> Timeline {
        Timeline {
            start,
            shift: initial_shift,
            // Grown as time goes on: a short process writes the few
            // buckets it lives through, not 20 KiB (5 page faults).
            buckets: Vec::new(),
            cur_index: 0,
            cur: Bucket::default(),
        }
    }

    #[inline]
    pub fn record(&mut self, ts: u64, live: u64) {
        let i = (ts.saturating_sub(self.start) >> self.shift) as usize;
        if i != self.cur_index {
            self.move_to(i);
        }
        let b = &mut self.cur;
        if !b.used || live >= b.max {
            b.max = live;
            b.max_ts = ts;
        }
        b.used = true;
        b.last = live;
        b.last_ts = ts;
    }

    /// Stores the current bucket and makes bucket `i` (in the current width)
    /// current, compacting first if `i` lies past the end.
    #[cold]
    fn move_to(&mut self, mut i: usize) {
        self.flush();
        while i >= TIMELINE_BUCKETS {
            self.compact();
            i >>= 1;
        }
        self.cur_index = i;
        self.cur = self.buckets.get(i).copied().unwrap_or_default();
    }

    fn flush(&mut self) {
        if self.cur.used {
            if self.cur_index >= self.buckets.len() {
                self.buckets.resize(self.cur_index + 1, Bucket::default());
            }
            self.buckets[self.cur_index] = self.cur;
        }
    }

    fn compact(&mut self) {
        let halved = self.buckets.len().div_ceil(2);
        for i in 0..halved {
            let a = self.buckets[2 * i];
            let b = self.buckets.get(2 * i + 1).copied().unwrap_or_default();
            self.buckets[i] = match (a.used, b.used) {
                (false, _) => b,
                (true, false) => a,
                (true, true) => {
                    let (max, max_ts) = if b.max > a.max {
                        (b.max, b.max_ts)
                    } else {
                        (a.max, a.max_ts)
                    };
                    Bucket {
                        max,
                        max_ts,
                        last: b.last,
                        last_ts: b.last_ts,
                        used: true,
                    }
                }
            };
        }
        self.buckets.truncate(halved);
        self.shift += 1;
    }

    /// `(ticks, live bytes)` points in time order.
    pub fn points(&self) -> Vec<(u64, u64)> {
        self.points_since(0)
    }

    /// A copy that keeps only the buckets from the one `from` falls in: what
    /// [`points_since`](Self::points_since)`(from)` reads, without copying
    /// the buckets before it.
    pub fn since(&self, from: u64) -> Timeline {
        let first = ((from.saturating_sub(self.start) >> self.shift.min(63)) as usize)
            .min(self.buckets.len())
            .min(self.cur_index);
        Timeline {
            start: self.start + ((first as u64) << self.shift.min(63)),
            shift: self.shift,
            buckets: self.buckets[first..].to_vec(),
            cur_index: self.cur_index - first,
            cur: self.cur,
        }
    }

    /// The points at or after tick `from`, in time order. Reads the buckets
    /// in place from the one `from` falls in: a `fork()` child's snapshot
    /// wants the few points since its fork, and copying its parent's whole
    /// timeline (up to 20 KiB) to pick them out cost it ~14 µs of fresh
    /// pages.
    pub fn points_since(&self, from: u64) -> Vec<(u64, u64)> {
        let first = (from.saturating_sub(self.start) >> self.shift.min(63)) as usize;
        let count = self.buckets.len().max(self.cur_index + 1);
        let mut out = Vec::new();
        for i in first.min(count)..count {
            let b = match self.buckets.get(i) {
                _ if i == self.cur_index && self.cur.used => self.cur,
                Some(b) if b.used => *b,
                _ => continue,
            };
            if b.max_ts < b.last_ts {
                out.push((b.max_ts, b.max));
            }
            out.push((b.last_ts, b.last));
        }
        out.retain(|p| p.0 >= from);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_the_peak() {
        let mut t = Timeline::new(1000, 4);
        let mut live = 0u64;
        for i in 0..1_000_000u64 {
            live = if i == 777_777 { 10_000_000 } else { (i * 7919) % 5000 };
            t.record(1000 + i * 3, live);
        }
        let p = t.points();
        assert!(p.len() <= 2 * TIMELINE_BUCKETS);
        assert!(p.contains(&(1000 + 777_777 * 3, 10_000_000)));
        assert!(p.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(p.last().unwrap().1, live);
    }

    #[test]
    fn points_since_a_moment_are_the_later_points() {
        let mut t = Timeline::new(1000, 4);
        for i in 0..50_000u64 {
            t.record(1000 + i * 7, (i * 7919) % 5000);
        }
        // The current bucket not yet written back, and one that was.
        let all = t.points();
        for from in [0, 999, 1000, 1001, 1000 + 3 * 7, 123_457, 1000 + 49_999 * 7, u64::MAX] {
            let later: Vec<_> = all.iter().copied().filter(|p| p.0 >= from).collect();
            assert_eq!(t.points_since(from), later, "from {from}");
        }
        // A copy of the later buckets reads the same.
        for from in [0, 999, 1000, 1000 + 3 * 7, 123_457, 1000 + 49_999 * 7, u64::MAX] {
            assert_eq!(t.since(from).points_since(from), t.points_since(from), "from {from}");
        }
        // The same as the copy-and-flush reading it replaces.
        let mut flushed = t.clone();
        flushed.flush();
        let mut expect = Vec::new();
        for b in flushed.buckets.iter().filter(|b| b.used) {
            if b.max_ts < b.last_ts {
                expect.push((b.max_ts, b.max));
            }
            expect.push((b.last_ts, b.last));
        }
        assert_eq!(all, expect);
    }
}
