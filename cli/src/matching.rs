//! A run as `check` and `diff` see it: every process image of a `run`
//! (read through its manifest, [`crate::runfile`]) or a single snapshot,
//! grouped by executable, and the processes of two runs matched.
//!
//! Matching: by executable first — its file name, with the hash cargo
//! appends to test binaries (`my_tests-0123456789abcdef`) dropped, since
//! the directory and the hash change between machines and checkouts. Where
//! one executable ran several times, its processes are matched by order of
//! start: the first `cc` of base with the first `cc` of new. Not by argv:
//! the arguments are what changes between the two runs (an input size, a
//! temporary path), while a serial test run starts its processes in the
//! same order every time. (A parallel `make -j` may shuffle them; each
//! group's totals, which do not depend on the pairing, are shown too.)
//!
//! What is gated: every executable one of whose processes reached a heap
//! peak of [`TRIVIAL_PEAK`] — shells, `env` and the like allocate a few KiB
//! at start-up, where a few bytes more environment read as a large
//! percentage — or, with `--process GLOB`, exactly the executables named.

use crate::run::digest::{read_all, Collected, Digest};
use crate::runfile::{self, Input};
use crate::text::term;
use std::path::Path;

/// A process whose heap peak stays below this is not gated by default.
pub const TRIVIAL_PEAK: u64 = 16 << 10;

/// Characters of a run's command shown (a `sh -c` script can be long).
const COMMAND_CHARS: usize = 100;

/// The processes of one run (or one snapshot).
pub struct RunSet {
    /// How to name it: "run of CMD" or the snapshot's process; unescaped.
    pub label: String,
    /// Images that allocated something themselves (a fork child that only
    /// inherited its parent's heap has nothing of its own to compare).
    pub images: Vec<Digest>,
    /// Images left out: fork children that only inherited, and images the
    /// manifest lists without a snapshot (`run --skip`).
    pub left_out: usize,
}

impl RunSet {
    /// "run of CMD (12 processes; 3 left out: …)", unescaped.
    pub fn describe(&self) -> String {
        let n = self.images.len();
        format!(
            "{} ({n} process{}{})",
            self.label,
            if n == 1 { "" } else { "es" },
            if self.left_out > 0 {
                format!(
                    "; {} more left out: fork children that only inherited, images that recorded nothing",
                    self.left_out
                )
            } else {
                String::new()
            }
        )
    }
}

/// Reads the snapshot, run manifest or run directory at `path`.
pub fn load(path: &Path) -> Result<RunSet, String> {
    let (label, digests, no_snapshot) = match runfile::classify(path)? {
        Input::Snapshot(p) => {
            let s = crate::load::snapshot(&p)?;
            let label = crate::summary::who(&s.process);
            let mut c = Collected::default();
            c.add(p, &s);
            (label, read_all(Vec::new(), c), 0)
        }
        Input::Run(m) => {
            let manifest = runfile::read(&m)?;
            let (paths, none) = runfile::snapshots(&manifest, &m);
            let d = read_all(paths, Collected::default());
            if let Some(e) = d.errors.first() {
                return Err(format!(
                    "the run {} lists a snapshot that cannot be used: {e}",
                    term(&m.display().to_string())
                ));
            }
            let mut cmd = manifest.command.join(" ");
            if let Some((cut, _)) = cmd.char_indices().nth(COMMAND_CHARS) {
                cmd.truncate(cut);
                cmd.push('…');
            }
            (format!("run of {cmd}"), d, none)
        }
    };
    let total = digests.all.len();
    let images: Vec<Digest> = digests.all.into_iter().filter(|d| !d.row.inherited_only()).collect();
    Ok(RunSet {
        label,
        left_out: no_snapshot + total - images.len(),
        images,
    })
}

/// The executable's name as runs are matched by it (see the module doc).
pub fn key(exe: &str) -> String {
    let name = exe.rsplit('/').next().unwrap_or(exe);
    match name.rsplit_once('-') {
        Some((stem, hash)) if !stem.is_empty() && hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            stem.to_string()
        }
        _ => name.to_string(),
    }
}

/// Which executables are gated: `--process GLOB`s, or by size.
pub struct Select {
    patterns: Vec<(String, glob::Pattern)>,
}

impl Select {
    pub fn new(globs: &[String]) -> Result<Select, String> {
        let patterns = globs
            .iter()
            .map(|g| {
                glob::Pattern::new(g)
                    .map(|p| (g.clone(), p))
                    .map_err(|e| format!("--process {}: {}", term(g), term(&e.to_string())))
            })
            .collect::<Result<_, _>>()?;
        Ok(Select { patterns })
    }

    /// How the gated set was chosen, for the output.
    pub fn describe(&self) -> String {
        if self.patterns.is_empty() {
            format!(
                "every executable with a process whose peak heap reached {} (choose with --process)",
                crate::text::bytes(TRIVIAL_PEAK)
            )
        } else {
            let names: Vec<String> = self.patterns.iter().map(|(g, _)| term(g)).collect();
            format!("the executables matching {}", names.join(", "))
        }
    }

    /// Does a pattern name `exe` (by file name, or whole path when the
    /// pattern has a `/`)?
    fn names(&self, pattern: &glob::Pattern, exe: &str) -> bool {
        let name = exe.rsplit('/').next().unwrap_or(exe);
        pattern.matches(name) || pattern.matches(&key(exe)) || (pattern.as_str().contains('/') && pattern.matches(exe))
    }
}

/// The processes of one executable in base and in new, each in order of start.
pub struct Group<'a> {
    pub key: String,
    pub base: Vec<&'a Digest>,
    pub new: Vec<&'a Digest>,
    pub gated: bool,
}

impl<'a> Group<'a> {
    /// Base and new processes matched by order of start (`None` where one
    /// run has fewer).
    pub fn pairs(&self) -> impl Iterator<Item = (Option<&'a Digest>, Option<&'a Digest>)> + '_ {
        (0..self.base.len().max(self.new.len())).map(|i| (self.base.get(i).copied(), self.new.get(i).copied()))
    }
}

/// Groups the processes of `base` and `new` by executable (see [`key`]),
/// and marks the gated groups. A `--process` pattern that names no process
/// of either run is an error (a typo would gate nothing).
pub fn groups<'a>(base: &'a [Digest], new: &'a [Digest], sel: &Select) -> Result<Vec<Group<'a>>, String> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut slot = std::collections::HashMap::new();
    for (side, is_new) in [(base, false), (new, true)] {
        for d in side {
            let k = key(&d.row.exe);
            let i = *slot.entry(k.clone()).or_insert_with(|| {
                groups.push(Group {
                    key: k,
                    base: Vec::new(),
                    new: Vec::new(),
                    gated: false,
                });
                groups.len() - 1
            });
            let g = &mut groups[i];
            if is_new { &mut g.new } else { &mut g.base }.push(d);
        }
    }
    for g in &mut groups {
        for v in [&mut g.base, &mut g.new] {
            v.sort_by_key(|d| (d.process.start_unix_ns, d.process.pid, d.process.exec_seq));
        }
    }
    if sel.patterns.is_empty() {
        for g in &mut groups {
            g.gated = g
                .base
                .iter()
                .chain(&g.new)
                .any(|d| d.row.summary.peak_live_bytes >= TRIVIAL_PEAK);
        }
        if !groups.iter().any(|g| g.gated) {
            // Nothing but small processes: gate them all rather than nothing.
            groups.iter_mut().for_each(|g| g.gated = true);
        }
    } else {
        for (glob, p) in &sel.patterns {
            let mut any = false;
            for g in &mut groups {
                if g.base.iter().chain(&g.new).any(|d| sel.names(p, &d.row.exe)) {
                    g.gated = true;
                    any = true;
                }
            }
            if !any {
                return Err(format!("--process {} names no process of the run", term(glob)));
            }
        }
    }
    Ok(groups)
}

/// `n`-th as English: 1st, 2nd, 3rd, 4th, 11th, 21st…
pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_match_by_name_without_cargos_hash() {
        assert_eq!(key("/home/a/target/debug/deps/my_tests-0123456789abcdef"), "my_tests");
        assert_eq!(key("/usr/bin/x86_64-linux-gnu-gcc-12"), "x86_64-linux-gnu-gcc-12");
        assert_eq!(key("/usr/bin/dash"), "dash");
        assert_eq!(key("prog"), "prog");
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(23), "23rd");
    }
}
