//! Which engine the crate talks to, chosen once by [`init`]: a preloaded
//! libmemscope.so (found through its `memscope_api_v1` symbol), the engine
//! started in this process, or nothing (`MEMSCOPE_RS=off`).
//!
//! Under the library the crate must add names and nothing else: every call
//! made here on that path is allocation-free, so a traced program's counts
//! are the same with and without memscope-rs (tests/tests/rs_examples.rs).

use memscope_engine::api::ApiV1;
use memscope_engine::lifecycle::{self, Host};
use memscope_engine::thread::Guard;
use memscope_engine::vars;
use std::path::Path;
use std::sync::OnceLock;

/// How memscope-rs records, as decided by [`init`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// [`init`] has not run yet.
    NotStarted,
    /// `MEMSCOPE_RS=off`: nothing is recorded by the crate.
    Off,
    /// Under `LD_PRELOAD=libmemscope.so`: the library records allocations
    /// and writes the snapshot; the crate names variables in it.
    Preload,
    /// The engine runs in this process (allocations are recorded when
    /// [`crate::Allocator`] is the global allocator).
    InProcess,
}

enum Backend {
    Off,
    Preload(&'static ApiV1),
    InProcess,
}

static BACKEND: OnceLock<Backend> = OnceLock::new();

/// Starts memscope for this process (idempotent; [`crate::track_var!`] and
/// [`enable_auto_export`] call it too). Under `LD_PRELOAD=libmemscope.so` it
/// connects to the library; otherwise it starts the engine here, which
/// writes a snapshot when the process ends (unless `MEMSCOPE_AUTO_EXPORT=0`).
/// Also chains a panic hook, so a panic that ends the process ends its
/// snapshot as `"panic"`. Call it first thing in `main`: the in-process
/// allocator records only from here on.
pub fn init() {
    backend();
}

/// The mode chosen by [`init`] ([`Mode::NotStarted`] before it ran).
pub fn mode() -> Mode {
    match BACKEND.get() {
        None => Mode::NotStarted,
        Some(Backend::Off) => Mode::Off,
        Some(Backend::Preload(_)) => Mode::Preload,
        Some(Backend::InProcess) => Mode::InProcess,
    }
}

fn backend() -> &'static Backend {
    BACKEND.get_or_init(start)
}

fn start() -> Backend {
    if matches!(memscope_engine::sys::getenv(c"MEMSCOPE_RS"), Some(b"off" | b"0")) {
        return Backend::Off;
    }
    let backend = match find_library() {
        Some(api) => Backend::Preload(api),
        // Not chosen by MEMSCOPE_ONLY/MEMSCOPE_SKIP: record nothing here.
        None if memscope_engine::select::skipped() => return Backend::Off,
        None => {
            // Stacks start inside this crate's allocator: the snapshot
            // leaves out frames from its sources.
            memscope_engine::unwind::symbolize::add_own_source_dir(env!("CARGO_MANIFEST_DIR"));
            lifecycle::start(Host::InProcess);
            crate::allocator::start_recording();
            Backend::InProcess
        }
    };
    crate::panic::install();
    backend
}

/// The preloaded library's API, if libmemscope.so is in the process.
fn find_library() -> Option<&'static ApiV1> {
    // SAFETY: dlsym with a NUL-terminated name. The symbol, when present, is
    // libmemscope.so's `extern "C" fn memscope_api_v1() -> *const ApiV1`,
    // which returns a pointer to a static that is never freed.
    let api = unsafe {
        let sym = libc::dlsym(libc::RTLD_DEFAULT, c"memscope_api_v1".as_ptr());
        if sym.is_null() {
            return None;
        }
        let get: extern "C" fn() -> *const ApiV1 = std::mem::transmute(sym);
        get().as_ref()?
    };
    (api.version == 1 && api.size as usize >= std::mem::size_of::<ApiV1>()).then_some(api)
}

/// Registers a variable; returns its id (0: not recorded).
pub(crate) fn birth(ptr: usize, size: usize, name: &str, type_name: &str, scope: &str) -> u64 {
    match backend() {
        Backend::Off => 0,
        // SAFETY: the library's var_birth reads each (pointer, length) pair.
        Backend::Preload(api) => unsafe {
            (api.var_birth)(
                ptr,
                size,
                name.as_ptr(),
                name.len(),
                type_name.as_ptr(),
                type_name.len(),
                scope.as_ptr(),
                scope.len(),
            )
        },
        Backend::InProcess => {
            // The names are memscope's allocations, not the program's.
            let names = {
                let _g = Guard::enter();
                vars::Names {
                    var_name: name.to_string(),
                    type_name: type_name.to_string(),
                    scope_name: scope.to_string(),
                }
            };
            vars::birth(ptr, size, names)
        }
    }
}

/// The variable `id` (from [`birth`]) is dropped.
pub(crate) fn death(id: u64) {
    match BACKEND.get() {
        _ if id == 0 => {}
        // SAFETY: a plain call into the library with an id it issued.
        Some(Backend::Preload(api)) => unsafe { (api.var_death)(id) },
        Some(Backend::InProcess) => vars::death(id),
        _ => {}
    }
}

/// A panic is in progress (called by the crate's panic hook).
pub(crate) fn note_panic() {
    match BACKEND.get() {
        // SAFETY: a plain call into the library.
        Some(Backend::Preload(api)) => unsafe { (api.note_panic)() },
        Some(Backend::InProcess) => lifecycle::note_panic(),
        _ => {}
    }
}

/// Writes the snapshot at exit to `path` (relative to the directory the
/// process started in; `%p`/`%e` expand to the pid/executable name) — or,
/// with `None`, to the default `memscope-%e-%p.json`. `MEMSCOPE_EXPORT_PATH`,
/// when set (by the user or `memscope-cli run -o`), wins; `MEMSCOPE_AUTO_EXPORT=0`
/// turns writing at exit off.
pub fn enable_auto_export(path: Option<&str>) {
    let path = path.unwrap_or(memscope_engine::config::DEFAULT_EXPORT_PATH);
    match backend() {
        Backend::Off => {}
        // SAFETY: the library copies the (pointer, length) string.
        Backend::Preload(api) => unsafe { (api.set_export_path)(path.as_ptr(), path.len()) },
        Backend::InProcess => lifecycle::set_program_export_path(path),
    }
}

/// Writes a snapshot of the process as it is now to `path` (JSON; the HTML
/// report when the path ends in `.html`). Recording goes on; the snapshot's
/// `process.end` is `"running"`.
pub fn export(path: impl AsRef<Path>) -> std::io::Result<()> {
    let path = path.as_ref();
    match backend() {
        Backend::Off => Err(std::io::Error::other("memscope-rs is off (MEMSCOPE_RS=off)")),
        Backend::Preload(api) => {
            let bytes = path.as_os_str().as_encoded_bytes();
            // SAFETY: the library copies the (pointer, length) string.
            match unsafe { (api.export)(bytes.as_ptr(), bytes.len()) } {
                0 => Ok(()),
                errno => Err(std::io::Error::from_raw_os_error(errno)),
            }
        }
        Backend::InProcess => {
            let path = path
                .to_str()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the export path is not UTF-8"))?;
            lifecycle::export_now(path)
        }
    }
}
