//! A program that panics out of `main`: its snapshot ends with `"end":
//! "panic"`; the tracked variable dropped while unwinding is not leaked, and
//! the previous panic hook (std's message) still runs.
use memscope_rs::track_var;

#[global_allocator]
static ALLOC: memscope_rs::Allocator = memscope_rs::Allocator;

fn parse_all(inputs: &[&str]) -> Vec<u32> {
    inputs.iter().map(|s| s.parse().expect("not a number")).collect()
}

fn main() {
    memscope_rs::init();
    let settings = String::from("threshold=3");
    let config = track_var!(settings);
    let parsed = parse_all(&["1", "2", "three"]);
    println!("{config}: {parsed:?}");
}
