//! From the collector's final state to a SPEC §3 snapshot, and onto disk.

use crate::clock::Calibration;
use crate::collector::{Finished, Record};
use crate::config::Config;
use crate::event::Kind;
use crate::process::ProcessInfo;
use memscope_format as fmt;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;

/// How the image ended.
#[derive(Debug, Clone, Copy)]
pub struct Ending {
    pub kind: fmt::EndKind,
    pub end_ticks: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// True when no code of the image runs after this snapshot (the last
    /// one of an image that exits, dies or aborts): its memory is then
    /// left to the kernel ([`crate::image::dispose`]). False for a running
    /// snapshot, one before an `exec` (which can fail), and one prepared
    /// ahead of its ending (a fork child's inherited-only snapshot).
    pub process_ends: bool,
    /// The process's resident bytes at the end and its peak, as the caller
    /// read them ([`crate::rss::now_and_peak`]): one read of
    /// /proc/self/status per ending, which also tells whether a seccomp
    /// filter is on before the caller opens any file. Read twice (the
    /// listing table's check, then the figures), it cost every image and
    /// fork child under `run` more than the second read's ~14 µs: a
    /// `(:)` loop's subshells ended ~60 µs faster with one.
    pub resident: Resident,
}

/// Resident bytes now and at the peak (`None`: not known, or read later).
#[derive(Debug, Clone, Copy, Default)]
pub struct Resident {
    pub now: Option<u64>,
    pub peak: Option<u64>,
}

impl Resident {
    /// Reads them (see [`crate::rss::now_and_peak`]).
    pub fn read() -> Resident {
        let (now, peak) = crate::rss::now_and_peak();
        Resident { now, peak }
    }
}

/// Extra counters the engine (not the collector) knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineCounts {
    pub events_dropped: u64,
}

pub fn build(
    fin: Finished,
    process: &ProcessInfo,
    ending: Ending,
    cal: &Calibration,
    cfg: &Config,
    counts: EngineCounts,
) -> fmt::Snapshot {
    let ns = |ticks: u64| cal.duration_ns(ticks);
    let unix = |ticks: u64| cal.unix_ns(ticks);
    let t = fin.totals;
    let total_blocks = t.allocations + t.reallocs;
    let max = cfg.max_records as usize;
    // A running snapshot's live blocks are live now, not leaked (SPEC §3).
    let ended = ending.kind != fmt::EndKind::Running;

    // A forked child starts at the fork, but its heap, peak and timeline
    // continue the parent's history (as DHAT counts it).
    let first_event = fin.timeline.first().map_or(u64::MAX, |p| unix(p.0));
    let start_unix = if process.forked {
        process.start.unix_ns
    } else {
        process.start.unix_ns.min(first_event)
    };
    let history_start = start_unix.min(first_event);
    // Not before the start: a fork child's start is the wall clock read at
    // the fork, and that clock can step (a VM's time sync) against the
    // monotonic one ticks convert by. Live blocks end here too.
    let end_unix = unix(ending.end_ticks).max(start_unix);

    let mut allocations = Vec::with_capacity(max.min(fin.live_at_end.len() + fin.freed.len()));
    let names: std::collections::HashMap<u64, crate::var_names::Names> =
        fin.vars.iter().map(|v| (v.id, crate::var_names::names(v.id))).collect();
    let record = |r: &Record, leaked: bool| {
        let n = names.get(&r.var);
        // The lifetime is exactly the difference of the two timestamps shown.
        let (born, died) = (unix(r.birth), if leaked { end_unix } else { unix(r.death) });
        let life = died - born;
        fmt::Allocation {
            ptr: fmt::hex_addr(r.ptr),
            size: r.size,
            kind: Kind::from_u8(r.kind).map_or("malloc", Kind::record_name).to_string(),
            thread_id: fin.threads.get(r.thread as usize).map_or(0, |t| t.tid as u64),
            timestamp_alloc: born,
            timestamp_dealloc: died,
            lifetime_ns: life,
            lifetime_ms: fmt::ns_to_ms(life),
            is_leaked: leaked && ended,
            callsite: Some(r.site as u64),
            var_name: n.map(|n| n.var_name.clone()),
            type_name: n.map(|n| n.type_name.clone()),
            scope_name: n.map(|n| n.scope_name.clone()),
            inherited: r.inherited,
        }
    };
    // Blocks owned by tracked variables first, then the rest of the live
    // ones, then the best of the freed ones (SPEC §3).
    let named_live = fin.live_at_end.iter().filter(|r| r.var != 0).map(|r| (r, true));
    let named_freed = fin.named_freed.iter().map(|r| (r, false));
    allocations.extend(
        named_live
            .chain(named_freed)
            .take(max)
            .map(|(r, leaked)| record(r, leaked)),
    );
    let room = max.saturating_sub(allocations.len());
    allocations.extend(
        fin.live_at_end
            .iter()
            .filter(|r| r.var == 0)
            .take(room)
            .map(|r| record(r, true)),
    );
    let room = max.saturating_sub(allocations.len());
    let mut freed: Vec<&Record> = fin.freed.iter().collect();
    if freed.len() > room {
        // The largest first (ties: the earliest), as the collector kept them.
        freed.select_nth_unstable_by(room, |a, b| {
            b.size.cmp(&a.size).then(a.birth.cmp(&b.birth)).then(a.ptr.cmp(&b.ptr))
        });
        freed.truncate(room);
    }
    freed.sort_unstable_by_key(|r| (r.birth, r.ptr));
    allocations.extend(freed.into_iter().map(|r| record(r, false)));
    let records_omitted = total_blocks.saturating_sub(allocations.len() as u64);

    // Read by the caller before the frames are named: naming reads symbol
    // tables (memscope's memory, not the program's), and the same read of
    // /proc/self/status tells the name cache whether a seccomp filter is on.
    let Resident {
        now: rss_now,
        peak: rss_peak,
    } = ending.resident;
    // Under `memscope-cli run` (MEMSCOPE_SYMBOLIZE=later), a JSON snapshot
    // written at the end of an image leaves its frames for `run` to name;
    // one asked for while the program runs, or an HTML report, is named here.
    let name_now =
        !cfg.symbolize_later || cfg.format != crate::config::ExportFormat::Json || ending.kind == fmt::EndKind::Running;
    let mut symbols = crate::unwind::symbolize::Symbolizer::new(name_now);
    let in_process = crate::image::host() == crate::image::Host::InProcess;
    let mut ips = Vec::new();
    let mut callsites = fin
        .sites
        .iter()
        .filter(|(id, s)| (*id == 0 && cfg.backtrace == 0) || s.allocations + s.reallocs > 0)
        .map(|(id, s)| {
            let st = s.lifetimes.stats();
            crate::unwind::sites::frames_into(id, &mut ips);
            let mut frames = symbols.stack(&ips);
            if in_process {
                crate::unwind::symbolize::strip_own_frames(&mut frames, symbols.frames());
            }
            fmt::Callsite {
                id: id as u64,
                frames,
                allocations: s.allocations,
                bytes: s.bytes,
                live_at_exit_bytes: s.live_bytes,
                peak_live_bytes: s.peak_live_bytes,
                lifetime_ns: fmt::LifetimeStats {
                    min: ns(st.min),
                    p50: ns(st.p50),
                    p99: ns(st.p99),
                    max: ns(st.max),
                    total: Some(cal.duration_ns_sum(s.lifetimes.sum())),
                },
                live_at_exit_allocations: s.live_blocks,
                reallocs: s.reallocs,
                at_peak_bytes: s.at_peak_bytes,
                at_peak_allocations: s.at_peak_blocks,
                peak_live_allocations: (s.peak_live_blocks != 1).then_some(s.peak_live_blocks),
            }
        })
        .collect::<Vec<_>>();
    // A fork child's sites come in the order it first used them.
    callsites.sort_unstable_by_key(|c| c.id);
    let symbols_pending = symbols.pending();
    let process_ends = ending.process_ends;
    let (tables, module_info) = symbols.into_tables(process_ends);

    let threads = fin
        .threads
        .iter()
        .map(|th| fmt::ThreadStats {
            thread_id: th.tid as u64,
            name: th.name.clone(),
            allocations: th.allocations,
            bytes: th.bytes,
            frees: th.frees,
            live_at_exit_bytes: th.live_bytes,
        })
        .collect();

    let lifetime_histogram = fin
        .lifetime_counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(b, &count)| fmt::HistogramBucket {
            lower_ns: ns(fmt::hist::bucket_lower(b)),
            upper_ns: ns(fmt::hist::bucket_upper(b)),
            count,
            bytes: fin.lifetime_bytes[b],
        })
        .collect();

    let resident = crate::rss::samples();
    let at = |ts: u64| crate::rss::resident_at(&resident, ts);
    let mut timeline = Vec::with_capacity(fin.timeline.len() + 2);
    if !process.forked {
        timeline.push(fmt::TimelinePoint(start_unix, 0, resident.first().map(|s| s.1)));
    }
    timeline.extend(
        fin.timeline
            .iter()
            .map(|&(ts, b)| fmt::TimelinePoint(unix(ts).clamp(history_start, end_unix), b, at(ts))),
    );
    timeline.push(fmt::TimelinePoint(end_unix, fin.live_bytes, rss_now));

    let snapshot = fmt::Snapshot {
        format: fmt::FORMAT.to_string(),
        format_version: fmt::FORMAT_VERSION,
        tool: fmt::Tool {
            name: "memscope".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            mode: match crate::image::host() {
                crate::image::Host::Preload => "preload".into(),
                crate::image::Host::InProcess => "in-process".into(),
            },
            backtrace_depth: cfg.backtrace,
            max_records: cfg.max_records,
            clock: crate::clock::name().into(),
            site_totals: true,
        },
        process: fmt::Process {
            pid: process.pid,
            ppid: process.ppid,
            exe: process.exe.clone(),
            argv: process.argv.clone(),
            start_unix_ns: start_unix,
            end_unix_ns: end_unix,
            end: ending.kind,
            exit_code: ending.exit_code,
            signal: ending.signal,
            cwd: process.cwd.clone(),
            exec_seq: process.exec_seq,
            forked: process.forked,
        },
        summary: fmt::Summary {
            total_allocations: t.allocations,
            total_frees: t.frees,
            total_allocated_bytes: t.allocated_bytes,
            total_freed_bytes: t.freed_bytes,
            reallocs: t.reallocs,
            peak_live_bytes: fin.peak.bytes,
            peak_live_allocations: fin.peak.blocks,
            peak_unix_ns: if fin.peak.bytes == 0 {
                start_unix
            } else {
                unix(fin.peak.ts).clamp(history_start, end_unix)
            },
            live_at_exit_allocations: fin.live_count + fin.inherited_live_at_end.0,
            live_at_exit_bytes: fin.live_bytes,
            events_dropped: counts.events_dropped,
            records_omitted,
            peak_rss_bytes: rss_peak,
            inherited_allocations: t.inherited_allocations,
            inherited_bytes: t.inherited_bytes,
            unmatched_frees: t.unmatched_frees,
            inherited_only: fin.inherited_only,
            at_fork: fin.at_fork.map(|f| fmt::ForkCounters {
                total_allocations: f.allocations,
                total_frees: f.frees,
                total_allocated_bytes: f.allocated_bytes,
                total_freed_bytes: f.freed_bytes,
                reallocs: f.reallocs,
            }),
            inherited_live_at_exit_allocations: fin.inherited_live_at_end.0,
            inherited_live_at_exit_bytes: fin.inherited_live_at_end.1,
        },
        allocations,
        modules: tables.modules,
        module_info,
        frames: tables.frames,
        symbols_pending,
        callsites,
        variables: fin
            .vars
            .iter()
            .map(|v| {
                let n = names.get(&v.id).cloned().unwrap_or_default();
                let born = unix(v.birth);
                let died = v.death.map_or(end_unix, |d| unix(d.max(v.birth)));
                fmt::Variable {
                    var_name: n.var_name,
                    type_name: n.type_name,
                    scope_name: n.scope_name,
                    ptr: fmt::hex_addr(v.ptr),
                    size: v.size,
                    thread_id: fin.threads.get(v.thread as usize).map_or(0, |t| t.tid as u64),
                    timestamp_alloc: born,
                    timestamp_dealloc: died,
                    lifetime_ns: died - born,
                    lifetime_ms: fmt::ns_to_ms(died - born),
                    is_leaked: v.death.is_none() && ended,
                }
            })
            .collect(),
        threads,
        lifetime_histogram,
        timeline,
    };
    crate::image::dispose(fin, process_ends);
    snapshot
}

/// The buffer snapshots are written through. 64 KiB: below malloc's mmap
/// threshold (a bigger buffer cost every small snapshot an mmap and
/// munmap), already far above a write's cost.
pub const WRITE_BUFFER: usize = 64 << 10;

/// Writes `path` atomically: a fresh temporary file (0600, never through a
/// symlink) in the same directory, then `rename` over the target.
/// `fill` gets the concrete buffered file (not `dyn Write`): serializers make
/// millions of tiny writes, which then inline into a copy.
pub fn write_atomic(
    path: &str,
    fill: impl FnOnce(&mut io::BufWriter<std::fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let (dir, name) = match path.rfind('/') {
        Some(i) => (&path[..i.max(1)], &path[i + 1..]),
        None => (".", path),
    };
    if name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names a directory",
        ));
    }
    // rename() would replace whatever is there: fine for a file or a planted
    // symlink (never followed), never for a device (/dev/full), fifo or
    // directory.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let t = meta.file_type();
        if !(t.is_file() || t.is_symlink()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file; refusing to replace it",
            ));
        }
    }
    let pid = crate::sys::getpid();
    let mut attempt = 0u32;
    let (tmp, file) = loop {
        let tmp = format!("{dir}/.{name}.{pid}.{attempt}.tmp");
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        let mut w = io::BufWriter::with_capacity(WRITE_BUFFER, file);
        fill(&mut w)?;
        w.flush()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Appends `line` to the run manifest (one `write`, so lines never interleave).
pub fn append_manifest(manifest: &str, line: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(manifest)?;
    f.write_all(format!("{line}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Anchor;
    use crate::collector::Collector;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    fn process(start: Anchor) -> ProcessInfo {
        ProcessInfo {
            pid: 4242,
            ppid: 1,
            exe: "/bin/prog".into(),
            argv: vec!["prog".into(), "</script>".into()],
            cwd: "/tmp".into(),
            start,
            exec_seq: 0,
            is_root: true,
            forked: false,
        }
    }

    /// 1 tick = 1 ns, anchored at UNIX time 1_000_000_000_000.
    fn calibration() -> (Anchor, Calibration) {
        let a = Anchor {
            ticks: 1000,
            mono_ns: 1000,
            unix_ns: 1_000_000_000_000,
        };
        (a, Calibration::identity(a))
    }

    fn config(max_records: u64) -> Config {
        let (mut c, _) = Config::parse(|_| None);
        c.max_records = max_records;
        c
    }

    /// The ending of an image that exits with `code` at tick `end_ticks`.
    fn exit_at(end_ticks: u64, code: i32) -> Ending {
        Ending {
            kind: fmt::EndKind::Exit,
            end_ticks,
            exit_code: Some(code),
            signal: None,
            process_ends: false,
            resident: Resident::default(),
        }
    }

    fn sample() -> Collector {
        let mut c = Collector::new(1000, 1.0, 10);
        c.thread_slot(77);
        c.alloc(2000, 0x10, 100, Kind::Malloc, 0, 0);
        c.alloc(3000, 0x20, 50, Kind::Calloc, 0, 0);
        c.free(5_002_000, 0x10, 0);
        c
    }

    #[test]
    fn builds_a_complete_snapshot_with_unix_times() {
        let (a, cal) = calibration();
        let ending = exit_at(9_000_000, 3);
        let s = build(
            sample().finish(9_000_000),
            &process(a),
            ending,
            &cal,
            &config(10),
            EngineCounts::default(),
        );
        assert_eq!((s.format.as_str(), s.format_version), ("memscope", 2));
        assert_eq!(s.process.exit_code, Some(3));
        assert_eq!(s.process.end_unix_ns, 1_000_000_000_000 + 9_000_000 - 1000);
        let m = &s.summary;
        assert_eq!(
            (
                m.total_allocations,
                m.total_frees,
                m.live_at_exit_bytes,
                m.peak_live_bytes
            ),
            (2, 1, 50, 150)
        );
        assert_eq!(s.allocations.len(), 2);
        let live = &s.allocations[0];
        assert!(live.is_leaked && live.size == 50 && live.kind == "calloc" && live.thread_id == 77);
        assert_eq!(live.timestamp_dealloc, s.process.end_unix_ns);
        let freed = &s.allocations[1];
        assert_eq!((freed.lifetime_ns, freed.lifetime_ms), (5_000_000, 5));
        assert_eq!(freed.ptr, "0x10");
        assert_eq!(s.callsites.len(), 1);
        assert!(s.callsites[0].frames.is_empty(), "backtraces off: one site, no frames");
        assert_eq!(s.lifetime_histogram.iter().map(|b| b.count).sum::<u64>(), 2);
        assert_eq!(s.timeline.first().unwrap().1, 0);
        assert_eq!(s.timeline.last().unwrap().pair(), (s.process.end_unix_ns, 50));
        assert!(s.timeline.iter().any(|p| p.1 == 150));
        // Round trip through the reader, hostile argv and all.
        let mut buf = Vec::new();
        s.write_json(&mut buf).unwrap();
        assert_eq!(memscope_format::read_snapshot(&buf[..]).unwrap(), s);
    }

    #[test]
    fn live_blocks_end_with_the_process_when_the_wall_clock_stepped() {
        let (a, cal) = calibration();
        let mut p = process(a);
        p.forked = true;
        // Read at the fork, the wall clock had stepped past the end as the
        // ticks convert it (seen once in CI: 205 µs).
        p.start.unix_ns = cal.unix_ns(9_000_000) + 205_000;
        let ending = exit_at(9_000_000, 0);
        let s = build(
            sample().finish(9_000_000),
            &p,
            ending,
            &cal,
            &config(10),
            EngineCounts::default(),
        );
        assert_eq!(s.process.end_unix_ns, s.process.start_unix_ns);
        let live = s.allocations.iter().find(|a| a.is_leaked).unwrap();
        assert_eq!(live.timestamp_dealloc, s.process.end_unix_ns);
        assert_eq!(live.lifetime_ns, live.timestamp_dealloc - live.timestamp_alloc);
        assert_eq!(s.timeline.last().unwrap().0, s.process.end_unix_ns);
    }

    #[test]
    fn max_records_keeps_live_blocks_first() {
        let (a, cal) = calibration();
        let ending = exit_at(9_000_000, 0);
        let s = build(
            sample().finish(9_000_000),
            &process(a),
            ending,
            &cal,
            &config(1),
            EngineCounts::default(),
        );
        assert_eq!(s.allocations.len(), 1);
        assert!(s.allocations[0].is_leaked);
        assert_eq!(s.summary.records_omitted, 1);
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("memscope-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn write_atomic_is_private_and_replaces_a_symlink() {
        let d = scratch("atomic");
        let victim = d.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let target = d.join("out.json");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic(target.to_str().unwrap(), |w| w.write_all(b"{}")).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "{}");
        let meta = std::fs::symlink_metadata(&target).unwrap();
        assert!(meta.is_file() && meta.permissions().mode() & 0o777 == 0o600);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2, "no temporary file left");
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let d = scratch("failed");
        let target = d.join("out.json");
        let err = write_atomic(target.to_str().unwrap(), |_| Err(io::Error::other("disk full"))).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        assert!(write_atomic("/nonexistent-memscope-dir/x.json", |w| w.write_all(b"{}")).is_err());
        assert!(write_atomic(&format!("{}/", d.display()), |w| w.write_all(b"{}")).is_err());
        // A device, a fifo or a directory at the target is never replaced.
        let e = write_atomic("/dev/null", |w| w.write_all(b"{}")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        std::fs::create_dir(d.join("dir")).unwrap();
        assert!(write_atomic(d.join("dir").to_str().unwrap(), |w| w.write_all(b"{}")).is_err());
        assert!(d.join("dir").is_dir());
    }
}
