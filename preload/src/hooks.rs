//! One core function per interposed allocator entry point: call the real
//! function, record the event with the SPEC §3 meaning. A free is recorded
//! *before* the real free (after it, another thread could already be handed
//! the same address), an allocation *after* the real one returns.

use crate::bootstrap;
use crate::real::{as_fn, REAL};
use crate::real::{AlignFn, CallocFn, FreeFn, MallocFn, PosixMemalignFn, ReallocFn, UsableSizeFn};
use memscope_engine::event::Kind;
use memscope_engine::recorder::{record, record_realloc};
use memscope_engine::signals::inside_allocator;
use memscope_engine::unwind::Caller;
use std::ffi::{c_int, c_void};

/// Call-site id of the current allocation (0 while backtraces are off).
#[inline(always)]
fn site(caller: Caller) -> u64 {
    memscope_engine::unwind::preload_site(caller) as u64
}

#[inline(always)]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// # Safety
/// As `malloc(3)`.
#[inline(always)]
pub unsafe fn malloc(size: usize, caller: Caller) -> *mut c_void {
    let f = REAL.malloc.get();
    if f == 0 {
        return bootstrap::alloc(size, 16);
    }
    let p = inside_allocator(|| as_fn::<MallocFn>(f)(size));
    if !p.is_null() {
        record(Kind::Malloc, p as usize, size, site(caller));
    }
    p
}

/// # Safety
/// As `free(3)`.
#[inline(always)]
pub unsafe fn free(p: *mut c_void) {
    if p.is_null() || bootstrap::contains(p) {
        return;
    }
    record(Kind::Free, p as usize, 0, 0);
    let f = REAL.free.get();
    if f != 0 {
        inside_allocator(|| as_fn::<FreeFn>(f)(p));
    }
}

/// # Safety
/// As `calloc(3)`.
#[inline(always)]
pub unsafe fn calloc(n: usize, size: usize, caller: Caller) -> *mut c_void {
    let f = REAL.calloc.get();
    if f == 0 {
        // Arena memory is never reused, so it is already zero.
        return match n.checked_mul(size) {
            Some(total) => bootstrap::alloc(total, 16),
            None => std::ptr::null_mut(),
        };
    }
    let p = inside_allocator(|| as_fn::<CallocFn>(f)(n, size));
    if !p.is_null() {
        record(Kind::Calloc, p as usize, n.wrapping_mul(size), site(caller));
    }
    p
}

/// # Safety
/// As `realloc(3)`.
pub unsafe fn realloc(p: *mut c_void, size: usize, caller: Caller) -> *mut c_void {
    if bootstrap::contains(p) {
        let q = bootstrap::move_out(p, size, |n| malloc(n, caller));
        return q;
    }
    let f = REAL.realloc.get();
    if f == 0 {
        return bootstrap::alloc(size, 16);
    }
    resize(p, size, caller, |p| inside_allocator(|| as_fn::<ReallocFn>(f)(p, size)))
}

/// # Safety
/// As `reallocarray(3)`.
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    // glibc's reallocarray calls `realloc` through the PLT, which is our own
    // hook: check the product here and go to the real realloc once.
    match n.checked_mul(size) {
        Some(total) => realloc(p, total, Caller::UNKNOWN),
        None => {
            *libc::__errno_location() = libc::ENOMEM;
            std::ptr::null_mut()
        }
    }
}

/// The shared part of realloc and reallocarray.
#[inline(always)]
unsafe fn resize(
    p: *mut c_void,
    size: usize,
    caller: Caller,
    real: impl FnOnce(*mut c_void) -> *mut c_void,
) -> *mut c_void {
    if p.is_null() {
        let q = real(p);
        if !q.is_null() {
            record(Kind::Realloc, q as usize, size, site(caller));
        }
        return q;
    }
    if size == 0 {
        // realloc(p, 0) frees p (glibc returns NULL).
        record(Kind::Free, p as usize, 0, 0);
        let q = real(p);
        if !q.is_null() {
            record(Kind::Realloc, q as usize, 0, site(caller));
        }
        return q;
    }
    let q = real(p);
    if !q.is_null() {
        record_realloc(p as usize, q as usize, size, site(caller));
    }
    q
}

/// # Safety
/// As `posix_memalign(3)`.
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    let f = REAL.posix_memalign.get();
    if f == 0 {
        let p = bootstrap::alloc(size, align);
        if p.is_null() {
            return libc::ENOMEM;
        }
        *out = p;
        return 0;
    }
    let r = inside_allocator(|| as_fn::<PosixMemalignFn>(f)(out, align, size));
    if r == 0 {
        record(Kind::Aligned, *out as usize, size, site(Caller::UNKNOWN));
    }
    r
}

/// # Safety
/// As `aligned_alloc(3)`.
pub unsafe fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    aligned_with(&REAL.aligned_alloc, align, size, Kind::Aligned)
}

/// # Safety
/// As `memalign(3)`.
pub unsafe fn memalign(align: usize, size: usize) -> *mut c_void {
    aligned_with(&REAL.memalign, align, size, Kind::Aligned)
}

unsafe fn aligned_with(sym: &crate::real::Sym, align: usize, size: usize, kind: Kind) -> *mut c_void {
    let p = match sym.get() {
        0 => match REAL.memalign.get() {
            0 => return bootstrap::alloc(size, align.next_power_of_two().max(16)),
            m => inside_allocator(|| as_fn::<AlignFn>(m)(align, size)),
        },
        f => inside_allocator(|| as_fn::<AlignFn>(f)(align, size)),
    };
    if !p.is_null() {
        record(kind, p as usize, size, site(Caller::UNKNOWN));
    }
    p
}

/// # Safety
/// As `valloc(3)`.
pub unsafe fn valloc(size: usize) -> *mut c_void {
    let p = match REAL.valloc.get() {
        0 => return aligned_with(&REAL.memalign, page_size(), size, Kind::Valloc),
        f => inside_allocator(|| as_fn::<MallocFn>(f)(size)),
    };
    if !p.is_null() {
        record(Kind::Valloc, p as usize, size, site(Caller::UNKNOWN));
    }
    p
}

/// # Safety
/// As `pvalloc(3)`.
pub unsafe fn pvalloc(size: usize) -> *mut c_void {
    let p = match REAL.pvalloc.get() {
        0 => {
            let ps = page_size();
            let rounded = size.checked_add(ps - 1).map(|s| s & !(ps - 1)).unwrap_or(usize::MAX);
            return match REAL.memalign.get() {
                0 => std::ptr::null_mut(),
                m => {
                    let p = inside_allocator(|| as_fn::<AlignFn>(m)(ps, rounded.max(ps)));
                    if !p.is_null() {
                        record(Kind::Pvalloc, p as usize, size, site(Caller::UNKNOWN));
                    }
                    p
                }
            };
        }
        f => inside_allocator(|| as_fn::<MallocFn>(f)(size)),
    };
    if !p.is_null() {
        record(Kind::Pvalloc, p as usize, size, site(Caller::UNKNOWN));
    }
    p
}

/// # Safety
/// As `malloc_usable_size(3)`.
pub unsafe fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    if bootstrap::contains(p) {
        return bootstrap::size_of(p);
    }
    match REAL.malloc_usable_size.get() {
        0 => 0,
        f => as_fn::<UsableSizeFn>(f)(p),
    }
}
