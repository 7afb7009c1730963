//! Leaks on purpose: `kept` is forgotten (never dropped), `scratch` is
//! dropped after a 120 ms sleep, and a plain `Box::leak` block stays live.
//! `kept` and the leaked block are `is_leaked: true`, with lifetimes up to
//! the end of the process. Also tracks a value without a heap block and one
//! of a type of ours that says which block it owns.
use memscope_rs::{track_var, HeapBlock, Trackable};
use std::time::Duration;

#[global_allocator]
static ALLOC: memscope_rs::Allocator = memscope_rs::Allocator;

struct Frame {
    pixels: Vec<u32>,
}

impl Trackable for Frame {
    fn heap_block(&self) -> Option<HeapBlock> {
        self.pixels.heap_block()
    }
}

fn main() {
    memscope_rs::init();
    let scratch = vec![0u8; 4096];
    let short_lived = track_var!(scratch);
    std::thread::sleep(Duration::from_millis(120));
    drop(short_lived);

    let message = String::from("this string is never freed");
    let kept = track_var!(message);
    std::mem::forget(kept);

    let frame = track_var!(Frame { pixels: vec![0; 64] });
    let answer = track_var!(42u64);
    println!("{} pixels, answer {}", frame.pixels.len(), *answer);

    // black_box: the optimizer may not drop an allocation nobody reads.
    let table: &'static mut [u64] = std::hint::black_box(Box::leak(vec![7u64; 32].into_boxed_slice()));
    println!("leaked {} words", table.len());
}
