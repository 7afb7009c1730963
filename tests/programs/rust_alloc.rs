//! A Rust program with known heap activity: a Vec that grows by doubling,
//! a Box, a String, one leaked block.
fn main() {
    let mut v: Vec<u64> = Vec::with_capacity(4);
    for i in 0..1000u64 {
        v.push(i);
    }
    let b = Box::new([7u8; 4096]);
    let s = String::from("memscope");
    let leaked: &'static mut [u8] = Box::leak(vec![1u8; 5555].into_boxed_slice());
    std::hint::black_box((&v, &b, &s, &leaked));
    drop(v);
}
