//! The `allocations` and `callsites` arrays written without serde's
//! per-field machinery.
//!
//! Records are most of a snapshot's bytes (`ls`: 239 of them, 55 of its 68
//! kB), and every process image writes its snapshot as it ends, on the
//! traced program's time. serde_json escapes each of a record's ten keys
//! and goes through a map serializer per field; here the keys are constant
//! bytes and the numbers go straight through `itoa`. The bulk a `grep`
//! image hands to `run` (256 records, 59 kB) took 43 µs, now 16 µs (warm;
//! a short image's first and only write is cold, and slower both ways).
//! Call sites are the rest of a big program's snapshot (cc1: 10,449 of
//! them, 3.3 of its 3.4 MB): written here, cc1's snapshot took 3.5-4.0 ms
//! to write instead of 4.7-5.0. The bytes are exactly serde's (the derived
//! `Serialize` of [`Allocation`] and [`Callsite`], compact): the tests
//! compare the two on random records and sites, strings that need escaping
//! included.

use crate::{parts::Bulk, Allocation, Callsite, Snapshot};
use serde::Serialize;
use std::io::{self, Write};

/// Bytes gathered before they go to the writer.
const CHUNK: usize = 4096;

/// Writes `records` as serde_json writes a `&[Allocation]`.
pub fn write_records<W: Write + ?Sized>(w: &mut W, records: &[Allocation]) -> io::Result<()> {
    write_array(w, records, |buf, num, a| {
        buf.extend_from_slice(b"{\"ptr\":");
        string(buf, &a.ptr)?;
        buf.extend_from_slice(b",\"size\":");
        buf.extend_from_slice(num.format(a.size).as_bytes());
        buf.extend_from_slice(b",\"kind\":");
        string(buf, &a.kind)?;
        buf.extend_from_slice(b",\"thread_id\":");
        buf.extend_from_slice(num.format(a.thread_id).as_bytes());
        buf.extend_from_slice(b",\"timestamp_alloc\":");
        buf.extend_from_slice(num.format(a.timestamp_alloc).as_bytes());
        buf.extend_from_slice(b",\"timestamp_dealloc\":");
        buf.extend_from_slice(num.format(a.timestamp_dealloc).as_bytes());
        buf.extend_from_slice(b",\"lifetime_ns\":");
        buf.extend_from_slice(num.format(a.lifetime_ns).as_bytes());
        buf.extend_from_slice(b",\"lifetime_ms\":");
        buf.extend_from_slice(num.format(a.lifetime_ms).as_bytes());
        buf.extend_from_slice(if a.is_leaked {
            b",\"is_leaked\":true,\"callsite\":"
        } else {
            b",\"is_leaked\":false,\"callsite\":"
        });
        match a.callsite {
            Some(id) => buf.extend_from_slice(num.format(id).as_bytes()),
            None => buf.extend_from_slice(b"null"),
        }
        for (key, value) in [
            (&b",\"var_name\":"[..], &a.var_name),
            (b",\"type_name\":", &a.type_name),
            (b",\"scope_name\":", &a.scope_name),
        ] {
            if let Some(v) = value {
                buf.extend_from_slice(key);
                string(buf, v)?;
            }
        }
        if a.inherited {
            buf.extend_from_slice(b",\"inherited\":true");
        }
        buf.push(b'}');
        Ok(())
    })
}

/// Writes `items` as a JSON array, each by `item`, a few KiB at a time: a
/// buffer the size of all of them would be fresh pages to fault in (~15
/// for 256 records), in a process that is about to end. Callers hand a
/// buffered writer, as serde needs.
fn write_array<W: Write + ?Sized, T>(
    w: &mut W,
    items: &[T],
    item: impl Fn(&mut Vec<u8>, &mut itoa::Buffer, &T) -> io::Result<()>,
) -> io::Result<()> {
    let mut num = itoa::Buffer::new();
    let mut buf = Vec::with_capacity(CHUNK + 1024);
    buf.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        item(&mut buf, &mut num, x)?;
        if buf.len() >= CHUNK {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.push(b']');
    w.write_all(&buf)
}

/// Writes `sites` as serde_json writes a `&[Callsite]`.
pub fn write_callsites<W: Write + ?Sized>(w: &mut W, sites: &[Callsite]) -> io::Result<()> {
    write_array(w, sites, |buf, num, c| {
        buf.extend_from_slice(b"{\"id\":");
        buf.extend_from_slice(num.format(c.id).as_bytes());
        buf.extend_from_slice(b",\"frames\":[");
        for (k, f) in c.frames.iter().enumerate() {
            if k > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(num.format(*f).as_bytes());
        }
        let l = &c.lifetime_ns;
        for (key, value) in [
            (&b"],\"allocations\":"[..], c.allocations),
            (b",\"bytes\":", c.bytes),
            (b",\"live_at_exit_bytes\":", c.live_at_exit_bytes),
            (b",\"peak_live_bytes\":", c.peak_live_bytes),
            (b",\"lifetime_ns\":{\"min\":", l.min),
            (b",\"p50\":", l.p50),
            (b",\"p99\":", l.p99),
            (b",\"max\":", l.max),
        ] {
            buf.extend_from_slice(key);
            buf.extend_from_slice(num.format(value).as_bytes());
        }
        if let Some(total) = l.written_total() {
            buf.extend_from_slice(b",\"total\":");
            buf.extend_from_slice(num.format(total).as_bytes());
        }
        buf.push(b'}');
        // The extensions serde leaves out when 0 (or absent).
        for (key, value) in [
            (&b",\"live_at_exit_allocations\":"[..], c.live_at_exit_allocations),
            (b",\"reallocs\":", c.reallocs),
            (b",\"at_peak_bytes\":", c.at_peak_bytes),
            (b",\"at_peak_allocations\":", c.at_peak_allocations),
        ] {
            if value != 0 {
                buf.extend_from_slice(key);
                buf.extend_from_slice(num.format(value).as_bytes());
            }
        }
        if let Some(n) = c.peak_live_allocations {
            buf.extend_from_slice(b",\"peak_live_allocations\":");
            buf.extend_from_slice(num.format(n).as_bytes());
        }
        buf.push(b'}');
        Ok(())
    })
}

/// A JSON string: copied as it is when nothing in it needs escaping (the
/// library's own `"0x…"` and kinds), else escaped by serde_json.
fn string(buf: &mut Vec<u8>, s: &str) -> io::Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f) {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(buf, s).map_err(io::Error::from)
    }
}

/// Members of a JSON object written one by one, in order.
struct Members<'w, W: Write + ?Sized> {
    w: &'w mut W,
    first: bool,
}

impl<'w, W: Write + ?Sized> Members<'w, W> {
    fn open(w: &'w mut W) -> io::Result<Self> {
        w.write_all(b"{")?;
        Ok(Members { w, first: true })
    }

    fn key(&mut self, key: &str) -> io::Result<()> {
        let sep: &[u8] = if self.first { b"\"" } else { b",\"" };
        self.first = false;
        self.w.write_all(sep)?;
        self.w.write_all(key.as_bytes())?;
        self.w.write_all(b"\":")
    }

    /// A member serialized by serde.
    fn value<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> io::Result<()> {
        self.key(key)?;
        serde_json::to_writer(&mut *self.w, value).map_err(io::Error::from)
    }

    fn records(&mut self, records: &[Allocation]) -> io::Result<()> {
        self.key("allocations")?;
        write_records(self.w, records)
    }

    fn callsites(&mut self, sites: &[Callsite]) -> io::Result<()> {
        self.key("callsites")?;
        write_callsites(self.w, sites)
    }

    fn close(self) -> io::Result<()> {
        self.w.write_all(b"}")
    }
}

/// The whole snapshot, as its derived `Serialize` writes it (same members,
/// same order, same omissions).
pub(crate) fn write_snapshot<W: Write + ?Sized>(w: &mut W, s: &Snapshot) -> io::Result<()> {
    let mut m = Members::open(w)?;
    m.value("format", &s.format)?;
    m.value("format_version", &s.format_version)?;
    m.value("tool", &s.tool)?;
    m.value("process", &s.process)?;
    m.value("summary", &s.summary)?;
    m.records(&s.allocations)?;
    m.value("modules", &s.modules)?;
    if !s.module_info.is_empty() {
        m.value("module_info", &s.module_info)?;
    }
    m.value("frames", &s.frames)?;
    if s.symbols_pending {
        m.value("symbols_pending", &true)?;
    }
    m.callsites(&s.callsites)?;
    m.value("variables", &s.variables)?;
    m.value("threads", &s.threads)?;
    m.value("lifetime_histogram", &s.lifetime_histogram)?;
    m.value("timeline", &s.timeline)?;
    m.close()
}

/// A handed-over snapshot's bulk, as its derived `Serialize` writes it.
pub(crate) fn write_bulk<W: Write + ?Sized>(w: &mut W, b: &Bulk) -> io::Result<()> {
    let mut m = Members::open(w)?;
    m.records(b.allocations)?;
    m.value("variables", b.variables)?;
    m.value("threads", b.threads)?;
    m.value("lifetime_histogram", b.lifetime_histogram)?;
    m.value("timeline", b.timeline)?;
    m.close()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Strings of every kind a record may carry: plain, quotes and
    /// backslashes, control characters, DEL, non-ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "0x[0-9a-f]{1,16}",
            "[a-z_]{0,12}",
            proptest::string::string_regex("[\\x00-\\x7f\u{e9}\u{2028}\u{1F600}\"\\\\]{0,10}").unwrap(),
        ]
    }

    fn record() -> impl Strategy<Value = Allocation> {
        (
            (text(), any::<u64>(), text(), any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<u64>(), any::<u64>(), any::<bool>(), any::<Option<u64>>()),
            (
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::option::of(text()),
                any::<bool>(),
            ),
        )
            .prop_map(
                |((ptr, size, kind, thread_id, born, died), (life_ns, life_ms, is_leaked, callsite), names)| {
                    let (var_name, type_name, scope_name, inherited) = names;
                    Allocation {
                        ptr,
                        size,
                        kind,
                        thread_id,
                        timestamp_alloc: born,
                        timestamp_dealloc: died,
                        lifetime_ns: life_ns,
                        lifetime_ms: life_ms,
                        is_leaked,
                        callsite,
                        var_name,
                        type_name,
                        scope_name,
                        inherited,
                    }
                },
            )
    }

    /// Call sites with every optional member present or not, zero or not.
    fn callsite() -> impl Strategy<Value = Callsite> {
        let small = || prop_oneof![Just(0u64), Just(1), any::<u64>()];
        (
            (any::<u64>(), proptest::collection::vec(any::<u32>(), 0..40)),
            (any::<u64>(), any::<u64>(), small(), any::<u64>()),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<Option<u64>>(),
            ),
            (small(), small(), small(), small(), proptest::option::of(small())),
        )
            .prop_map(|((id, frames), (allocations, bytes, live, peak), lt, ext)| {
                let (min, p50, p99, max, total) = lt;
                let (live_at_exit_allocations, reallocs, at_peak_bytes, at_peak_allocations, peak_blocks) = ext;
                Callsite {
                    id,
                    frames,
                    allocations,
                    bytes,
                    live_at_exit_bytes: live,
                    peak_live_bytes: peak,
                    lifetime_ns: crate::LifetimeStats {
                        min,
                        p50,
                        p99,
                        max,
                        total,
                    },
                    live_at_exit_allocations,
                    reallocs,
                    at_peak_bytes,
                    at_peak_allocations,
                    peak_live_allocations: peak_blocks,
                }
            })
    }

    proptest! {
        #[test]
        fn callsites_are_the_bytes_serde_writes(sites in proptest::collection::vec(callsite(), 0..60)) {
            let mut fast = Vec::new();
            write_callsites(&mut fast, &sites).unwrap();
            prop_assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(&sites).unwrap());
        }

        #[test]
        fn records_are_the_bytes_serde_writes(records in proptest::collection::vec(record(), 0..40)) {
            let mut fast = Vec::new();
            write_records(&mut fast, &records).unwrap();
            prop_assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(&records).unwrap());
        }

        #[test]
        fn snapshots_and_bulks_are_the_bytes_serde_writes(
            records in proptest::collection::vec(record(), 0..6),
            pending in any::<bool>(),
            with_info in any::<bool>(),
        ) {
            let mut s: Snapshot = crate::read_snapshot_bytes(SAMPLE.as_bytes()).unwrap();
            s.allocations = records;
            s.symbols_pending = pending;
            if !with_info {
                s.module_info.clear();
            }
            let mut whole = Vec::new();
            s.write_json(&mut whole).unwrap();
            prop_assert_eq!(String::from_utf8(whole).unwrap(), serde_json::to_string(&s).unwrap());
            let mut bulk = Vec::new();
            s.write_bulk_json(&mut bulk).unwrap();
            prop_assert_eq!(String::from_utf8(bulk).unwrap(), serde_json::to_string(&s.bulk()).unwrap());
        }
    }

    #[test]
    fn many_records_go_out_in_pieces_unchanged() {
        // Many times what the writer gathers before writing.
        let one = Allocation {
            ptr: "0x7f00deadbeef".into(),
            size: 4096,
            kind: "malloc".into(),
            thread_id: 42,
            timestamp_alloc: 1_796_190_612_046_784_522,
            timestamp_dealloc: 1_796_190_613_593_673_255,
            lifetime_ns: 1_546_888_733,
            lifetime_ms: 1546,
            is_leaked: true,
            callsite: Some(9),
            var_name: Some("buf \"x\"".into()),
            type_name: None,
            scope_name: None,
            inherited: false,
        };
        let records = vec![one; 2000];
        let mut fast = Vec::new();
        write_records(&mut fast, &records).unwrap();
        assert!(fast.len() > 3 << 16);
        assert_eq!(fast, serde_json::to_vec(&records).unwrap());
    }

    const SAMPLE: &str = r#"{"format":"memscope","format_version":2,"tool":{"name":"memscope","clock":"tsc"},
"process":{"pid":7,"ppid":1,"exe":"/bin/\u00e9\"x","argv":["a","</script>"],"start_unix_ns":1,"end_unix_ns":9,"end":"exit","exit_code":3},
"summary":{"total_allocations":2,"total_frees":1,"total_allocated_bytes":300,"total_freed_bytes":100,"reallocs":1,
"peak_live_bytes":300,"peak_live_allocations":2,"peak_unix_ns":5,"live_at_exit_allocations":1,"live_at_exit_bytes":200,
"events_dropped":0,"records_omitted":0,"peak_rss_bytes":4096},"allocations":[],
"modules":["/bin/x"],"module_info":[{"bias":"0x1000","build_id":"abcd"}],
"frames":[{"ip":"0x1234","function":"main","file":"x.c","line":12,"module":0}],
"callsites":[{"id":1,"frames":[0],"allocations":1,"bytes":100,"live_at_exit_bytes":0,"peak_live_bytes":100,
"lifetime_ns":{"min":2,"p50":2,"p99":2,"max":2,"total":2}}],
"variables":[{"var_name":"v","type_name":"Vec<u8>","scope_name":"main","ptr":"0x10","size":3,"thread_id":7,
"timestamp_alloc":2,"timestamp_dealloc":4,"lifetime_ns":2,"lifetime_ms":0,"is_leaked":false}],
"threads":[{"thread_id":7,"name":"x","allocations":2,"bytes":300}],
"lifetime_histogram":[{"lower_ns":0,"upper_ns":7,"count":2,"bytes":300}],"timeline":[[1,0],[5,300,4096],[9,200]]}"#;
}
