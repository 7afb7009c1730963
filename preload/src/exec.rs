//! `exec` and `posix_spawn`: the image about to be replaced writes its
//! snapshot (`"end": "exec"`), and the new image's environment keeps
//! `LD_PRELOAD` and the `MEMSCOPE_*` settings even when the program passes
//! an environment of its own (`env -i`, `execle`).
//!
//! The new environment is built in an anonymous mapping, never on the heap:
//! a `vfork()` child shares the parent's heap and must not touch it.

use memscope_engine::process::{EXEC_SEQ_VAR, IN_RUN_PID_NS_MARK, ROOT_VAR, TSC_MARK};
use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

/// What every new image must see: `LD_PRELOAD` naming this library, and the
/// `MEMSCOPE_*` variables of the start-up environment.
struct Carry {
    /// Absolute path of libmemscope.so.
    library: CString,
    /// `NAME=value` for each `MEMSCOPE_*` variable at start-up (plus the
    /// root marker, see [`capture`]), except the per-exec counter.
    vars: Vec<CString>,
}

static CARRY: OnceLock<Carry> = OnceLock::new();

extern "C" {
    static environ: *const *const c_char;
}

/// Records what to carry. Called once at start-up. Reads `environ` in
/// place: only the entries kept are copied. `root` is this image's pid when
/// it is the run's first without a launcher: every later image is told so
/// through the environment `exec` hands it ([`build`]), never through this
/// program's own (a `setenv` here would show the program a variable it
/// did not have, and allocate from its heap before `main`).
pub fn capture(library: CString, root: Option<u32>) {
    // SAFETY: environ is the process's NULL-terminated environment, not
    // changed by another thread during the library's constructor.
    let mut vars: Vec<CString> = unsafe { entries(environ) }
        .filter(|e| e.starts_with(b"MEMSCOPE_") && name_of(e) != EXEC_SEQ_VAR.to_bytes())
        .filter_map(|e| CString::new(e).ok())
        .collect();
    let marked = vars.iter().any(|v| name_of(v.as_bytes()) == ROOT_VAR.to_bytes());
    if let (Some(pid), false) = (root, marked) {
        vars.extend(CString::new(format!("{}={pid}", ROOT_VAR.to_str().unwrap_or(""))).ok());
    }
    let _ = CARRY.set(Carry { library, vars });
}

/// Removes the variables an earlier image set for this one to read (the
/// root marker, the `exec` counter) from this program's environment once
/// they are read, so that it sees the environment it was given: `unsetenv`
/// moves entries within the array and allocates nothing.
pub fn hide_bookkeeping() {
    // SAFETY: valid C strings; called in the constructor, before the
    // program's code runs on any thread.
    unsafe {
        libc::unsetenv(ROOT_VAR.as_ptr());
        libc::unsetenv(EXEC_SEQ_VAR.as_ptr());
    }
}

fn name_of(entry: &[u8]) -> &[u8] {
    entry.iter().position(|&b| b == b'=').map_or(entry, |i| &entry[..i])
}

/// An environment block in its own mapping; unmapped on drop.
pub struct Env {
    base: *mut u8,
    len: usize,
}

impl Env {
    pub fn as_ptr(&self) -> *const *const c_char {
        self.base as *const *const c_char
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `build` with this length.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Iterates a NULL-terminated `char *` array.
///
/// # Safety
/// `arr` must be null or a valid NULL-terminated array of C strings.
unsafe fn entries<'a>(arr: *const *const c_char) -> impl Iterator<Item = &'a [u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if arr.is_null() {
            return None;
        }
        let p = *arr.add(i);
        if p.is_null() {
            return None;
        }
        i += 1;
        Some(CStr::from_ptr(p).to_bytes())
    })
}

/// `envp` plus what the next image needs: `LD_PRELOAD` (ours prepended when
/// missing), each carried variable the program dropped, and
/// `MEMSCOPE_EXEC_SEQ=<pid>:<exec_seq>` (`^<our pid>:0` for `posix_spawn`'s
/// child, `pid` 0), with marks after it for what the next image would
/// otherwise look up again (`memscope_engine::exec_seq`).
/// `None` if there is nothing to carry (not started yet) or no memory.
///
/// # Safety
/// `envp` must be null or a valid environment array.
pub unsafe fn build(envp: *const *const c_char, pid: u32, exec_seq: u32) -> Option<Env> {
    let carry = CARRY.get()?;
    let lib = carry.library.as_bytes();
    let mut seq_buf = [0u8; 48];
    let seq = {
        let mut w = &mut seq_buf[..];
        let _ = std::io::Write::write_fmt(&mut w, format_args!("{}=", EXEC_SEQ_VAR.to_str().unwrap_or("")));
        // `posix_spawn`'s child (pid 0: not known yet) is told as this
        // process's child.
        let _ = match pid {
            0 => std::io::Write::write_fmt(&mut w, format_args!("^{}:{exec_seq}", memscope_engine::sys::getpid())),
            _ => std::io::Write::write_fmt(&mut w, format_args!("{pid}:{exec_seq}")),
        };
        // Facts the next image would pay to learn again.
        let in_run_pid_ns = memscope_engine::detach::known_in_run_pid_ns();
        let tsc = memscope_engine::clock::decided_tsc();
        if in_run_pid_ns || tsc {
            let _ = std::io::Write::write_fmt(&mut w, format_args!(":"));
        }
        if in_run_pid_ns {
            let _ = std::io::Write::write_fmt(&mut w, format_args!("{IN_RUN_PID_NS_MARK}"));
        }
        if tsc {
            let _ = std::io::Write::write_fmt(&mut w, format_args!("{TSC_MARK}"));
        }
        let n = 48 - w.len();
        &seq_buf[..n]
    };
    // Pass 1: what goes in, and how many bytes; which carried variables
    // the program kept (one pass: an environment of a few dozen entries
    // scanned once per carried variable cost each `exec` ~20 µs).
    let mut count = 0usize;
    let mut bytes = 0usize;
    let mut has_preload = false;
    let mut kept = 0u64;
    for e in entries(envp) {
        let name = name_of(e);
        if name == EXEC_SEQ_VAR.to_bytes() {
            continue;
        }
        count += 1;
        if name == b"LD_PRELOAD" {
            has_preload = true;
            if !mentions_memscope(e) {
                bytes += lib.len() + 1;
            }
        } else if name.starts_with(b"MEMSCOPE_") {
            kept |= carried_bit(&carry.vars, name);
        }
        bytes += e.len() + 1;
    }
    // The carried variables the program dropped (past the 64th: always).
    let dropped = || {
        carry
            .vars
            .iter()
            .enumerate()
            .filter(move |&(i, _)| i >= 64 || kept & (1 << i) == 0)
            .map(|(_, v)| v)
    };
    for v in dropped() {
        count += 1;
        bytes += v.as_bytes().len() + 1;
    }
    if !has_preload {
        count += 1;
        bytes += "LD_PRELOAD=".len() + lib.len() + 1;
    }
    count += 1;
    bytes += seq.len() + 1;
    let table = (count + 1) * std::mem::size_of::<*const c_char>();
    let len = table + bytes;
    let base = libc::mmap(
        std::ptr::null_mut(),
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
        0,
    );
    if base == libc::MAP_FAILED {
        return None;
    }
    let env = Env { base: base.cast(), len };
    // Pass 2: fill the table and the strings after it.
    let ptrs = env.base as *mut *const u8;
    let mut slot = 0usize;
    let mut at = env.base.add(table);
    let mut push = |parts: &[&[u8]]| {
        *ptrs.add(slot) = at;
        slot += 1;
        for p in parts {
            std::ptr::copy_nonoverlapping(p.as_ptr(), at, p.len());
            at = at.add(p.len());
        }
        *at = 0;
        at = at.add(1);
    };
    for e in entries(envp) {
        let name = name_of(e);
        if name == EXEC_SEQ_VAR.to_bytes() {
            continue;
        }
        if name == b"LD_PRELOAD" && !mentions_memscope(e) {
            push(&[b"LD_PRELOAD=", lib, b":", &e["LD_PRELOAD=".len()..]]);
        } else {
            push(&[e]);
        }
    }
    for v in dropped() {
        push(&[v.as_bytes()]);
    }
    if !has_preload {
        push(&[b"LD_PRELOAD=", lib]);
    }
    push(&[seq]);
    *ptrs.add(slot) = std::ptr::null();
    Some(env)
}

/// The bit of the carried variable named `name` (0 when none is): a
/// variable past the 64th is never marked, so it is always added.
fn carried_bit(vars: &[CString], name: &[u8]) -> u64 {
    vars.iter()
        .take(64)
        .position(|v| name_of(v.as_bytes()) == name)
        .map_or(0, |i| 1 << i)
}

fn mentions_memscope(entry: &[u8]) -> bool {
    entry.windows(b"libmemscope".len()).any(|w| w == b"libmemscope")
}
