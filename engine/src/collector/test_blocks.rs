//! Blocks for the live tables' unit tests.

use super::Block;

/// A block whose every field follows from `n`.
pub fn block(n: u64) -> Block {
    Block {
        size: n * 3,
        birth: n,
        site: n as u32,
        thread: (n % 7) as u32,
        kind: (n % 12) as u8,
    }
}

/// Both none, or the same block field by field.
pub fn same(a: Option<Block>, b: Option<Block>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            (a.size, a.birth, a.site, a.thread, a.kind) == (b.size, b.birth, b.site, b.thread, b.kind)
        }
        _ => false,
    }
}
