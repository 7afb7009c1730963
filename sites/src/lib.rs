//! How memscope names an allocation site, in one place for every reader
//! (terminal summary, `diff`, the run digest, the HTML report): after the
//! first frame that is not an allocation wrapper ([`wrappers`]), made
//! unique within a list ([`names`]). Pure functions of a snapshot's frames.

pub mod names;
pub mod wrappers;

pub use names::{frame_label, naming, site_names, unique_names, Naming};
pub use wrappers::{Wrappers, BUILTIN, ENV_VAR, GLUE};

#[cfg(test)]
mod tests;
