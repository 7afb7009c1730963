// Sites named by their callers (tests/tests/site_names.rs): the blocks come
// from Vec growth and String formatting inside these two functions.

#[inline(never)]
fn build_table(n: u64) -> Vec<u64> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(i * 3); // PUSH
    }
    v
}

#[inline(never)]
fn make_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("name-number-{i}-long-enough")).collect()
}

fn main() {
    let t = build_table(100_000);
    let names = make_names(1000);
    println!("{} {}", t.len(), names.len());
}
