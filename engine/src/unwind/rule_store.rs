//! Unwind rules kept between process images, as the name cache keeps names.
//!
//! A rule is a pure function of a module's code, and every exec'd image
//! started with empty caches: under `run`, each `ls` of a shell loop derived
//! the same ~366 rules from `.eh_frame` (~1 µs each, ~350 µs an image,
//! about a fifth of the loop's overhead). Here an image reads, as it
//! starts, the rules its executable's earlier images derived (one file per
//! executable build id, a section per module build id, in the name cache's
//! directory of this memscope build) and, as it ends, writes back the file
//! with what it derived anew.
//!
//! Read with `read`, never mapped: a file another process truncates under a
//! mapping would be a `SIGBUS` in the traced program. Read only at start-up,
//! before the program can confine itself with a seccomp filter (a fork
//! child inherits what its parent read); written at the end only when no
//! filter is on. A file that is not whole and well-formed counts as empty.
//! A rule read here only decides which stack words a walk reads, and every
//! read is checked against the thread's stack: a wrong one costs frames,
//! never a crash.

use super::modules::Module;
use super::rules::Rule;
use crate::lock::Locked;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

const MAGIC: &[u8; 8] = b"MSRULES1";
/// Bounds a file must keep to be read (a damaged count is refused before
/// anything is sized by it).
const MAX_SECTIONS: usize = 256;
const MAX_ENTRIES: usize = 1 << 20;
const ENTRY: usize = 12;
/// The largest file read: every section full (a bigger one is not read).
const MAX_BYTES: u64 = (12 + MAX_SECTIONS * (1 + 255 + 4) + MAX_ENTRIES * ENTRY) as u64;

/// One module's rules: `(offset of the code address from the module's
/// bias, rule)`, sorted by offset.
#[derive(Debug, Default, Clone, PartialEq)]
struct Section {
    build_id: Vec<u8>,
    entries: Vec<(u32, u64)>,
}

/// Where this image's file is, and what it held at start-up.
struct Store {
    dir: memscope_symbols::NameCache,
    file: String,
    sections: Vec<Section>,
}

static STORE: OnceLock<Store> = OnceLock::new();
/// Rules derived here that the file did not hold.
static NEW: Locked<Vec<(&'static Module, u32, u64)>> = Locked::new(Vec::new());
/// How many of `NEW` a `fork()` child inherited (it writes only if it
/// derived more: its parent writes the rest).
static NEW_AT_FORK: AtomicUsize = AtomicUsize::new(0);

/// Reads the file of the executable `exe` (its module) from `dir`, the name
/// cache of this memscope build. Called once, at start-up.
pub fn load(dir: memscope_symbols::NameCache, exe: &Module) {
    if exe.build_id.is_empty() {
        return;
    }
    let file = format!("{}.rules", memscope_symbols::hex(&exe.build_id));
    let sections = dir.read(&file, MAX_BYTES).and_then(|b| decode(&b)).unwrap_or_default();
    let _ = STORE.set(Store { dir, file, sections });
}

/// The rule kept for code address `at` of module `m`.
#[inline]
pub fn lookup(m: &Module, at: u64) -> Option<Rule> {
    let store = STORE.get()?;
    let off = u32::try_from(at.checked_sub(m.bias)?).ok()?;
    let s = store.sections.iter().find(|s| s.build_id == m.build_id)?;
    let i = s.entries.binary_search_by_key(&off, |e| e.0).ok()?;
    Some(Rule(s.entries[i].1))
}

/// Notes a rule derived here, to be written at the end.
pub fn note(m: &'static Module, at: u64, rule: Rule) {
    // A section names its module in at most 255 bytes (GNU build ids are 20).
    if STORE.get().is_none() || m.build_id.is_empty() || m.build_id.len() > 255 {
        return;
    }
    let Some(off) = at.checked_sub(m.bias).and_then(|o| u32::try_from(o).ok()) else {
        return;
    };
    NEW.with(|new| {
        if new.len() < MAX_ENTRIES {
            new.push((m, off, rule.0))
        }
    });
}

/// In a `fork()` child: what was derived so far is the parent's to write.
pub fn fork_child() {
    NEW.reset_in_child();
    NEW_AT_FORK.store(NEW.with(|new| new.len()), Ordering::Relaxed);
}

/// Writes the file back with the rules derived here, if there are any.
/// `allowed`: whether no seccomp filter could trap the system calls it
/// makes (asked only when there is something to write).
pub fn save(allowed: impl FnOnce() -> bool) {
    let Some(store) = STORE.get() else { return };
    let new = NEW.with(|new| {
        if new.len() <= NEW_AT_FORK.load(Ordering::Relaxed) {
            return Vec::new();
        }
        std::mem::take(new)
    });
    if new.is_empty() || !allowed() {
        return;
    }
    // What the file holds now (another image may have written since this
    // one started), then what this one found.
    let mut sections = store
        .dir
        .read(&store.file, MAX_BYTES)
        .and_then(|b| decode(&b))
        .unwrap_or_else(|| store.sections.clone());
    // Nothing the file lacks, nothing written: every fork child of a shell
    // derives the same few rules its parent never needs, and rewrote the
    // file each time (on ext4, a rename over a file flushes its data: block
    // I/O in every child of a subshell loop).
    let held = |m: &Module, off: u32| {
        sections
            .iter()
            .find(|s| s.build_id == m.build_id)
            .is_some_and(|s| s.entries.binary_search_by_key(&off, |e| e.0).is_ok())
    };
    if new.iter().all(|&(m, off, _)| held(m, off)) {
        return;
    }
    for (m, off, rule) in new {
        let i = match sections.iter().position(|s| s.build_id == m.build_id) {
            Some(i) => i,
            None if sections.len() < MAX_SECTIONS => {
                sections.push(Section {
                    build_id: m.build_id.clone(),
                    entries: Vec::new(),
                });
                sections.len() - 1
            }
            None => continue,
        };
        sections[i].entries.push((off, rule));
    }
    let mut total = 0;
    for s in &mut sections {
        s.entries.sort_unstable_by_key(|e| e.0);
        s.entries.dedup_by_key(|e| e.0);
        s.entries.truncate(MAX_ENTRIES.saturating_sub(total));
        total += s.entries.len();
    }
    if store.dir.write_atomic(&store.file, &encode(&sections)).is_ok() {
        crate::debug!("kept {total} unwind rules in {}", store.file);
    }
}

fn encode(sections: &[Section]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        12 + sections
            .iter()
            .map(|s| 5 + s.build_id.len() + ENTRY * s.entries.len())
            .sum::<usize>(),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    for s in sections {
        out.push(s.build_id.len() as u8);
        out.extend_from_slice(&s.build_id);
        out.extend_from_slice(&(s.entries.len() as u32).to_le_bytes());
        for &(off, rule) in &s.entries {
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&rule.to_le_bytes());
        }
    }
    out
}

/// The sections of a file, or None unless it is whole and well-formed:
/// every count within the file, entries sorted, nothing after the last.
fn decode(bytes: &[u8]) -> Option<Vec<Section>> {
    let mut at = bytes.strip_prefix(MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = at.split_at_checked(n)?;
        at = rest;
        Some(head)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    if count > MAX_SECTIONS {
        return None;
    }
    let mut sections = Vec::with_capacity(count);
    let mut total = 0;
    for _ in 0..count {
        let id_len = take(1)?[0] as usize;
        let build_id = take(id_len)?.to_vec();
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        total += n;
        if total > MAX_ENTRIES {
            return None;
        }
        let raw = take(n.checked_mul(ENTRY)?)?;
        let entries: Vec<(u32, u64)> = raw
            .chunks_exact(ENTRY)
            .map(|e| {
                (
                    u32::from_le_bytes(e[..4].try_into().unwrap()),
                    u64::from_le_bytes(e[4..].try_into().unwrap()),
                )
            })
            .collect();
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return None;
        }
        sections.push(Section { build_id, entries });
    }
    at.is_empty().then_some(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Section> {
        vec![
            Section {
                build_id: vec![0xab; 20],
                entries: vec![(0x10, Rule::new(false, 8, None).0), (0x1234, Rule::STOP.0)],
            },
            Section {
                build_id: vec![1, 2, 3],
                entries: vec![(7, Rule::new(true, 16, Some(-16)).0)],
            },
        ]
    }

    #[test]
    fn files_read_back_as_written() {
        let s = sample();
        assert_eq!(decode(&encode(&s)), Some(s));
        assert_eq!(decode(&encode(&[])), Some(vec![]));
    }

    #[test]
    fn damaged_files_count_as_empty() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode(&long), None, "bytes past the end");
        let mut unsorted = sample();
        unsorted[0].entries.swap(0, 1);
        assert_eq!(decode(&encode(&unsorted)), None, "entries out of order");
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), None, "a section count no file holds");
        let mut other = bytes;
        other[7] = b'2';
        assert_eq!(decode(&other), None, "another format");
    }
}
