//! The C ABI through which memscope-rs (linked into a Rust program) talks to
//! a preloaded libmemscope.so, so that the two make one snapshot: the crate
//! looks up `memscope_api_v1` with `dlsym` and, when it finds it, names its
//! variables in the library's records instead of tracking on its own.
//!
//! Versioned by symbol name; fields are only ever appended (`size` says how
//! many a caller may use).

/// `memscope_api_v1()` returns a pointer to this (static, never freed).
#[repr(C)]
pub struct ApiV1 {
    pub version: u32,
    /// `size_of::<ApiV1>()` as built by the library.
    pub size: u32,
    /// A variable owning the heap block `ptr` (`size` bytes; 0/0 for none)
    /// starts now; returns its id. Strings are UTF-8, not NUL-terminated.
    pub var_birth: unsafe extern "C" fn(
        ptr: usize,
        size: usize,
        name: *const u8,
        name_len: usize,
        type_name: *const u8,
        type_len: usize,
        scope: *const u8,
        scope_len: usize,
    ) -> u64,
    /// The variable is dropped.
    pub var_death: unsafe extern "C" fn(id: u64),
    /// Writes a snapshot of the process as it is now to `path`; 0 on
    /// success, else an errno value.
    pub export: unsafe extern "C" fn(path: *const u8, len: usize) -> i32,
    /// The path for the snapshot at exit when `MEMSCOPE_EXPORT_PATH` is unset.
    pub set_export_path: unsafe extern "C" fn(path: *const u8, len: usize),
    /// A Rust panic is in progress (a later exit with status 101, or an
    /// abort, then ends the image as `"panic"`).
    pub note_panic: unsafe extern "C" fn(),
}

/// # Safety
/// `p` must be valid for `len` bytes (or `len` 0).
unsafe fn text(p: *const u8, len: usize) -> String {
    if p.is_null() || len == 0 {
        return String::new();
    }
    String::from_utf8_lossy(std::slice::from_raw_parts(p, len)).into_owned()
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn var_birth(
    ptr: usize,
    size: usize,
    name: *const u8,
    name_len: usize,
    type_name: *const u8,
    type_len: usize,
    scope: *const u8,
    scope_len: usize,
) -> u64 {
    if crate::select::skipped() {
        return 0;
    }
    let names = {
        let _g = crate::thread::Guard::enter();
        crate::vars::Names {
            var_name: text(name, name_len),
            type_name: text(type_name, type_len),
            scope_name: text(scope, scope_len),
        }
    };
    crate::vars::birth(ptr, size, names)
}

unsafe extern "C" fn var_death(id: u64) {
    crate::vars::death(id)
}

unsafe extern "C" fn export(path: *const u8, len: usize) -> i32 {
    if crate::select::skipped() {
        // Nothing was recorded in this image (MEMSCOPE_ONLY/SKIP).
        return libc::EPERM;
    }
    let path = {
        let _g = crate::thread::Guard::enter();
        text(path, len)
    };
    match crate::running::export_now(&path) {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
    }
}

unsafe extern "C" fn set_export_path(path: *const u8, len: usize) {
    let path = {
        let _g = crate::thread::Guard::enter();
        text(path, len)
    };
    crate::destination::set_program_export_path(&path)
}

unsafe extern "C" fn note_panic() {
    crate::ending::note_panic()
}

pub static API_V1: ApiV1 = ApiV1 {
    version: 1,
    size: std::mem::size_of::<ApiV1>() as u32,
    var_birth,
    var_death,
    export,
    set_export_path,
    note_panic,
};
