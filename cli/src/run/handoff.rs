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
//! One thread accepts the connections and reads them side by side as their
//! bytes come (so an image never waits for naming, nor for another image),
//! and queues each complete message for the naming thread.

use memscope_engine::handoff::{MAGIC, MAGIC_PARTS, TRAILER_ZEROS};
use std::io::{Read, Write};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The environment variable that tells the library where the socket is.
pub const VAR: &str = "MEMSCOPE_HANDOFF";
/// Longest path a `sockaddr_un` holds (with its NUL).
const SUN_PATH: usize = 108;
/// How long one image may take to send its snapshot before `run` gives up
/// on it (the image then writes the file itself).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Once every process has ended, how long a message still coming may take
/// (from a process that outlived the wait).
const LAST_WAIT: Duration = Duration::from_secs(2);
/// Safety net for the accepting thread's wait (it is woken at the end).
const WAIT_MS: i32 = 200;

/// Bytes of snapshots received and not yet written past which no more
/// connections are accepted: images then find the backlog full and write
/// their files themselves, so run's memory stays bounded however far the
/// naming falls behind.
const MAX_HELD: usize = 256 << 20;

/// One image's snapshot as it was handed over.
pub struct Handed {
    pub path: PathBuf,
    /// The whole message, which `body` points into (never copied out).
    message: Vec<u8>,
    body: Body,
}

/// Where a message's snapshot lies in it.
enum Body {
    Whole(Range<usize>),
    Parts {
        head: Range<usize>,
        tables: Range<usize>,
        bulk: Range<usize>,
    },
}

/// A handed-over snapshot: one JSON document (an inherited-only snapshot,
/// written from a signal handler), or the three parts of
/// `memscope_format::parts`.
pub enum Snapshot<'a> {
    Whole(&'a [u8]),
    Parts {
        head: &'a [u8],
        tables: &'a [u8],
        bulk: &'a [u8],
    },
}

impl Handed {
    pub fn snapshot(&self) -> Snapshot<'_> {
        let m = &self.message;
        match &self.body {
            Body::Whole(r) => Snapshot::Whole(&m[r.clone()]),
            Body::Parts { head, tables, bulk } => Snapshot::Parts {
                head: &m[head.clone()],
                tables: &m[tables.clone()],
                bulk: &m[bulk.clone()],
            },
        }
    }
}

/// The snapshots received, in the order their messages ended.
pub struct Queue {
    rx: Receiver<Handed>,
    held: Arc<AtomicUsize>,
}

impl Queue {
    pub fn try_recv(&self) -> Result<Handed, TryRecvError> {
        self.rx.try_recv().inspect(|h| self.release(h))
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Result<Handed, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).inspect(|h| self.release(h))
    }

    fn release(&self, h: &Handed) {
        self.held.fetch_sub(h.message.len(), Ordering::Relaxed);
    }
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
    pub fn start(dir: &Path) -> Option<(Listener, Queue)> {
        let socket = dir.join("snapshots.sock");
        if socket.as_os_str().len() >= SUN_PATH {
            return None;
        }
        let listener = UnixListener::bind(&socket).ok()?;
        listener.set_nonblocking(true).ok()?;
        // The table by which each image decides whether it lists its blocks
        // (`memscope_engine::listing`); without it (or with the user's own
        // MEMSCOPE_MAX_RECORDS) every image lists up to its cap.
        if std::env::var_os("MEMSCOPE_MAX_RECORDS").map_or(true, |v| v.is_empty()) {
            let table = memscope_engine::listing::table_path(&socket.to_string_lossy());
            if let Err(e) = memscope_engine::listing::create(Path::new(&table)) {
                eprintln!(
                    "memscope: every process will list its blocks: cannot make the run's table: {}",
                    crate::load::io_reason(&e)
                );
            }
        }
        let (tx, rx) = channel();
        let done = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let (flag, counted) = (done.clone(), held.clone());
        let thread = std::thread::Builder::new()
            .name("memscope-handoff".into())
            .spawn(move || accept_until(&listener, &flag, &tx, &counted))
            .ok()?;
        Some((
            Listener {
                socket,
                done,
                thread: Some(thread),
            },
            Queue { rx, held },
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

/// A connection whose message is still coming.
struct Incoming {
    conn: UnixStream,
    buf: Vec<u8>,
    since: Instant,
}

/// Accepts connections and reads them side by side (one image that stalls
/// mid-message holds no other up), queuing each complete message; returns
/// once `done` is set, nothing waits to be accepted and every connection
/// has ended (or was given up on: its image then writes its own file).
fn accept_until(listener: &UnixListener, done: &AtomicBool, tx: &Sender<Handed>, held: &AtomicUsize) {
    let mut open: Vec<Incoming> = Vec::new();
    let mut done_at: Option<Instant> = None;
    loop {
        if done_at.is_none() && done.load(Ordering::Acquire) {
            done_at = Some(Instant::now());
        }
        // At the end everything waiting is taken, room or not: its images
        // have ended believing it handed over.
        let room = done_at.is_some() || held.load(Ordering::Relaxed) < MAX_HELD;
        let accepting = room && accept_all(listener, &mut open);
        open.retain_mut(|c| match read_some(c) {
            Some(true) => {
                if let Some(h) = parse(std::mem::take(&mut c.buf)) {
                    held.fetch_add(h.message.len(), Ordering::Relaxed);
                    let _ = tx.send(h);
                }
                false
            }
            Some(false) => c.since.elapsed() < READ_TIMEOUT,
            None => false,
        });
        let last_wait_over = done_at.is_some_and(|t| t.elapsed() >= LAST_WAIT);
        if done_at.is_some() && ((open.is_empty() && !accepting) || last_wait_over) {
            return;
        }
        if done_at.is_some() && accepting {
            // At the end, look again at once: more may wait to be accepted,
            // and the one just taken may have been run's own wake-up, whose
            // end the wait below would not see.
            continue;
        }
        wait(listener, &open);
    }
}

/// Accepts every connection waiting; false when none was.
fn accept_all(listener: &UnixListener, open: &mut Vec<Incoming>) -> bool {
    let mut any = false;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                any = true;
                if conn.set_nonblocking(true).is_ok() {
                    open.push(Incoming {
                        conn,
                        // Most snapshots of short processes fit.
                        buf: Vec::with_capacity(64 << 10),
                        since: Instant::now(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // None waiting; or out of descriptors and the like: the images
            // that cannot connect write their files themselves.
            Err(_) => return any,
        }
    }
}

/// Reads what has arrived: `Some(true)` at the end of the message,
/// `Some(false)` while more may come, `None` on an error.
fn read_some(c: &mut Incoming) -> Option<bool> {
    loop {
        // Straight into the message's buffer (no copy through a chunk).
        match c.conn.read_to_end(&mut c.buf) {
            Ok(_) => return Some(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

/// Waits until the listener or an open connection has something.
fn wait(listener: &UnixListener, open: &[Incoming]) {
    let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
        .chain(open.iter().map(|c| c.conn.as_raw_fd()))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: a valid array of pollfds, its length passed with it.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, WAIT_MS) };
}

/// Splits a message into its path and snapshot (see
/// `memscope_engine::handoff`); `None` for one cut short or malformed.
fn parse(buf: Vec<u8>) -> Option<Handed> {
    let head = MAGIC.len() + 4;
    if buf.len() < head + TRAILER_ZEROS + 8 {
        return None;
    }
    let in_parts = match &buf[..MAGIC.len()] {
        m if m == MAGIC => false,
        m if m == MAGIC_PARTS => true,
        _ => return None,
    };
    let path_len = u32::from_le_bytes(buf[MAGIC.len()..head].try_into().ok()?) as usize;
    let body = head.checked_add(path_len)?;
    let tail = buf.len().checked_sub(TRAILER_ZEROS + 8)?;
    if body > tail || buf[tail..tail + TRAILER_ZEROS].iter().any(|&b| b != 0) || path_len == 0 {
        return None;
    }
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(&buf[head..body]));
    if !path.is_absolute() {
        return None;
    }
    let (body, json_from) = if in_parts {
        let mut at = body;
        let mut part = |width: usize| -> Option<Range<usize>> {
            let len_end = at.checked_add(width).filter(|&e| e <= tail)?;
            let mut len = [0u8; 8];
            len[..width].copy_from_slice(&buf[at..len_end]);
            let end = len_end.checked_add(usize::try_from(u64::from_le_bytes(len)).ok()?)?;
            at = end;
            (end <= tail).then_some(len_end..end)
        };
        let (head, tables) = (part(4)?, part(8)?);
        let bulk = at..tail;
        (Body::Parts { head, tables, bulk }, at)
    } else {
        (Body::Whole(body..tail), body)
    };
    let len = u64::from_le_bytes(buf[tail + TRAILER_ZEROS..].try_into().ok()?);
    if len != (tail - json_from) as u64 {
        return None;
    }
    Some(Handed {
        path,
        message: buf,
        body,
    })
}

/// The run's manifest, opened once for appending the snapshots handed over
/// (one `write` each, as an image appends its own line, instead of an
/// open, a write and a close).
#[derive(Default)]
pub struct Lister {
    file: Option<std::fs::File>,
}

impl Lister {
    /// Appends `path` to the run's manifest, as the image would have.
    pub fn list(&mut self, manifest: &Path, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut line = path.as_os_str().as_bytes().to_vec();
        line.push(b'\n');
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(manifest)?;
            self.file = Some(file);
        }
        match &mut self.file {
            Some(f) => f.write_all(&line),
            None => Ok(()),
        }
    }
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
    fn an_image_that_stalls_mid_message_holds_no_other_up() {
        let dir = tempfile::tempdir().unwrap();
        let (listener, rx) = Listener::start(dir.path()).unwrap();
        let socket = std::ffi::CString::new(listener.socket().as_os_str().as_bytes()).unwrap();
        // Half a message, then silence (a process stopped while sending).
        let mut stalled = UnixStream::connect(listener.socket()).unwrap();
        stalled.write_all(&message(b"/o/a.json", b"{}", 2)[..10]).unwrap();
        // The library's own sender, for a whole message after it.
        assert!(memscope_engine::handoff::send_bytes(
            &socket,
            c"/o/b.json",
            b"{\"b\":2}"
        ));
        let h = rx.recv_timeout(Duration::from_secs(10)).expect("b while a stalls");
        assert_eq!(h.path.as_path(), Path::new("/o/b.json"));
        assert!(matches!(h.snapshot(), Snapshot::Whole(b"{\"b\":2}")));
        // The end: the stalled one is given up on, nothing else is queued.
        listener.finish();
        drop(stalled);
        assert!(rx.try_recv().is_err());
        assert_eq!(rx.held.load(Ordering::Relaxed), 0, "what was taken is no longer held");
    }

    #[test]
    fn a_snapshot_sent_in_parts_joins_into_the_same_and_one_cut_short_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (listener, rx) = Listener::start(dir.path()).unwrap();
        let socket = std::ffi::CString::new(listener.socket().as_os_str().as_bytes()).unwrap();
        let mut s = memscope_format::read_snapshot(crate::export::tests::MINIMAL.as_bytes()).unwrap();
        s.process.argv.push("\u{0}</script>\"".into());
        // A small buffer: the bulk goes in many sends.
        assert!(memscope_engine::handoff::send_parts(&socket, "/o/p.json", 16, &s));
        let h = rx.recv_timeout(Duration::from_secs(10)).expect("the parts");
        listener.finish();
        assert_eq!(h.path, Path::new("/o/p.json"));
        let Snapshot::Parts { head, tables, bulk } = h.snapshot() else {
            panic!("sent in parts, taken whole")
        };
        let t = memscope_format::parts::assemble(head, tables).unwrap();
        let mut out = Vec::new();
        memscope_format::parts::write_spliced(&mut out, head, &t, bulk).unwrap();
        assert_eq!(memscope_format::read_snapshot_bytes(&out).unwrap(), s);
        for cut in 0..h.message.len() {
            assert!(parse(h.message[..cut].to_vec()).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn a_complete_message_gives_its_path_and_json() {
        let h = parse(message(b"/o/s.json", b"{\"a\":1}", 7)).unwrap();
        assert_eq!(h.path, Path::new("/o/s.json"));
        assert!(matches!(h.snapshot(), Snapshot::Whole(b"{\"a\":1}")));
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
