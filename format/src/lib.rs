//! The memscope snapshot: one JSON object per traced process image
//! (`"format": "memscope", "format_version": 2`, SPEC §3). Version 1 files
//! (frames inline in each call site) still read: the reader moves their
//! frames into the version-2 tables.
//!
//! This crate is deliberately small (serde, and `itoa`, which serde_json
//! already pulls in) because `libmemscope.so` links it: everything here ends
//! up inside every traced process.
//! Fields the SPEC names are required when reading; fields memscope adds on
//! top carry `#[serde(default)]` so snapshots written by other producers (or
//! older memscope builds) still read.

pub mod addr_map;
pub mod control;
pub mod hist;
pub mod human;
mod moment;
pub mod parts;
mod read;
mod records_json;
pub mod resident;
mod tables;
mod timeline;

pub use read::{read_snapshot, read_snapshot_bytes, read_snapshot_file, ReadError};
pub use tables::{FrameTables, UNKNOWN_MODULE};
pub use timeline::TimelinePoint;

use serde::{Deserialize, Serialize};

/// Value of the `format` field.
pub const FORMAT: &str = "memscope";
/// The format version this crate writes.
pub const FORMAT_VERSION: u32 = 2;
/// The versions this crate reads.
pub const READABLE_VERSIONS: [u32; 2] = [1, 2];

/// One traced process image. Read with [`read_snapshot`], which accepts
/// versions 1 and 2 and always yields the version-2 shape.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    pub format: String,
    pub format_version: u32,
    pub tool: Tool,
    pub process: Process,
    pub summary: Summary,
    pub allocations: Vec<Allocation>,
    /// Module paths, each once; [`Frame::module`] indexes it.
    pub modules: Vec<String>,
    /// Where each module was loaded and which build it was, in the order of
    /// `modules` (memscope extension): names a frame after the fact and
    /// tells builds apart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub module_info: Vec<ModuleInfo>,
    /// Frames, each once; [`Callsite::frames`] indexes it.
    pub frames: Vec<Frame>,
    /// True while the frames are unnamed, waiting for `memscope-cli run` to
    /// name them (memscope extension): under `run`, the library leaves the
    /// naming to it, so each module is read once per run rather than once
    /// per process image. Readers name them on load where they can.
    #[serde(skip_serializing_if = "is_false")]
    pub symbols_pending: bool,
    pub callsites: Vec<Callsite>,
    pub variables: Vec<Variable>,
    /// Per-thread totals (memscope extension).
    pub threads: Vec<ThreadStats>,
    /// Lifetime distribution of every block, freed or live at the end
    /// (memscope extension; buckets of [`hist`]).
    pub lifetime_histogram: Vec<HistogramBucket>,
    /// `[unix_ns, live_bytes]` points, bounded in number, always containing
    /// the peak; with a third value, resident bytes, where it was sampled.
    pub timeline: Vec<TimelinePoint>,
}

/// Who wrote the snapshot and with which settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Tool {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    /// `preload` (libmemscope.so) or `in-process` (memscope-rs alone).
    #[serde(default)]
    pub mode: String,
    /// Frames captured per allocation (0 = backtraces off).
    #[serde(default)]
    pub backtrace_depth: u32,
    #[serde(default)]
    pub max_records: u64,
    /// Event clock: `tsc` or `monotonic`.
    #[serde(default)]
    pub clock: String,
    /// Every call site's `lifetime_ns.total` is known: a site whose total
    /// is its `max` (one block, the most common site) leaves it out, and
    /// readers put `max` back (see [`LifetimeStats::total`]). False in
    /// snapshots older than the totals, which carry none.
    #[serde(default, skip_serializing_if = "is_false")]
    pub site_totals: bool,
}

/// How a process image ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndKind {
    Exit,
    Panic,
    Signal,
    #[serde(rename = "_exit")]
    UnderscoreExit,
    Exec,
    Abort,
    /// Written on request (`memscope_rs::export`) while the process runs.
    Running,
}

impl EndKind {
    /// True when nothing of the process runs after a snapshot of this
    /// ending: not one taken while it runs, nor one before an `exec`
    /// (which can fail and return).
    pub fn process_ends(self) -> bool {
        !matches!(self, EndKind::Exec | EndKind::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EndKind::Exit => "exit",
            EndKind::Panic => "panic",
            EndKind::Signal => "signal",
            EndKind::UnderscoreExit => "_exit",
            EndKind::Exec => "exec",
            EndKind::Abort => "abort",
            EndKind::Running => "running",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub end: EndKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Working directory at start-up.
    #[serde(default)]
    pub cwd: String,
    /// How many `exec`s this pid went through before this image (0 = first).
    #[serde(default)]
    pub exec_seq: u32,
    /// True when this image began as a `fork()` of a traced parent.
    #[serde(default)]
    pub forked: bool,
}

/// Exact counters over every event of the image (SPEC §3 counting rules).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub total_allocations: u64,
    pub total_frees: u64,
    pub total_allocated_bytes: u64,
    pub total_freed_bytes: u64,
    pub reallocs: u64,
    pub peak_live_bytes: u64,
    pub peak_live_allocations: u64,
    pub peak_unix_ns: u64,
    pub live_at_exit_allocations: u64,
    pub live_at_exit_bytes: u64,
    pub events_dropped: u64,
    pub records_omitted: u64,
    /// The process's peak resident set (VmHWM) when the snapshot was taken
    /// (memscope extension; absent in older files): memory the heap
    /// counters do not see — an allocator of the program's own, `mmap` —
    /// shows here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// Blocks (and their bytes) this image inherited from its parent at `fork()`.
    #[serde(default)]
    pub inherited_allocations: u64,
    #[serde(default)]
    pub inherited_bytes: u64,
    /// `free`/`realloc` of pointers memscope never saw allocated (made before
    /// the library was loaded, or by a path it does not interpose).
    #[serde(default)]
    pub unmatched_frees: u64,
    /// A `fork()` child that made no allocation event of its own before it
    /// ended or called `exec` (SPEC §2): the summary is the parent's at the
    /// fork, and `allocations` and `callsites` are empty.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inherited_only: bool,
    /// A `fork()` child's counters as they were at the fork (memscope
    /// extension). The counters above continue them (as DHAT counts a
    /// child); `callsites`, `lifetime_histogram` and `allocations` cover what
    /// the child did itself: its sites sum to the counters minus these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_fork: Option<ForkCounters>,
    /// Of the blocks live at exit, those a `fork()` child inherited and never
    /// touched: counted above, listed in the parent's snapshot, not here.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inherited_live_at_exit_allocations: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inherited_live_at_exit_bytes: u64,
}

/// The SPEC §3 counters of a parent at the moment it forked.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForkCounters {
    pub total_allocations: u64,
    pub total_frees: u64,
    pub total_allocated_bytes: u64,
    pub total_freed_bytes: u64,
    pub reallocs: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One heap block: its birth, its death (or the end of the process) and so
/// its lifetime, which is never unknown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Allocation {
    pub ptr: String,
    pub size: u64,
    pub kind: String,
    pub thread_id: u64,
    pub timestamp_alloc: u64,
    pub timestamp_dealloc: u64,
    pub lifetime_ns: u64,
    pub lifetime_ms: u64,
    pub is_leaked: bool,
    pub callsite: Option<u64>,
    /// The names of a tracked variable (`memscope-rs`). Left out when null,
    /// as on nearly every record: three `null`s were a fifth of a record's
    /// bytes (SPEC §3 lists them; readers take a missing one as null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_name: Option<String>,
    /// Allocated by the parent before `fork()` (memscope extension).
    #[serde(default, skip_serializing_if = "is_false")]
    pub inherited: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Callsite<F = u32> {
    pub id: u64,
    /// Indices into [`Snapshot::frames`], innermost frame first
    /// ([`Snapshot::frames_of`] resolves them). Version 1 held the frames
    /// themselves (`F` = [`read::FrameRef`] while reading).
    pub frames: Vec<F>,
    pub allocations: u64,
    pub bytes: u64,
    pub live_at_exit_bytes: u64,
    /// The largest number of bytes this site had live at any one time.
    pub peak_live_bytes: u64,
    pub lifetime_ns: LifetimeStats,
    /// The three memscope extensions below are left out when 0 (most
    /// sites of a program free everything, few reallocate): a snapshot of
    /// 7,000 sites is ~350 KB smaller, and readers default them to 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub live_at_exit_allocations: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reallocs: u64,
    /// Bytes this site had live at the process-wide peak (DHAT's "at t-gmax").
    #[serde(default, skip_serializing_if = "is_zero")]
    pub at_peak_bytes: u64,
    /// Blocks this site had live at the process-wide peak (DHAT's `gbk`);
    /// left out when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub at_peak_allocations: u64,
    /// Blocks live when the site first reached `peak_live_bytes` (DHAT's
    /// `mbk`); left out when 1, the common case, and absent in snapshots
    /// older than it: [`Callsite::peak_live_blocks`] reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_live_allocations: Option<u64>,
}

impl<F> Callsite<F> {
    /// What DHAT keeps per program point beyond the totals — total lifetime,
    /// blocks at the site's own peak, blocks at the process-wide peak — when
    /// the snapshot carries them as aggregates (`lifetime_ns.total` marks
    /// such a snapshot); `None` for older ones, which only records can tell.
    pub fn dhat_aggregates(&self) -> Option<(u64, u64, u64)> {
        let total = self.lifetime_ns.total?;
        Some((total, self.peak_live_allocations.unwrap_or(1), self.at_peak_allocations))
    }
}

/// One frame of the `frames` table. `function`, `file` and `line` are null
/// for an address memscope could not name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct Frame {
    pub ip: String,
    pub function: Option<String>,
    /// Source position, known only with debug line info. Left out when
    /// null (most frames of system libraries), like a record's names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Index into [`Snapshot::modules`]: the object file that holds `ip`.
    pub module: u32,
    /// True for a frame inlined into the next (outer) one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inlined: bool,
}

/// A module's load bias (runtime address = file address + bias) and GNU
/// build id, both in hex (`""`: no build id).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModuleInfo {
    pub bias: String,
    pub build_id: String,
}

/// Lifetime percentiles in nanoseconds. `min`/`max` are exact; `p50`/`p99`
/// come from [`hist::LogHistogram`] (relative error at most 1/16).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
pub struct LifetimeStats {
    pub min: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    /// The exact sum of the site's lifetimes, live blocks' up to the end
    /// (DHAT's `tl`), so exports need not add up individual records, which
    /// `MEMSCOPE_MAX_RECORDS` caps. Absent in snapshots before it was added.
    /// Written only when it differs from `max`: two sites in three of a
    /// program hold one block (node's 6,900 sites: 72 KB of the file), and
    /// [`Tool::site_totals`] tells readers to put `max` back.
    #[serde(default)]
    pub total: Option<u64>,
}

impl LifetimeStats {
    /// `total` as the file holds it: left out when it is `max`.
    pub fn written_total(&self) -> Option<u64> {
        self.total.filter(|&t| t != self.max)
    }
}

impl Serialize for LifetimeStats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let total = self.written_total();
        let mut st = s.serialize_struct("LifetimeStats", 4 + total.is_some() as usize)?;
        st.serialize_field("min", &self.min)?;
        st.serialize_field("p50", &self.p50)?;
        st.serialize_field("p99", &self.p99)?;
        st.serialize_field("max", &self.max)?;
        if let Some(t) = total {
            st.serialize_field("total", &t)?;
        }
        st.end()
    }
}

/// A variable named with `track_var!`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Variable {
    pub var_name: String,
    pub type_name: String,
    pub scope_name: String,
    pub ptr: String,
    pub size: u64,
    pub thread_id: u64,
    pub timestamp_alloc: u64,
    pub timestamp_dealloc: u64,
    pub lifetime_ns: u64,
    pub lifetime_ms: u64,
    pub is_leaked: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ThreadStats {
    pub thread_id: u64,
    #[serde(default)]
    pub name: String,
    pub allocations: u64,
    pub bytes: u64,
    #[serde(default)]
    pub frees: u64,
    #[serde(default)]
    pub live_at_exit_bytes: u64,
}

/// Blocks whose lifetime fell in `[lower_ns, upper_ns]`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct HistogramBucket {
    pub lower_ns: u64,
    pub upper_ns: u64,
    pub count: u64,
    pub bytes: u64,
}

/// `0x…` rendering used for every address in a snapshot.
pub fn hex_addr(addr: u64) -> String {
    // As `format!("{addr:#x}")`, without the formatting machinery: a
    // snapshot formats one per record and per frame.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 18];
    let mut at = buf.len();
    let mut rest = addr;
    loop {
        at -= 1;
        buf[at] = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    at -= 2;
    buf[at] = b'0';
    buf[at + 1] = b'x';
    buf[at..].iter().map(|&b| b as char).collect()
}

/// Parses a `0x…` address as written by [`hex_addr`].
pub fn parse_addr(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(digits, 16).ok()
}

/// Nanoseconds to whole milliseconds, as `lifetime_ms` is defined (truncating).
pub fn ns_to_ms(ns: u64) -> u64 {
    ns / 1_000_000
}

impl Snapshot {
    /// Writes compact JSON: the bytes `serde_json::to_writer(w, self)`
    /// writes, with the records written faster (see `records_json`).
    pub fn write_json<W: std::io::Write>(&self, mut w: W) -> serde_json::Result<()> {
        records_json::write_snapshot(&mut w, self).map_err(serde_json::Error::io)
    }

    pub fn callsite(&self, id: u64) -> Option<&Callsite> {
        // Callsites are written sorted by id, which makes this a binary search.
        self.callsites
            .binary_search_by_key(&id, |c| c.id)
            .ok()
            .map(|i| &self.callsites[i])
            .or_else(|| self.callsites.iter().find(|c| c.id == id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_running_or_exec_snapshot_leaves_the_process_running() {
        use EndKind::*;
        for k in [Exit, Panic, Signal, UnderscoreExit, Abort] {
            assert!(k.process_ends(), "{k:?}");
        }
        assert!(!Exec.process_ends());
        assert!(!Running.process_ends());
    }

    #[test]
    fn addresses_round_trip() {
        for a in [0u64, 1, 0xf, 0x10, 0x7fff_dead_beef, u64::MAX] {
            assert_eq!(parse_addr(&hex_addr(a)), Some(a));
            assert_eq!(hex_addr(a), format!("{a:#x}"));
        }
        assert_eq!(parse_addr("1234"), None);
        assert_eq!(parse_addr("0xzz"), None);
    }

    #[test]
    fn a_sites_zero_extensions_are_left_out_and_read_back_as_zero() {
        let site = |live, reallocs, at_peak| Callsite::<u32> {
            id: 3,
            frames: vec![0, 1],
            allocations: 2,
            bytes: 64,
            live_at_exit_bytes: 0,
            peak_live_bytes: 32,
            lifetime_ns: LifetimeStats::default(),
            live_at_exit_allocations: live,
            reallocs,
            at_peak_bytes: at_peak,
            at_peak_allocations: 0,
            peak_live_allocations: None,
        };
        let quiet = serde_json::to_string(&site(0, 0, 0)).unwrap();
        for k in ["live_at_exit_allocations", "reallocs", "at_peak_bytes"] {
            assert!(!quiet.contains(k), "{quiet}");
        }
        // SPEC §3's own fields stay, zero or not.
        assert!(quiet.contains("\"live_at_exit_bytes\":0"), "{quiet}");
        assert_eq!(serde_json::from_str::<Callsite>(&quiet).unwrap(), site(0, 0, 0));
        let busy = serde_json::to_string(&site(1, 2, 3)).unwrap();
        assert_eq!(serde_json::from_str::<Callsite>(&busy).unwrap(), site(1, 2, 3));
    }

    #[test]
    fn end_kind_names_match_spec() {
        for (k, s) in [
            (EndKind::Exit, "exit"),
            (EndKind::Panic, "panic"),
            (EndKind::Signal, "signal"),
            (EndKind::UnderscoreExit, "_exit"),
            (EndKind::Exec, "exec"),
            (EndKind::Abort, "abort"),
        ] {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{s}\""));
            assert_eq!(k.as_str(), s);
        }
    }
}
