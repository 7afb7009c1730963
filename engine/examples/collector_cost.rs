//! The collector's own cost per event, without rings, merge or hooks: an
//! event stream shaped like alloc_bench's (the same operation mix: pairs,
//! realloc chains, a 4096-slot table and a 64-entry ring of longer-lived
//! blocks) applied to a [`Collector`] on one thread, from a warm cache.
//! What `scripts/bench/per_event_profile.py` reports for the collector
//! thread, less this, is the price of the merge and of reading rings
//! written on another core.
//!
//! usage: cargo run --release -p memscope-engine --example collector_cost [ITERATIONS]
use memscope_engine::collector::Collector;
use memscope_engine::event::Kind;
use std::time::Instant;

fn main() {
    let iters: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4_000_000);
    let mut c = Collector::new(0, 0.4, 256);
    let th = c.thread_slot(1234);
    assert_eq!(th, 0);
    let mut rng: u64 = 42 ^ 0x9E3779B97F4A7C15;
    let mut ts = 1000u64;
    let mut next_addr = 0u64;
    let mut addr = || {
        next_addr += 1;
        0x5555_0000_0000 + (next_addr & 0x3ffff) * 48
    };
    let mut slots = vec![0u64; 4096];
    let mut ring = vec![0u64; 64];
    let mut rp = 0usize;
    let mut events = 0u64;
    let t0 = Instant::now();
    for _ in 0..iters {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let op = ((rng >> 32) * 100) >> 32;
        let r2 = rng >> 8;
        ts += 60;
        if op < 55 {
            let p = addr();
            c.transient(ts, ts + 20, p, 8 + r2 % 249, Kind::Malloc, 0, 1);
            events += 2;
        } else if op < 65 {
            let mut p = addr();
            c.alloc(ts, p, 16, Kind::Malloc, 0, 2);
            for k in 0..6 {
                ts += 40;
                let q = addr();
                c.realloc(ts, p, q, 32 << k, 0, 3);
                p = q;
            }
            ts += 30;
            c.free(ts, p, 0);
            events += 8;
        } else if op < 75 {
            let p = addr();
            c.transient(ts, ts + 30, p, 16 * (1 + r2 % 64), Kind::Calloc, 0, 4);
            events += 2;
        } else if op < 80 {
            let p = addr();
            c.transient(ts, ts + 30, p, 64 + r2 % 960, Kind::Aligned, 0, 5);
            events += 2;
        } else {
            // A longer-lived block replaced: a table slot or the ring's oldest.
            let (held, size, site) = if op < 95 {
                (&mut slots[(r2 % 4096) as usize], 16 + r2 % 500, 6)
            } else {
                rp = (rp + 1) % 64;
                (&mut ring[rp], 16 + r2 % 2000, 7)
            };
            if *held != 0 {
                c.free(ts, *held, 0);
                events += 1;
            }
            ts += 20;
            *held = addr();
            c.alloc(ts, *held, size, Kind::Malloc, 0, site);
            events += 1;
        }
    }
    let el = t0.elapsed();
    println!(
        "{} events, {:.2} ns/event",
        events,
        el.as_nanos() as f64 / events as f64
    );
}
