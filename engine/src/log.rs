//! memscope's own diagnostics (`MEMSCOPE_LOG`).
//!
//! They go to a duplicate of the stderr the program started with, made at
//! start-up on a high descriptor, and are written only while that descriptor
//! still refers to the same file: a program that closes fd 2 (or our copy)
//! and reuses the number never gets memscope text in its own files.
//! Messages are formatted on the stack, so logging never allocates.

use crate::config::LogLevel;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};

static FD: AtomicI32 = AtomicI32::new(-1);
static DEV: AtomicU64 = AtomicU64::new(0);
static INO: AtomicU64 = AtomicU64::new(0);
static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Warn as u8);

const PREFERRED_FD: i32 = 200;

fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: fstat into a zeroed struct on the stack.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}

/// Duplicates fd 2 (if open) and sets the level. Called once at start-up.
pub fn init(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    if level == LogLevel::Off || identity(2).is_none() {
        return;
    }
    // SAFETY: plain descriptor duplication.
    let mut fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, PREFERRED_FD) };
    if fd < 0 {
        // SAFETY: as above, any free number.
        fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    }
    if let Some((dev, ino)) = (fd >= 0).then(|| identity(fd)).flatten() {
        DEV.store(dev, Ordering::Relaxed);
        INO.store(ino, Ordering::Relaxed);
        FD.store(fd, Ordering::Relaxed);
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
    let fd = FD.load(Ordering::Relaxed);
    if fd < 0 || identity(fd) != Some((DEV.load(Ordering::Relaxed), INO.load(Ordering::Relaxed))) {
        return;
    }
    let mut b = StackBuf { buf: [0; 1024], len: 0 };
    let _ = write!(b, "memscope[{}]: {}", crate::sys::getpid(), args);
    if b.len == b.buf.len() {
        b.len -= 1;
    }
    b.buf[b.len] = b'\n';
    let _ = crate::sys::write_all(fd, &b.buf[..b.len + 1]);
}

/// The descriptor logging writes to (so `fork`/`exec` code can leave it alone).
pub fn fd() -> i32 {
    FD.load(Ordering::Relaxed)
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
