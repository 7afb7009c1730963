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

/// Whether ticks are TSC cycles: as decided, and false before (never
/// decides: a vfork child asks, and must not write).
pub fn decided_tsc() -> bool {
    MODE.load(Ordering::Relaxed) == TSC
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
    // The image before this one (the same pid, before its `exec`) read it:
    // ~20 µs of sysfs less at every start of an exec'd image.
    if crate::exec_seq::startup_tsc() {
        return true;
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

/// CPU time of the calling thread (what a piece of work cost, however
/// busy the machine is).
pub fn thread_cpu_ns() -> u64 {
    read_clock(libc::CLOCK_THREAD_CPUTIME_ID)
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
    /// Takes the tightest of a few (ticks, monotonic) pairs: five, or more
    /// while none was tight (a read preempted or interrupted midway), since
    /// an anchor's uncertainty is all the uncertainty of the timestamps
    /// interpolated from it (see [`Calibration`]).
    pub fn take() -> Anchor {
        /// A read is tight well under this (~100 ticks here).
        const LOOSE: u64 = 1_000;
        let mut best = (u64::MAX, 0, 0);
        for i in 0..64 {
            if i >= 5 && best.0 < LOOSE {
                break;
            }
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
///
/// There is no minimum interval between the anchors. Every event of an
/// image lies between its first anchor (taken before its first event, and
/// kept by a `fork()` child: see `image::start_anchor`) and the anchor taken when the
/// snapshot is written, after its last event. Between two points each known
/// to within `e`, linear interpolation is off by at most `e` anywhere, and a
/// lifetime `L` inside an interval `T` by at most `2e * L / T <= 2e`, however
/// short `T` is: a short window costs no precision, while a fixed wait for a
/// long one cost every short-lived image milliseconds. `e` is half the
/// width of the tightest `rdtsc / clock_gettime / rdtsc` read ([`Anchor::take`]);
/// `clock::tests::short_windows_interpolate_as_well_as_long_ones` measures it.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    start: Anchor,
    ns_per_tick: f64,
}

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

    /// The calibration between two anchors of this process's clock (ticks
    /// are nanoseconds unless it is the TSC).
    pub fn of_clock(start: Anchor, end: Anchor) -> Calibration {
        if name() == "tsc" {
            Calibration::new(start, end)
        } else {
            Calibration::identity(start)
        }
    }

    /// The calibration of an image whose first anchor is `start`, now.
    pub fn until_now(start: Anchor) -> Calibration {
        Calibration::of_clock(start, Anchor::take())
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

    /// A sum of many durations in ticks as nanoseconds (saturating).
    pub fn duration_ns_sum(&self, ticks: u128) -> u64 {
        (ticks as f64 * self.ns_per_tick).min(u64::MAX as f64) as u64
    }

    /// A duration in nanoseconds as ticks.
    pub fn ticks_for_ns(&self, ns: u64) -> u64 {
        (ns as f64 / self.ns_per_tick) as u64
    }
}

/// What the engine sizes its windows with (the collector's reorder window,
/// the merge's slack, the first timeline bucket) before the tick rate is
/// known: 4 GHz, above the TSC rate of current x86-64 parts, so a window of
/// `n` ns sized with it lasts at least `n` ns (longer on a slower TSC).
/// Windows only decide how long the merge waits and which reversed pairs it
/// repairs, never a timestamp; [`measured_ns_per_tick`] replaces it within
/// the image's first millisecond.
pub const DEFAULT_NS_PER_TICK: f64 = 0.25;

/// Anchors closer than this give a rate good to ~1e-4: plenty for sizing
/// windows (snapshot timestamps interpolate between anchors instead).
pub const RATE_MEASURE_NS: u64 = 1_000_000;

/// The tick rate since `start`, once enough time has passed to measure it
/// without waiting (exactly 1 when ticks are nanoseconds); `None` before.
pub fn measured_ns_per_tick(start: &Anchor) -> Option<f64> {
    if name() != "tsc" {
        return Some(1.0);
    }
    let now = Anchor::take();
    (now.mono_ns.saturating_sub(start.mono_ns) >= RATE_MEASURE_NS).then(|| Calibration::new(*start, now).ns_per_tick())
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

    /// The error of timestamps and lifetimes converted with a short
    /// calibration window, against CLOCK_MONOTONIC read beside the TSC.
    /// `cargo test --release -p memscope-engine short_windows -- --nocapture`
    /// prints the figures.
    #[test]
    fn short_windows_interpolate_as_well_as_long_ones() {
        if name() != "tsc" {
            return;
        }
        // (ticks, monotonic) read as tightly as an anchor is, every ~10 µs.
        let tight = |_: ()| loop {
            let t1 = now();
            let m = monotonic_ns();
            let t2 = now();
            if t2 - t1 < 400 {
                return (t1 / 2 + t2 / 2, m);
            }
        };
        let windows_ns = [200_000u64, 500_000, 1_000_000, 5_000_000];
        let start = Anchor::take();
        let mut samples = Vec::new();
        let mut ends = Vec::new();
        while ends.len() < windows_ns.len() {
            let (t, m) = tight(());
            if m - start.mono_ns >= windows_ns[ends.len()] {
                ends.push(Anchor::take());
                continue;
            }
            if samples.last().is_none_or(|&(_, last)| m - last >= 10_000) {
                samples.push((t, m));
            }
        }
        let mut report = Vec::new();
        for (w, end) in windows_ns.iter().zip(&ends) {
            let cal = Calibration::new(start, *end);
            let inside: Vec<_> = samples.iter().filter(|s| s.1 <= end.mono_ns).collect();
            let mut abs: Vec<u64> = inside
                .iter()
                .map(|&&(t, m)| {
                    let truth = start.unix_ns as i64 + (m - start.mono_ns) as i64;
                    (cal.unix_ns(t) as i64 - truth).unsigned_abs()
                })
                .collect();
            // Every pair of samples is a lifetime.
            let mut life = Vec::new();
            for (i, a) in inside.iter().enumerate() {
                for b in &inside[i + 1..] {
                    let via_ticks = cal.duration_ns(b.0 - a.0) as i64;
                    life.push((via_ticks - (b.1 - a.1) as i64).unsigned_abs());
                }
            }
            abs.sort_unstable();
            life.sort_unstable();
            let pct = |v: &[u64], p: usize| v[(v.len() - 1) * p / 100];
            report.push((
                *w,
                inside.len(),
                pct(&abs, 50),
                pct(&abs, 100),
                pct(&life, 50),
                pct(&life, 99),
                pct(&life, 100),
            ));
        }
        // What bracketing buys: the 0.2 ms fit used 25x past its window.
        let short = Calibration::new(start, ends[0]);
        let beyond = samples
            .iter()
            .map(|&(t, m)| {
                let truth = start.unix_ns as i64 + (m - start.mono_ns) as i64;
                (short.unix_ns(t) as i64 - truth).unsigned_abs()
            })
            .max()
            .unwrap_or(0);
        println!("a 0.2 ms fit extrapolated to 5 ms: max timestamp error {beyond} ns");
        for r in &report {
            println!(
                "window {:>7} ns, {:>3} samples: timestamp error p50 {} ns max {} ns; lifetime error p50 {} ns p99 {} ns max {} ns",
                r.0, r.1, r.2, r.3, r.4, r.5, r.6
            );
        }
        // The error is the anchors' (tens of ns), not the window's: a
        // 0.2 ms window is about as good as the 5 ms one memscope used to
        // wait for. Bounds leave room for a preempted read on a busy machine.
        for r in &report {
            assert!(r.4 < 200 && r.5 < 1_000, "window {} ns: {r:?}", r.0);
        }
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
