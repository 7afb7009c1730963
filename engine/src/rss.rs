//! Resident memory beside the heap: the process's peak resident set
//! (`VmHWM`, exact, read when a snapshot is taken) and its resident bytes
//! over time (`/proc/self/statm`, sampled while the rings are drained, at
//! most once a millisecond). Memory that never went through `malloc` — an
//! allocator of the program's own (chromium's PartitionAlloc, rustc's
//! jemalloc), `mmap` — shows here and nowhere else.
//!
//! Reads use plain system calls into stack buffers: nothing allocates, so
//! they are safe in a signal handler and in a fork child. No descriptor is
//! kept open between reads (programs close every fd, or count them).

use crate::clock;
use crate::lock::Locked;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

/// Samples kept; when full, every other one is dropped and the spacing
/// doubles, so a long run keeps its whole span.
const SAMPLES: usize = 512;
const FIRST_SPACING_NS: u64 = 1_000_000;

struct Samples {
    /// `(event ticks, resident bytes)`, in time order.
    points: [(u64, u64); SAMPLES],
    len: usize,
    spacing_ns: u64,
    last_ns: u64,
}

static SERIES: Locked<Samples> = Locked::new(Samples {
    points: [(0, 0); SAMPLES],
    len: 0,
    spacing_ns: FIRST_SPACING_NS,
    last_ns: 0,
});

/// Reads `path` (a /proc file) into `buf`; the bytes read.
fn read_proc<'a>(path: &std::ffi::CStr, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    // SAFETY: a NUL-terminated path; `buf` is writable for its length; the
    // descriptor is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut len = 0;
        while len < buf.len() {
            let n = libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len);
            if n <= 0 {
                break;
            }
            len += n as usize;
        }
        libc::close(fd);
        Some(&buf[..len])
    }
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    let digits: &[u8] = &s[s.iter().position(u8::is_ascii_digit)?..];
    let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// A `kB` field (`VmHWM:`, `VmRSS:`) of a /proc/PID/status text, in bytes.
fn kib_field(text: &[u8], name: &[u8]) -> Option<u64> {
    let at = text.windows(name.len()).position(|w| w == name)?;
    parse_u64(&text[at + name.len()..]).map(|kib| kib * 1024)
}

/// Resident bytes from a /proc/PID/statm text (its second field is pages).
fn resident_from_statm(text: &[u8], page: u64) -> Option<u64> {
    let second = text.iter().position(|&b| b == b' ')?;
    parse_u64(&text[second..]).map(|pages| pages * page)
}

/// Set while a snapshot is only prepared (a fork child's, at the fork):
/// its resident figures are read when it is written, and reading them
/// twice cost every fork child ~35 µs (/proc/self/status is the dearest
/// file the library reads).
static READS_DEFERRED: AtomicBool = AtomicBool::new(false);

/// `f` with [`peak_bytes`] and [`current_bytes`] answering None without
/// reading anything (the caller fills them in later).
pub fn with_reads_deferred<R>(f: impl FnOnce() -> R) -> R {
    READS_DEFERRED.store(true, Ordering::Relaxed);
    let r = f();
    READS_DEFERRED.store(false, Ordering::Relaxed);
    r
}

/// The process's peak resident set so far. The same read notes whether a
/// seccomp filter is on ([`no_seccomp_filter`]).
pub fn peak_bytes() -> Option<u64> {
    now_and_peak().1
}

/// The process's resident bytes now and its peak so far, from one read of
/// /proc/self/status (a snapshot's end wants both: reading statm for the
/// first cost another ~6-20 µs per process image).
pub fn now_and_peak() -> (Option<u64>, Option<u64>) {
    if READS_DEFERRED.load(Ordering::Relaxed) {
        return (None, None);
    }
    let mut buf = [0u8; 4096];
    let Some(status) = read_proc(c"/proc/self/status", &mut buf) else {
        return (None, None);
    };
    SECCOMP.store(seccomp_state(status), Ordering::Relaxed);
    SECCOMP_PID.store(crate::sys::getpid(), Ordering::Relaxed);
    (kib_field(status, b"VmRSS:"), kib_field(status, b"VmHWM:"))
}

/// What the last read of /proc/self/status said about seccomp: 0 not read,
/// [`SECCOMP_OFF`], or anything else (a filter, or no such line).
static SECCOMP: AtomicU8 = AtomicU8::new(0);
/// The process that read it: a fork child (which may confine itself after
/// the fork, as a browser's zygote children do) reads its own.
static SECCOMP_PID: AtomicU32 = AtomicU32::new(0);
const SECCOMP_OFF: u8 = 1;

fn seccomp_state(status: &[u8]) -> u8 {
    let at = status.windows(9).position(|w| w == b"\nSeccomp:");
    match at.and_then(|at| parse_u64(&status[at + 9..])) {
        Some(0) => SECCOMP_OFF,
        _ => 2,
    }
}

/// True when no seccomp filter confines this process, as /proc/self/status
/// says (read at exit for the peak anyway; read now if it was not). A
/// filter may kill the process for a system call it does not expect —
/// Chromium's sandbox does for `prctl(PR_GET_SECCOMP)` and `socket` — so
/// whatever the status cannot confirm counts as filtered.
pub fn no_seccomp_filter() -> bool {
    if SECCOMP.load(Ordering::Relaxed) == 0 || SECCOMP_PID.load(Ordering::Relaxed) != crate::sys::getpid() {
        let _ = peak_bytes();
    }
    SECCOMP.load(Ordering::Relaxed) == SECCOMP_OFF
}

/// The process's resident bytes now.
pub fn current_bytes() -> Option<u64> {
    if READS_DEFERRED.load(Ordering::Relaxed) {
        return None;
    }
    let mut buf = [0u8; 128];
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    resident_from_statm(read_proc(c"/proc/self/statm", &mut buf)?, page)
}

/// Takes a sample if the last one is at least the current spacing old.
/// Called with the rings being drained (by the collector thread, or by a
/// program thread that drains its own full ring in a single-threaded image).
pub fn sample_if_due() {
    let now = clock::monotonic_ns();
    let due = SERIES.with(|s| s.len == 0 || now.saturating_sub(s.last_ns) >= s.spacing_ns);
    if !due {
        return;
    }
    let Some(bytes) = current_bytes() else { return };
    let ticks = clock::now();
    SERIES.with(|s| {
        if s.len == SAMPLES {
            for i in 0..SAMPLES / 2 {
                s.points[i] = s.points[2 * i + 1];
            }
            s.len = SAMPLES / 2;
            s.spacing_ns *= 2;
        }
        s.points[s.len] = (ticks, bytes);
        s.len += 1;
        s.last_ns = now;
    });
}

/// The samples taken so far, `(event ticks, resident bytes)`.
pub fn samples() -> Vec<(u64, u64)> {
    SERIES.with(|s| s.points[..s.len].to_vec())
}

/// The resident value to show at `ticks`: the last sample at or before it,
/// else the first one after it (`samples` sorted by time).
pub fn resident_at(samples: &[(u64, u64)], ticks: u64) -> Option<u64> {
    let i = samples.partition_point(|s| s.0 <= ticks);
    samples.get(i.checked_sub(1).unwrap_or(0)).map(|s| s.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vmhwm_vmrss_and_statm() {
        let status = b"Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(kib_field(status, b"VmHWM:"), Some(1234 * 1024));
        assert_eq!(kib_field(status, b"VmRSS:"), Some(1000 * 1024));
        assert_eq!(kib_field(b"Name:\tx\n", b"VmHWM:"), None);
        assert_eq!(
            seccomp_state(b"Name:\tx\nSeccomp:\t0\nSeccomp_filters:\t0\n"),
            SECCOMP_OFF
        );
        assert_eq!(seccomp_state(b"Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n"), 2);
        assert_eq!(seccomp_state(b"Name:\tx\n"), 2);
        assert_eq!(resident_from_statm(b"2000 300 100 1 0 50 0\n", 4096), Some(300 * 4096));
    }

    #[test]
    fn reads_this_process() {
        let v = vec![1u8; 32 << 20];
        std::hint::black_box(&v);
        let now = current_bytes().unwrap();
        assert!(now >= 32 << 20, "{now}");
        // Read after `now`, the peak is at least what was resident then —
        // up to the kernel's per-thread batching of its RSS counters (64
        // page events per thread; other tests run threads meanwhile).
        let peak = peak_bytes().unwrap();
        let slack = 64 * 4096 * 16;
        assert!(peak + slack >= now, "peak {peak} < resident {now}");
    }

    #[test]
    fn resident_at_takes_the_last_sample_before() {
        let s = [(10, 1), (20, 2), (30, 3)];
        assert_eq!(resident_at(&s, 5), Some(1));
        assert_eq!(resident_at(&s, 20), Some(2));
        assert_eq!(resident_at(&s, 29), Some(2));
        assert_eq!(resident_at(&s, 99), Some(3));
        assert_eq!(resident_at(&[], 99), None);
    }
}
