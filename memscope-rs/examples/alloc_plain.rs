//! Benchmark baseline: the churn workload with std's allocator and no
//! memscope-rs (compare with `alloc_tracked`; scripts/bench/rs_overhead.py).
#[path = "churn/workload.rs"]
mod workload;

fn main() {
    workload::run();
}
