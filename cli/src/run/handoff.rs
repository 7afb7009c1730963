//! Taking the images' final snapshots over a Unix socket instead of from
//! files (`MEMSCOPE_HANDOFF`; the library's side and the message format are
//! in `memscope_engine::handoff`).
//!
//! Under `run` every snapshot passes through the naming thread, which
//! rewrote the file each image had just written: per image two files made
//! and one deleted, and each made in the traced process, on the command's
//! time. Handed over, the image only fills a socket buffer; the naming
//! thread writes the one final file (temporary file, rename, owner-only,
//! never through a symlink, as the library does) and lists it in the run's
//! manifest, as the library would have. An image that cannot reach the
//! socket writes its file itself, and the manifest still lists it.
//!
//! One thread accepts and reads each message whole (so an image never
//! waits for naming), and queues it for the naming thread.

use memscope_engine::handoff::{MAGIC, TRAILER_ZEROS};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

/// The environment variable that tells the library where the socket is.
pub const VAR: &str = "MEMSCOPE_HANDOFF";
/// Longest path a `sockaddr_un` holds (with its NUL).
const SUN_PATH: usize = 108;
/// How long one image may take to send its snapshot before `run` gives up
/// on it (the image then writes the file itself).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Safety net for the accepting thread's wait (it is woken at the end).
const WAIT_MS: i32 = 200;

/// One image's snapshot as it was handed over.
pub struct Handed {
    pub path: PathBuf,
    pub json: Vec<u8>,
}

/// The socket and its accepting thread.
pub struct Listener {
    socket: PathBuf,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Listens on `dir/snapshots.sock` (`dir`: run's private temporary
    /// directory). `None` when it cannot: images then write their files.
    pub fn start(dir: &Path) -> Option<(Listener, Receiver<Handed>)> {
        let socket = dir.join("snapshots.sock");
        if socket.as_os_str().len() >= SUN_PATH {
            return None;
        }
        let listener = UnixListener::bind(&socket).ok()?;
        listener.set_nonblocking(true).ok()?;
        let (tx, rx) = channel();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::Builder::new()
            .name("memscope-handoff".into())
            .spawn(move || accept_until(&listener, &flag, &tx))
            .ok()?;
        Some((
            Listener {
                socket,
                done,
                thread: Some(thread),
            },
            rx,
        ))
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every image has ended: takes what is still waiting, then stops.
    /// Once this returns, everything handed over is in the queue, and the
    /// queue's sender is gone.
    pub fn finish(mut self) {
        self.done.store(true, Ordering::Release);
        // Wake the accepting thread from its wait.
        drop(UnixStream::connect(&self.socket));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_until(listener: &UnixListener, done: &AtomicBool, tx: &Sender<Handed>) {
    loop {
        let last_round = done.load(Ordering::Acquire);
        loop {
            match listener.accept() {
                Ok((conn, _)) => {
                    if let Some(h) = receive(conn) {
                        let _ = tx.send(h);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // Out of descriptors or the like: the images that cannot
                // connect write their files themselves.
                Err(_) => break,
            }
        }
        if last_round {
            return;
        }
        let mut p = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, WAIT_MS) };
    }
}

/// Reads one message whole; `None` when it is not complete (the image then
/// wrote its file itself).
fn receive(mut conn: UnixStream) -> Option<Handed> {
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).ok()?;
    parse(buf)
}

/// Splits a message into its path and JSON (see `memscope_engine::handoff`).
fn parse(mut buf: Vec<u8>) -> Option<Handed> {
    let head = MAGIC.len() + 4;
    if buf.len() < head + TRAILER_ZEROS + 8 || &buf[..MAGIC.len()] != MAGIC {
        return None;
    }
    let path_len = u32::from_le_bytes(buf[MAGIC.len()..head].try_into().ok()?) as usize;
    let body = head.checked_add(path_len)?;
    let tail = buf.len().checked_sub(TRAILER_ZEROS + 8)?;
    if body > tail || buf[tail..tail + TRAILER_ZEROS].iter().any(|&b| b != 0) {
        return None;
    }
    let len = u64::from_le_bytes(buf[tail + TRAILER_ZEROS..].try_into().ok()?);
    if len != (tail - body) as u64 || path_len == 0 {
        return None;
    }
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(&buf[head..body]));
    if !path.is_absolute() {
        return None;
    }
    buf.truncate(tail);
    buf.drain(..body);
    Some(Handed { path, json: buf })
}

/// Writes a snapshot where its image would have, as the library does: a
/// fresh temporary file beside it (0600, created exclusively, so never
/// through a symlink), renamed over it; never over a device, fifo or
/// directory. Through a buffer the size of the library's: one `write` for
/// most snapshots of short processes.
pub fn write(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
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
    // tempfile creates with O_EXCL and mode 0600.
    let mut tmp = tempfile::Builder::new().prefix(".memscope-").tempfile_in(dir)?;
    {
        let mut w = std::io::BufWriter::with_capacity(memscope_engine::snapshot::WRITE_BUFFER, tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Appends `path` to the run's manifest, as the image would have.
pub fn list(manifest: &Path, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut line = path.as_os_str().as_bytes().to_vec();
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(manifest)?
        .write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(path: &[u8], json: &[u8], claimed: u64) -> Vec<u8> {
        let mut m = MAGIC.to_vec();
        m.extend((path.len() as u32).to_le_bytes());
        m.extend(path);
        m.extend(json);
        m.extend([0u8; TRAILER_ZEROS]);
        m.extend(claimed.to_le_bytes());
        m
    }

    #[test]
    fn a_complete_message_gives_its_path_and_json() {
        let h = parse(message(b"/o/s.json", b"{\"a\":1}", 7)).unwrap();
        assert_eq!(h.path, Path::new("/o/s.json"));
        assert_eq!(h.json, b"{\"a\":1}");
    }

    #[test]
    fn a_message_cut_short_or_malformed_is_refused() {
        let full = message(b"/o/s.json", b"{\"a\":1}", 7);
        for cut in 0..full.len() {
            assert!(parse(full[..cut].to_vec()).is_none(), "cut at {cut}");
        }
        assert!(parse(message(b"/o/s.json", b"{\"a\":1}", 6)).is_none(), "wrong length");
        assert!(parse(message(b"s.json", b"{}", 2)).is_none(), "relative path");
        assert!(parse(message(b"", b"{}", 2)).is_none(), "no path");
        let mut bad = full.clone();
        bad[0] = b'X';
        assert!(parse(bad).is_none(), "magic");
        let mut huge = full;
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(huge).is_none(), "path longer than the message");
    }
}
