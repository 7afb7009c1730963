//! Reading snapshots, with one clear message for every way a file can be bad.
//!
//! The reader streams (no second pass over the input): `format` and
//! `format_version` are validated by their own deserializers as they go by,
//! so a file of another format or a newer version is reported as such rather
//! than as whichever field happens to be missing first.

use crate::{
    Allocation, Callsite, Frame, FrameTables, HistogramBucket, ModuleInfo, Process, Snapshot, Summary, ThreadStats,
    Tool, Variable, FORMAT, READABLE_VERSIONS, UNKNOWN_MODULE,
};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::io::{self, Read};
use std::path::Path;

#[derive(Debug)]
pub enum ReadError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// Zero bytes.
    Empty,
    /// The input ends in the middle of the JSON value.
    Truncated,
    /// Not JSON at all (syntax error at the given position).
    NotJson { line: usize, column: usize },
    /// Valid JSON, but not a memscope snapshot of a version this build reads;
    /// the message says what is wrong.
    Invalid(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Empty => write!(f, "the file is empty"),
            ReadError::Truncated => write!(f, "the JSON is truncated (it ends before the snapshot does)"),
            ReadError::NotJson { line, column } => {
                write!(f, "not JSON (syntax error at line {line}, column {column})")
            }
            ReadError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Counts bytes so an empty input can be told apart from a truncated one.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Reads one snapshot from `r` (buffer it yourself if it is a file).
pub fn read_snapshot<R: Read>(r: R) -> Result<Snapshot, ReadError> {
    let mut input = Counting { inner: r, n: 0 };
    let mut de = serde_json::Deserializer::from_reader(&mut input);
    let result = RawSnapshot::deserialize(&mut de).and_then(|s| de.end().map(|()| s));
    result
        .map_err(|e| classify(e, input.n))?
        .into_snapshot()
        .map_err(ReadError::Invalid)
}

/// Reads one snapshot held whole in memory: about twice as fast as
/// [`read_snapshot`] (strings are parsed in place).
pub fn read_snapshot_bytes(bytes: &[u8]) -> Result<Snapshot, ReadError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = RawSnapshot::deserialize(&mut de).and_then(|s| de.end().map(|()| s));
    result
        .map_err(|e| classify(e, bytes.len() as u64))?
        .into_snapshot()
        .map_err(ReadError::Invalid)
}

/// A snapshot as it stands in the file, version 1 or 2.
#[derive(Deserialize)]
struct RawSnapshot {
    #[serde(deserialize_with = "de_format")]
    format: String,
    #[serde(deserialize_with = "de_version")]
    format_version: u32,
    #[serde(default)]
    tool: Tool,
    process: Process,
    summary: Summary,
    allocations: Vec<Allocation>,
    callsites: Vec<Callsite<FrameRef>>,
    modules: Option<Vec<String>>,
    #[serde(default)]
    module_info: Vec<ModuleInfo>,
    frames: Option<Vec<Frame>>,
    #[serde(default)]
    symbols_pending: bool,
    variables: Vec<Variable>,
    #[serde(default)]
    threads: Vec<ThreadStats>,
    #[serde(default)]
    lifetime_histogram: Vec<HistogramBucket>,
    timeline: Vec<crate::TimelinePoint>,
}

/// A version-1 frame: everything inline, the module as a path.
#[derive(Deserialize)]
struct FrameV1 {
    ip: String,
    function: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    inlined: bool,
}

/// An entry of a call site's `frames`: an index (version 2) or the frame
/// itself (version 1). Boxed, so a version-2 entry takes 16 bytes, not a
/// whole frame's ~100 (cc1's 220,000 entries grew 23 MB of vectors).
enum FrameRef {
    Index(u64),
    Inline(Box<FrameV1>),
}

impl<'de> Deserialize<'de> for FrameRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FrameRef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FrameRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a frame index or a frame object")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FrameRef, E> {
                Ok(FrameRef::Index(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FrameRef, A::Error> {
                FrameV1::deserialize(de::value::MapAccessDeserializer::new(map)).map(|f| FrameRef::Inline(Box::new(f)))
            }
        }
        d.deserialize_any(V)
    }
}

impl RawSnapshot {
    /// The version-2 shape: version 1's inline frames move into the tables;
    /// version 2's indices are checked.
    fn into_snapshot(self) -> Result<Snapshot, String> {
        let v = self.format_version;
        let mut tables = FrameTables::new();
        let (modules, frames) = match (v, self.modules, self.frames) {
            (1, _, _) => (Vec::new(), Vec::new()),
            (_, Some(m), Some(f)) => (m, f),
            (_, None, _) => return Err(format!("format_version {v} snapshot has no \"modules\" table")),
            (_, _, None) => return Err(format!("format_version {v} snapshot has no \"frames\" table")),
        };
        let mut callsites = Vec::with_capacity(self.callsites.len());
        for c in self.callsites {
            let mut indices = Vec::with_capacity(c.frames.len());
            for r in c.frames {
                indices.push(match (v, r) {
                    (1, FrameRef::Inline(f)) => {
                        let module = tables.module(f.module.as_deref().unwrap_or(UNKNOWN_MODULE));
                        tables.frame(Frame {
                            ip: f.ip,
                            function: f.function,
                            file: f.file,
                            line: f.line,
                            module,
                            inlined: f.inlined,
                        })
                    }
                    (1, FrameRef::Index(_)) => {
                        return Err(format!(
                            "call site {}: a format_version 1 frame must be an object",
                            c.id
                        ))
                    }
                    (_, FrameRef::Index(i)) => u32::try_from(i).unwrap_or(u32::MAX),
                    (_, FrameRef::Inline(_)) => {
                        return Err(format!(
                            "call site {}: a format_version {v} frame must be an index into \"frames\"",
                            c.id
                        ))
                    }
                });
            }
            callsites.push(Callsite {
                id: c.id,
                frames: indices,
                allocations: c.allocations,
                bytes: c.bytes,
                live_at_exit_bytes: c.live_at_exit_bytes,
                peak_live_bytes: c.peak_live_bytes,
                lifetime_ns: c.lifetime_ns,
                live_at_exit_allocations: c.live_at_exit_allocations,
                reallocs: c.reallocs,
                at_peak_bytes: c.at_peak_bytes,
                at_peak_allocations: c.at_peak_allocations,
                peak_live_allocations: c.peak_live_allocations,
            });
        }
        // Totals left out (one block) are the site's `max`. A snapshot that
        // carries any total has them all, whether it says so or not (those
        // written before `site_totals` carried every one).
        let mut tool = self.tool;
        tool.site_totals |= callsites.iter().any(|c| c.lifetime_ns.total.is_some());
        if tool.site_totals {
            for c in &mut callsites {
                c.lifetime_ns.total.get_or_insert(c.lifetime_ns.max);
            }
        }
        let mut snap = Snapshot {
            format: self.format,
            format_version: v,
            tool,
            process: self.process,
            summary: self.summary,
            allocations: self.allocations,
            modules,
            module_info: if v == 1 { Vec::new() } else { self.module_info },
            frames,
            symbols_pending: v != 1 && self.symbols_pending,
            callsites,
            variables: self.variables,
            threads: self.threads,
            lifetime_histogram: self.lifetime_histogram,
            timeline: self.timeline,
        };
        if v == 1 {
            tables.install(&mut snap);
        }
        snap.check_tables().map(|()| snap)
    }
}

/// Opens and reads a snapshot file (whole, then parsed in memory).
pub fn read_snapshot_file(path: &Path) -> Result<Snapshot, ReadError> {
    let mut f = std::fs::File::open(path).map_err(ReadError::Io)?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(ReadError::Io(io::Error::new(io::ErrorKind::Other, "is a directory")));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(ReadError::Io)?;
    read_snapshot_bytes(&bytes)
}

fn classify(e: serde_json::Error, bytes_read: u64) -> ReadError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => ReadError::Io(e.into()),
        Category::Eof if bytes_read == 0 => ReadError::Empty,
        Category::Eof => ReadError::Truncated,
        Category::Syntax => ReadError::NotJson {
            line: e.line(),
            column: e.column(),
        },
        Category::Data => {
            let msg = e.to_string();
            if msg.contains(MARK) {
                ReadError::Invalid(msg.replace(MARK, ""))
            } else {
                ReadError::Invalid(format!("not a valid memscope snapshot: {msg}"))
            }
        }
    }
}

/// Tags the errors raised by the validators below so `classify` keeps their
/// wording; stripped before the message is shown.
const MARK: &str = "\u{1}";

pub(crate) fn de_format<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s != FORMAT {
        return Err(serde::de::Error::custom(format!(
            "{MARK}not a memscope snapshot (\"format\" is {s:?}, expected \"{FORMAT}\")"
        )));
    }
    Ok(s)
}

pub(crate) fn de_version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u64::deserialize(d)?;
    if !READABLE_VERSIONS.iter().any(|&r| r as u64 == v) {
        return Err(serde::de::Error::custom(format!(
            "{MARK}unsupported snapshot format_version {v} (this memscope reads versions 1 and 2)"
        )));
    }
    Ok(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error message, the same from the streaming and the in-memory
    /// reader (serde_json's column can differ by one between them).
    fn err(s: &str) -> String {
        let streamed = read_snapshot(s.as_bytes()).unwrap_err().to_string();
        let in_memory = read_snapshot_bytes(s.as_bytes()).unwrap_err().to_string();
        let without_position = |m: &str| m.split(" at line ").next().unwrap_or("").to_owned();
        assert_eq!(without_position(&in_memory), without_position(&streamed));
        streamed
    }

    #[test]
    fn every_bad_input_has_its_own_message() {
        assert_eq!(err(""), "the file is empty");
        assert!(err("{\"format\": \"memscope\", \"format_ver").contains("truncated"));
        assert!(err("hello").starts_with("not JSON"));
        assert!(err("[1,2,3]").starts_with("not a valid memscope snapshot"));
        assert!(err("42").starts_with("not a valid memscope snapshot"));
        assert!(err(r#"{"format":"dhat","format_version":1}"#).contains("\"format\" is \"dhat\""));
        assert!(err(r#"{"format":"memscope","format_version":3}"#).contains("format_version 3"));
        assert!(err(r#"{"format":"memscope","format_version":1}"#).contains("missing field"));
        assert!(err(r#"{"format":"memscope","format_version":2}"#).contains("missing field"));
        let deep = "[".repeat(100_000);
        assert!(!err(&deep).is_empty());
    }

    /// A snapshot of `version` whose one call site has `frames` and whose
    /// tables are `tables` (`"modules":…,"frames":…`, or empty for none).
    fn with_frames(version: u32, frames: &str, tables: &str) -> String {
        format!(
            r#"{{"format":"memscope","format_version":{version},
"process":{{"pid":1,"ppid":0,"exe":"/x","argv":[],"start_unix_ns":1,"end_unix_ns":2,"end":"exit"}},
"summary":{{"total_allocations":0,"total_frees":0,"total_allocated_bytes":0,"total_freed_bytes":0,"reallocs":0,
"peak_live_bytes":0,"peak_live_allocations":0,"peak_unix_ns":1,"live_at_exit_allocations":0,"live_at_exit_bytes":0,
"events_dropped":0,"records_omitted":0}},"allocations":[],
"callsites":[{{"id":7,"frames":{frames},"allocations":1,"bytes":8,"live_at_exit_bytes":0,"peak_live_bytes":8,
"lifetime_ns":{{"min":1,"p50":1,"p99":1,"max":1}}}}]{tables},"variables":[],"timeline":[]}}"#
        )
    }

    #[test]
    fn version_1_frames_move_into_the_tables() {
        let f = |ip: &str, func: &str, module: &str| {
            format!(r#"{{"ip":"{ip}","function":"{func}","file":null,"line":null,"module":"{module}"}}"#)
        };
        let frames = format!(
            "[{},{},{},{}]",
            f("0x1", "malloc", "/lib/libc.so.6"),
            f("0x2", "main", "/bin/x"),
            f("0x1", "malloc", "/lib/libc.so.6"),
            r#"{"ip":"0x3","function":null,"file":null,"line":null}"#
        );
        let s = read_snapshot(with_frames(1, &frames, "").as_bytes()).unwrap();
        assert_eq!(s.format_version, 1);
        assert_eq!(s.callsites[0].frames, vec![0, 1, 0, 2]);
        assert_eq!(s.modules, vec!["/lib/libc.so.6", "/bin/x", UNKNOWN_MODULE]);
        let names: Vec<_> = s.frames_of(&s.callsites[0]).map(|f| f.function.as_deref()).collect();
        assert_eq!(names, vec![Some("malloc"), Some("main"), Some("malloc"), None]);
        assert_eq!(s.module_of(&s.frames[1]), Some("/bin/x"));
        assert_eq!(s.module_of(&s.frames[2]), None, "outside every module");
        // Written back, it is a version-2 file that reads the same.
        let mut buf = Vec::new();
        let mut v2 = s.clone();
        v2.format_version = crate::FORMAT_VERSION;
        v2.write_json(&mut buf).unwrap();
        assert_eq!(read_snapshot(&buf[..]).unwrap(), v2);
    }

    #[test]
    fn version_2_tables_are_checked() {
        let tables =
            r#","modules":["/bin/x"],"frames":[{"ip":"0x1","function":"f","file":null,"line":null,"module":0}]"#;
        let s = read_snapshot(with_frames(2, "[0,0]", tables).as_bytes()).unwrap();
        assert_eq!(s.callsites[0].frames, vec![0, 0]);
        let bad = |frames: &str, tables: &str| {
            read_snapshot(with_frames(2, frames, tables).as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[1]", tables).contains("lists frame 1 but the snapshot has 1 frames"));
        assert!(bad("[4294967296]", tables).contains("lists frame"));
        let far_module = tables.replace("\"module\":0", "\"module\":3");
        assert!(bad("[0]", &far_module).contains("names module 3 but the snapshot has 1 modules"));
        assert!(bad("[0]", "").contains("no \"modules\" table"));
        assert!(bad("[0]", r#","modules":[]"#).contains("no \"frames\" table"));
        assert!(bad(r#"[{"ip":"0x1","function":null,"file":null,"line":null}]"#, tables).contains("must be an index"));
        let v1 = read_snapshot(with_frames(1, "[0]", "").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(v1.contains("must be an object"), "{v1}");
        assert!(bad("[-1]", tables).starts_with("not a valid memscope snapshot"));
    }

    /// A null `file`/`line` of a frame, or null names of a record, may be
    /// left out: they read as null. memscope writes them (SPEC §3 lists them
    /// as required); this keeps its readers ready for files that do not.
    #[test]
    fn null_fields_left_out_read_as_null() {
        let tables = r#","modules":["/bin/x"],"frames":[{"ip":"0x1","function":"f","module":0}]"#;
        let record = r#""allocations":[{"ptr":"0x10","size":8,"kind":"malloc","thread_id":1,"timestamp_alloc":1,
"timestamp_dealloc":2,"lifetime_ns":1,"lifetime_ms":0,"is_leaked":false,"callsite":7}]"#;
        let text = with_frames(2, "[0]", tables).replace(r#""allocations":[]"#, record);
        let s = read_snapshot(text.as_bytes()).unwrap();
        let f = &s.frames[0];
        assert_eq!(
            (f.function.as_deref(), f.file.as_deref(), f.line),
            (Some("f"), None, None)
        );
        let a = &s.allocations[0];
        assert_eq!((a.size, a.callsite), (8, Some(7)));
        assert!(a.var_name.is_none() && a.type_name.is_none() && a.scope_name.is_none());
    }

    #[test]
    fn a_total_left_out_is_the_sites_max_only_where_totals_are_known() {
        let tables = r#","modules":["/bin/x"],"frames":[{"ip":"0x1","function":null,"module":0}]"#;
        let one_block = with_frames(2, "[0]", tables);
        let second = r#"{"id":8,"frames":[0],"allocations":2,"bytes":16,"live_at_exit_bytes":0,"peak_live_bytes":16,
"lifetime_ns":{"min":1,"p50":1,"p99":3,"max":3,"total":4}}"#;
        let two_sites = one_block.replace("}}]", &format!("}}}},{second}]"));
        let flagged = one_block.replace(
            r#""format_version":2,"#,
            r#""format_version":2,"tool":{"site_totals":true},"#,
        );
        let totals = |text: &str| {
            let s = read_snapshot_bytes(text.as_bytes()).unwrap();
            (
                s.tool.site_totals,
                s.callsites.iter().map(|c| c.lifetime_ns.total).collect::<Vec<_>>(),
            )
        };
        // Older than the totals: none is known.
        assert_eq!(totals(&one_block), (false, vec![None]));
        // Flagged: the one-block site's total is its max (1).
        assert_eq!(totals(&flagged), (true, vec![Some(1)]));
        // A snapshot carrying any total, written before the flag: all known.
        assert_eq!(totals(&two_sites), (true, vec![Some(1), Some(4)]));
        // Written back, the one-block site leaves it out again, the other keeps it.
        let s = read_snapshot_bytes(two_sites.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.write_json(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(r#""site_totals":true"#), "{out}");
        assert!(
            out.contains(r#""lifetime_ns":{"min":1,"p50":1,"p99":1,"max":1}"#),
            "{out}"
        );
        assert!(out.contains(r#""max":3,"total":4}"#), "{out}");
        assert_eq!(totals(&out), (true, vec![Some(1), Some(4)]));
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        let e = err(r#"{"format":"memscope","format_version":1} xyz"#);
        assert!(!e.is_empty());
    }
}
