//! Facts about this process image, captured at start-up (the program may
//! later rewrite its argv memory or chdir) and updated after `fork()`.

use crate::clock::Anchor;
use crate::sys;
use std::ffi::c_char;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Set by a launcher (`memscope-cli run`) to its own pid: the run's first
/// image is the one whose parent it is (neither forked nor exec'd). Nothing
/// then has to be added to the traced program's environment.
pub const RUN_PPID_VAR: &std::ffi::CStr = c"MEMSCOPE_RUN_PPID";
/// The pid of the launcher (`memscope-cli run`) that started this run, if
/// one did ([`RUN_PPID_VAR`]).
pub fn launcher_pid() -> Option<u32> {
    sys::getenv(RUN_PPID_VAR).and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok())
}

/// Without a launcher, the first image sets this in its own environment so
/// that every later image knows it is not the first (SPEC §2 file naming).
pub const ROOT_VAR: &std::ffi::CStr = c"MEMSCOPE_ROOT_PID";
pub use crate::exec_seq::{startup_exec_seq, startup_in_run_pid_ns, EXEC_SEQ_VAR, IN_RUN_PID_NS_MARK, TSC_MARK};

/// The program's `argv`, as glibc hands it to a library constructor.
static ARGV: AtomicPtr<*const c_char> = AtomicPtr::new(std::ptr::null_mut());

/// Notes the program's `argv` (a NULL-terminated array that lives as long
/// as the process): [`ProcessInfo::capture`] then copies it from there
/// instead of reading /proc/self/cmdline (5 system calls per image).
///
/// # Safety
/// `argv` must be null or the program's NULL-terminated `argv`.
pub unsafe fn note_argv(argv: *const *const c_char) {
    ARGV.store(argv as *mut *const c_char, Ordering::Relaxed);
}

/// A copy of the noted `argv` (empty arguments left out, as the kernel's
/// cmdline reading would show them split).
fn startup_argv() -> Option<Vec<String>> {
    let argv = ARGV.load(Ordering::Relaxed) as *const *const c_char;
    if argv.is_null() {
        return None;
    }
    let mut out = Vec::new();
    // SAFETY: `note_argv`'s contract: a NULL-terminated array of C strings.
    unsafe {
        let mut i = 0;
        while !(*argv.add(i)).is_null() {
            let a = std::ffi::CStr::from_ptr(*argv.add(i)).to_bytes();
            if !a.is_empty() {
                out.push(String::from_utf8_lossy(a).into_owned());
            }
            i += 1;
        }
    }
    Some(out)
}

#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    pub cwd: String,
    pub start: Anchor,
    pub exec_seq: u32,
    pub is_root: bool,
    pub forked: bool,
}

/// This image's executable (`/proc/self/exe`), read once: a fork child runs
/// the same one, and `exec` starts a new image with its own statics.
pub fn own_exe() -> &'static str {
    static EXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

impl ProcessInfo {
    pub fn capture(start: Anchor) -> ProcessInfo {
        let pid = sys::getpid();
        let exe = own_exe().to_owned();
        let argv = startup_argv().unwrap_or_else(|| {
            std::fs::read("/proc/self/cmdline")
                .map(|b| {
                    b.split(|&c| c == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                })
                .unwrap_or_default()
        });
        let cwd = std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let exec_seq = startup_exec_seq();
        let ppid = sys::getppid();
        let is_root = match launcher_pid() {
            Some(launcher) => launcher == ppid && exec_seq == 0,
            None => sys::getenv(ROOT_VAR).is_none(),
        };
        ProcessInfo {
            pid,
            ppid,
            exe,
            argv,
            cwd,
            start,
            exec_seq,
            is_root,
            forked: false,
        }
    }

    /// Base name of the executable (for `%e`).
    pub fn exe_name(&self) -> &str {
        let from_exe = self.exe.rsplit('/').next().unwrap_or("");
        if !from_exe.is_empty() {
            return from_exe;
        }
        self.argv
            .first()
            .and_then(|a| a.rsplit('/').next())
            .unwrap_or("unknown")
    }

    /// Becomes the child's image after `fork()`.
    pub fn after_fork(&mut self, start: Anchor) {
        self.pid = sys::getpid();
        self.ppid = sys::getppid();
        self.start = start;
        self.exec_seq = 0;
        self.is_root = false;
        self.forked = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exe_name_falls_back_to_argv() {
        let mut p = ProcessInfo::capture(crate::clock::Anchor::take());
        assert!(!p.exe_name().is_empty());
        p.exe.clear();
        p.argv = vec!["/usr/bin/tool".into()];
        assert_eq!(p.exe_name(), "tool");
    }
}
