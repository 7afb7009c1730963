//! The collector alone, timed: replays an event stream shaped like
//! `alloc_bench`'s (scripts/bench/alloc_bench.c: the same operation mix,
//! addresses from the real `malloc`) into [`Collector`] the way the consumer
//! applies it, and prints the collector's CPU time per event. No rings, no
//! hooks, no other thread: what a change to the collector's own code costs
//! or saves, measurable on a busy machine (thread CPU time, median of nine
//! rounds), where whole-program timings move by more than the change.
//!
//! usage: cargo run --release -p memscope-engine --example collector_replay -- [THREADS] [ITERATIONS] [MIX]
//! MIX: `all` (default), or only one kind of operation: `pairs` (a block freed
//! by its thread's next event), `reallocs` (realloc chains) or `table`
//! (long-lived blocks: a free looked up in the live table).

use memscope_engine::collector::Collector;
use memscope_engine::event::Kind;

/// An event as the consumer hands it to the collector.
#[derive(Clone, Copy)]
enum Applied {
    Alloc {
        ts: u64,
        ptr: u64,
        size: u64,
        thread: u32,
        site: u32,
    },
    Free {
        ts: u64,
        ptr: u64,
        thread: u32,
    },
    Pair {
        born: u64,
        died: u64,
        ptr: u64,
        size: u64,
        thread: u32,
        site: u32,
    },
    Realloc {
        ts: u64,
        old: u64,
        new: u64,
        size: u64,
        thread: u32,
        site: u32,
    },
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Per-thread state of the generated program: alloc_bench's 4096-slot table
/// of long-lived blocks and its 64-entry ring of medium-lived ones.
struct Program {
    rng: u64,
    slots: Vec<u64>,
    ring: Vec<u64>,
    ring_pos: usize,
}

/// The events of `iters` iterations on each of `threads` threads,
/// interleaved (each iteration runs on every thread in turn), and their
/// count in ring slots.
fn generate(threads: u32, iters: u64, mix: &str) -> (Vec<Applied>, u64) {
    let mut out = Vec::new();
    let mut slots = 0u64;
    let mut ts = 1000u64;
    let mut programs: Vec<Program> = (0..threads)
        .map(|t| Program {
            rng: 42 ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1),
            slots: vec![0; 4096],
            ring: vec![0; 64],
            ring_pos: 0,
        })
        .collect();
    let malloc = |n: u64| unsafe { libc::malloc(n as usize) as u64 };
    let free = |p: u64| unsafe { libc::free(p as *mut libc::c_void) };
    for _ in 0..iters {
        for (t, prog) in programs.iter_mut().enumerate() {
            let thread = t as u32;
            let r = xorshift(&mut prog.rng);
            let op = match mix {
                "pairs" => 0,
                "reallocs" => 60,
                "table" => 90,
                _ => r % 100,
            };
            let r2 = r >> 8;
            let site = 1 + op as u32 / 5;
            ts += 30;
            if op < 55 || (65..80).contains(&op) {
                // malloc/calloc/posix_memalign, then free.
                let size = 8 + r2 % 249;
                let ptr = malloc(size);
                free(ptr);
                out.push(Applied::Pair {
                    born: ts,
                    died: ts + 25,
                    ptr,
                    size,
                    thread,
                    site,
                });
                ts += 25;
                slots += 2;
            } else if op < 65 {
                // malloc(16), six doubling reallocs, free.
                let (mut size, mut ptr) = (16, malloc(16));
                out.push(Applied::Alloc {
                    ts,
                    ptr,
                    size,
                    thread,
                    site,
                });
                for _ in 0..6 {
                    size *= 2;
                    ts += 40;
                    let new = unsafe { libc::realloc(ptr as *mut libc::c_void, size as usize) as u64 };
                    out.push(Applied::Realloc {
                        ts,
                        old: ptr,
                        new,
                        size,
                        thread,
                        site: site + 30,
                    });
                    ptr = new;
                }
                ts += 20;
                out.push(Applied::Free { ts, ptr, thread });
                free(ptr);
                // A realloc is one slot (`Kind::ReallocOne`).
                slots += 8;
            } else {
                // Replace a long-lived (table) or medium-lived (ring) block.
                let cell = if op < 95 {
                    &mut prog.slots[(r2 % 4096) as usize]
                } else {
                    prog.ring_pos = (prog.ring_pos + 1) % 64;
                    &mut prog.ring[prog.ring_pos]
                };
                if *cell != 0 {
                    out.push(Applied::Free { ts, ptr: *cell, thread });
                    free(*cell);
                    ts += 20;
                    slots += 1;
                }
                let size = 16 + (r2 >> 12) % 2033;
                *cell = malloc(size);
                out.push(Applied::Alloc {
                    ts,
                    ptr: *cell,
                    size,
                    thread,
                    site,
                });
                slots += 1;
            }
        }
    }
    (out, slots)
}

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let iters: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let mix = args.next().unwrap_or_else(|| "all".to_string());
    let (events, slots) = generate(threads, iters / threads as u64, &mix);
    let mut rounds = Vec::new();
    let mut peak = 0;
    for _ in 0..9 {
        let mut c = Collector::new(0, 0.3, 20_000);
        for t in 0..threads {
            c.thread_slot(100 + t);
        }
        let start = thread_cpu_ns();
        for e in &events {
            match *e {
                Applied::Alloc {
                    ts,
                    ptr,
                    size,
                    thread,
                    site,
                } => c.alloc(ts, ptr, size, Kind::Malloc, thread, site),
                Applied::Free { ts, ptr, thread } => c.free(ts, ptr, thread),
                Applied::Pair {
                    born,
                    died,
                    ptr,
                    size,
                    thread,
                    site,
                } => c.transient(born, died, ptr, size, Kind::Malloc, thread, site),
                Applied::Realloc {
                    ts,
                    old,
                    new,
                    size,
                    thread,
                    site,
                } => c.realloc(ts, old, new, size, thread, site),
            }
        }
        rounds.push((thread_cpu_ns() - start) as f64 / slots as f64);
        peak = c.peak.bytes;
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "collector: {:.2} ns/event (median of {} rounds; {} events, {} thread(s), mix {}, peak {} B)",
        rounds[rounds.len() / 2],
        rounds.len(),
        slots,
        threads,
        mix,
        peak
    );
}
