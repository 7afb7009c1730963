//! Naming a run's frames once. Under `run`, every image leaves its frames
//! unnamed (`MEMSCOPE_SYMBOLIZE=later`): naming them in each process would
//! read the same libraries again in every image — 200 `ls` images read `ls`
//! and libc 200 times — and costs each short process more than its own
//! work. Here one [`Resolver`] names every snapshot of the run, so each
//! module and each address is read once, and each file is rewritten in
//! place (atomically, owner-only like the library's own writes).

use memscope_symbols::{name_pending, Resolver};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Names the pending frames of every snapshot in the manifest. A snapshot
/// that cannot be read or rewritten is left as it is: readers name pending
/// frames on load, and `finish` reports unreadable files.
pub fn name_run(manifest: &Path) {
    let mut resolver = Resolver::new();
    for path in super::finish::manifest(manifest) {
        let Ok(mut snap) = memscope_format::read_snapshot_file(&path) else {
            continue;
        };
        if name_pending(&mut snap, &mut resolver) {
            if let Err(e) = rewrite(&path, &snap) {
                eprintln!(
                    "memscope: cannot name the frames in {}: {}",
                    crate::text::term(&path.display().to_string()),
                    crate::load::io_reason(&e)
                );
            }
        }
    }
}

/// Replaces `path` with `snap`: a temporary file beside it (0600), then a
/// rename, so a reader never sees half a file.
fn rewrite(path: &Path, snap: &memscope_format::Snapshot) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".memscope-").tempfile_in(dir)?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        snap.write_json(&mut w).map_err(std::io::Error::other)?;
        w.flush()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
