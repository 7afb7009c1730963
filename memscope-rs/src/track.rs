//! `track_var!`: the wrapper that names a value for its whole life.

use crate::trackable::{HeapBlock, Trackable};
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

/// Names a value in the snapshot and returns it wrapped: the [`Tracked`]
/// wrapper derefs to the value, and its `Drop` records the variable's death,
/// so the lifetime is exact. The name is the expression's text, the type
/// `std::any::type_name`, the scope the enclosing function (see [`scope!`]);
/// the heap block comes from [`Trackable`] where the type implements it.
///
/// ```no_run
/// use memscope_rs::track_var;
/// let names = track_var!(vec!["a".to_string()]);
/// assert_eq!(names.len(), 1);
/// ```
#[macro_export]
macro_rules! track_var {
    ($value:expr $(,)?) => {{
        let value = $value;
        let block = {
            #[allow(unused_imports)]
            use $crate::__private::{ViaNothing as _, ViaTrackable as _};
            (&&$crate::__private::Probe(&value)).__memscope_heap_block()
        };
        $crate::Tracked::__new(value, ::core::stringify!($value), $crate::scope!(), block)
    }};
}

/// The enclosing function's path, e.g. `my_crate::worker::run` (closures
/// name the function they are in).
#[macro_export]
macro_rules! scope {
    () => {{
        fn __memscope_here() {}
        $crate::__private::enclosing_fn(::core::any::type_name_of_val(&__memscope_here))
    }};
}

/// Strips the marker function and closures from a `type_name` of [`scope!`].
pub fn enclosing_fn(marker: &'static str) -> &'static str {
    let mut s = marker.strip_suffix("::__memscope_here").unwrap_or(marker);
    while let Some(outer) = s.strip_suffix("::{{closure}}") {
        s = outer;
    }
    s
}

/// A value named by [`track_var!`].
#[must_use = "the variable ends when the wrapper is dropped: bind it with `let`"]
pub struct Tracked<T> {
    value: T,
    id: u64,
}

impl<T> Tracked<T> {
    #[doc(hidden)]
    pub fn __new(value: T, name: &'static str, scope: &'static str, block: Option<HeapBlock>) -> Self {
        let (ptr, size) = block.map_or((0, 0), |b| (b.ptr, b.size));
        let id = crate::backend::birth(ptr, size, name, std::any::type_name::<T>(), scope);
        Tracked { value, id }
    }

    /// Ends the variable now (its death is recorded) and returns the value.
    pub fn into_inner(self) -> T {
        let this = ManuallyDrop::new(self);
        crate::backend::death(this.id);
        // SAFETY: `this` is never used or dropped again; the value is moved
        // out exactly once.
        unsafe { std::ptr::read(&this.value) }
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        // Before the value's own drop: the variable dies, then its block.
        crate::backend::death(self.id);
    }
}

impl<T> Deref for Tracked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Tracked<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Tracked<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: std::fmt::Display> std::fmt::Display for Tracked<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

// Autoref specialization: `(&&Probe(&v)).__memscope_heap_block()` picks
// `ViaTrackable` when the type implements `Trackable`, else `ViaNothing`,
// so `track_var!` takes any value.

#[doc(hidden)]
pub struct Probe<'a, T>(pub &'a T);

#[doc(hidden)]
pub trait ViaTrackable {
    fn __memscope_heap_block(&self) -> Option<HeapBlock>;
}

impl<T: Trackable> ViaTrackable for &Probe<'_, T> {
    fn __memscope_heap_block(&self) -> Option<HeapBlock> {
        self.0.heap_block()
    }
}

#[doc(hidden)]
pub trait ViaNothing {
    fn __memscope_heap_block(&self) -> Option<HeapBlock>;
}

impl<T> ViaNothing for Probe<'_, T> {
    fn __memscope_heap_block(&self) -> Option<HeapBlock> {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scope_names_the_enclosing_function_even_from_a_closure() {
        let here = crate::scope!();
        assert!(here.ends_with("track::tests::scope_names_the_enclosing_function_even_from_a_closure"));
        let closure = || crate::scope!();
        let inner = closure();
        assert_eq!(inner, here);
    }
}
