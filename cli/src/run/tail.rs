//! Reading a run's manifest while images still append to it: each look
//! reads only what was added since the last one. Reading it whole at every
//! poll (every 25 ms) made the naming thread's cost grow with the square of
//! the number of images — for 1,000 images, over 100,000 paths hashed.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How far the manifest has been read.
#[derive(Default)]
pub struct Tail {
    /// The manifest, open once it exists: each look is then one `read`
    /// from where the last one stopped (it was an open, a seek, a size
    /// query and a close as well, per snapshot of a shell loop).
    file: Option<std::fs::File>,
    /// Bytes read but not yet consumed: the start of a line still being
    /// written.
    partial: Vec<u8>,
}

impl Tail {
    /// The snapshot paths (not reports) of the lines completed since the
    /// last call; a line still being written is left for the next.
    pub fn new_paths(&mut self, manifest: &Path) -> Vec<PathBuf> {
        if self.file.is_none() {
            self.file = std::fs::File::open(manifest).ok();
        }
        let Some(file) = &mut self.file else {
            return Vec::new();
        };
        let mut text = std::mem::take(&mut self.partial);
        let mut chunk = [0u8; 16 << 10];
        // Plain reads: `read_to_end` on a file asks its size and position first.
        while let Ok(n @ 1..) = file.read(&mut chunk) {
            text.extend_from_slice(&chunk[..n]);
        }
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = text.split_off(complete);
        text.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && !l.ends_with(b".html"))
            .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn each_line_once_and_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifest");
        let mut tail = Tail::default();
        assert!(tail.new_paths(&m).is_empty(), "no manifest yet");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&m).unwrap();
        f.write_all(b"/o/a.json\n/o/a.html\n/o/b.js").unwrap();
        assert_eq!(tail.new_paths(&m), [PathBuf::from("/o/a.json")]);
        f.write_all(b"on\n").unwrap();
        assert_eq!(tail.new_paths(&m), [PathBuf::from("/o/b.json")]);
        assert!(tail.new_paths(&m).is_empty());
    }
}
