//! `MEMSCOPE_EXEC_SEQ`: what an image tells the one it `exec`s (the same
//! pid) through the environment `exec` hands it, read once at start-up and
//! then removed from the program's environment (see preload's `exec`).
//!
//! `<pid>:<n>[:<marks>]`: the new image is the `n`-th of `pid` that
//! records; `^<ppid>:0[:<marks>]` is for a child `posix_spawn` makes, whose
//! pid the spawning process does not know yet but whose parent it is. Each
//! mark is a fact that the `exec` keeps and the new image would otherwise
//! pay to learn again:
//! - [`IN_RUN_PID_NS_MARK`]: the pid shares `run`'s pid namespace (see
//!   `crate::detach`; ~80 µs of /proc at each exit);
//! - [`TSC_MARK`]: the kernel's clock source is the TSC (see
//!   `crate::clock`; ~20 µs of sysfs at each start).
//!
//! Below `clock` and `process`, which both read it.

use crate::sys;

/// The variable's name.
pub const EXEC_SEQ_VAR: &std::ffi::CStr = c"MEMSCOPE_EXEC_SEQ";
/// The mark of a pid known to share `run`'s pid namespace.
pub const IN_RUN_PID_NS_MARK: char = 'r';
/// The mark of a kernel whose clock source is the TSC.
pub const TSC_MARK: char = 't';

/// What `MEMSCOPE_EXEC_SEQ` told this image at start-up.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ExecSeq {
    /// This image's number among the images of its pid that record (0 in
    /// a fork child, which is a pid's first image).
    pub n: u32,
    /// The image before it knew that this pid shares `run`'s pid namespace.
    pub in_run_pid_ns: bool,
    /// The image before it found the kernel's clock source to be the TSC.
    pub tsc: bool,
}

fn startup() -> ExecSeq {
    static AT_START: std::sync::OnceLock<(u32, ExecSeq)> = std::sync::OnceLock::new();
    let &(pid, seq) = AT_START.get_or_init(|| {
        let pid = sys::getpid();
        let seq = sys::getenv(EXEC_SEQ_VAR).and_then(|v| parse_exec_seq(v, pid, sys::getppid()));
        (pid, seq.unwrap_or_default())
    });
    if pid == sys::getpid() {
        seq
    } else {
        ExecSeq::default()
    }
}

/// This image's number among the images of its pid that record, as the
/// image before it said; 0 in a fork child.
pub fn startup_exec_seq() -> u32 {
    startup().n
}

/// Whether the image before this one (the same pid, before its `exec`) knew
/// that this pid shares `run`'s pid namespace.
pub fn startup_in_run_pid_ns() -> bool {
    startup().in_run_pid_ns
}

/// Whether the image before this one found the clock source to be the TSC.
pub fn startup_tsc() -> bool {
    startup().tsc
}

/// Parses `MEMSCOPE_EXEC_SEQ` when it is meant for `pid`, or for a child
/// of `ppid` (a parent that died before the child read it is not `ppid`
/// any more: the child then takes nothing).
pub fn parse_exec_seq(v: &[u8], pid: u32, ppid: u32) -> Option<ExecSeq> {
    let s = std::str::from_utf8(v).ok()?;
    let (p, rest) = s.split_once(':')?;
    let meant_for = match p.strip_prefix('^') {
        Some(parent) => parent.parse::<u32>().ok()? == ppid && ppid != 0,
        None => p.parse::<u32>().ok()? == pid,
    };
    if !meant_for {
        return None;
    }
    let (n, marks) = rest.split_once(':').unwrap_or((rest, ""));
    Some(ExecSeq {
        n: n.parse().ok()?,
        in_run_pid_ns: marks.contains(IN_RUN_PID_NS_MARK),
        tsc: marks.contains(TSC_MARK),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_seq_only_for_the_same_pid_with_its_marks() {
        let seq = |n, in_run_pid_ns, tsc| Some(ExecSeq { n, in_run_pid_ns, tsc });
        assert_eq!(parse_exec_seq(b"42:3", 42, 1), seq(3, false, false));
        assert_eq!(parse_exec_seq(b"42:3:r", 42, 1), seq(3, true, false));
        assert_eq!(parse_exec_seq(b"42:3:rt", 42, 1), seq(3, true, true));
        assert_eq!(parse_exec_seq(b"42:3:t", 42, 1), seq(3, false, true));
        assert_eq!(parse_exec_seq(b"42:3:x", 42, 1), seq(3, false, false));
        assert_eq!(parse_exec_seq(b"42:3:r", 43, 1), None);
        assert_eq!(parse_exec_seq(b"42:", 42, 1), None);
        assert_eq!(parse_exec_seq(b"junk", 42, 1), None);
        // For a child of 7 (posix_spawn's), whatever its own pid.
        assert_eq!(parse_exec_seq(b"^7:0:rt", 42, 7), seq(0, true, true));
        assert_eq!(parse_exec_seq(b"^7:0:rt", 7, 8), None);
        assert_eq!(parse_exec_seq(b"^0:0:rt", 42, 0), None);
    }
}
