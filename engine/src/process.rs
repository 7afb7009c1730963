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
/// `<pid>:<n>`: the image about to be exec'd by `pid` is its n-th.
pub const EXEC_SEQ_VAR: &std::ffi::CStr = c"MEMSCOPE_EXEC_SEQ";

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

/// What `MEMSCOPE_EXEC_SEQ` told this image at start-up (read once: the
/// variable is then removed from the program's environment).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ExecSeq {
    /// This image's number among the images of its pid that record (0 in
    /// a fork child, which is a pid's first image).
    pub n: u32,
    /// The image before it knew that this pid shares `run`'s pid namespace
    /// (see `crate::detach`): an `exec` keeps the namespace.
    pub in_run_pid_ns: bool,
}

/// The mark `<pid>:<n>:` ends with when the image before knew its pid
/// shares `run`'s pid namespace.
pub const IN_RUN_PID_NS_MARK: &str = "r";

fn startup() -> ExecSeq {
    static AT_START: std::sync::OnceLock<(u32, ExecSeq)> = std::sync::OnceLock::new();
    let &(pid, seq) = AT_START.get_or_init(|| {
        let pid = sys::getpid();
        let seq = sys::getenv(EXEC_SEQ_VAR).and_then(|v| parse_exec_seq(v, pid));
        (pid, seq.unwrap_or_default())
    });
    if pid == sys::getpid() {
        seq
    } else {
        ExecSeq::default()
    }
}

/// This image's number among the images of its pid that record, as the
/// image before it said (`MEMSCOPE_EXEC_SEQ`); 0 in a fork child.
pub fn startup_exec_seq() -> u32 {
    startup().n
}

/// Whether the image before this one (the same pid, before its `exec`) knew
/// that this pid shares `run`'s pid namespace.
pub fn startup_in_run_pid_ns() -> bool {
    startup().in_run_pid_ns
}

/// Parses `MEMSCOPE_EXEC_SEQ` (`<pid>:<n>`, or `<pid>:<n>:r`) when it is
/// meant for `pid`.
pub fn parse_exec_seq(v: &[u8], pid: u32) -> Option<ExecSeq> {
    let s = std::str::from_utf8(v).ok()?;
    let (p, rest) = s.split_once(':')?;
    if p.parse::<u32>().ok()? != pid {
        return None;
    }
    let (n, mark) = rest.split_once(':').unwrap_or((rest, ""));
    Some(ExecSeq {
        n: n.parse().ok()?,
        in_run_pid_ns: mark == IN_RUN_PID_NS_MARK,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_seq_only_for_the_same_pid() {
        let seq = |n, in_run_pid_ns| Some(ExecSeq { n, in_run_pid_ns });
        assert_eq!(parse_exec_seq(b"42:3", 42), seq(3, false));
        assert_eq!(parse_exec_seq(b"42:3:r", 42), seq(3, true));
        assert_eq!(parse_exec_seq(b"42:3:x", 42), seq(3, false));
        assert_eq!(parse_exec_seq(b"42:3:r", 43), None);
        assert_eq!(parse_exec_seq(b"42:", 42), None);
        assert_eq!(parse_exec_seq(b"junk", 42), None);
    }

    #[test]
    fn exe_name_falls_back_to_argv() {
        let mut p = ProcessInfo::capture(crate::clock::Anchor::take());
        assert!(!p.exe_name().is_empty());
        p.exe.clear();
        p.argv = vec!["/usr/bin/tool".into()];
        assert_eq!(p.exe_name(), "tool");
    }
}
