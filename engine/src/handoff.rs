//! Handing an image's final snapshot to `memscope-cli run` instead of
//! writing the file itself (`MEMSCOPE_HANDOFF`, a Unix socket in run's
//! private temporary directory).
//!
//! Why: under `run` every snapshot passes through run's naming thread (the
//! library leaves frames unnamed there), so each image paid for a file of
//! its own — a new inode, a temporary name, a rename — only for run to
//! replace it: two files made and one deleted per image, the larger part
//! of what a short image cost on ext4 (see scripts/bench/README.md, bash
//! loop). Handed over, the bytes go through a
//! socket buffer and run writes the one final file, with the same rules
//! (temporary file, rename, never through a symlink, owner-only).
//!
//! The image never depends on run being there: when the socket cannot be
//! reached or a write fails, the caller writes the file itself as before.
//! A message is `MAGIC`, the path's length (u32 LE), the path, the JSON,
//! then `TRAILER_ZEROS` zero bytes and the JSON's length (u64 LE): JSON
//! never holds a NUL byte, so run tells a complete message from one cut
//! short (the image then wrote the file itself) without knowing the length
//! in advance — the snapshot is streamed, never held whole.
//!
//! An image's final snapshot goes in parts ([`send_parts`], `MAGIC_PARTS`;
//! see `memscope_format::parts`) so that it is serialized once in all: after
//! the path, the head's length (u32 LE) and the head (JSON), the tables'
//! length (u64 LE) and the tables (binary), then the bulk (JSON) streamed
//! and ended as the JSON of a whole message is.
//!
//! [`send_bytes`] (a whole message: the inherited-only snapshot) uses only
//! system calls and stack buffers: it runs in a fatal signal's handler too.

use std::ffi::CStr;
use std::io::{self, Write};

/// First bytes of every message.
pub const MAGIC: &[u8; 4] = b"MSH1";
/// First bytes of a message in parts.
pub const MAGIC_PARTS: &[u8; 4] = b"MSH2";
/// Zero bytes between the JSON and its length.
pub const TRAILER_ZEROS: usize = 8;
/// The buffer an image's final snapshot goes to `run` through. A shell
/// loop's short images hand over 40–90 KB each: through a 64 KiB buffer
/// (the file writer's) every page of it was faulted in fresh, and 16 KiB
/// in a few sends costs less — the loop under `run` 2.46x → 2.33x and
/// 2.50x → 2.42x wall in two interleaved A/Bs, 8 KiB no better, gcc's
/// 3.5 MB snapshot no slower.
pub const SEND_BUFFER: usize = 16 << 10;
/// A send that waits longer than this (run stopped or hung) fails, and
/// the image writes its file itself.
const SEND_TIMEOUT_S: libc::time_t = 10;

/// A connection to run's socket, written with `send(MSG_NOSIGNAL)`: a run
/// that went away is an error here, never a SIGPIPE for the program.
pub struct Conn {
    fd: i32,
    sent: u64,
}

impl Conn {
    /// Connects to `socket` and sends the header for `path`. `None` when
    /// run cannot be reached (the caller then writes the file itself).
    pub fn open(socket: &CStr, path: &[u8]) -> Option<Conn> {
        let mut c = Conn::connect(socket)?;
        let head = header(MAGIC, path)?;
        if c.send_all(&head).and_then(|()| c.send_all(path)).is_err() {
            return None;
        }
        c.sent = 0;
        Some(c)
    }

    /// Connects to `socket`; nothing sent yet.
    fn connect(socket: &CStr) -> Option<Conn> {
        if !crate::rss::no_seccomp_filter() {
            // A filter may kill on `socket()` (SIGSYS): files only.
            return None;
        }
        // SAFETY: a sockaddr_un on the stack, filled within its bounds; a
        // descriptor this function owns until it returns it in `Conn`.
        let fd = unsafe {
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            let name = socket.to_bytes();
            if name.is_empty() || name.len() >= addr.sun_path.len() {
                return None;
            }
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (d, s) in addr.sun_path.iter_mut().zip(name) {
                *d = *s as libc::c_char;
            }
            // Non-blocking to connect: a backlog that is full (run not
            // keeping up) is a refusal, not a wait.
            let fd = libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            );
            if fd < 0 {
                return None;
            }
            let len = std::mem::size_of::<libc::sa_family_t>() + name.len() + 1;
            let blocking: libc::c_int = 0;
            let limit = libc::timeval {
                tv_sec: SEND_TIMEOUT_S,
                tv_usec: 0,
            };
            let ok = libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len as libc::socklen_t) == 0
                && libc::ioctl(fd, libc::FIONBIO, &blocking) == 0
                && libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_SNDTIMEO,
                    (&limit as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                ) == 0;
            if !ok {
                libc::close(fd);
                return None;
            }
            fd
        };
        Some(Conn { fd, sent: 0 })
    }

    /// Sends the trailer and closes: the message is complete.
    pub fn finish(mut self) -> io::Result<()> {
        self.send_all(&trailer(self.sent))
    }

    fn send_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            // SAFETY: a valid slice, a descriptor this Conn owns.
            let n = unsafe { libc::send(self.fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.sent += n as u64;
            buf = &buf[n as usize..];
        }
        Ok(())
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send_all(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: the descriptor this Conn owns, closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// Hands `json` (already serialized) for `path` to run; false when it could
/// not (nothing of it then counts: the caller writes the file).
pub fn send_bytes(socket: &CStr, path: &CStr, json: &[u8]) -> bool {
    match Conn::open(socket, path.to_bytes()) {
        Some(mut c) => c.send_all(json).is_ok() && c.finish().is_ok(),
        None => false,
    }
}

/// A message's first bytes: `magic` and the length of `path` (which
/// follows); `None` for a path too long to say.
fn header(magic: &[u8; 4], path: &[u8]) -> Option<[u8; 8]> {
    let n = u32::try_from(path.len()).ok()?;
    let mut head = [0u8; 8];
    head[..4].copy_from_slice(magic);
    head[4..].copy_from_slice(&n.to_le_bytes());
    Some(head)
}

/// A message's last bytes, after `json_len` bytes of JSON.
fn trailer(json_len: u64) -> [u8; TRAILER_ZEROS + 8] {
    let mut tail = [0u8; TRAILER_ZEROS + 8];
    tail[TRAILER_ZEROS..].copy_from_slice(&json_len.to_le_bytes());
    tail
}

/// Hands `snap` over for `path` in parts (see the module's doc): its
/// tables encoded, its head and bulk serialized, all through one buffer of
/// `buffer` bytes, so a small snapshot goes in one `send` (each wakes run's
/// reading thread). False when it could not (the caller writes the file).
pub fn send_parts(socket: &CStr, path: &str, buffer: usize, snap: &memscope_format::Snapshot) -> bool {
    let Ok(head) = snap.head_json() else {
        return false;
    };
    let (Some(start), Ok(head_len)) = (header(MAGIC_PARTS, path.as_bytes()), u32::try_from(head.len())) else {
        return false;
    };
    let tables = memscope_format::parts::encode_tables(snap);
    let mut prefix = Vec::with_capacity(start.len() + path.len() + 12 + head.len() + tables.len());
    prefix.extend_from_slice(&start);
    prefix.extend_from_slice(path.as_bytes());
    prefix.extend_from_slice(&head_len.to_le_bytes());
    prefix.extend_from_slice(&head);
    prefix.extend_from_slice(&(tables.len() as u64).to_le_bytes());
    prefix.extend_from_slice(&tables);
    drop((head, tables));
    let Some(c) = Conn::connect(socket) else {
        return false;
    };
    let mut w = io::BufWriter::with_capacity(buffer, c);
    let sent = w.write_all(&prefix).is_ok() && snap.write_bulk_json(&mut w).is_ok() && {
        // What went and what waits in the buffer, less the prefix: the bulk.
        let bulk_len = w.get_ref().sent + w.buffer().len() as u64 - prefix.len() as u64;
        w.write_all(&trailer(bulk_len)).is_ok() && w.flush().is_ok()
    };
    // After a failure what is left is dropped, never sent: run must not
    // take a message the image then writes itself.
    drop(w.into_parts());
    sent
}
