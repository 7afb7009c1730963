//! The allocation churn the allocator benchmark times: scripts/bench's
//! `rust_churn` workload (Vec growth, Strings, Boxes, a HashMap; deterministic)
//! in THREADS threads. Shared by `alloc_plain` (std's allocator) and
//! `alloc_tracked` (memscope-rs's).

#[path = "../../../scripts/bench/rust_churn.rs"]
#[allow(dead_code)]
mod churn;

use std::time::Instant;

/// Runs the churn (args: THREADS ITERS) and prints its checksum and the
/// time it took inside the process, so start-up and the snapshot at exit
/// are not part of the figure.
pub fn run() {
    let args: Vec<String> = std::env::args().collect();
    let threads: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let iters: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| std::thread::spawn(move || churn::work(42 + t, iters)))
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!("checksum={total} elapsed_ns={}", t0.elapsed().as_nanos());
}
