//! Benchmark: the cost of `track_var!` itself. Rounds alternate between the
//! same loop with and without `track_var!` (build a 64-byte Vec, name it or
//! not, drop it); prints the median ns per iteration of each and their ratio.
//! Every tracked variable stays listed for the snapshot, so keep ROUNDS x
//! ITERS moderate. usage: track_overhead [ROUNDS [ITERS]]
use memscope_rs::track_var;
use std::hint::black_box;
use std::time::Instant;

fn plain(iters: u64) -> u64 {
    let mut check = 0;
    for i in 0..iters {
        let mut v = black_box(Vec::<u8>::with_capacity(64));
        v.push(i as u8);
        check += v.len() as u64;
    }
    check
}

fn tracked(iters: u64) -> u64 {
    let mut check = 0;
    for i in 0..iters {
        let buffer = black_box(Vec::<u8>::with_capacity(64));
        let mut v = track_var!(buffer);
        v.push(i as u8);
        check += v.len() as u64;
    }
    check
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    memscope_rs::init();
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(11);
    let iters: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let (mut base, mut with) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (times, f) in [(&mut base, plain as fn(u64) -> u64), (&mut with, tracked)] {
            let t = Instant::now();
            assert_eq!(black_box(f(iters)), iters);
            times.push(t.elapsed().as_nanos() as f64 / iters as f64);
        }
    }
    let (b, w) = (median(base), median(with));
    println!(
        "track_var! ({:?}): {b:.1} ns/iter without, {w:.1} ns/iter with: ratio {:.2}, +{:.1} ns per variable",
        memscope_rs::mode(),
        w / b,
        w - b
    );
}
