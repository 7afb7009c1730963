//! A snapshot in the three parts an image hands to `memscope-cli run`
//! (`memscope_engine::handoff`), so that it is serialized once in all.
//!
//! Under `run` the image leaves its frames unnamed and run names them: run
//! must rewrite the `frames` table and every call site's frame indices (an
//! inlined frame becomes several), but nothing else. Sent as one JSON
//! document, run parsed all of it — records, timeline, histogram — and
//! serialized it again. Here the image sends
//! - the head ([`Head`]: format, tool, process, summary; a few hundred
//!   bytes) as JSON: run reads it for its summary and writes it as it came;
//! - the tables ([`Tables`]: modules, frames, call sites) in a compact
//!   binary form ([`encode_tables`]): run decodes them, names the frames
//!   and serializes them, the one serialization they get;
//! - the bulk ([`Bulk`]: records, variables, threads, histogram, timeline)
//!   as JSON, which run copies into the file untouched.
//!
//! [`write_spliced`] joins them into one SPEC §3 version-2 snapshot: the
//! same fields as [`Snapshot::write_json`] writes, in another key order.

use crate::{
    Allocation, Callsite, Frame, HistogramBucket, LifetimeStats, ModuleInfo, Process, Snapshot, Summary, ThreadStats,
    TimelinePoint, Tool, Variable,
};
use serde::Serialize;
use std::io::{self, Write};

/// The head of a snapshot, borrowed for serializing.
#[derive(Serialize)]
pub struct Head<'a> {
    pub format: &'a str,
    pub format_version: u32,
    pub tool: &'a Tool,
    pub process: &'a Process,
    pub summary: &'a Summary,
}

/// The bulk of a snapshot, borrowed for serializing.
#[derive(Serialize)]
pub struct Bulk<'a> {
    pub allocations: &'a [Allocation],
    pub variables: &'a [Variable],
    pub threads: &'a [ThreadStats],
    pub lifetime_histogram: &'a [HistogramBucket],
    pub timeline: &'a [TimelinePoint],
}

impl Snapshot {
    pub fn head(&self) -> Head<'_> {
        Head {
            format: &self.format,
            format_version: self.format_version,
            tool: &self.tool,
            process: &self.process,
            summary: &self.summary,
        }
    }

    /// The head, serialized.
    pub fn head_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&self.head())
    }

    /// Writes the bulk, serialized: the bytes `serde_json::to_writer(w,
    /// &self.bulk())` writes, with the records written faster.
    pub fn write_bulk_json<W: Write>(&self, mut w: W) -> serde_json::Result<()> {
        crate::records_json::write_bulk(&mut w, &self.bulk()).map_err(serde_json::Error::io)
    }

    pub fn bulk(&self) -> Bulk<'_> {
        Bulk {
            allocations: &self.allocations,
            variables: &self.variables,
            threads: &self.threads,
            lifetime_histogram: &self.lifetime_histogram,
            timeline: &self.timeline,
        }
    }
}

/// The modules, frames and call sites of a snapshot.
#[derive(Debug, Default, PartialEq)]
pub struct Tables {
    pub modules: Vec<String>,
    pub module_info: Vec<ModuleInfo>,
    pub frames: Vec<Frame>,
    pub symbols_pending: bool,
    pub callsites: Vec<Callsite>,
}

/// The snapshot of a head (JSON) and its tables ([`encode_tables`]), with
/// no records, variables, threads, histogram or timeline (those stay in the
/// bulk); its indices checked.
pub fn assemble(head: &[u8], tables: &[u8]) -> Result<Snapshot, String> {
    // The head read by the snapshot reader (its checks, its messages), the
    // fields it lacks given empty.
    let inner = inner(head).ok_or("its head is not a JSON object")?;
    let mut doc = Vec::with_capacity(head.len() + EMPTY_REST.len() + 1);
    doc.push(b'{');
    doc.extend_from_slice(inner);
    doc.extend_from_slice(EMPTY_REST);
    let mut snap = crate::read_snapshot_bytes(&doc).map_err(|e| format!("its head: {e}"))?;
    if snap.format_version != crate::FORMAT_VERSION {
        return Err(format!("its head says format_version {}", snap.format_version));
    }
    let t = decode_tables(tables).map_err(|e| format!("its tables: {e}"))?;
    snap.modules = t.modules;
    snap.module_info = t.module_info;
    snap.frames = t.frames;
    snap.symbols_pending = t.symbols_pending;
    snap.callsites = t.callsites;
    snap.check_tables().map(|()| snap)
}

/// What a head lacks to read as a snapshot.
const EMPTY_REST: &[u8] = br#","allocations":[],"modules":[],"frames":[],"callsites":[],"variables":[],"timeline":[]}"#;

/// Writes one snapshot: `head` and `bulk` (JSON objects, as [`Head`] and
/// [`Bulk`] serialize) as they are, `tables`' modules, frames and call
/// sites serialized between them.
pub fn write_spliced<W: Write + ?Sized>(w: &mut W, head: &[u8], tables: &Snapshot, bulk: &[u8]) -> io::Result<()> {
    let (Some(head), Some(bulk)) = (inner(head), inner(bulk)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a part is not a JSON object",
        ));
    };
    // Serialized into memory first: `w` is often `dyn Write`, and the
    // serializer's many small writes are copies only into a concrete buffer.
    let mut mid = Vec::with_capacity(64 << 10);
    field(&mut mid, "modules", &tables.modules)?;
    if !tables.module_info.is_empty() {
        field(&mut mid, "module_info", &tables.module_info)?;
    }
    field(&mut mid, "frames", &tables.frames)?;
    if tables.symbols_pending {
        field(&mut mid, "symbols_pending", &true)?;
    }
    mid.extend_from_slice(b",\"callsites\":");
    crate::records_json::write_callsites(&mut mid, &tables.callsites)?;
    w.write_all(b"{")?;
    w.write_all(head)?;
    w.write_all(if head.is_empty() { &mid[1..] } else { &mid })?;
    if !bulk.is_empty() {
        w.write_all(b",")?;
        w.write_all(bulk)?;
    }
    w.write_all(b"}")
}

/// What is between the braces of a JSON object.
fn inner(json: &[u8]) -> Option<&[u8]> {
    json.strip_prefix(b"{")?.strip_suffix(b"}")
}

/// `,"name":value`.
fn field<T: Serialize + ?Sized>(w: &mut Vec<u8>, name: &str, value: &T) -> io::Result<()> {
    w.extend_from_slice(b",\"");
    w.extend_from_slice(name.as_bytes());
    w.extend_from_slice(b"\":");
    serde_json::to_writer(w, value).map_err(io::Error::from)
}

/// The tables of `s` in the binary form [`decode_tables`] reads: unsigned
/// LEB128 numbers, strings as their length and bytes, an option as a
/// flag byte and its value.
pub fn encode_tables(s: &Snapshot) -> Vec<u8> {
    let mut e = Enc(Vec::with_capacity(64 + s.frames.len() * 24 + s.callsites.len() * 64));
    e.0.push(s.symbols_pending as u8);
    e.uint(s.modules.len() as u64);
    for m in &s.modules {
        e.str(m);
    }
    e.uint(s.module_info.len() as u64);
    for m in &s.module_info {
        e.str(&m.bias);
        e.str(&m.build_id);
    }
    e.uint(s.frames.len() as u64);
    for f in &s.frames {
        e.str(&f.ip);
        e.opt_str(f.function.as_deref());
        e.opt_str(f.file.as_deref());
        e.opt(f.line.map(u64::from));
        e.uint(f.module.into());
        e.0.push(f.inlined as u8);
    }
    e.uint(s.callsites.len() as u64);
    for c in &s.callsites {
        e.uint(c.id);
        e.uint(c.frames.len() as u64);
        for &i in &c.frames {
            e.uint(i.into());
        }
        let l = &c.lifetime_ns;
        for v in [
            c.allocations,
            c.bytes,
            c.live_at_exit_bytes,
            c.peak_live_bytes,
            l.min,
            l.p50,
            l.p99,
            l.max,
        ] {
            e.uint(v);
        }
        e.opt(l.total);
        for v in [
            c.live_at_exit_allocations,
            c.reallocs,
            c.at_peak_bytes,
            c.at_peak_allocations,
        ] {
            e.uint(v);
        }
        e.opt(c.peak_live_allocations);
    }
    e.0
}

/// Reads what [`encode_tables`] wrote; an error for anything else (the
/// bytes come from the traced process: never trusted).
pub fn decode_tables(b: &[u8]) -> Result<Tables, String> {
    let mut d = Dec { b, at: 0 };
    let symbols_pending = d.flag()?;
    let modules = d.list(|d| d.string())?;
    let module_info = d.list(|d| {
        Ok(ModuleInfo {
            bias: d.string()?,
            build_id: d.string()?,
        })
    })?;
    let frames = d.list(|d| {
        Ok(Frame {
            ip: d.string()?,
            function: d.opt_string()?,
            file: d.opt_string()?,
            line: d.opt()?.map(u32::try_from).transpose().map_err(|_| "a line past u32")?,
            module: d.u32()?,
            inlined: d.flag()?,
        })
    })?;
    let callsites = d.list(|d| {
        let id = d.uint()?;
        let frames = d.list(|d| d.u32())?;
        let [allocations, bytes, live_at_exit_bytes, peak_live_bytes, min, p50, p99, max] = d.uints()?;
        let total = d.opt()?;
        let [live_at_exit_allocations, reallocs, at_peak_bytes, at_peak_allocations] = d.uints()?;
        Ok(Callsite {
            id,
            frames,
            allocations,
            bytes,
            live_at_exit_bytes,
            peak_live_bytes,
            lifetime_ns: LifetimeStats {
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
            peak_live_allocations: d.opt()?,
        })
    })?;
    if d.at != b.len() {
        return Err(format!("{} bytes past their end", b.len() - d.at));
    }
    Ok(Tables {
        modules,
        module_info,
        frames,
        symbols_pending,
        callsites,
    })
}

struct Enc(Vec<u8>);

impl Enc {
    fn uint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn str(&mut self, s: &str) {
        self.uint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        self.0.push(s.is_some() as u8);
        if let Some(s) = s {
            self.str(s);
        }
    }

    fn opt(&mut self, v: Option<u64>) {
        self.0.push(v.is_some() as u8);
        if let Some(v) = v {
            self.uint(v);
        }
    }
}

struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

type Got<T> = Result<T, String>;

impl Dec<'_> {
    fn byte(&mut self) -> Got<u8> {
        let v = *self.b.get(self.at).ok_or("cut short")?;
        self.at += 1;
        Ok(v)
    }

    fn flag(&mut self) -> Got<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(format!("a flag of {v}")),
        }
    }

    fn uint(&mut self) -> Got<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a number longer than 64 bits".into())
    }

    fn uints<const N: usize>(&mut self) -> Got<[u64; N]> {
        let mut v = [0; N];
        for x in &mut v {
            *x = self.uint()?;
        }
        Ok(v)
    }

    fn u32(&mut self) -> Got<u32> {
        u32::try_from(self.uint()?).map_err(|_| "an index past u32".into())
    }

    fn string(&mut self) -> Got<String> {
        let n = usize::try_from(self.uint()?).map_err(|_| "a string too long")?;
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or("cut short")?;
        let s = std::str::from_utf8(&self.b[self.at..end]).map_err(|_| "a string not UTF-8")?;
        self.at = end;
        Ok(s.to_owned())
    }

    fn opt_string(&mut self) -> Got<Option<String>> {
        self.flag()?.then(|| self.string()).transpose()
    }

    fn opt(&mut self) -> Got<Option<u64>> {
        self.flag()?.then(|| self.uint()).transpose()
    }

    /// A count, then that many items (never more reserved than bytes left:
    /// each item takes one at least).
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Got<T>) -> Got<Vec<T>> {
        let n = self.uint()?;
        let mut v = Vec::with_capacity((n as usize).min(self.b.len() - self.at));
        for _ in 0..n {
            v.push(item(self)?);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot with every optional part of the tables set somewhere.
    fn sample() -> Snapshot {
        let json = r#"{"format":"memscope","format_version":2,"tool":{"name":"memscope","clock":"tsc"},
"process":{"pid":7,"ppid":1,"exe":"/bin/\u00e9\"x","argv":["a","</script>"],"start_unix_ns":1,"end_unix_ns":9,"end":"exit","exit_code":3},
"summary":{"total_allocations":2,"total_frees":1,"total_allocated_bytes":300,"total_freed_bytes":100,"reallocs":1,
"peak_live_bytes":300,"peak_live_allocations":2,"peak_unix_ns":5,"live_at_exit_allocations":1,"live_at_exit_bytes":200,
"events_dropped":0,"records_omitted":0,"peak_rss_bytes":4096},
"allocations":[{"ptr":"0x10","size":100,"kind":"malloc","thread_id":7,"timestamp_alloc":2,"timestamp_dealloc":4,
"lifetime_ns":2,"lifetime_ms":0,"is_leaked":false,"callsite":1,"var_name":null,"type_name":null,"scope_name":null}],
"modules":["/bin/x","[unknown]"],"module_info":[{"bias":"0x1000","build_id":"abcd"},{"bias":"0x0","build_id":""}],
"frames":[{"ip":"0x1234","function":"main","file":"x.c","line":12,"module":0},
{"ip":"0x1234","function":"inl","file":null,"line":null,"module":0,"inlined":true},
{"ip":"0xdead","function":null,"file":null,"line":null,"module":1}],"symbols_pending":true,
"callsites":[{"id":1,"frames":[1,0],"allocations":1,"bytes":100,"live_at_exit_bytes":0,"peak_live_bytes":100,
"lifetime_ns":{"min":2,"p50":2,"p99":2,"max":2,"total":2}},
{"id":300,"frames":[2],"allocations":1,"bytes":200,"live_at_exit_bytes":200,"peak_live_bytes":18446744073709551615,
"lifetime_ns":{"min":5,"p50":5,"p99":5,"max":5},"live_at_exit_allocations":1,"reallocs":1,"at_peak_bytes":200,
"at_peak_allocations":1,"peak_live_allocations":3}],
"variables":[],"threads":[{"thread_id":7,"name":"x","allocations":2,"bytes":300}],
"lifetime_histogram":[{"lower_ns":0,"upper_ns":7,"count":2,"bytes":300}],"timeline":[[1,0],[5,300,4096],[9,200]]}"#;
        crate::read_snapshot_bytes(json.as_bytes()).unwrap()
    }

    fn parts(s: &Snapshot) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        (
            serde_json::to_vec(&s.head()).unwrap(),
            encode_tables(s),
            serde_json::to_vec(&s.bulk()).unwrap(),
        )
    }

    #[test]
    fn the_parts_join_into_the_same_snapshot() {
        let s = sample();
        let (head, tables, bulk) = parts(&s);
        let t = assemble(&head, &tables).unwrap();
        assert_eq!((&t.process, &t.summary, &t.tool), (&s.process, &s.summary, &s.tool));
        assert_eq!(
            (&t.modules, &t.module_info, &t.frames),
            (&s.modules, &s.module_info, &s.frames)
        );
        assert_eq!((&t.callsites, t.symbols_pending), (&s.callsites, true));
        assert!(
            t.allocations.is_empty() && t.timeline.is_empty(),
            "the bulk stays apart"
        );
        let mut out = Vec::new();
        write_spliced(&mut out, &head, &t, &bulk).unwrap();
        assert_eq!(crate::read_snapshot_bytes(&out).unwrap(), s);
        // Every field the whole snapshot writes, and no other.
        let mut whole = Vec::new();
        s.write_json(&mut whole).unwrap();
        let keys = |b: &[u8]| {
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(b).unwrap();
            let mut k: Vec<String> = v.keys().cloned().collect();
            k.sort();
            (k, v)
        };
        assert_eq!(keys(&out), keys(&whole));
    }

    #[test]
    fn tables_cut_short_or_padded_are_refused() {
        let (head, tables, _) = parts(&sample());
        for cut in 0..tables.len() {
            assert!(decode_tables(&tables[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = tables.clone();
        long.push(0);
        assert!(decode_tables(&long).unwrap_err().contains("past their end"));
        // A frame index past the frames table: refused by the check.
        let mut s = sample();
        s.callsites[0].frames[0] = 3;
        let e = assemble(&head, &encode_tables(&s)).unwrap_err();
        assert!(e.contains("lists frame 3"), "{e}");
        assert!(assemble(b"{\"format\":\"x\"}", &tables)
            .unwrap_err()
            .contains("not a memscope snapshot"));
        assert!(write_spliced(&mut Vec::new(), &head, &s, b"[]").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_tables(&bytes);
        }

        #[test]
        fn flipped_bytes_decode_or_fail_without_panic(at in 0usize..400, to in proptest::num::u8::ANY) {
            let mut t = encode_tables(&sample());
            let i = at % t.len();
            t[i] = to;
            let _ = decode_tables(&t);
        }
    }
}
