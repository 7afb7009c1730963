//! An image's last snapshot, finished off the program's critical path.
//!
//! Under `memscope-cli run` a short image spent most of its extra time in
//! its ending (draining, building and handing over its snapshot: 260-490
//! µs in a shell loop's images), and whatever waited for the image — a
//! shell for its command, `make` for its compiler — waited that long for
//! every one, while on two cores the other one mostly idled.
//!
//! So as the image exits, the work is handed to a helper: a process made
//! with `clone(CLONE_VM)`, which shares the image's memory (no page table
//! is copied) and keeps it alive after the image is gone, since an address
//! space lives while any task uses it. The image exits at once; the helper
//! drains and builds the snapshot from the collector's state as the image
//! would have, hands it to `run`, and exits.
//!
//! Only where that changes nothing the program or the user sees:
//! - in `libmemscope.so`, whose code allocates from memscope's own heap. In
//!   a program linking memscope-rs the engine allocates through the
//!   program's allocator, which the helper must not share (below);
//! - under `run` (`MEMSCOPE_HANDOFF`), a child subreaper: the kernel
//!   reparents every orphan of the run's tree to it, so it reaps the
//!   helpers and waits for their snapshots before its summary. Under plain
//!   `LD_PRELOAD` an image's file is complete when the image has exited,
//!   as SPEC §2 says;
//! - at an exit (`exit`, return from `main`, `_exit`). Not before an
//!   `exec`: the image goes on if it fails, so its helper has to wait for
//!   the `exec` to succeed, and must not stay a child of the new image.
//!   Tried (a close-on-exec pipe to tell, an intermediate clone to orphan
//!   the helper): the bash loop got no faster (2.03x → 2.01x wall, CPU
//!   2.46x → 2.56x): the extra clone cost what the ending did, the helpers
//!   took the CPU the new images wanted, and the old address space outlived
//!   the `exec`;
//! - not for a fatal signal (the handler's own path, see `signals`);
//! - when no thread but the main one ever made an event (no collector
//!   thread was started): any other thread has never run memscope's code,
//!   so none can die at the exit holding a lock or a ring slot of memscope's
//!   that the helper would wait for;
//! - in `run`'s own PID namespace. In one of the program's (a sandbox's,
//!   `unshare -p`'s) the helper would be reparented to that namespace's
//!   init, and killed with everything in it when that init exits, its
//!   snapshot lost;
//! - with `close_range` (Linux 5.9).
//!
//! The helper must not disturb the program's last steps (libc flushes
//! stdio, then `_exit`), which run beside it:
//! - it takes no signal of the program's: every signal is blocked when it
//!   is made (a fault still kills it; no handler of the program's ever runs
//!   in it), and its one unblocked signal is `SIGALRM` at its default, a
//!   watchdog that ends a helper stuck for [`WATCHDOG_S`];
//! - it closes its copy of every descriptor but stderr first: a shell
//!   reading the image's output waits for the end of the pipe. Stderr
//!   stays for memscope's warnings (a snapshot that could not be handed
//!   over nor written): a reader of a stderr pipe sees its end when the
//!   helper is done, as late as it did when the image did the work;
//! - its exit signal is none, so the image is never told of it; once the
//!   image has exited it is `run`'s;
//! - a tracer does not follow it (`CLONE_UNTRACED`);
//! - it shares the main thread's thread-local storage (libc makes none
//!   without its thread machinery): the image's last steps record nothing
//!   (recording and stack capture are off before the helper starts), the
//!   ending's code allocates from memscope's own heap, never libc's
//!   `malloc` (whose per-thread cache the two would share), and `errno`,
//!   which both may write, is read by neither afterwards.
//!
//! Under `run`, 11 interleaved runs: the bash loop of scripts/bench 2.09x
//! → 1.95x wall (CPU 2.33x → 2.42x), `gcc -O2 -c` 1.82x → 1.62x wall (CPU
//! 1.86x → 1.72x); see the bench README.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU8, Ordering};

/// The helper's stack: as large as a main thread's usual limit, its pages
/// taken only as touched. Never unmapped: the address space ends with the
/// helper.
const STACK: usize = 8 << 20;
/// A helper that has not finished after this long is ended by the kernel:
/// only a bug could make it take that long, and `run` would wait for it
/// (its snapshot is lost; the program is long gone).
const WATCHDOG_S: u32 = 300;

/// The helper's pid (0: none), so that the engine does not take it for a
/// foreign child of the image ([`crate::image::in_foreign_child`]).
static HELPER: AtomicU32 = AtomicU32::new(0);
/// The work the helper does.
static WORK: AtomicPtr<Work> = AtomicPtr::new(std::ptr::null_mut());
/// Whether `close_range` works here: 0 not known, 1 yes, 2 no.
static CLOSE_RANGE: AtomicU8 = AtomicU8::new(0);

type Work = Box<dyn FnOnce() + Send>;

/// True in this image's helper.
pub fn in_helper() -> bool {
    let h = HELPER.load(Ordering::Relaxed);
    h != 0 && h == crate::sys::getpid()
}

/// Whether this image's exit may be finished by a helper (see the module's doc).
pub fn possible() -> bool {
    cfg!(target_arch = "x86_64")
        && crate::image::host() == crate::image::Host::Preload
        && crate::config::get().handoff.is_some()
        && !crate::image::collector_ever_started()
        && !crate::image::in_foreign_child()
        && WORK.load(Ordering::Acquire).is_null()
        && close_range_works()
        && crate::process::launcher_pid().is_some_and(|run| known_in_run_pid_ns() || looked_up_in_proc(run))
}

fn looked_up_in_proc(run: u32) -> bool {
    let same = same_pid_namespace(run);
    crate::debug!("pid namespace looked up in /proc: run's: {same}");
    same
}

/// The pid known to share `run`'s pid namespace (0: none).
///
/// Comparing the namespaces by their /proc entries cost every image two
/// `stat`s at its exit, ~40 µs each in a new process here (its /proc
/// entries are made at the first look); most images know without them:
/// - the run's first: its parent is `run` ([`note_start`]): a parent in
///   another namespace would read as pid 0;
/// - a `fork()` child of an image that knew, whose parent is still its
///   parent ([`fork_child`]): after `unshare(CLONE_NEWPID)` or a `setns`
///   into another pid namespace its parent would read as pid 0 too;
/// - an image `exec`'d by a process that knew (or by a vfork child of one):
///   `exec` keeps the pid and the namespace, and the process says so in
///   `MEMSCOPE_EXEC_SEQ`; so is a child it makes with `posix_spawn` (as
///   `make` starts its commands), told as the child of its parent.
static IN_RUN_PID_NS: AtomicU32 = AtomicU32::new(0);

/// At start-up, with the image's parent pid: notes whether it is known to
/// share `run`'s pid namespace (see [`IN_RUN_PID_NS`]).
pub fn note_start(ppid: u32) {
    let launcher = crate::process::launcher_pid();
    if launcher.is_some() && (launcher == Some(ppid) || crate::process::startup_in_run_pid_ns()) {
        IN_RUN_PID_NS.store(crate::sys::getpid(), Ordering::Relaxed);
    }
}

/// In a `fork()` child (not a vfork or `_Fork` one, which writes nothing).
pub fn fork_child() {
    let ppid = crate::sys::getppid();
    let known = ppid != 0 && IN_RUN_PID_NS.load(Ordering::Relaxed) == ppid;
    IN_RUN_PID_NS.store(if known { crate::sys::getpid() } else { 0 }, Ordering::Relaxed);
}

/// Whether this process is known to share `run`'s pid namespace, told to
/// the image it `exec`s. Only reads: a vfork child (a shell's, about to
/// `exec` a command) asks too, and knows when its parent knew and is still
/// its parent, as a fork child does.
pub fn known_in_run_pid_ns() -> bool {
    let known = IN_RUN_PID_NS.load(Ordering::Relaxed);
    known != 0
        && (known == crate::sys::getpid() || (crate::image::in_foreign_child() && known == crate::sys::getppid()))
}

/// Whether this process is in the PID namespace of process `pid` (as the
/// inodes of their `/proc/PID/ns/pid` say; false when either cannot be read,
/// as in a namespace with a `/proc` of its own where `pid` is no process).
fn same_pid_namespace(pid: u32) -> bool {
    let ns_of = |path: &std::ffi::CStr| {
        // SAFETY: a NUL-terminated path and a stat buffer of ours.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            (libc::stat(path.as_ptr(), &mut st) == 0).then_some((st.st_dev, st.st_ino))
        }
    };
    let Ok(theirs) = std::ffi::CString::new(format!("/proc/{pid}/ns/pid")) else {
        return false;
    };
    let mine = ns_of(c"/proc/self/ns/pid");
    mine.is_some() && mine == ns_of(&theirs)
}

/// Runs `work` in a helper as the image exits and returns `None`, or gives
/// it back when no helper could be made (the caller then runs it).
pub fn spawn_at_exit(work: Work) -> Option<Work> {
    let Some(base) = crate::alt_stack::map_stack(STACK) else {
        return Some(work);
    };
    let boxed = Box::into_raw(Box::new(work));
    WORK.store(boxed, Ordering::Release);
    let top = base as usize + STACK - 4096;
    let mut old = [0u64; 1];
    let all = [!0u64; 1];
    // SAFETY: rt_sigprocmask with valid 8-byte sets (the helper starts with
    // every signal blocked); clone with a stack of ours and a plain
    // function; this thread's mask restored after.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            all.as_ptr(),
            old.as_mut_ptr(),
            8usize,
        );
        let pid = libc::clone(
            helper_main,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_UNTRACED,
            std::ptr::null_mut(),
        );
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            old.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        );
        pid
    };
    if pid > 0 {
        return None;
    }
    let p = WORK.swap(std::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: the mapping made above, unused: no helper runs.
    unsafe { libc::munmap(base, STACK) };
    // SAFETY: from Box::into_raw above, taken back once.
    (!p.is_null()).then(|| *unsafe { Box::from_raw(p) })
}

extern "C" fn helper_main(_: *mut c_void) -> c_int {
    HELPER.store(crate::sys::getpid(), Ordering::Relaxed);
    // SAFETY: this process's own copy of the descriptor table (stderr
    // kept, see the module's doc); SIGALRM's
    // disposition and mask of this process only; its own name (`ps` shows
    // "memscope", not a second copy of the program).
    unsafe {
        libc::syscall(libc::SYS_close_range, 0u32, 1u32, 0u32);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::prctl(libc::PR_SET_NAME, c"memscope".as_ptr());
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::syscall(
            libc::SYS_rt_sigaction,
            libc::SIGALRM,
            &dfl as *const libc::sigaction,
            std::ptr::null_mut::<libc::sigaction>(),
            8usize,
        );
        let alarm = [1u64 << (libc::SIGALRM - 1)];
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_UNBLOCK,
            alarm.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        );
        libc::alarm(WATCHDOG_S);
    }
    let p = WORK.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !p.is_null() {
        // SAFETY: from Box::into_raw in `spawn_at_exit`, taken once.
        let work = unsafe { Box::from_raw(p) };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
            crate::warn!("internal error while finishing the snapshot");
        }
    }
    0
}

/// Probes `close_range` once: closing an empty range past any descriptor.
fn close_range_works() -> bool {
    match CLOSE_RANGE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            // SAFETY: a range no descriptor can be in: closes nothing.
            let ok = unsafe { libc::syscall(libc::SYS_close_range, u32::MAX - 1, u32::MAX, 0u32) } == 0;
            CLOSE_RANGE.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
    }
}
