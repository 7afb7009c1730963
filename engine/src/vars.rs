//! Variables named with `track_var!` (memscope-rs): their names live here,
//! their births and deaths travel through the rings like allocations, so a
//! variable's lifetime is ordered exactly against the heap events around it.

use crate::event::Kind;
use crate::lock::Locked;
use crate::recorder;
use crate::thread::Guard;

/// What `track_var!` knows about a variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub var_name: String,
    pub type_name: String,
    pub scope_name: String,
}

/// Names by variable id (id = index + 1; 0 means "no variable").
static NAMES: Locked<Vec<Names>> = Locked::new(Vec::new());

/// Registers a variable owning the heap block `ptr` (`size` bytes; 0/0 for
/// none) on the calling thread and returns its id.
pub fn birth(ptr: usize, size: usize, names: Names) -> u64 {
    let id = {
        let _g = Guard::enter();
        NAMES.with(|v| {
            v.push(names);
            v.len() as u64
        })
    };
    recorder::record(Kind::VarBirth, ptr, size, id);
    id
}

/// The variable `id` is dropped.
pub fn death(id: u64) {
    if id != 0 {
        recorder::record(Kind::VarDeath, 0, 0, id);
    }
}

/// The names of variable `id`.
pub fn names(id: u64) -> Names {
    let _g = Guard::enter();
    NAMES.with(|v| {
        id.checked_sub(1)
            .and_then(|i| v.get(i as usize))
            .cloned()
            .unwrap_or_default()
    })
}
