//! Names found before, kept between processes and runs: one file per module
//! build id in a cache directory (`MEMSCOPE_CACHE`, by default
//! `$XDG_CACHE_HOME/memscope` or `~/.cache/memscope`), in a part of it of
//! the memscope build that names ([`NameCache::for_namer`]).
//!
//! Why: a module is named the same in every process that loads it, yet
//! each process that names its own frames (plain `LD_PRELOAD`) read the
//! module's symbols and DWARF again — a Python built with DWARF spent ~40 ms
//! of every exit naming its interpreter, cc1 ~7 ms, each `ls` of a shell
//! loop ~0.4 ms for libc and `ls`. A build id names the file's exact
//! contents, so what was found for it stays true.
//!
//! Addresses whose every frame has a function name are kept, and so are
//! addresses the module's own file could name nothing for while no
//! separate debug file is installed for it: every image of a stripped
//! program (Debian's `ls`, `grep`, `bash`) otherwise opened and read the
//! program's file again to find nothing. Those misses are dropped when the
//! cache is read once a debug file is there (a `-dbgsym` package installed
//! later), so they are looked for again. A file that cannot be read
//! whole, or is not this format, counts as empty; writes are atomic
//! (temporary file, then rename) and owner-only, so processes writing at
//! once lose at most each other's additions, never the file.

use crate::Named;
use memscope_format::addr_map::AddrMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// First bytes of a cache file (its format's version in the last).
const MAGIC: &[u8; 5] = b"MSNC\x01";
/// Entries one file keeps at most (a module's named addresses; the rest
/// are named again each time).
const MAX_ENTRIES: usize = 1 << 20;

const FUNCTION: u8 = 1;
const FILE: u8 = 2;
const LINE: u8 = 4;
const INLINED: u8 = 8;

/// Where names are kept (None in [`NameCache::from_setting`]: nowhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameCache {
    dir: PathBuf,
    /// Where separate debug files are looked for (`.build-id/xx/….debug`
    /// below it), as [`crate::files::debug_symbols`] does.
    debug_root: PathBuf,
}

impl NameCache {
    pub fn new(dir: PathBuf) -> NameCache {
        NameCache {
            dir,
            debug_root: PathBuf::from(crate::files::DEBUG_ROOT),
        }
    }

    /// True when a separate debug file is installed for `build_id`.
    fn debug_file_exists(&self, build_id: &[u8]) -> bool {
        crate::files::debug_file(&self.debug_root, build_id).is_some_and(|p| p.exists())
    }

    /// The cache `MEMSCOPE_CACHE`'s value chooses: `off` (or `0`) none, a
    /// directory that one, unset the user's cache directory.
    pub fn from_setting(value: Option<&str>, xdg_cache_home: Option<&str>, home: Option<&str>) -> Option<NameCache> {
        let dir = match value.filter(|v| !v.is_empty()) {
            Some("off" | "0") => return None,
            Some(dir) => PathBuf::from(dir),
            None => match (
                xdg_cache_home.filter(|v| v.starts_with('/')),
                home.filter(|v| !v.is_empty()),
            ) {
                (Some(x), _) => Path::new(x).join("memscope"),
                (None, Some(h)) => Path::new(h).join(".cache").join("memscope"),
                (None, None) => return None,
            },
        };
        Some(NameCache::new(dir))
    }

    /// The part of the cache that memscope build `namer` (its own build
    /// id) fills: what a frame is named may change from one build of
    /// memscope to the next (a fix in demangling, in reading DWARF), so
    /// names are never taken from another build's. None without an id.
    pub fn for_namer(self, namer: Option<&[u8]>) -> Option<NameCache> {
        let namer = namer.filter(|id| !id.is_empty())?;
        Some(NameCache {
            dir: self.dir.join(Self::namer_part(namer)),
            debug_root: self.debug_root,
        })
    }

    /// The name of build `namer`'s part of the cache directory.
    pub fn namer_part(namer: &[u8]) -> String {
        format!("names-{}", crate::hex(namer))
    }

    /// The directory this cache keeps its files in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the module of `build_id`'s names.
    fn names_file(build_id: &[u8]) -> String {
        format!("{}.names", crate::hex(build_id))
    }

    /// The names kept for the module of `build_id` (empty if none).
    /// Addresses nothing was found for are left out once a debug file is
    /// installed for the module.
    pub(crate) fn load(&self, build_id: &[u8]) -> AddrMap<Vec<Named>> {
        let mut all = std::fs::read(self.dir.join(Self::names_file(build_id)))
            .ok()
            .and_then(|bytes| decode(&bytes))
            .unwrap_or_default();
        if all.values().any(|f| nothing_named(f)) && self.debug_file_exists(build_id) {
            all.retain(|_, f| !nothing_named(f));
        }
        all
    }

    /// Adds `found` (what [`keepable`], and the misses the module docs
    /// describe) to what the module's file holds now. Errors are ignored: a cache that cannot be written is
    /// one that is not used.
    /// `looked`: the module's own file was read for `found` (a miss is
    /// kept only then: a file that could not be opened says nothing).
    pub(crate) fn add(&self, build_id: &[u8], found: &AddrMap<Vec<Named>>, looked: bool) {
        let misses = looked && found.values().any(|f| nothing_named(f)) && !self.debug_file_exists(build_id);
        let keep = |frames: &[Named]| keepable(frames) || (misses && nothing_named(frames));
        if !found.values().any(|f| keep(f)) {
            return;
        }
        let mut all = self.load(build_id);
        let before = all.len();
        for (rel, frames) in found {
            if all.len() >= MAX_ENTRIES {
                break;
            }
            if keep(frames) && !all.contains_key(rel) {
                all.insert(*rel, frames.clone());
            }
        }
        if all.len() > before {
            let _ = self.write(build_id, &all);
        }
    }

    fn write(&self, build_id: &[u8], all: &AddrMap<Vec<Named>>) -> std::io::Result<()> {
        self.write_atomic(&Self::names_file(build_id), &encode(all))
    }

    /// The whole of file `name` of this part of the cache: None if it
    /// cannot be read, or holds more than `max` bytes (nothing is sized
    /// by a file that is not what it should be).
    pub fn read(&self, name: &str, max: u64) -> Option<Vec<u8>> {
        use std::io::Read;
        let f = std::fs::File::open(self.dir.join(name)).ok()?;
        let len = f.metadata().ok()?.len();
        if len > max {
            return None;
        }
        let mut bytes = Vec::with_capacity(len as usize);
        f.take(max + 1).read_to_end(&mut bytes).ok()?;
        (bytes.len() as u64 <= max).then_some(bytes)
    }

    /// Replaces file `name` of this part of the cache with `bytes`: written
    /// to an owner-only temporary file (never through a symlink), then
    /// renamed over it, so a reader sees the old file or the new one whole.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            name,
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .and_then(|mut f| f.write_all(bytes));
        match written.and_then(|()| std::fs::rename(&tmp, &path)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// Whether an address's frames are worth keeping: every one named.
pub(crate) fn keepable(frames: &[Named]) -> bool {
    !frames.is_empty() && frames.iter().all(|f| f.function.is_some())
}

/// Whether nothing at all was found for an address (no function, no
/// source position): what a stripped module's own file gives.
fn nothing_named(frames: &[Named]) -> bool {
    !frames.is_empty() && frames.iter().all(|f| f.function.is_none() && f.file.is_none())
}

fn encode(all: &AddrMap<Vec<Named>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + all.len() * 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(all.len() as u32).to_le_bytes());
    let text = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    for (rel, frames) in all {
        out.extend_from_slice(&rel.to_le_bytes());
        out.push(frames.len().min(255) as u8);
        for f in frames.iter().take(255) {
            let flags = f.function.as_ref().map_or(0, |_| FUNCTION)
                | f.file.as_ref().map_or(0, |_| FILE)
                | f.line.map_or(0, |_| LINE)
                | if f.inlined { INLINED } else { 0 };
            out.push(flags);
            if let Some(s) = &f.function {
                text(&mut out, s);
            }
            if let Some(s) = &f.file {
                text(&mut out, s);
            }
            if let Some(l) = f.line {
                out.extend_from_slice(&l.to_le_bytes());
            }
        }
    }
    out
}

/// The entries of a cache file; None when it is not one, whole.
fn decode(bytes: &[u8]) -> Option<AddrMap<Vec<Named>>> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let n = r.u32()? as usize;
    // An entry takes 10 bytes at least: a count past that is no cache
    // file, and must not size a table.
    if n > MAX_ENTRIES || n > bytes.len() / 10 {
        return None;
    }
    let mut all = AddrMap::with_capacity_and_hasher(n, Default::default());
    for _ in 0..n {
        let rel = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let count = r.take(1)?[0];
        let mut frames = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let flags = r.take(1)?[0];
            let function = if flags & FUNCTION != 0 { Some(r.text()?) } else { None };
            let file = if flags & FILE != 0 { Some(r.text()?) } else { None };
            let line = if flags & LINE != 0 { Some(r.u32()?) } else { None };
            frames.push(Named {
                function,
                file,
                line,
                inlined: flags & INLINED != 0,
            });
        }
        all.insert(rel, frames);
    }
    (r.at == bytes.len()).then_some(all)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(function: Option<&str>, file: Option<&str>, line: Option<u32>, inlined: bool) -> Named {
        Named {
            function: function.map(String::from),
            file: file.map(String::from),
            line,
            inlined,
        }
    }

    #[test]
    fn names_come_back_as_they_went_in_and_only_named_ones_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = NameCache::new(dir.path().join("c"));
        let id = [0xab, 0x01];
        let mut found = AddrMap::default();
        found.insert(
            0x10,
            vec![
                named(Some("helper"), Some("/src/a.c"), Some(12), true),
                named(Some("main \"ü\""), None, None, false),
            ],
        );
        found.insert(0x20, vec![named(None, None, None, false)]);
        found.insert(0x30, vec![named(Some("f"), Some("b.c"), None, false)]);
        // Not read from the module's file (it could not be opened): a miss
        // says nothing, and is not kept.
        cache.add(&id, &found, false);
        let back = cache.load(&id);
        assert_eq!(back.len(), 2, "the unnamed address is not kept");
        assert_eq!(back[&0x10], found[&0x10]);
        assert_eq!(back[&0x30], found[&0x30]);
        // Another process adds what it found: both are kept.
        let mut more = AddrMap::default();
        more.insert(0x40, vec![named(Some("g"), None, Some(3), false)]);
        cache.add(&id, &more, true);
        assert_eq!(cache.load(&id).len(), 3);
        let file = dir.path().join("c").join("ab01.names");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        // Cut short, or not this format: nothing, never a panic.
        let bytes = std::fs::read(&file).unwrap();
        for cut in [0, 3, 9, bytes.len() - 1] {
            std::fs::write(&file, &bytes[..cut]).unwrap();
            assert!(cache.load(&id).is_empty(), "cut at {cut}");
        }
        let mut wrong = bytes.clone();
        wrong.push(0);
        std::fs::write(&file, &wrong).unwrap();
        assert!(cache.load(&id).is_empty(), "trailing bytes");
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&file, &huge).unwrap();
        assert!(cache.load(&id).is_empty(), "a count no file this size holds");
    }

    #[test]
    fn a_stripped_modules_misses_are_kept_until_a_debug_file_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = NameCache::new(dir.path().join("c"));
        cache.debug_root = dir.path().join("debug");
        let id = [0xcd, 0x02, 0x03];
        let mut found = AddrMap::default();
        found.insert(0x10, vec![named(None, None, None, false)]);
        found.insert(0x20, vec![named(Some("exported"), None, None, false)]);
        // Partly named (an inlined frame without a function): looked for again.
        found.insert(
            0x30,
            vec![
                named(None, Some("a.c"), Some(1), true),
                named(Some("f"), None, None, false),
            ],
        );
        cache.add(&id, &found, true);
        let back = cache.load(&id);
        assert_eq!(back.len(), 2, "{back:?}");
        assert_eq!(back[&0x10], found[&0x10], "the miss is kept");
        assert_eq!(back[&0x20], found[&0x20]);
        // A debug file is installed: the miss is looked for again.
        let debug = crate::files::debug_file(&cache.debug_root, &id).unwrap();
        assert!(debug.ends_with(".build-id/cd/0203.debug"), "{debug:?}");
        std::fs::create_dir_all(debug.parent().unwrap()).unwrap();
        std::fs::write(&debug, b"").unwrap();
        let back = cache.load(&id);
        assert_eq!(back.keys().collect::<Vec<_>>(), [&0x20]);
        // And while it is there, a new miss is not kept either.
        let mut more = AddrMap::default();
        more.insert(0x40, vec![named(None, None, None, false)]);
        more.insert(0x50, vec![named(Some("g"), None, None, false)]);
        cache.add(&id, &more, true);
        let mut keys: Vec<u64> = cache.load(&id).into_keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, [0x20, 0x50]);
    }

    #[test]
    fn files_are_written_whole_and_read_up_to_a_size() {
        let dir = tempfile::tempdir().unwrap();
        let cache = NameCache::new(dir.path().join("c"));
        assert_eq!(cache.read("x.rules", 100), None, "no file yet");
        cache.write_atomic("x.rules", b"0123456789").unwrap();
        assert_eq!(cache.read("x.rules", 10).as_deref(), Some(&b"0123456789"[..]));
        assert_eq!(cache.read("x.rules", 9), None, "longer than asked for");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("c"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.rules"], "no temporary file left");
    }

    #[test]
    fn the_setting_chooses_the_directory_or_none() {
        let dir = |v, x, h| NameCache::from_setting(v, x, h).map(|c| c.dir);
        let namer = NameCache::new(PathBuf::from("/c")).for_namer(Some(&[0x12, 0xef]));
        assert_eq!(namer.map(|c| c.dir), Some(PathBuf::from("/c/names-12ef")));
        assert_eq!(NameCache::new(PathBuf::from("/c")).for_namer(Some(&[])), None);
        assert_eq!(dir(Some("off"), None, Some("/h")), None);
        assert_eq!(dir(Some("0"), None, Some("/h")), None);
        assert_eq!(dir(Some("/c"), Some("/x"), Some("/h")), Some(PathBuf::from("/c")));
        assert_eq!(dir(None, Some("/x"), Some("/h")), Some(PathBuf::from("/x/memscope")));
        assert_eq!(
            dir(None, Some("rel"), Some("/h")),
            Some(PathBuf::from("/h/.cache/memscope"))
        );
        assert_eq!(
            dir(Some(""), None, Some("/h")),
            Some(PathBuf::from("/h/.cache/memscope"))
        );
        assert_eq!(dir(None, None, None), None);
    }
}
