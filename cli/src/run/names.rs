//! Naming a run's frames once. Under `run`, every image leaves its frames
//! unnamed (`MEMSCOPE_SYMBOLIZE=later`): naming them in each process would
//! read the same libraries again in every image — 200 `ls` images read `ls`
//! and libc 200 times — and costs each short process more than its own
//! work. Here one [`Resolver`] names every snapshot of the run, so each
//! module and each address is read once, and each file is rewritten in
//! place (atomically, owner-only like the library's own writes).
//!
//! The naming runs on a thread of its own while the command runs, taking
//! each snapshot as soon as its image lists it in the manifest, so little
//! is left to do when the command ends; with each snapshot in hand it also
//! keeps what the summary needs of it ([`Collected`]), so `finish` does not
//! parse it again.

use super::digest::Collected;
use super::handoff::{self, Handed, Queue};
use memscope_format::{parts, Snapshot};
use memscope_symbols::{name_pending, Resolver};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::Duration;

/// How often the manifest is looked at while the command runs: a big
/// snapshot listed just after a look waits this long before its naming
/// starts, often past the end of the command (gcc: cc1's snapshot, then a
/// few ms of `as`). Each look reads only the lines added since the last
/// ([`super::tail`]); snapshots handed over wake the thread at once.
const POLL: Duration = Duration::from_millis(5);
/// Records and sites from which a snapshot's rewrite gets a thread of its own.
const PARALLEL_WRITE_FROM: usize = 2000;

/// The naming thread of a run.
pub struct Namer {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Collected>>,
}

impl Namer {
    /// Starts naming the snapshots listed in `manifest` as they appear,
    /// and writing those `handed` over ([`handoff`]).
    pub fn start(manifest: &Path, handed: Option<Queue>) -> Namer {
        let done = Arc::new(AtomicBool::new(false));
        let (flag, manifest) = (done.clone(), manifest.to_path_buf());
        let thread = std::thread::Builder::new()
            .name("memscope-names".into())
            .spawn(move || name_until(&manifest, &flag, handed))
            .ok();
        Namer { done, thread }
    }

    /// The command has ended: names what is left, then returns what it
    /// kept of every snapshot it read.
    pub fn finish(mut self, manifest: &Path) -> Collected {
        self.done.store(true, Ordering::Release);
        // Wake it from its poll wait: a short command must not wait a POLL.
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(kept)) => kept,
            // No thread (or it died): name everything here.
            _ => name_until(manifest, &AtomicBool::new(true), None),
        }
    }
}

/// Names new snapshots of the manifest until `done` is set, then once more;
/// writes each one handed over as it comes. `handed`'s sender is gone
/// (all is queued) before `done` is set.
fn name_until(manifest: &Path, done: &AtomicBool, mut handed: Option<Queue>) -> Collected {
    let mut resolver = Resolver::with_cache(crate::load::name_cache());
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut kept = Collected::default();
    let mut tail = super::tail::Tail::default();
    let mut lister = handoff::Lister::default();
    let mut looked = std::time::Instant::now();
    loop {
        let last_round = done.load(Ordering::Acquire);
        while let Some(h) = handed.as_ref().and_then(|rx| rx.try_recv().ok()) {
            name_handed(h, manifest, &mut resolver, &mut kept, &mut seen, &mut lister);
        }
        // Not after every snapshot handed over: what images list
        // themselves is looked for at the pace it was without a handoff.
        if last_round || looked.elapsed() >= POLL {
            looked = std::time::Instant::now();
            for path in tail.new_paths(manifest) {
                if seen.insert(path.clone()) {
                    name_file(&path, &mut resolver, &mut kept);
                }
            }
        }
        if last_round {
            resolver.save();
            return kept;
        }
        match handed.as_ref().map(|rx| rx.recv_timeout(POLL)) {
            Some(Ok(h)) => name_handed(h, manifest, &mut resolver, &mut kept, &mut seen, &mut lister),
            Some(Err(RecvTimeoutError::Timeout)) => {}
            // Everything handed over was taken: wait as without handoff.
            Some(Err(RecvTimeoutError::Disconnected)) => handed = None,
            None => std::thread::park_timeout(POLL),
        }
    }
}

/// Names a snapshot handed over and writes it where its image would have,
/// then lists it in the manifest as the image would have.
fn name_handed(
    h: Handed,
    manifest: &Path,
    resolver: &mut Resolver,
    kept: &mut Collected,
    seen: &mut HashSet<PathBuf>,
    lister: &mut handoff::Lister,
) {
    let first = !seen.contains(&h.path);
    let written = match h.snapshot() {
        handoff::Snapshot::Whole(json) => {
            write_whole(&h.path, json, resolver).map(|s| s.filter(|_| first).map(|s| kept.prepare(h.path.clone(), &s)))
        }
        handoff::Snapshot::Parts { head, tables, bulk } => write_parts(&h.path, head, tables, bulk, resolver, |s| {
            first.then(|| kept.prepare(h.path.clone(), s))
        }),
    };
    match written.and_then(|s| lister.list(manifest, &h.path).map(|()| s)) {
        Ok(prepared) => {
            seen.insert(h.path.clone());
            if let Some(p) = prepared {
                kept.keep(p);
            }
        }
        Err(e) => eprintln!(
            "memscope: cannot write the snapshot to {}: {}",
            crate::text::term(&h.path.display().to_string()),
            crate::text::term(&crate::load::io_reason(&e))
        ),
    }
}

/// A snapshot handed over as one JSON document (small: an inherited-only
/// one): parsed, named and written again; one that cannot be parsed is
/// written as it came (`finish` then reports it), one with nothing to name
/// too.
fn write_whole(path: &Path, json: &[u8], resolver: &mut Resolver) -> std::io::Result<Option<Snapshot>> {
    let mut snap = memscope_format::read_snapshot_bytes(json).ok();
    let named = snap.as_mut().is_some_and(|s| name_pending(s, resolver));
    match snap.as_ref().filter(|_| named) {
        Some(s) => crate::runfile::write_private(path, |w| s.write_json(w).map_err(std::io::Error::other)),
        None => crate::runfile::write_private(path, |w| w.write_all(json)),
    }
    .map(|()| snap)
}

/// A snapshot handed over in parts (`memscope_format::parts`): only its
/// head is parsed and its tables decoded and named; its records and the
/// rest of the bulk go into the file as they came. Parts that do not fit
/// together are written nowhere (an error line says so): no image sends
/// them.
fn write_parts<T: Send>(
    path: &Path,
    head: &[u8],
    tables: &[u8],
    bulk: &[u8],
    resolver: &mut Resolver,
    meanwhile: impl FnOnce(&Snapshot) -> T + Send,
) -> std::io::Result<T> {
    let mut snap = parts::assemble(head, tables).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("what its image handed over is not a snapshot: {e}"),
        )
    })?;
    name_pending(&mut snap, resolver);
    let write = || crate::runfile::write_private(path, |w| parts::write_spliced(w, head, &snap, bulk));
    if snap.allocations.len() + snap.callsites.len() < PARALLEL_WRITE_FROM {
        write()?;
        return Ok(meanwhile(&snap));
    }
    // As in `name_file`: a big one is written while its digest is made.
    std::thread::scope(|scope| {
        let writer = scope.spawn(write);
        let made = meanwhile(&snap);
        writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writing thread panicked")))
            .map(|()| made)
    })
}

/// Names one snapshot file's pending frames, and keeps its digest. A
/// snapshot that cannot be read or rewritten is left as it is (and not
/// kept): readers name pending frames on load, and `finish` reads it again
/// and reports it if it is unreadable.
fn name_file(path: &Path, resolver: &mut Resolver, kept: &mut Collected) {
    let Ok(mut snap) = memscope_format::read_snapshot_file(path) else {
        return;
    };
    if !name_pending(&mut snap, resolver) {
        kept.add(path.to_path_buf(), &snap);
        return;
    }
    // A big snapshot is written on a second thread while the digest is
    // made here: the run's biggest often ends last, and then both are what
    // is left to wait for (a small one is not worth a thread).
    let written = if snap.allocations.len() + snap.callsites.len() < PARALLEL_WRITE_FROM {
        kept.add(path.to_path_buf(), &snap);
        rewrite(path, &snap)
    } else {
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| rewrite(path, &snap));
            kept.add(path.to_path_buf(), &snap);
            writer
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the writing thread panicked")))
        })
    };
    if let Err(e) = written {
        eprintln!(
            "memscope: cannot name the frames in {}: {}",
            crate::text::term(&path.display().to_string()),
            crate::load::io_reason(&e)
        );
    }
}

/// Replaces `path` with `snap`, atomically and owner-only (see
/// [`crate::runfile::write_private`]).
fn rewrite(path: &Path, snap: &Snapshot) -> std::io::Result<()> {
    crate::runfile::write_private(path, |w| snap.write_json(w).map_err(std::io::Error::other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_written_as_one_snapshot_and_parts_that_do_not_fit_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let mut s = memscope_format::read_snapshot(crate::export::tests::MINIMAL.as_bytes()).unwrap();
        s.process.argv = vec!["prog".into(), "\"}\n</script>".into()];
        let (head, tables) = (s.head_json().unwrap(), parts::encode_tables(&s));
        let mut bulk = Vec::new();
        s.write_bulk_json(&mut bulk).unwrap();
        let mut r = Resolver::new();
        let e = write_parts(&path, &head, &tables[..tables.len() - 1], &bulk, &mut r, |_| ()).unwrap_err();
        assert!(e.to_string().contains("not a snapshot: its tables"), "{e}");
        assert!(!path.exists(), "nothing written");
        let kept = write_parts(&path, &head, &tables, &bulk, &mut r, Snapshot::clone).unwrap();
        assert_eq!(kept.process, s.process);
        assert_eq!(memscope_format::read_snapshot_file(&path).unwrap(), s);
    }
}
