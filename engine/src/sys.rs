//! Thin wrappers over the system calls the engine uses. None of them
//! allocates, so they are safe anywhere: hooks, signal handlers, fork children.

use std::sync::atomic::{AtomicU32, AtomicU64};

pub fn gettid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// The kernel's pid, never a cached value (glibc stopped caching it, and a
/// vfork child shares our memory, so this is how we tell we are in one).
pub fn getpid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::syscall(libc::SYS_getpid) as u32 }
}

pub fn getppid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// True while thread `tid` of this process exists.
pub fn thread_alive(pid: u32, tid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid as i64, tid as i64, 0i64) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Sleeps while `*word == expected`, at most `timeout_ns`.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT_PRIVATE on a valid aligned u32 with a relative timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

pub fn futex_wake_all_u32(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// Wakes sleepers on the low half of a u64 counter (little-endian x86_64 and
/// aarch64: the low half is at the word's address).
pub fn futex_wake_all(word: &AtomicU64) {
    // SAFETY: as above; the futex word is the first 4 bytes of the u64.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr() as *const u32,
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// Sleeps while the low half of `*word` equals `expected_low`.
pub fn futex_wait_u64(word: &AtomicU64, expected_low: u32, timeout_ns: u64) {
    // SAFETY: an AtomicU64 is 8-byte aligned; its first 4 bytes are a valid
    // futex word, and AtomicU32 has the same layout as u32.
    let w = unsafe { &*(word.as_ptr() as *const AtomicU32) };
    futex_wait(w, expected_low, timeout_ns);
}

pub fn sleep_ns(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: valid timespec; interruption is harmless.
    unsafe {
        libc::nanosleep(&ts, std::ptr::null_mut());
    }
}

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes.
pub fn write_all(fd: i32, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// This thread's name (`comm`), NUL padded.
pub fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes.
    unsafe {
        libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr());
    }
    name
}

/// `getenv` without allocating; the bytes live as long as the environment
/// entry (callers copy what they keep).
pub fn getenv(name: &std::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv returns NULL or a NUL-terminated string in environ.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(std::ffi::CStr::from_ptr(p).to_bytes())
        }
    }
}
