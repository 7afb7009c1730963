//! libmemscope.so: loaded with `LD_PRELOAD`, it records every heap
//! allocation of a dynamically linked program and writes a snapshot in which
//! every allocation has a birth, a death (or the end of the process) and so a
//! lifetime. See SPEC.md for the contract.
//!
//! This crate is the interposition layer only: [`ffi`] holds the exported
//! symbols, thin shims over [`hooks`] (allocator), [`exec`] (environment for
//! the next image) and the engine's lifecycle; [`real`] finds the functions
//! they forward to, [`bootstrap`] serves `dlsym`'s own allocations. The
//! recording and analysis live in `memscope-engine`.

pub mod alloc;
pub mod bootstrap;
pub mod exec;
pub mod hooks;
pub mod real;

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

// The hooks, the constructor and the allocator only exist in the library
// itself: the unit-test binary must keep glibc's malloc.
#[cfg(not(test))]
mod ffi;

#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: alloc::OwnAllocator = alloc::OwnAllocator;

/// The library constructor, in `.init_array` itself: glibc calls those
/// with the program's `argc`, `argv` and `envp`, and `argv` is all of the
/// command line memscope records.
#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static MEMSCOPE_INIT: unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) = memscope_init;

#[cfg(not(test))]
unsafe extern "C" fn memscope_init(_argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    // SAFETY: glibc's dynamic loader passes the program's argv.
    memscope_engine::process::note_argv(argv);
    init();
}

/// The library constructor: find the real allocator, start the engine, and
/// prepare what later images (after `exec`) need.
#[cfg(not(test))]
fn init() {
    let _g = memscope_engine::thread::Guard::enter();
    real::resolve_all();
    if memscope_engine::select::skipped() {
        skip();
        return;
    }
    let process = memscope_engine::lifecycle::start(memscope_engine::lifecycle::Host::Preload);
    let no_launcher = memscope_engine::sys::getenv(memscope_engine::process::RUN_PPID_VAR).is_none();
    exec::capture(library_path(), (process.is_root && no_launcher).then_some(process.pid));
    exec::hide_bookkeeping();
}

/// A skipped image (`MEMSCOPE_ONLY`/`MEMSCOPE_SKIP`): no engine, no exit
/// or fork handlers, no collector thread — the hooks only forward. The
/// programs it starts still get the library and the settings.
#[cfg(not(test))]
fn skip() {
    use std::sync::atomic::Ordering;
    memscope_engine::image::ENABLED.store(false, Ordering::Relaxed);
    memscope_engine::image::PID.store(memscope_engine::sys::getpid(), Ordering::Relaxed);
    memscope_engine::select::note_skipped();
    // Without `run`, later images still learn they are not the first.
    let no_launcher = memscope_engine::sys::getenv(memscope_engine::process::RUN_PPID_VAR).is_none();
    exec::capture(library_path(), no_launcher.then(memscope_engine::sys::getpid));
    // Its `exec` counter is passed on at its own `exec`: read it first.
    memscope_engine::process::startup_exec_seq();
    exec::hide_bookkeeping();
}

/// Absolute path of this library, for the `LD_PRELOAD` of later images.
#[cfg(not(test))]
fn library_path() -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: dladdr on one of our own functions.
    let name = unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(library_path as *const std::ffi::c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return std::ffi::CString::default();
        }
        std::ffi::CStr::from_ptr(info.dli_fname).to_owned()
    };
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(name.as_bytes()));
    if path.is_absolute() {
        // Good as it is for a later image's LD_PRELOAD (resolving its
        // symlinks cost a readlink per component at every start-up).
        return name;
    }
    match std::fs::canonicalize(path) {
        Ok(p) => std::ffi::CString::new(p.into_os_string().into_encoded_bytes()).unwrap_or(name),
        Err(_) => name,
    }
}
