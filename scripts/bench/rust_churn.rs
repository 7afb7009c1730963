//! Rust allocation churn for the benchmarks: Vec growth, Strings, Boxes and
//! a HashMap with insertions and removals, in THREADS threads (deterministic).
//! usage: rust_churn THREADS ITERS
use std::collections::HashMap;

pub fn work(seed: u64, iters: u64) -> u64 {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut map: HashMap<u64, String> = HashMap::new();
    let mut check = 0u64;
    for i in 0..iters {
        let r = next();
        match r % 4 {
            0 => {
                // black_box: the optimizer may otherwise remove an
                // allocation whose contents never escape (and does or does
                // not, from one build to the next).
                let mut v: Vec<u32> = std::hint::black_box(Vec::new());
                for k in 0..(r >> 8) % 64 {
                    v.push(k as u32);
                }
                check += std::hint::black_box(&v).len() as u64;
            }
            1 => {
                let s = format!("item-{i}-{}", r % 1000);
                check += s.len() as u64;
                map.insert(r % 4096, s);
            }
            2 => {
                let b = std::hint::black_box(Box::new([i; 8]));
                check += b[7] & 1;
            }
            _ => {
                if let Some(s) = map.remove(&(r % 4096)) {
                    check += s.len() as u64;
                }
            }
        }
    }
    check + map.len() as u64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let iters: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let handles: Vec<_> = (0..threads)
        .map(|t| std::thread::spawn(move || work(42 + t, iters)))
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!("checksum={total}");
}
