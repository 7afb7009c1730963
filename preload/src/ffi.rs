//! The exported symbols that interpose libc's. Each is a thin shim over one
//! core function in [`crate::hooks`], [`crate::lifecycle`] or [`crate::exec`].

use crate::exec;
use crate::hooks;
use crate::real::{as_fn, ExecveFn, ExitFn, FexecveFn, SpawnFn, REAL};
use memscope_engine::lifecycle;
use memscope_engine::unwind::Caller;
use std::ffi::{c_char, c_int, c_void};

// SAFETY (every allocator shim): the caller upholds the C contract of the
// function it calls; the core function forwards to the real one with the same
// arguments and only adds recording.

// malloc, calloc and realloc enter through a two-instruction trampoline
// that hands the caller's stack and frame pointers to the shim, so a
// backtrace starts at the program's frame without unwinding memscope's.

#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    std::arch::naked_asm!("mov rsi, rsp", "mov rdx, rbp", "jmp {f}", f = sym malloc_from)
}

unsafe extern "C" fn malloc_from(size: usize, sp: usize, bp: usize) -> *mut c_void {
    hooks::malloc(size, Caller { sp, bp })
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    hooks::free(p)
}

#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    hooks::free(p)
}

#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    std::arch::naked_asm!("mov rdx, rsp", "mov rcx, rbp", "jmp {f}", f = sym calloc_from)
}

unsafe extern "C" fn calloc_from(n: usize, size: usize, sp: usize, bp: usize) -> *mut c_void {
    hooks::calloc(n, size, Caller { sp, bp })
}

#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    std::arch::naked_asm!("mov rdx, rsp", "mov rcx, rbp", "jmp {f}", f = sym realloc_from)
}

unsafe extern "C" fn realloc_from(p: *mut c_void, size: usize, sp: usize, bp: usize) -> *mut c_void {
    hooks::realloc(p, size, Caller { sp, bp })
}

#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    hooks::reallocarray(p, n, size)
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    hooks::posix_memalign(out, align, size)
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    hooks::aligned_alloc(align, size)
}

#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    hooks::memalign(align, size)
}

#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    hooks::valloc(size)
}

#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    hooks::pvalloc(size)
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    hooks::malloc_usable_size(p)
}

// SAFETY (exit shims): the snapshot is written first, then the real
// function ends the process exactly as it would have.

#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    lifecycle::before_underscore_exit(status);
    as_fn::<ExitFn>(REAL.exit_.get())(status)
}

#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    lifecycle::before_underscore_exit(status);
    as_fn::<ExitFn>(REAL.exit_upper.get())(status)
}

/// glibc's quick_exit reaches `_Exit` internally, past the hook above.
#[no_mangle]
pub unsafe extern "C" fn quick_exit(status: c_int) -> ! {
    lifecycle::before_underscore_exit(status);
    as_fn::<ExitFn>(REAL.quick_exit.get())(status)
}

// SAFETY (exec shims): arguments are passed through unchanged except the
// environment, which is a valid NULL-terminated copy with memscope's
// variables added (or the original when no copy could be made).

extern "C" {
    static environ: *const *const c_char;
}

/// Runs `real` with memscope's environment, after the pre-exec snapshot.
unsafe fn exec_with(envp: *const *const c_char, real: impl FnOnce(*const *const c_char) -> c_int) -> c_int {
    if memscope_engine::image::in_foreign_child() {
        // A vfork child is no image of its own: what it execs is its pid's first.
        let env = exec::build(envp, memscope_engine::sys::getpid(), 0);
        return real(env.as_ref().map_or(envp, |e| e.as_ptr()));
    }
    lifecycle::before_exec();
    let env = exec::build(envp, memscope_engine::sys::getpid(), lifecycle::next_exec_seq());
    real(env.as_ref().map_or(envp, |e| e.as_ptr()))
}

#[no_mangle]
pub unsafe extern "C" fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    let f = as_fn::<ExecveFn>(REAL.execve.get());
    if libc::access(path, libc::X_OK) != 0 {
        // It will fail: no snapshot for an exec that does not happen.
        return f(path, argv, envp);
    }
    exec_with(envp, |env| f(path, argv, env))
}

#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    execve(path, argv, environ)
}

#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    let f = as_fn::<ExecveFn>(REAL.execvpe.get());
    exec_with(envp, |env| f(file, argv, env))
}

#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    execvpe(file, argv, environ)
}

#[no_mangle]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    let f = as_fn::<FexecveFn>(REAL.fexecve.get());
    exec_with(envp, |env| f(fd, argv, env))
}

/// `posix_spawn` replaces nothing, so no snapshot: only the environment.
unsafe fn spawn_with(
    f: usize,
    pid: *mut libc::pid_t,
    path: *const c_char,
    fa: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    let _g = memscope_engine::thread::Guard::enter();
    let base = if envp.is_null() {
        environ
    } else {
        envp as *const *const c_char
    };
    let env = exec::build(base, 0, 0);
    let e = env.as_ref().map_or(envp, |e| e.as_ptr() as *const *mut c_char);
    as_fn::<SpawnFn>(f)(pid, path, fa, attr, argv, e)
}

#[no_mangle]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut libc::pid_t,
    path: *const c_char,
    fa: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    spawn_with(REAL.posix_spawn.get(), pid, path, fa, attr, argv, envp)
}

#[no_mangle]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut libc::pid_t,
    file: *const c_char,
    fa: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    spawn_with(REAL.posix_spawnp.get(), pid, file, fa, attr, argv, envp)
}

// The variadic exec functions live in csrc/execl.c (stable Rust cannot
// define C variadics). rustc's version script keeps C symbols local, so
// these exported trampolines jump to them with every register and the
// stack untouched — the varargs arrive intact.
extern "C" {
    fn memscope_execl();
    fn memscope_execlp();
    fn memscope_execle();
}

#[no_mangle]
#[unsafe(naked)]
pub unsafe extern "C" fn execl() {
    std::arch::naked_asm!("jmp {}", sym memscope_execl)
}

#[no_mangle]
#[unsafe(naked)]
pub unsafe extern "C" fn execlp() {
    std::arch::naked_asm!("jmp {}", sym memscope_execlp)
}

#[no_mangle]
#[unsafe(naked)]
pub unsafe extern "C" fn execle() {
    std::arch::naked_asm!("jmp {}", sym memscope_execle)
}

/// memscope-rs finds the preloaded library through this (see [`crate::api`]).
#[no_mangle]
pub extern "C" fn memscope_api_v1() -> *const memscope_engine::api::ApiV1 {
    &memscope_engine::api::API_V1
}

// SAFETY (signal shims): the caller upholds sigaction(2)/signal(3)'s
// contract; the program's view of memscope's fatal-signal handler is kept
// in memscope_engine::sigchain, everything else goes to libc unchanged.

/// libc's sigaction, found once (it is needed before anything else is).
unsafe extern "C" fn real_sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    match REAL.sigaction.get() {
        0 => {
            *libc::__errno_location() = libc::ENOSYS;
            -1
        }
        f => as_fn::<memscope_engine::sigchain::RealSigaction>(f)(sig, act, old),
    }
}

#[no_mangle]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    memscope_engine::sigchain::program_sigaction(sig, act, old, real_sigaction)
}

#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    memscope_engine::sigchain::program_signal(sig, handler, real_sigaction)
}
