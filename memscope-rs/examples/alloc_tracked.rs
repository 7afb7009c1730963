//! Benchmark: the churn workload with memscope-rs's in-process allocator
//! recording every event (compare with `alloc_plain`).
#[path = "churn/workload.rs"]
mod workload;

#[global_allocator]
static ALLOC: memscope_rs::Allocator = memscope_rs::Allocator;

fn main() {
    memscope_rs::init();
    workload::run();
}
