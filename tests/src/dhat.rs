//! Runs a program under `valgrind --tool=dhat` and sums its profile, for
//! cross-checking memscope's counts (SPEC §6: DHAT's blocks =
//! `total_allocations + reallocs`; its bytes count a realloc's new size).

use std::path::Path;
use std::process::Command;

/// DHAT's totals over every program point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub blocks: u64,
    pub bytes: u64,
    pub gmax_blocks: u64,
    pub gmax_bytes: u64,
    pub end_blocks: u64,
    pub end_bytes: u64,
}

impl std::ops::Sub for Totals {
    type Output = Totals;
    fn sub(self, b: Totals) -> Totals {
        Totals {
            blocks: self.blocks.wrapping_sub(b.blocks),
            bytes: self.bytes.wrapping_sub(b.bytes),
            gmax_blocks: self.gmax_blocks.saturating_sub(b.gmax_blocks),
            gmax_bytes: self.gmax_bytes.saturating_sub(b.gmax_bytes),
            end_blocks: self.end_blocks.wrapping_sub(b.end_blocks),
            end_bytes: self.end_bytes.wrapping_sub(b.end_bytes),
        }
    }
}

/// True when valgrind is on `PATH`; when it is not, the calling test fails
/// saying how to install it, unless the user opted out
/// ([`crate::tools::ALLOW_MISSING`]) — then false, and the caller skips.
#[track_caller]
pub fn available() -> bool {
    crate::tools::valgrind()
}

/// Runs `program args` under DHAT (without libc/libstdc++ freeres, so the
/// end state matches a native run) and sums its program points.
pub fn run(program: &Path, args: &[&str], out_dir: &Path) -> Totals {
    let out = out_dir.join("dhat.json");
    let st = Command::new("valgrind")
        .args(["--tool=dhat", "--run-libc-freeres=no", "--run-cxx-freeres=no", "-q"])
        .arg(format!("--dhat-out-file={}", out.display()))
        .arg(program)
        .args(args)
        .output()
        .expect("run valgrind");
    // valgrind exits as the program did: every program compared with
    // DHAT here exits 0, so anything else is a failed run, not a profile.
    assert!(
        st.status.success(),
        "valgrind --tool=dhat {}: {:?}, stderr {}",
        program.display(),
        st.status,
        String::from_utf8_lossy(&st.stderr)
    );
    read(&out)
}

/// Each program point of a DHAT output file as (blocks, bytes, blocks and
/// bytes at the global peak, blocks and bytes at the end), sorted.
pub fn points(out: &Path) -> Vec<[u64; 6]> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out).expect("dhat output")).expect("dhat json");
    let mut pps: Vec<[u64; 6]> = v["pps"]
        .as_array()
        .expect("pps")
        .iter()
        .map(|pp| ["tbk", "tb", "gbk", "gb", "ebk", "eb"].map(|k| pp[k].as_u64().unwrap_or(0)))
        .collect();
    pps.sort();
    pps
}

/// Sums the program points of a DHAT output file.
pub fn read(out: &Path) -> Totals {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out).expect("dhat output")).expect("dhat json");
    let mut t = Totals::default();
    for pp in v["pps"].as_array().expect("pps") {
        let n = |k: &str| pp[k].as_u64().unwrap_or(0);
        t.blocks += n("tbk");
        t.bytes += n("tb");
        t.gmax_blocks += n("gbk");
        t.gmax_bytes += n("gb");
        t.end_blocks += n("ebk");
        t.end_bytes += n("eb");
    }
    t
}
