//! Which heap block a value owns, so a tracked variable's record shows its
//! size and (in-process with [`crate::Allocator`], or under `LD_PRELOAD`)
//! names the allocation record of that block.

use std::alloc::Layout;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::ffi::{CString, OsString};
use std::mem::size_of;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

/// A heap block owned by a value.
///
/// `ptr` is the block's address as the allocator returned it (so it matches
/// the allocation record) and `size` its size in bytes. `ptr` is 0 when the
/// type keeps its blocks' addresses private (`HashMap`, `BTreeMap`, …);
/// `size` is then the heap bytes it owns as far as its public API tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapBlock {
    pub ptr: usize,
    pub size: usize,
}

impl HeapBlock {
    /// The buffer of `capacity` elements at `ptr` (none when it is 0 bytes:
    /// empty or zero-sized elements allocate nothing).
    pub fn buffer<T>(ptr: *const T, capacity: usize) -> Option<HeapBlock> {
        let size = capacity.checked_mul(size_of::<T>())?;
        (size > 0).then_some(HeapBlock {
            ptr: ptr as usize,
            size,
        })
    }

    /// `size` heap bytes at an address the type does not expose.
    pub fn unaddressed(size: usize) -> Option<HeapBlock> {
        (size > 0).then_some(HeapBlock { ptr: 0, size })
    }
}

/// Types that own a heap block. [`crate::track_var!`] takes any value;
/// for types implementing this it also records the block. Implement it for
/// your own types by delegating to the field that owns the memory:
///
/// ```
/// use memscope_rs::{HeapBlock, Trackable};
/// struct Image { pixels: Vec<u32>, width: usize }
/// impl Trackable for Image {
///     fn heap_block(&self) -> Option<HeapBlock> {
///         self.pixels.heap_block()
///     }
/// }
/// ```
pub trait Trackable {
    /// The block this value owns now, if any.
    fn heap_block(&self) -> Option<HeapBlock>;
}

impl<T> Trackable for Vec<T> {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::buffer(self.as_ptr(), self.capacity())
    }
}

impl Trackable for String {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::buffer(self.as_ptr(), self.capacity())
    }
}

impl<T: ?Sized> Trackable for Box<T> {
    fn heap_block(&self) -> Option<HeapBlock> {
        let size = std::mem::size_of_val::<T>(self);
        (size > 0).then_some(HeapBlock {
            ptr: &**self as *const T as *const u8 as usize,
            size,
        })
    }
}

/// The block of an `Rc`/`Arc`: two counters, then the value (both are
/// `repr(C)` in std), allocated with the layout of the whole.
fn counted_block<T: ?Sized>(value: *const T, v: &T) -> Option<HeapBlock> {
    let (whole, offset) = Layout::new::<[usize; 2]>().extend(Layout::for_value(v)).ok()?;
    Some(HeapBlock {
        ptr: (value as *const u8 as usize).wrapping_sub(offset),
        size: whole.pad_to_align().size(),
    })
}

impl<T: ?Sized> Trackable for Rc<T> {
    fn heap_block(&self) -> Option<HeapBlock> {
        counted_block(Rc::as_ptr(self), &**self)
    }
}

impl<T: ?Sized> Trackable for Arc<T> {
    fn heap_block(&self) -> Option<HeapBlock> {
        counted_block(Arc::as_ptr(self), &**self)
    }
}

/// The buffer's address is exact when the deque wraps around or starts at
/// the start of its buffer (built by `push_back`, or from a `Vec`); else it
/// is the address of the first element, inside the buffer.
impl<T> Trackable for VecDeque<T> {
    fn heap_block(&self) -> Option<HeapBlock> {
        let (front, back) = self.as_slices();
        let start = if back.is_empty() { front.as_ptr() } else { back.as_ptr() };
        HeapBlock::buffer(start, self.capacity())
    }
}

impl<T: Ord> Trackable for BinaryHeap<T> {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::buffer(self.as_slice().as_ptr(), self.capacity())
    }
}

/// std's hash tables (hashbrown) keep one block: `buckets` slots, aligned up,
/// then one control byte per bucket plus a group of trailing ones.
fn hash_table_bytes<T>(capacity: usize) -> usize {
    const GROUP: usize = if cfg!(all(target_arch = "x86_64", target_feature = "sse2")) {
        16
    } else {
        8
    };
    if capacity == 0 || size_of::<T>() == 0 {
        return 0;
    }
    let buckets = if capacity < 8 { capacity + 1 } else { capacity / 7 * 8 };
    let align = std::mem::align_of::<T>().max(GROUP);
    let data = (buckets * size_of::<T>()).next_multiple_of(align);
    data + buckets + GROUP
}

impl<K, V, S> Trackable for HashMap<K, V, S> {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::unaddressed(hash_table_bytes::<(K, V)>(self.capacity()))
    }
}

impl<T, S> Trackable for HashSet<T, S> {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::unaddressed(hash_table_bytes::<T>(self.capacity()))
    }
}

/// Node-based: many blocks; `size` is the entries' bytes (a lower bound).
impl<K, V> Trackable for BTreeMap<K, V> {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::unaddressed(self.len() * (size_of::<K>() + size_of::<V>()))
    }
}

impl<T> Trackable for BTreeSet<T> {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::unaddressed(self.len() * size_of::<T>())
    }
}

impl<T> Trackable for LinkedList<T> {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::unaddressed(self.len() * (size_of::<T>() + 2 * size_of::<usize>()))
    }
}

impl Trackable for CString {
    fn heap_block(&self) -> Option<HeapBlock> {
        let bytes = self.as_bytes_with_nul();
        HeapBlock::buffer(bytes.as_ptr(), bytes.len())
    }
}

impl Trackable for OsString {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::buffer(self.as_encoded_bytes().as_ptr(), self.capacity())
    }
}

impl Trackable for PathBuf {
    fn heap_block(&self) -> Option<HeapBlock> {
        HeapBlock::buffer(self.as_os_str().as_encoded_bytes().as_ptr(), self.capacity())
    }
}

impl<T: Trackable> Trackable for Option<T> {
    fn heap_block(&self) -> Option<HeapBlock> {
        self.as_ref()?.heap_block()
    }
}
