//! A hash map keyed by addresses, with a hasher that costs one multiply.
//!
//! Heap and code addresses are already well spread except for their low
//! (alignment) bits; the standard library's SipHash (built to resist keys
//! chosen by an attacker, which addresses are not) was the largest single
//! cost of naming a handed-over snapshot in `memscope-cli run`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for addresses: one multiply and a fold.
#[derive(Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        let x = (v ^ (v >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 32);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
}

/// A map from addresses (or other well-spread `u64`s) to `V`.
pub type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;
