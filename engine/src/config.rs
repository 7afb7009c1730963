//! The `MEMSCOPE_*` environment variables (SPEC §2), parsed once.

use std::sync::OnceLock;

/// Records listed individually unless `MEMSCOPE_MAX_RECORDS` says otherwise.
/// Each is ~270 bytes of JSON; the aggregates (summary, call sites,
/// histogram, timeline) cover every event whatever the cap, and tracked
/// variables and blocks live at exit are listed first. Chosen by
/// measurement (issue 13): 20,000 made two thirds of node's 8.6 MB snapshot;
/// at 256 a short program (`ls`: 239 blocks) is still listed whole and
/// node's snapshot is 2.9 MB (its call sites and frames alone take
/// 2.8 MB; at 500 it was 2.94–3.01 MB). `export --to dhat` stays exact
/// whatever the cap: call sites carry DHAT's total lifetime and block
/// counts at the peaks as aggregates.
pub const DEFAULT_MAX_RECORDS: u64 = 256;
/// Frames captured per allocation by default. Chosen by measurement
/// (scripts/bench): the walk stops at the outermost frame, so the depth
/// only costs on deep stacks; python3's allocations cost 1.31x at 16
/// frames, 1.33x at 32, 1.47x at 64, and Rust programs need 20-30 frames
/// to get from the allocator through generic std code to the caller.
pub const DEFAULT_BACKTRACE: u32 = 32;
/// The deepest stack memscope will capture.
pub const MAX_BACKTRACE: u32 = 128;
/// Default `MEMSCOPE_EXPORT_PATH`, relative to the start-up directory.
pub const DEFAULT_EXPORT_PATH: &str = "memscope-%e-%p.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Html,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub export_path: String,
    /// True when `MEMSCOPE_EXPORT_PATH` was set (it then wins over a path
    /// the program sets itself).
    pub export_path_from_env: bool,
    pub auto_export: bool,
    pub format: ExportFormat,
    pub backtrace: u32,
    pub max_records: u64,
    pub log: LogLevel,
    /// `MEMSCOPE_MANIFEST`: a file each image appends its snapshot path to
    /// (set by `memscope-cli run` to find every snapshot of a run).
    pub manifest: Option<String>,
    /// `MEMSCOPE_SYMBOLIZE=later` (set by `memscope-cli run`): snapshots
    /// written at the end of an image leave their frames unnamed
    /// (`symbols_pending`) for `run`, which names a whole run's once.
    pub symbolize_later: bool,
    /// Where names found for a module are kept for the next process
    /// (`MEMSCOPE_CACHE`: a directory, or `off`; by default the user's
    /// cache directory; see `memscope_symbols::NameCache`).
    pub name_cache: Option<memscope_symbols::NameCache>,
    /// `MEMSCOPE_EVERY` (`10s`, `500ms`, …): write a running snapshot this
    /// often (ns); `None`: only on request.
    pub every_ns: Option<u64>,
    /// `MEMSCOPE_RUNNING_PATH`: the path template running snapshots are
    /// named after (default: the export path); `memscope-cli run --export
    /// html` points it beside the report.
    pub running_path: Option<String>,
    /// `MEMSCOPE_REACHABLE=1`: start memscope's thread in every image at
    /// once, so `memscope-cli snapshot`/`top` reach even a single-threaded
    /// process that no longer allocates (set by `run --live`; implied by
    /// `MEMSCOPE_EVERY`). Off by default: the thread is one a program that
    /// checks it is single-threaded would see.
    pub reachable: bool,
    /// `MEMSCOPE_HANDOFF` (set by `memscope-cli run`): the Unix socket an
    /// image hands its final JSON snapshot to, for run to write (see
    /// [`crate::handoff`]); the image writes the file itself when run
    /// cannot be reached.
    pub handoff: Option<String>,
}

/// The shortest `MEMSCOPE_EVERY` honoured: a snapshot of a large heap takes
/// a good part of that.
pub const MIN_EVERY_NS: u64 = 100_000_000;

impl Config {
    /// Parses from a variable lookup; returns the config and a warning for
    /// each value that was ignored.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> (Config, Vec<String>) {
        let mut warnings = Vec::new();
        let mut bad = |var: &str, v: &str, expected: &str| {
            warnings.push(format!("ignoring {var}={v:?}: expected {expected}"));
        };
        // `MEMSCOPE_DEFAULT_EXPORT_PATH` (set by `memscope-cli run` without
        // `-o`) only replaces the built-in default: a program's own
        // `enable_auto_export` path still wins over it (SPEC §1).
        let (export_path, export_path_from_env) = match get("MEMSCOPE_EXPORT_PATH") {
            Some(p) if !p.is_empty() => (p, true),
            _ => match get("MEMSCOPE_DEFAULT_EXPORT_PATH") {
                Some(p) if !p.is_empty() => (p, false),
                _ => (DEFAULT_EXPORT_PATH.to_string(), false),
            },
        };
        let auto_export = match get("MEMSCOPE_AUTO_EXPORT").as_deref() {
            None | Some("") | Some("1") | Some("true") | Some("yes") | Some("on") => true,
            Some("0") | Some("false") | Some("no") | Some("off") => false,
            Some(v) => {
                bad("MEMSCOPE_AUTO_EXPORT", v, "0 or 1");
                true
            }
        };
        let format = match get("MEMSCOPE_EXPORT_FORMAT").as_deref() {
            None | Some("") | Some("json") => ExportFormat::Json,
            Some("html") => ExportFormat::Html,
            Some("both") => ExportFormat::Both,
            Some(v) => {
                bad("MEMSCOPE_EXPORT_FORMAT", v, "json, html or both");
                ExportFormat::Json
            }
        };
        let backtrace = match get("MEMSCOPE_BACKTRACE") {
            None => DEFAULT_BACKTRACE,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) => n.min(MAX_BACKTRACE),
                Err(_) => {
                    bad("MEMSCOPE_BACKTRACE", &v, "a number of frames");
                    DEFAULT_BACKTRACE
                }
            },
        };
        let max_records = match get("MEMSCOPE_MAX_RECORDS") {
            None => DEFAULT_MAX_RECORDS,
            Some(v) => v.trim().parse::<u64>().unwrap_or_else(|_| {
                bad("MEMSCOPE_MAX_RECORDS", &v, "a number");
                DEFAULT_MAX_RECORDS
            }),
        };
        let log = match get("MEMSCOPE_LOG").as_deref() {
            None | Some("") | Some("warn") => LogLevel::Warn,
            Some("off") => LogLevel::Off,
            Some("info") => LogLevel::Info,
            Some("debug") => LogLevel::Debug,
            Some(v) => {
                bad("MEMSCOPE_LOG", v, "off, warn, info or debug");
                LogLevel::Warn
            }
        };
        let manifest = get("MEMSCOPE_MANIFEST").filter(|m| !m.is_empty());
        let symbolize_later = match get("MEMSCOPE_SYMBOLIZE").as_deref() {
            None | Some("") | Some("exit") => false,
            Some("later") => true,
            Some(v) => {
                bad("MEMSCOPE_SYMBOLIZE", v, "exit or later");
                false
            }
        };
        let name_cache = memscope_symbols::NameCache::from_setting(
            get("MEMSCOPE_CACHE").as_deref(),
            get("XDG_CACHE_HOME").as_deref(),
            get("HOME").as_deref(),
        );
        let every_ns = match get("MEMSCOPE_EVERY").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match memscope_format::control::parse_duration(&v) {
                Some(ns) => Some(ns.max(MIN_EVERY_NS)),
                None => {
                    bad("MEMSCOPE_EVERY", &v, "a duration such as 10s, 500ms or 5m");
                    None
                }
            },
        };
        let running_path = get("MEMSCOPE_RUNNING_PATH").filter(|p| !p.is_empty());
        let handoff = get("MEMSCOPE_HANDOFF").filter(|p| !p.is_empty());
        let reachable = match get("MEMSCOPE_REACHABLE").as_deref().map(str::trim) {
            None | Some("") | Some("0") | Some("off") => false,
            Some("1") | Some("on") => true,
            Some(v) => {
                bad("MEMSCOPE_REACHABLE", v, "1 or 0");
                false
            }
        };
        (
            Config {
                export_path,
                export_path_from_env,
                auto_export,
                format,
                backtrace,
                max_records,
                log,
                manifest,
                symbolize_later,
                name_cache,
                every_ns,
                running_path,
                reachable,
                handoff,
            },
            warnings,
        )
    }
}

static CONFIG: OnceLock<Config> = OnceLock::new();
static WARNINGS: OnceLock<Vec<String>> = OnceLock::new();

/// The process's config, read from the environment on first use.
pub fn get() -> &'static Config {
    CONFIG.get_or_init(|| {
        let _g = crate::thread::Guard::enter();
        let (c, w) = Config::parse(|k| {
            let name = std::ffi::CString::new(k).ok()?;
            crate::sys::getenv(&name).map(|v| String::from_utf8_lossy(v).into_owned())
        });
        let _ = WARNINGS.set(w);
        c
    })
}

/// Warnings from parsing, to be logged once logging is up.
pub fn warnings() -> &'static [String] {
    WARNINGS.get().map(|v| v.as_slice()).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::parse(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let (c, w) = parse(&[]);
        assert!(w.is_empty());
        assert_eq!(c.export_path, DEFAULT_EXPORT_PATH);
        assert!(c.auto_export);
        assert_eq!(c.format, ExportFormat::Json);
        assert_eq!(c.backtrace, DEFAULT_BACKTRACE);
        assert_eq!(c.max_records, DEFAULT_MAX_RECORDS);
        assert_eq!(c.log, LogLevel::Warn);
        assert_eq!(c.manifest, None);
        assert!(!c.symbolize_later);
        assert_eq!(c.every_ns, None);
    }

    #[test]
    fn every() {
        let (c, w) = parse(&[("MEMSCOPE_EVERY", "10s")]);
        assert!(w.is_empty());
        assert_eq!(c.every_ns, Some(10_000_000_000));
        let (c, _) = parse(&[("MEMSCOPE_EVERY", "1ms")]);
        assert_eq!(c.every_ns, Some(MIN_EVERY_NS));
        let (c, w) = parse(&[("MEMSCOPE_EVERY", "often")]);
        assert_eq!((c.every_ns, w.len()), (None, 1));
    }

    #[test]
    fn values_and_bad_values() {
        let (c, w) = parse(&[
            ("MEMSCOPE_EXPORT_PATH", "/tmp/x-%p.json"),
            ("MEMSCOPE_AUTO_EXPORT", "0"),
            ("MEMSCOPE_EXPORT_FORMAT", "both"),
            ("MEMSCOPE_BACKTRACE", "100000"),
            ("MEMSCOPE_MAX_RECORDS", "12"),
            ("MEMSCOPE_LOG", "debug"),
            ("MEMSCOPE_SYMBOLIZE", "later"),
        ]);
        assert!(c.symbolize_later);
        assert!(w.is_empty());
        assert_eq!(c.export_path, "/tmp/x-%p.json");
        assert!(!c.auto_export);
        assert_eq!(c.format, ExportFormat::Both);
        assert_eq!(c.backtrace, MAX_BACKTRACE);
        assert_eq!(c.max_records, 12);
        assert_eq!(c.log, LogLevel::Debug);
        let (c, _) = parse(&[("MEMSCOPE_DEFAULT_EXPORT_PATH", "/r/m-%p.json")]);
        assert_eq!(
            (c.export_path.as_str(), c.export_path_from_env),
            ("/r/m-%p.json", false)
        );
        let (c, _) = parse(&[
            ("MEMSCOPE_DEFAULT_EXPORT_PATH", "/r/m-%p.json"),
            ("MEMSCOPE_EXPORT_PATH", "/u.json"),
        ]);
        assert_eq!((c.export_path.as_str(), c.export_path_from_env), ("/u.json", true));
        let (c, w) = parse(&[
            ("MEMSCOPE_EXPORT_FORMAT", "xml"),
            ("MEMSCOPE_BACKTRACE", "lots"),
            ("MEMSCOPE_LOG", "loud"),
        ]);
        assert_eq!(w.len(), 3);
        assert_eq!(c.format, ExportFormat::Json);
    }
}
