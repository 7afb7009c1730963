//! Reading every snapshot of a run without holding them: each is read
//! whole, boiled down to a [`Digest`] (a few hundred bytes and the argv: process, totals,
//! the row of the report's index) and dropped before the next, so memory
//! stays that of the largest snapshot (one per reading thread) whether the
//! run had three processes or three thousand. The one process the summary
//! leads with keeps its printed lines ([`Lead`]), computed while its
//! snapshot is still at hand.

use crate::sites::site_names;
use crate::summary::{heap_lines, sorted_sites};
use crate::text::{bytes, count, term};
use memscope_format::{Process, Snapshot};
use memscope_report::groups::heavier_first;
use memscope_report::ProcessRow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Sites listed under the leading process.
const LEAD_SITES: usize = 5;
/// Reading threads at most; snapshots are parsed side by side (the traced
/// command has ended, its cores are free), one snapshot each at a time.
const MAX_READERS: usize = 4;
/// Below this many snapshots one thread reads them all.
const PARALLEL_FROM: usize = 8;

/// What `run` keeps of one snapshot once it is read.
pub struct Digest {
    pub path: PathBuf,
    /// The process (its whole `argv` too: the run manifest lists it).
    pub process: Process,
    pub row: ProcessRow,
    /// `summary.peak_rss_bytes` and the heap peak beside it.
    pub resident: memscope_format::Summary,
}

/// The lines the summary tells about the process it leads with: the
/// heaviest (see [`heavier_first`]), first of [`Digests::all`].
pub struct Lead {
    /// [`heap_lines`] of its snapshot.
    pub heap: Vec<String>,
    /// Its top sites by bytes, ready to print (escaped); empty when its
    /// snapshot has no backtraces.
    pub sites: Vec<String>,
}

/// Every readable snapshot of a run, heaviest first, and the lead.
pub struct Digests {
    pub all: Vec<Digest>,
    pub lead: Option<Lead>,
    /// One line per snapshot that could not be read, in manifest order.
    pub errors: Vec<String>,
}

/// Digests made while each snapshot was in hand anyway (the naming pass
/// reads and rewrites every snapshot of a run: reading it again here would
/// parse every file twice).
#[derive(Default)]
pub struct Collected {
    digests: Vec<Digest>,
    best: Option<(ProcessRow, Lead)>,
}

/// A snapshot's digest, and its lead lines if it leads so far: made
/// ([`Collected::prepare`]) while the snapshot is being written, kept
/// ([`Collected::keep`]) once it is.
pub struct Prepared {
    digest: Digest,
    lead: Option<Lead>,
}

impl Collected {
    pub fn add(&mut self, path: PathBuf, s: &Snapshot) {
        let p = self.prepare(path, s);
        self.keep(p);
    }

    /// What [`add`](Self::add) keeps of `s`, made without changing what is
    /// kept.
    pub fn prepare(&self, path: PathBuf, s: &Snapshot) -> Prepared {
        let d = digest(path, s);
        let leads = self
            .best
            .as_ref()
            .map_or(true, |(b, _)| heavier_first(&d.row, b).is_lt());
        Prepared {
            lead: leads.then(|| lead(s)),
            digest: d,
        }
    }

    pub fn keep(&mut self, p: Prepared) {
        if let Some(l) = p.lead {
            if self
                .best
                .as_ref()
                .map_or(true, |(b, _)| heavier_first(&p.digest.row, b).is_lt())
            {
                self.best = Some((p.digest.row.clone(), l));
            }
        }
        self.digests.push(p.digest);
    }
}

/// Reads the snapshots at `paths` that `done` does not hold yet (on up to
/// [`MAX_READERS`] threads), and returns them with `done`'s.
pub fn read_all(paths: Vec<PathBuf>, done: Collected) -> Digests {
    let known: std::collections::HashSet<&PathBuf> = done.digests.iter().map(|d| &d.path).collect();
    let paths: Vec<PathBuf> = paths.into_iter().filter(|p| !known.contains(p)).collect();
    drop(known);
    let n = paths.len();
    let readers = if n < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |p| p.get())
            .clamp(1, MAX_READERS)
    };
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Digest, String>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let leads: Mutex<Vec<(ProcessRow, Lead)>> = Mutex::new(done.best.into_iter().collect());
    let work = || {
        let mut best: Option<(ProcessRow, Lead)> = None;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let got = crate::load::snapshot(&paths[i]).map(|s| {
                let d = digest(paths[i].clone(), &s);
                if best.as_ref().map_or(true, |(b, _)| heavier_first(&d.row, b).is_lt()) {
                    best = Some((d.row.clone(), lead(&s)));
                }
                d
            });
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(got);
        }
        if let Some(b) = best {
            leads.lock().unwrap_or_else(|e| e.into_inner()).push(b);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..readers {
            scope.spawn(work);
        }
        work();
    });
    let mut all = done.digests;
    all.reserve(n);
    let mut errors = Vec::new();
    for slot in slots {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(d)) => all.push(d),
            Some(Err(e)) => errors.push(e),
            None => {}
        }
    }
    all.sort_by(|a, b| heavier_first(&a.row, &b.row));
    let lead = leads
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .min_by(|a, b| heavier_first(&a.0, &b.0))
        .map(|(_, l)| l);
    Digests { all, lead, errors }
}

fn digest(path: PathBuf, s: &Snapshot) -> Digest {
    Digest {
        path,
        process: s.process.clone(),
        row: ProcessRow::of(s),
        resident: memscope_format::Summary {
            peak_rss_bytes: s.summary.peak_rss_bytes,
            peak_live_bytes: s.summary.peak_live_bytes,
            ..Default::default()
        },
    }
}

/// The lines the summary prints about `s` if it leads.
pub(super) fn lead(s: &Snapshot) -> Lead {
    let mut sites = Vec::new();
    let top = sorted_sites(s, |c| c.bytes);
    if top.iter().any(|c| !c.frames.is_empty()) {
        let names = site_names(s);
        for c in top.iter().take(LEAD_SITES) {
            // A site that only reallocates (a growing buffer) counts its
            // reallocations: "0 allocs" would hide it.
            let (n, what) = if c.allocations == 0 && c.reallocs > 0 {
                (c.reallocs, "reallocs")
            } else {
                (c.allocations, "allocs")
            };
            sites.push(format!(
                "{:>10} {:>9} {what:<8}  {}",
                bytes(c.bytes),
                count(n),
                term(&names[&c.id])
            ));
        }
    }
    Lead {
        heap: heap_lines(s),
        sites,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a snapshot of process `pid` with these totals to `dir`.
    fn write(dir: &std::path::Path, pid: u32, bytes: u64, inherited_only: bool) -> PathBuf {
        let mut s = memscope_format::read_snapshot(crate::export::tests::MINIMAL.as_bytes()).unwrap();
        s.process.pid = pid;
        s.summary.total_allocated_bytes = bytes;
        s.summary.total_allocations = bytes / 8;
        s.summary.inherited_only = inherited_only;
        let path = dir.join(format!("s.{pid}.json"));
        s.write_json(std::fs::File::create(&path).unwrap()).unwrap();
        path
    }

    #[test]
    fn reads_side_by_side_and_leads_with_the_heaviest_that_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths: Vec<PathBuf> = (0..20)
            .map(|i| write(dir.path(), 100 + i, 800 + 8 * u64::from(i), false))
            .collect();
        // A fork child that only inherited its parent's much bigger totals.
        paths.insert(3, write(dir.path(), 7, 1 << 30, true));
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{\"format\":").unwrap();
        paths.insert(5, broken);
        let d = read_all(paths, Collected::default());
        assert_eq!(d.all.len(), 21);
        assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
        assert!(d.errors[0].contains("broken.json"), "{}", d.errors[0]);
        let pids: Vec<u32> = d.all.iter().map(|x| x.process.pid).collect();
        assert_eq!(pids[..3], [119, 118, 117], "heaviest first");
        assert_eq!(pids[20], 7, "the inherited-only fork last");
        let lead = d.lead.unwrap();
        assert!(lead.heap[1].contains("952 B in 119 allocations"), "{:?}", lead.heap);
        assert!(lead.sites.is_empty(), "no backtraces, no site lines");
    }
}
