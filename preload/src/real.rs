//! The functions the hooks forward to, found with `dlsym(RTLD_NEXT, …)`.
//!
//! `dlsym` itself may allocate (glibc's `dlerror` buffer), which re-enters
//! our `malloc`/`calloc` before the real ones are known; those calls are
//! served from [`crate::bootstrap`]. Resolution happens on the first hook
//! call, whichever thread makes it.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const READY: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);

/// A lazily resolved function pointer.
pub struct Sym {
    addr: AtomicUsize,
}

impl Sym {
    const fn new() -> Sym {
        Sym {
            addr: AtomicUsize::new(0),
        }
    }

    /// The address, or 0 while resolution is under way (the caller then
    /// falls back to the bootstrap arena) or if the symbol does not exist.
    #[inline(always)]
    pub fn get(&self) -> usize {
        let a = self.addr.load(Ordering::Relaxed);
        if a != 0 {
            return a;
        }
        self.slow()
    }

    #[cold]
    fn slow(&self) -> usize {
        resolve_all();
        self.addr.load(Ordering::Relaxed)
    }
}

macro_rules! syms {
    ($($field:ident: $name:literal),* $(,)?) => {
        pub struct Real { $(pub $field: Sym,)* }
        pub static REAL: Real = Real { $($field: Sym::new(),)* };
        fn resolve_each() {
            $(
                // SAFETY: RTLD_NEXT lookup of a NUL-terminated name.
                let a = unsafe { libc::dlsym(libc::RTLD_NEXT, $name.as_ptr()) } as usize;
                REAL.$field.addr.store(a, Ordering::Relaxed);
            )*
        }
    };
}

syms! {
    malloc: c"malloc",
    free: c"free",
    calloc: c"calloc",
    realloc: c"realloc",
    posix_memalign: c"posix_memalign",
    aligned_alloc: c"aligned_alloc",
    memalign: c"memalign",
    valloc: c"valloc",
    pvalloc: c"pvalloc",
    malloc_usable_size: c"malloc_usable_size",
    exit_: c"_exit",
    exit_upper: c"_Exit",
    quick_exit: c"quick_exit",
    execve: c"execve",
    execvpe: c"execvpe",
    fexecve: c"fexecve",
    posix_spawn: c"posix_spawn",
    posix_spawnp: c"posix_spawnp",
    sigaction: c"sigaction",
}

/// True once every symbol has been looked up.
#[inline(always)]
pub fn ready() -> bool {
    STATE.load(Ordering::Acquire) == READY
}

/// Looks every symbol up once. Returns immediately (without waiting) while
/// another call is resolving, including a re-entrant call from `dlsym`.
pub fn resolve_all() {
    if STATE
        .compare_exchange(UNRESOLVED, RESOLVING, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        resolve_each();
        STATE.store(READY, Ordering::Release);
    }
}

pub type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
pub type FreeFn = unsafe extern "C" fn(*mut c_void);
pub type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
pub type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
pub type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> c_int;
pub type AlignFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
pub type UsableSizeFn = unsafe extern "C" fn(*mut c_void) -> usize;
pub type ExitFn = unsafe extern "C" fn(c_int) -> !;
pub type ExecveFn = unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
pub type FexecveFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
pub type SpawnFn = unsafe extern "C" fn(
    *mut libc::pid_t,
    *const c_char,
    *const libc::posix_spawn_file_actions_t,
    *const libc::posix_spawnattr_t,
    *const *mut c_char,
    *const *mut c_char,
) -> c_int;

/// Casts a resolved address to its function type.
///
/// # Safety
/// `addr` must be non-zero and the address of a function of type `F`.
#[inline(always)]
pub unsafe fn as_fn<F: Copy>(addr: usize) -> F {
    debug_assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    std::mem::transmute_copy(&addr)
}

// Direct calls for the engine's own allocations (never recorded).

/// # Safety
/// As `malloc(3)`.
pub unsafe fn malloc(size: usize) -> *mut c_void {
    match REAL.malloc.get() {
        0 => crate::bootstrap::alloc(size, 16),
        f => as_fn::<MallocFn>(f)(size),
    }
}

/// # Safety
/// As `free(3)`.
pub unsafe fn free(p: *mut c_void) {
    if p.is_null() || crate::bootstrap::contains(p) {
        return;
    }
    if let f @ 1.. = REAL.free.get() {
        as_fn::<FreeFn>(f)(p)
    }
}

/// # Safety
/// As `realloc(3)`.
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if crate::bootstrap::contains(p) {
        return crate::bootstrap::move_out(p, size, |n| malloc(n));
    }
    match REAL.realloc.get() {
        0 => std::ptr::null_mut(),
        f => as_fn::<ReallocFn>(f)(p, size),
    }
}

/// # Safety
/// As `posix_memalign(3)`; `align` a power of two multiple of pointer size.
pub unsafe fn aligned(align: usize, size: usize) -> *mut c_void {
    match REAL.posix_memalign.get() {
        0 => crate::bootstrap::alloc(size, align),
        f => {
            let mut out = std::ptr::null_mut();
            if as_fn::<PosixMemalignFn>(f)(&mut out, align, size) == 0 {
                out
            } else {
                std::ptr::null_mut()
            }
        }
    }
}
