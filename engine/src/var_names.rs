//! The names of variables tracked with `track_var!` (memscope-rs), by id.
//! Their births and deaths travel through the rings ([`crate::vars`]); the
//! snapshot writer looks their names up here.

use crate::lock::Locked;
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

/// Keeps the names of a new variable and returns its id.
pub fn register(names: Names) -> u64 {
    let _g = Guard::enter();
    NAMES.with(|v| {
        v.push(names);
        v.len() as u64
    })
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
