//! Variables named with `track_var!` (memscope-rs): their names are kept in
//! [`crate::var_names`], their births and deaths travel through the rings
//! like allocations, so a variable's lifetime is ordered exactly against
//! the heap events around it.

use crate::event::Kind;
use crate::recorder;
pub use crate::var_names::{names, Names};

/// Registers a variable owning the heap block `ptr` (`size` bytes; 0/0 for
/// none) on the calling thread and returns its id.
pub fn birth(ptr: usize, size: usize, names: Names) -> u64 {
    let id = crate::var_names::register(names);
    recorder::record(Kind::VarBirth, ptr, size, id);
    id
}

/// The variable `id` is dropped.
pub fn death(id: u64) {
    if id != 0 {
        recorder::record(Kind::VarDeath, 0, 0, id);
    }
}
