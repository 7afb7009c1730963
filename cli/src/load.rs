//! Reading snapshots: a big one streamed (one pass, no second copy in
//! memory) with a progress bar when stderr is a terminal, a small one from
//! memory, and one clear line naming the file for every way it can be bad.

use crate::text;
use indicatif::{ProgressBar, ProgressStyle};
use memscope_format::Snapshot;
use std::io::{self, IsTerminal, Read};
use std::path::Path;

/// Files smaller than this load too fast for a progress bar to help.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// Reads the snapshot at `path`; the error is ready to print.
pub fn snapshot(path: &Path) -> Result<Snapshot, String> {
    let shown = text::term(&path.display().to_string());
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {}", io_reason(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {}", io_reason(&e)))?;
    if meta.is_dir() {
        return Err(format!("cannot read {shown}: it is a directory, not a snapshot file"));
    }
    let bar = (meta.len() >= PROGRESS_MIN_BYTES && io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(meta.len());
        if let Ok(style) = ProgressStyle::with_template("reading {msg} {bar:30} {bytes}/{total_bytes} ({eta})") {
            bar.set_style(style);
        }
        bar.set_message(text::tail(&shown, 40));
        bar
    });
    let mut result = if bar.is_none() && meta.len() < PROGRESS_MIN_BYTES {
        // Parsing from memory is about twice as fast as through a reader
        // (`run` reads hundreds of these); a small file is read whole first.
        let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
        (&file)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {shown}: {}", io_reason(&e)))?;
        memscope_format::read_snapshot_bytes(&bytes)
    } else {
        let reader = Progress {
            inner: file,
            bar: bar.clone(),
        };
        memscope_format::read_snapshot(io::BufReader::with_capacity(1 << 20, reader))
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(s) = result.as_mut().ok().filter(|s| s.symbols_pending) {
        // Left unnamed by an image of a `run` that did not get to name it
        // (the cache is looked for only then: `run` reads every snapshot).
        let mut r = memscope_symbols::Resolver::with_cache(name_cache());
        memscope_symbols::name_pending(s, &mut r);
        r.save();
    }
    result.map_err(|e| match e {
        memscope_format::ReadError::Io(e) => format!("cannot read {shown}: {}", io_reason(&e)),
        other => format!("{shown}: {}", text::term(&other.to_string())),
    })
}

/// The reason without Rust's "(os error N)" suffix.
pub fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

struct Progress<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

/// The name cache this environment chooses (`MEMSCOPE_CACHE`, as the
/// library reads it; see `memscope_symbols::NameCache`), this build's part.
pub fn name_cache() -> Option<memscope_symbols::NameCache> {
    name_cache_root()?.for_namer(own_build_id())
}

/// This executable's GNU build id, read once (`run` needs it to name its
/// part of the cache and to tidy the cache).
pub fn own_build_id() -> Option<&'static [u8]> {
    static ID: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    ID.get_or_init(|| memscope_symbols::file_build_id(std::path::Path::new("/proc/self/exe")))
        .as_deref()
}

/// The whole name cache this environment chooses, every build's part.
pub fn name_cache_root() -> Option<memscope_symbols::NameCache> {
    let var = |k| std::env::var(k).ok();
    memscope_symbols::NameCache::from_setting(
        var("MEMSCOPE_CACHE").as_deref(),
        var("XDG_CACHE_HOME").as_deref(),
        var("HOME").as_deref(),
    )
}
