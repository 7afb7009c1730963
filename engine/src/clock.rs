//! Event timestamps.
//!
//! The hot path reads the TSC (`rdtsc`, ~10 ns here against ~24 ns for
//! `clock_gettime`) when the kernel itself uses it as its clocksource — the
//! kernel only does so when the TSC is invariant and synchronized across CPUs,
//! which is what ordering events from different threads needs. Otherwise it
//! falls back to `CLOCK_MONOTONIC` nanoseconds. Ticks are turned into UNIX
//! nanoseconds only when a snapshot is written, by a linear fit between two
//! [`Anchor`]s (start-up and snapshot time).

use std::sync::atomic::{AtomicU8, Ordering};

const UNDECIDED: u8 = 0;
const TSC: u8 = 1;
const MONOTONIC: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The current time in clock ticks (never 0).
#[inline(always)]
pub fn now() -> u64 {
    match MODE.load(Ordering::Relaxed) {
        #[cfg(target_arch = "x86_64")]
        TSC => {
            // SAFETY: rdtsc has no preconditions.
            unsafe { std::arch::x86_64::_rdtsc() }
        }
        MONOTONIC => monotonic_ns(),
        _ => {
            decide();
            now()
        }
    }
}

/// "tsc" or "monotonic".
pub fn name() -> &'static str {
    if MODE.load(Ordering::Relaxed) == UNDECIDED {
        decide();
    }
    if MODE.load(Ordering::Relaxed) == TSC {
        "tsc"
    } else {
        "monotonic"
    }
}

#[cold]
fn decide() {
    let mode = if cfg!(target_arch = "x86_64") && kernel_uses_tsc() {
        TSC
    } else {
        MONOTONIC
    };
    let _ = MODE.compare_exchange(UNDECIDED, mode, Ordering::Relaxed, Ordering::Relaxed);
}

/// Reads the clocksource with raw system calls: this can run inside the very
/// first malloc of the process, before anything else is set up.
fn kernel_uses_tsc() -> bool {
    if crate::sys::getenv(c"MEMSCOPE_CLOCK") == Some(b"monotonic".as_slice()) {
        return false;
    }
    let path = b"/sys/devices/system/clocksource/clocksource0/current_clocksource\0";
    // SAFETY: NUL-terminated path; buffer on the stack.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let mut buf = [0u8; 16];
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n >= 3 && &buf[..3] == b"tsc"
    }
}

fn read_clock(id: libc::clockid_t) -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(id, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

pub fn monotonic_ns() -> u64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

pub fn realtime_ns() -> u64 {
    read_clock(libc::CLOCK_REALTIME)
}

/// A simultaneous reading of the tick clock, CLOCK_MONOTONIC and CLOCK_REALTIME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub ticks: u64,
    pub mono_ns: u64,
    pub unix_ns: u64,
}

impl Anchor {
    /// Takes the tightest of a few (ticks, monotonic) pairs.
    pub fn take() -> Anchor {
        let mut best = (u64::MAX, 0, 0);
        for _ in 0..5 {
            let t1 = now();
            let m = monotonic_ns();
            let t2 = now();
            if t2.wrapping_sub(t1) < best.0 {
                best = (t2.wrapping_sub(t1), t1 / 2 + t2 / 2, m);
            }
        }
        let r = realtime_ns();
        let m2 = monotonic_ns();
        // REALTIME - MONOTONIC is constant over the few ns between the reads.
        let unix = best.2 + r.wrapping_sub(m2);
        Anchor {
            ticks: best.1,
            mono_ns: best.2,
            unix_ns: unix,
        }
    }
}

/// Converts ticks to nanoseconds, fitted between two anchors.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    start: Anchor,
    ns_per_tick: f64,
}

/// Shortest interval between anchors that gives a TSC rate precise to ~1e-5.
pub const MIN_CALIBRATION_NS: u64 = 5_000_000;

impl Calibration {
    pub fn new(start: Anchor, end: Anchor) -> Calibration {
        let dt = end.ticks.saturating_sub(start.ticks);
        let dm = end.mono_ns.saturating_sub(start.mono_ns);
        let ns_per_tick = if dt == 0 || dm == 0 { 1.0 } else { dm as f64 / dt as f64 };
        Calibration { start, ns_per_tick }
    }

    /// An identity calibration (ticks are nanoseconds), anchored at `start`.
    pub fn identity(start: Anchor) -> Calibration {
        Calibration {
            start,
            ns_per_tick: 1.0,
        }
    }

    pub fn ns_per_tick(&self) -> f64 {
        self.ns_per_tick
    }

    /// A tick count as UNIX nanoseconds.
    pub fn unix_ns(&self, ticks: u64) -> u64 {
        let d = ticks as i128 - self.start.ticks as i128;
        let ns = (d as f64 * self.ns_per_tick) as i128;
        (self.start.unix_ns as i128 + ns).max(0) as u64
    }

    /// A duration in ticks as nanoseconds.
    pub fn duration_ns(&self, ticks: u64) -> u64 {
        (ticks as f64 * self.ns_per_tick) as u64
    }

    /// A duration in nanoseconds as ticks.
    pub fn ticks_for_ns(&self, ns: u64) -> u64 {
        (ns as f64 / self.ns_per_tick) as u64
    }
}

/// Spins until at least [`MIN_CALIBRATION_NS`] have passed since `start`, so a
/// very short-lived process still gets an accurate tick rate.
pub fn wait_for_calibration(start: &Anchor) {
    if MODE.load(Ordering::Relaxed) != TSC {
        return;
    }
    let deadline = start.mono_ns + MIN_CALIBRATION_NS;
    loop {
        let m = monotonic_ns();
        if m >= deadline {
            return;
        }
        crate::sys::sleep_ns((deadline - m).min(1_000_000));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_wall_time() {
        let a = Anchor::take();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = Anchor::take();
        let c = Calibration::new(a, b);
        let wall = b.unix_ns - a.unix_ns;
        let via_ticks = c.unix_ns(b.ticks) - c.unix_ns(a.ticks);
        assert!(
            (wall as i64 - via_ticks as i64).abs() < 200_000,
            "{wall} vs {via_ticks}"
        );
        assert!(c.duration_ns(b.ticks - a.ticks) >= 19_000_000);
        let t = now();
        assert!(t > 0 && now() >= t);
    }

    #[test]
    fn identity_calibration_is_an_offset() {
        let a = Anchor {
            ticks: 1000,
            mono_ns: 1000,
            unix_ns: 5000,
        };
        let c = Calibration::identity(a);
        assert_eq!(c.unix_ns(1500), 5500);
        assert_eq!(c.duration_ns(77), 77);
        assert_eq!(c.unix_ns(0), 4000);
    }
}
