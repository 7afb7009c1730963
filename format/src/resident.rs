//! When resident memory says the heap counters miss most of a process:
//! memory from an allocator of the program's own (chromium's
//! PartitionAlloc, a statically linked jemalloc) or from `mmap` is resident
//! but never passes through `malloc`. The CLI and the report say so in the
//! same words, decided here.

use crate::Summary;

/// What the CLI and the report print for such a process.
pub const OUTSIDE_MALLOC: &str =
    "most of this process's memory did not come through malloc: it may use its own allocator or mmap directly";

/// Resident memory beyond the heap's peak below this is code, libraries,
/// stacks and memscope's own buffers: not worth a warning.
pub const FAR_ABOVE_MIN_EXCESS: u64 = 64 << 20;

/// "Far above": the peak resident set is at least twice the heap's peak
/// (most of the memory is not heap) and exceeds it by at least
/// [`FAR_ABOVE_MIN_EXCESS`]. False when the snapshot has no resident figure.
pub fn mostly_outside_malloc(s: &Summary) -> bool {
    s.peak_rss_bytes.is_some_and(|rss| {
        rss / 2 >= s.peak_live_bytes && rss.saturating_sub(s.peak_live_bytes) >= FAR_ABOVE_MIN_EXCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(peak_live: u64, rss: Option<u64>) -> Summary {
        Summary {
            peak_live_bytes: peak_live,
            peak_rss_bytes: rss,
            ..Summary::default()
        }
    }

    #[test]
    fn far_above_needs_twice_the_heap_and_64_mib_more() {
        const MIB: u64 = 1 << 20;
        assert!(mostly_outside_malloc(&summary(0, Some(100 * MIB))));
        assert!(mostly_outside_malloc(&summary(50 * MIB, Some(120 * MIB))));
        assert!(
            !mostly_outside_malloc(&summary(70 * MIB, Some(120 * MIB))),
            "less than twice"
        );
        assert!(
            !mostly_outside_malloc(&summary(MIB, Some(40 * MIB))),
            "small program, code and libraries"
        );
        assert!(!mostly_outside_malloc(&summary(0, None)), "older snapshot");
    }
}
