//! `Trackable::heap_block` of std types against the allocations they really
//! made: a recording global allocator captures the blocks allocated on this
//! thread while a value is built, and the reported block must be one of them.

use memscope_rs::{HeapBlock, Trackable};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const SLOTS: usize = 64;
static SEEN: [(AtomicUsize, AtomicUsize); SLOTS] = [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; SLOTS];
static COUNT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

struct Recording;

// SAFETY: forwards to System unchanged; only notes (address, size).
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        note(p, l.size());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let q = System.realloc(p, l, n);
        note(q, n);
        q
    }
}

fn note(p: *mut u8, size: usize) {
    if WATCHING.with(|w| w.get()) {
        let i = COUNT.fetch_add(1, Ordering::Relaxed) % SLOTS;
        SEEN[i].0.store(p as usize, Ordering::Relaxed);
        SEEN[i].1.store(size, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Recording = Recording;

/// Builds a value and returns it with the blocks allocated meanwhile.
fn built<T>(make: impl FnOnce() -> T) -> (T, Vec<(usize, usize)>) {
    COUNT.store(0, Ordering::Relaxed);
    WATCHING.with(|w| w.set(true));
    let v = make();
    WATCHING.with(|w| w.set(false));
    let n = COUNT.load(Ordering::Relaxed).min(SLOTS);
    let seen = (0..n)
        .map(|i| (SEEN[i].0.load(Ordering::Relaxed), SEEN[i].1.load(Ordering::Relaxed)))
        .collect();
    (v, seen)
}

/// The reported block is exactly one the value's construction allocated.
fn check<T: Trackable>(what: &str, make: impl FnOnce() -> T) {
    let (v, seen) = built(make);
    let b = v.heap_block().unwrap_or_else(|| panic!("{what}: no block"));
    assert!(seen.contains(&(b.ptr, b.size)), "{what}: {b:?} not in {seen:?}");
}

/// The reported size is exactly that of a block allocated (address private).
fn check_size<T: Trackable>(what: &str, make: impl FnOnce() -> T) {
    let (v, seen) = built(make);
    let b = v.heap_block().unwrap_or_else(|| panic!("{what}: no block"));
    assert_eq!(b.ptr, 0, "{what}");
    assert!(seen.iter().any(|&(_, s)| s == b.size), "{what}: {b:?} not in {seen:?}");
}

// One test: the recorder's slots are shared.
#[test]
fn std_types_report_the_blocks_they_allocated() {
    check("Vec", || Vec::<u64>::with_capacity(10));
    check("grown Vec", || (0..1000u32).collect::<Vec<_>>());
    check("String", || String::from("hello, world"));
    check("Box", || Box::new([1u8; 40]));
    check("Box<[u16]>", || vec![3u16; 7].into_boxed_slice());
    check("Box<dyn>", || Box::new(vec![1u8]) as Box<dyn std::any::Any>);
    check("Rc", || Rc::new(5u8));
    check("Rc<[u64]>", || Rc::<[u64]>::from(vec![1, 2, 3]));
    check("Rc<str>", || Rc::<str>::from("abc"));
    check("Arc", || Arc::new([0u128; 3]));
    check("Arc<String>", || Arc::new(String::new()));
    check("VecDeque", || (0..100).collect::<VecDeque<u32>>());
    check("BinaryHeap", || (0..50).collect::<BinaryHeap<i64>>());
    check("CString", || std::ffi::CString::new("text").unwrap());
    check("PathBuf", || std::path::PathBuf::from("/tmp/some/where"));
    check("Some(Vec)", || Some(vec![1u8, 2]));
    for n in [1, 3, 7, 8, 29, 1000] {
        check_size("HashMap", || (0..n).map(|i| (i, i as u8)).collect::<HashMap<u32, u8>>());
        check_size("HashSet", || {
            (0..n).map(|i| [i as u64; 5]).collect::<HashSet<[u64; 5]>>()
        });
    }
    assert_eq!(Vec::<u8>::new().heap_block(), None);
    assert_eq!(Box::new(()).heap_block(), None);
    assert_eq!(HashMap::<u8, u8>::new().heap_block(), None);
    assert_eq!(
        HeapBlock::buffer(8 as *const u32, 3),
        Some(HeapBlock { ptr: 8, size: 12 })
    );
}
