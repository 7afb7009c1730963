//! A synthetic run of many processes, as `make` or `cargo build` leaves:
//! a few executables with many processes each, a dozen heavy compiler
//! processes among light ones, and shell forks that only inherited their
//! parent's heap (with the parent's big totals, which must not count).
//! Each member is made on demand from its index, so a test can read the
//! run one process at a time, as `memscope-cli run` does.

use super::{framed_snapshot, synthetic};
use memscope_format::Snapshot;

/// Executables of the run and how many processes each has (in index order).
pub const EXECUTABLES: [(&str, usize); 12] = [
    ("/usr/lib/gcc/x86_64-linux-gnu/14/cc1", 150),
    ("/usr/bin/as", 100),
    ("/bin/sh", 30),
    ("/usr/bin/make", 4),
    ("/usr/bin/ld", 3),
    ("/usr/bin/ar", 3),
    ("/usr/bin/python3", 2),
    ("/usr/bin/sed", 2),
    ("/usr/bin/grep", 2),
    ("/usr/bin/cat", 2),
    ("/usr/bin/ls", 1),
    ("/opt/x/bin/ls", 1),
];

/// Processes in the run.
pub fn run_size() -> usize {
    EXECUTABLES.iter().map(|e| e.1).sum()
}

/// The executable of member `i`.
pub fn exe_of(i: usize) -> &'static str {
    let mut left = i;
    for (exe, n) in EXECUTABLES {
        if left < n {
            return exe;
        }
        left -= n;
    }
    panic!("member {i} of a run of {}", run_size())
}

/// True for member `i` when it is a fork of the shell that only inherited.
pub fn inherited_only(i: usize) -> bool {
    exe_of(i) == "/bin/sh" && i % 3 == 0
}

/// True for the heavy members: every tenth compiler process.
pub fn heavy(i: usize) -> bool {
    exe_of(i).ends_with("/cc1") && i % 10 == 0
}

/// Member `i` of the run.
pub fn member(i: usize) -> Snapshot {
    let mut s = if heavy(i) {
        let mut s = synthetic(1_500, 100_000);
        s.variables.truncate(10);
        s.threads.truncate(4);
        s
    } else {
        framed_snapshot()
    };
    let exe = exe_of(i);
    let p = &mut s.process;
    p.pid = 10_000 + i as u32;
    p.ppid = 9_999;
    p.exe = exe.into();
    p.argv = vec![exe.rsplit('/').next().unwrap().into(), "-o".into(), format!("obj{i}.o")];
    let m = &mut s.summary;
    if inherited_only(i) {
        p.forked = true;
        // A fork child's totals continue its parent's: big, and not its own.
        m.inherited_only = true;
        m.total_allocated_bytes = 1 << 30;
    } else if heavy(i) {
        m.total_allocated_bytes += 500_000_000 + i as u64;
    } else {
        m.total_allocated_bytes = 1_000 + (i as u64 * 7_919) % 100_000;
    }
    s
}
