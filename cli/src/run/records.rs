//! Which images of a run list their blocks one by one.
//!
//! Every image lists up to `MEMSCOPE_MAX_RECORDS` blocks of its own, and
//! under `run` a command of many processes repeats the same executables:
//! a shell loop's 200 `ls` list 200 times the same ~240 blocks, most of
//! what its 1,004 snapshots held (25 of 41 MB). Their totals, call sites
//! and lifetimes stay whole in every snapshot; what is kept of the lists
//! is what a reader drills into: the run's root process, the first
//! [`FIRST`] images of each executable, and every image that is the
//! heaviest of its executable so far (the highest peak, or the most bytes
//! allocated: what the summary and the report lead with). The others list
//! none: their `tool.max_records` is 0 and `summary.records_omitted`
//! counts the blocks left out, as for any image past its cap. A user who
//! sets `MEMSCOPE_MAX_RECORDS` gets that many for every image.

use memscope_format::Snapshot;
use std::collections::HashMap;

/// Images of each executable that always keep their lists.
pub const FIRST: u32 = 3;

/// What the run has seen of each executable.
pub struct Keep {
    /// None when every image keeps its list (`MEMSCOPE_MAX_RECORDS` set).
    seen: Option<HashMap<String, Seen>>,
    /// The pid of `run` itself: the root process is its child.
    run_pid: u32,
}

struct Seen {
    images: u32,
    peak: u64,
    bytes: u64,
}

impl Keep {
    pub fn from_env() -> Keep {
        let set = std::env::var_os("MEMSCOPE_MAX_RECORDS").is_some_and(|v| !v.is_empty());
        Keep::new(!set, std::process::id())
    }

    pub fn new(trim: bool, run_pid: u32) -> Keep {
        Keep {
            seen: trim.then(HashMap::new),
            run_pid,
        }
    }

    /// Whether the image of `head` (a snapshot's head: its process and
    /// summary) lists its blocks. Called once per image, as images end.
    pub fn lists(&mut self, head: &Snapshot) -> bool {
        let Some(seen) = self.seen.as_mut() else { return true };
        // A fork child's counters go on from its parent's (which grow along
        // a shell loop): its own weight is what it allocated since the fork.
        let m = &head.summary;
        let (peak, bytes) = match &m.at_fork {
            Some(f) => (0, m.total_allocated_bytes.saturating_sub(f.total_allocated_bytes)),
            None => (m.peak_live_bytes, m.total_allocated_bytes),
        };
        let s = seen.entry(head.process.exe.clone()).or_insert(Seen {
            images: 0,
            peak: 0,
            bytes: 0,
        });
        s.images += 1;
        let heaviest = peak > s.peak || bytes > s.bytes;
        s.peak = s.peak.max(peak);
        s.bytes = s.bytes.max(bytes);
        head.process.ppid == self.run_pid || s.images <= FIRST || heaviest
    }
}

/// The bulk of a snapshot handed over in parts (`{"allocations":[…],…}`)
/// with an empty `allocations`, and how many records it held. None when
/// it does not start with the records or they do not end.
pub fn without_records(bulk: &[u8]) -> Option<(Vec<u8>, u64)> {
    const START: &[u8] = b"{\"allocations\":[";
    let body = bulk.strip_prefix(START)?;
    let (mut depth, mut in_string, mut escaped, mut records) = (1u32, false, false, 0u64);
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                records += (depth == 1 && b == b'{') as u64;
                depth += 1;
            }
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    let mut out = Vec::with_capacity(START.len() + body.len() - i);
                    out.extend_from_slice(START);
                    out.extend_from_slice(&body[i..]);
                    return Some((out, records));
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(exe: &str, ppid: u32, peak: u64) -> Snapshot {
        heavy(exe, ppid, peak, 0)
    }

    fn heavy(exe: &str, ppid: u32, peak: u64, bytes: u64) -> Snapshot {
        let mut s = memscope_format::read_snapshot(crate::export::tests::MINIMAL.as_bytes()).unwrap();
        s.process.exe = exe.into();
        s.process.ppid = ppid;
        s.summary.peak_live_bytes = peak;
        s.summary.total_allocated_bytes = bytes;
        s
    }

    #[test]
    fn the_root_the_first_images_and_the_heaviest_so_far_keep_their_lists() {
        let mut k = Keep::new(true, 1);
        let kept: Vec<bool> = [10, 10, 10, 10, 9, 11, 11, 5]
            .iter()
            .map(|&peak| k.lists(&head("/bin/ls", 7, peak)))
            .collect();
        assert_eq!(kept, [true, true, true, false, false, true, false, false]);
        // Allocating the most so far also counts as heaviest.
        assert!(k.lists(&heavy("/bin/ls", 7, 1, 100)));
        assert!(!k.lists(&heavy("/bin/ls", 7, 1, 100)));
        // A fork child weighs what it allocated since the fork.
        let mut child = heavy("/bin/sh", 7, 1_000, 5_000);
        child.summary.at_fork = Some(memscope_format::ForkCounters {
            total_allocated_bytes: 4_990,
            ..Default::default()
        });
        for _ in 0..FIRST {
            assert!(k.lists(&heavy("/bin/sh", 7, 0, 100)));
        }
        assert!(!k.lists(&child), "10 bytes of its own");
        // Another executable counts on its own; the root always lists.
        assert!(k.lists(&head("/bin/grep", 7, 1)));
        assert!(k.lists(&head("/bin/ls", 1, 0)));
        // MEMSCOPE_MAX_RECORDS set: every image lists.
        let mut all = Keep::new(false, 1);
        assert!((0..10).all(|_| all.lists(&head("/bin/ls", 7, 1))));
    }

    #[test]
    fn records_are_cut_from_a_bulk_whatever_their_strings_hold() {
        let mut s = head("/bin/ls", 7, 1);
        let mut bulk = Vec::new();
        s.write_bulk_json(&mut bulk).unwrap();
        assert_eq!(without_records(&bulk), Some((bulk.clone(), 0)), "nothing to cut");
        // The library's own bulk, with names a program chose.
        for name in ["a]}\"{[\\", "\u{1}x"] {
            s.allocations.push(memscope_format::Allocation {
                ptr: "0x10".into(),
                size: 8,
                kind: "malloc".into(),
                thread_id: 1,
                timestamp_alloc: 1000,
                timestamp_dealloc: 2000,
                lifetime_ns: 1000,
                lifetime_ms: 0,
                is_leaked: false,
                callsite: None,
                var_name: Some(name.into()),
                type_name: None,
                scope_name: None,
                inherited: false,
            });
        }
        let mut bulk = Vec::new();
        s.write_bulk_json(&mut bulk).unwrap();
        let (cut, n) = without_records(&bulk).unwrap();
        assert_eq!(n, 2);
        s.allocations.clear();
        let mut want = Vec::new();
        s.write_bulk_json(&mut want).unwrap();
        assert_eq!(cut, want);
        // Nested arrays and objects count once.
        let text = r#"{"allocations":[{"x":[{}]},{"y":"]"}],"variables":[]}"#;
        assert_eq!(
            without_records(text.as_bytes()),
            Some((br#"{"allocations":[],"variables":[]}"#.to_vec(), 2))
        );
        for bad in [&text[..30], "{\"variables\":[]}", ""] {
            assert_eq!(without_records(bad.as_bytes()), None, "{bad}");
        }
    }
}
