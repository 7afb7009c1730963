//! memscope's own diagnostics (`MEMSCOPE_LOG`).
//!
//! They go to fd 2 while it still refers to the file the program's stderr
//! was at start-up (same device and inode): a program that closes fd 2 and
//! reuses the number never gets memscope text in its own files. No
//! descriptor of memscope's own stays open: a duplicate of stderr kept a
//! pipe open after the program closed its end (the caller of a daemon that
//! closes fds 0–2 waited for the daemon to exit), and programs see or count
//! their descriptors (`ls /proc/self/fd`, sandboxes). Messages are
//! formatted on the stack, so logging never allocates.

use crate::config::LogLevel;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// True once fd 2's identity at start-up is known.
static KNOWN: AtomicBool = AtomicBool::new(false);
static DEV: AtomicU64 = AtomicU64::new(0);
static INO: AtomicU64 = AtomicU64::new(0);
static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Warn as u8);

fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: fstat into a zeroed struct on the stack.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}

/// Notes which file fd 2 is (if open) and sets the level. Called once at
/// start-up.
pub fn init(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    if level == LogLevel::Off {
        return;
    }
    if let Some((dev, ino)) = identity(2) {
        DEV.store(dev, Ordering::Relaxed);
        INO.store(ino, Ordering::Relaxed);
        KNOWN.store(true, Ordering::Release);
    }
}

pub fn enabled(level: LogLevel) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed) && level != LogLevel::Off
}

/// A fixed buffer `fmt::Write` target; output past its end is cut.
struct StackBuf {
    buf: [u8; 1024],
    len: usize,
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

pub fn write(level: LogLevel, args: fmt::Arguments) {
    if !enabled(level) {
        return;
    }
    if !KNOWN.load(Ordering::Acquire) || identity(2) != Some((DEV.load(Ordering::Relaxed), INO.load(Ordering::Relaxed)))
    {
        return;
    }
    let mut b = StackBuf { buf: [0; 1024], len: 0 };
    // A helper finishing an image's snapshot speaks for the image.
    let pid = if crate::detach::in_helper() {
        crate::image::PID.load(Ordering::Relaxed)
    } else {
        crate::sys::getpid()
    };
    let _ = write!(b, "memscope[{pid}]: {args}");
    if b.len == b.buf.len() {
        b.len -= 1;
    }
    b.buf[b.len] = b'\n';
    let _ = crate::sys::write_all(2, &b.buf[..b.len + 1]);
}

#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::write($crate::config::LogLevel::Warn, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::write($crate::config::LogLevel::Info, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log::write($crate::config::LogLevel::Debug, format_args!($($t)*)) };
}
