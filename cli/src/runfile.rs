//! The run manifest: one small JSON file that `run` writes beside its
//! snapshots (`<first snapshot>.run.json`) so that a whole run — every
//! process image it traced — can be named as one thing by `check`, `diff`
//! and scripts. Without it a run is only a pattern of file names, and the
//! CI gate used to compare the run's first process (the shell or cargo),
//! never the programs it started.
//!
//! ```json
//! { "memscope_run": 1,
//!   "command": ["sh", "-c", "./prog 1000"],
//!   "images": [ { "snapshot": "snap.json", "wrote_snapshot": true, "pid": 41,
//!                 "ppid": 40, "exe": "/usr/bin/dash", "argv": ["sh", "-c", "./prog 1000"],
//!                 "exec_seq": 0, "forked": false, "start_unix_ns": 1700000000000000000 } ] }
//! ```
//!
//! `snapshot` is relative to the manifest's directory (absolute when the
//! snapshot lies elsewhere); an image that recorded nothing (`run --skip`)
//! has `"snapshot": null` and `"wrote_snapshot": false`. Images are in
//! order of start. Readers tell a manifest from a snapshot by its first
//! key, `memscope_run`, the format version.

use crate::text::term;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The manifest format version this build writes and reads.
pub const VERSION: u32 = 1;
/// How a manifest's name ends.
pub const SUFFIX: &str = ".run.json";

#[derive(Serialize, Deserialize)]
pub struct Manifest {
    /// Format version; first key, so a reader can tell the file from a snapshot.
    pub memscope_run: u32,
    /// The command `run` traced, as given.
    pub command: Vec<String>,
    pub images: Vec<Image>,
}

/// One process image of the run.
#[derive(Serialize, Deserialize)]
pub struct Image {
    pub snapshot: Option<String>,
    pub wrote_snapshot: bool,
    pub pid: u32,
    pub ppid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    #[serde(default)]
    pub exec_seq: u32,
    #[serde(default)]
    pub forked: bool,
    #[serde(default)]
    pub start_unix_ns: u64,
}

/// What a path given to `check` or `diff` names.
pub enum Input {
    Snapshot(PathBuf),
    /// A run manifest (found directly or in the directory given).
    Run(PathBuf),
}

fn shown(p: &Path) -> String {
    term(&p.display().to_string())
}

/// Tells a snapshot from a run manifest or a directory holding one.
pub fn classify(path: &Path) -> Result<Input, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {}", shown(path), crate::load::io_reason(&e)))?;
    if meta.is_dir() {
        return in_directory(path).map(Input::Run);
    }
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("cannot read {}: {}", shown(path), crate::load::io_reason(&e)))?;
    let text = String::from_utf8_lossy(&head[..n]);
    let rest = text.trim_start().strip_prefix('{').unwrap_or("").trim_start();
    Ok(if rest.starts_with("\"memscope_run\"") {
        Input::Run(path.to_path_buf())
    } else {
        Input::Snapshot(path.to_path_buf())
    })
}

/// The one `*.run.json` in `dir`.
fn in_directory(dir: &Path) -> Result<PathBuf, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {}", shown(dir), crate::load::io_reason(&e)))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(SUFFIX)))
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!(
            "{} is a directory with no run manifest (*{SUFFIX}, written by `run`); give a snapshot or a run",
            shown(dir)
        )),
        n => Err(format!(
            "{} holds {n} run manifests (*{SUFFIX}); name the one to use",
            shown(dir)
        )),
    }
}

/// Reads the manifest at `path`.
pub fn read(path: &Path) -> Result<Manifest, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {}", shown(path), crate::load::io_reason(&e)))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a complete run manifest: {}", shown(path), term(&e.to_string())))?;
    if m.memscope_run != VERSION {
        return Err(format!(
            "{}: run manifest version {} is not supported (this memscope-cli reads version {VERSION})",
            shown(path),
            m.memscope_run
        ));
    }
    Ok(m)
}

/// The snapshots `m` (read from `path`) lists, resolved; and how many of
/// its images wrote none.
pub fn snapshots(m: &Manifest, path: &Path) -> (Vec<PathBuf>, usize) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let listed: Vec<PathBuf> = m
        .images
        .iter()
        .filter_map(|i| i.snapshot.as_deref().filter(|_| i.wrote_snapshot))
        .map(|s| dir.join(s))
        .collect();
    let none = m.images.len() - listed.len();
    (listed, none)
}

/// Where the manifest of a run whose first snapshot is `root` goes.
pub fn path_for(root: &Path) -> PathBuf {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".json").unwrap_or(&name);
    root.with_file_name(format!("{stem}{SUFFIX}"))
}

/// `snapshot` as the manifest at `manifest` names it: relative when beside it.
pub fn relative(snapshot: &Path, manifest: &Path) -> String {
    let rel = match snapshot.strip_prefix(manifest.parent().unwrap_or(Path::new("/"))) {
        Ok(r) => r,
        Err(_) => snapshot,
    };
    rel.to_string_lossy().into_owned()
}

/// Writes `path` the way the library writes snapshots: a temporary file
/// beside it (created exclusively and owner-only, so never through a
/// symlink), then a rename, so a reader never sees half a file; never over
/// a device, fifo or directory (looked at first: nothing is written beside
/// `-o /dev/null` either). Through a buffer the size of the library's:
/// one `write` for most snapshots of short processes.
pub fn write_private(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let t = meta.file_type();
        if !(t.is_file() || t.is_symlink()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file; refusing to replace it",
            ));
        }
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Created 0600 (tempfile's mode; the umask may only take bits away),
    // as the library creates its files: no `fchmod` after.
    let mut tmp = tempfile::Builder::new().prefix(".memscope-").tempfile_in(dir)?;
    {
        let mut w = std::io::BufWriter::with_capacity(memscope_engine::snapshot::WRITE_BUFFER, tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes `m` to `path`.
pub fn write(m: &Manifest, path: &Path) -> Result<(), String> {
    write_private(path, |w| {
        serde_json::to_writer_pretty(w, m).map_err(std::io::Error::other)
    })
    .map_err(|e| {
        format!(
            "cannot write the run manifest {}: {}",
            shown(path),
            crate::load::io_reason(&e)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_written_owner_only_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        write_private(&path, |w| w.write_all(b"first")).unwrap();
        write_private(&path, |w| w.write_all(b"second")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        // A directory in the way is refused, and nothing is left beside it.
        let taken = dir.path().join("taken");
        std::fs::create_dir(&taken).unwrap();
        let e = write_private(&taken, |w| w.write_all(b"x")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(taken.is_dir());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary file left"
        );
    }

    #[test]
    fn the_manifest_is_named_after_the_first_snapshot() {
        assert_eq!(path_for(Path::new("/o/snap.json")), Path::new("/o/snap.run.json"));
        assert_eq!(path_for(Path::new("/o/snap")), Path::new("/o/snap.run.json"));
        assert_eq!(
            relative(Path::new("/o/snap.7.json"), Path::new("/o/snap.run.json")),
            "snap.7.json"
        );
        assert_eq!(
            relative(Path::new("/x/s.json"), Path::new("/o/snap.run.json")),
            "/x/s.json"
        );
    }

    #[test]
    fn a_manifest_is_told_from_a_snapshot_by_its_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest {
            memscope_run: VERSION,
            command: vec!["sh".into()],
            images: vec![],
        };
        let p = dir.path().join("a.run.json");
        write(&m, &p).unwrap();
        assert!(matches!(classify(&p), Ok(Input::Run(_))));
        assert!(matches!(classify(dir.path()), Ok(Input::Run(q)) if q == p));
        let s = dir.path().join("s.json");
        std::fs::write(&s, "{\"format_version\": 2}").unwrap();
        assert!(matches!(classify(&s), Ok(Input::Snapshot(_))));
    }
}
