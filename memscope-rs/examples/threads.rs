//! Tracked variables on several threads, with the in-process allocator:
//! each worker names a buffer, keeps it ~50 ms, and drops it; the threads
//! share a tracked `Arc`. With EXPORT, also writes a snapshot of the
//! process as it is once the workers are done. usage: threads [WORKERS [EXPORT]]
use memscope_rs::track_var;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOC: memscope_rs::Allocator = memscope_rs::Allocator;

fn worker(n: usize, shared: Arc<String>) -> usize {
    let data = vec![n as u8; 1000 * (n + 1)];
    let buffer = track_var!(data);
    std::thread::sleep(Duration::from_millis(50));
    buffer.len() + shared.len()
}

fn main() {
    memscope_rs::init();
    memscope_rs::enable_auto_export(None);
    let args: Vec<String> = std::env::args().collect();
    let workers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let greeting = Arc::new(String::from("shared between threads"));
    let shared = track_var!(greeting);
    let handles: Vec<_> = (0..workers)
        .map(|n| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("worker-{n}"))
                .spawn(move || worker(n, shared))
                .expect("spawn")
        })
        .collect();
    let lengths: Vec<usize> = handles.into_iter().map(|h| h.join().expect("join")).collect();
    let results = track_var!(lengths);
    if let Some(path) = args.get(2) {
        memscope_rs::export(path).expect("export");
    }
    println!("total={}", results.iter().sum::<usize>());
}
