//! Which processes of a run are its subject: which images record
//! (`--only`, `--skip`, `--all`, and the default under a cargo command,
//! passed to the library as `MEMSCOPE_ONLY` / `MEMSCOPE_SKIP`), which one
//! the summary and the report lead with, and the warning for a pattern
//! that matched no process.

use super::digest::Digest;
use crate::text::term;
use memscope_engine::select::{matches, SKIP_LOG_VAR, SKIP_VAR};
use memscope_report::groups::heavier_first;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Programs that start the program of interest rather than being it: the
/// summary leads with another process when there is one.
const LAUNCHERS: [&str; 24] = [
    "cargo", "rustup", "rustc", "rustdoc", "cc", "c++", "gcc", "g++", "clang", "clang++", "ld", "ld.lld", "rust-lld",
    "collect2", "make", "sh", "bash", "dash", "zsh", "env", "xargs", "nohup", "timeout", "time",
];

/// How `run` chose the images that record.
pub enum Focus {
    /// No choice: every image records; the summary leads with the process
    /// that allocated most among non-launchers.
    Everything,
    /// `--all` under a cargo command: everything records, the programs
    /// cargo runs from `target` lead.
    AllUnderCargo { target: PathBuf },
    /// The default under `cargo run|test|bench`.
    Cargo { sub: String, target: PathBuf },
    /// `--only` / `--skip` patterns.
    Patterns { only: Vec<String>, skip: Vec<String> },
}

impl Focus {
    /// Decides from the command line: `all`, `only`, `skip` are `run`'s options.
    pub fn choose(command: &[OsString], all: bool, only: &[String], skip: &[String]) -> Result<Focus, String> {
        for p in only.iter().chain(skip) {
            if p.is_empty() || p.contains(':') {
                return Err(format!(
                    "--only/--skip take one non-empty pattern without ':' each, not {}",
                    term(&format!("{p:?}"))
                ));
            }
        }
        if !only.is_empty() || !skip.is_empty() {
            return Ok(Focus::Patterns {
                only: only.to_vec(),
                skip: skip.to_vec(),
            });
        }
        let Some((sub, args)) = super::cargo::running_subcommand(command) else {
            return Ok(Focus::Everything);
        };
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let target = super::cargo::target_dir(args, &cwd);
        if all || target.as_os_str().as_bytes().contains(&b':') {
            return Ok(Focus::AllUnderCargo { target });
        }
        Ok(Focus::Cargo {
            sub: sub.to_string(),
            target,
        })
    }

    /// Sets the library's variables on the command. `skip_log` collects
    /// the skipped images' executables.
    pub fn apply(&self, cmd: &mut Command, skip_log: &Path) {
        cmd.env_remove("MEMSCOPE_ONLY")
            .env_remove(SKIP_VAR.to_str().unwrap_or_default());
        let (only, skip) = match self {
            Focus::Everything | Focus::AllUnderCargo { .. } => return,
            Focus::Cargo { target, .. } => {
                let t = target.display().to_string();
                (vec![format!("{t}/*")], vec![format!("{t}/*/build/*")])
            }
            Focus::Patterns { only, skip } => (only.clone(), skip.clone()),
        };
        if !only.is_empty() {
            cmd.env("MEMSCOPE_ONLY", only.join(":"));
        }
        if !skip.is_empty() {
            cmd.env(SKIP_VAR.to_str().unwrap_or_default(), skip.join(":"));
        }
        cmd.env(SKIP_LOG_VAR.to_str().unwrap_or_default(), skip_log);
    }

    /// True when some images may have been skipped on purpose (the
    /// command's own image among them).
    pub fn selects(&self) -> bool {
        matches!(self, Focus::Cargo { .. } | Focus::Patterns { .. })
    }

    /// 0: the run's subject; 1: any other program; 2: a launcher.
    fn rank(&self, exe: &str) -> u8 {
        if let Focus::Cargo { target, .. } | Focus::AllUnderCargo { target } = self {
            let t = format!("{}/", target.display());
            if exe.starts_with(&t) && !matches(format!("{t}*/build/*").as_bytes(), exe.as_bytes()) {
                return 0;
            }
        }
        let name = exe.rsplit('/').next().unwrap_or(exe);
        if LAUNCHERS.contains(&name) || name.starts_with("build-script-") {
            2
        } else {
            1
        }
    }

    /// Orders `all` (heaviest first) so the run's subject comes first:
    /// the programs cargo ran, then other non-launchers, then launchers,
    /// each heaviest first. Returns whether the first changed.
    pub fn order(&self, all: &mut [Digest]) -> bool {
        let before = all.first().map(|d| d.path.clone());
        all.sort_by(|a, b| {
            self.rank(&a.process.exe)
                .cmp(&self.rank(&b.process.exe))
                .then(heavier_first(&a.row, &b.row))
        });
        all.first().map(|d| &d.path) != before.as_ref()
    }

    /// The first line's note on what was left out, e.g. `, 2 skipped (cargo,
    /// rustup; --all traces them)`.
    pub fn skipped_note(&self, skipped: &[String]) -> String {
        if skipped.is_empty() {
            return String::new();
        }
        let mut names: Vec<&str> = skipped.iter().map(|e| e.rsplit('/').next().unwrap_or(e)).collect();
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(*n));
        let shown: Vec<String> = names.iter().take(4).map(|n| term(n)).collect();
        format!(
            ", {} skipped ({}{}; --all traces them)",
            skipped.len(),
            shown.join(", "),
            if names.len() > 4 { ", …" } else { "" }
        )
    }

    /// One warning per pattern that matched no process: an `--only`
    /// pattern that no recorded image matched, a `--skip` pattern no
    /// skipped image matched.
    pub fn unmatched(&self, recorded: &[String], skipped: &[String]) -> Vec<String> {
        let Focus::Patterns { only, skip } = self else {
            return Vec::new();
        };
        let hit = |p: &str, exes: &[String]| exes.iter().any(|e| matches(p.as_bytes(), e.as_bytes()));
        let mut out = Vec::new();
        for p in only.iter().filter(|p| !hit(p, recorded)) {
            out.push(format!("--only '{}' matched no process", term(p)));
        }
        for p in skip.iter().filter(|p| !hit(p, skipped)) {
            out.push(format!("--skip '{}' matched no process", term(p)));
        }
        out
    }

    /// Why a run whose selection recorded nothing has no snapshot.
    pub fn explain_nothing(&self, cmd: &str) -> String {
        match self {
            Focus::Cargo { sub, target } => format!(
                "cargo {sub} ran no program from {} (only those are traced under cargo; --all traces every process, --only NAME chooses)",
                term(&target.display().to_string())
            ),
            _ => format!("no process of {} was chosen by --only/--skip, so nothing was traced", term(cmd)),
        }
    }

    /// Whether `exe` is the run's subject (rank 0) under a cargo command.
    pub fn is_cargo_program(&self, exe: &str) -> bool {
        matches!(self, Focus::Cargo { .. } | Focus::AllUnderCargo { .. }) && self.rank(exe) == 0
    }
}

/// The skipped images' executables, in the order they started.
pub fn read_skip_log(path: &Path) -> Vec<String> {
    std::fs::read(path)
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launchers_rank_last_and_cargo_programs_first() {
        let f = Focus::AllUnderCargo {
            target: PathBuf::from("/w/target"),
        };
        assert_eq!(f.rank("/w/target/release/seed"), 0);
        assert_eq!(f.rank("/w/target/release/build/x-1/build-script-build"), 2);
        assert_eq!(f.rank("/home/u/.cargo/bin/cargo"), 2);
        assert_eq!(f.rank("/usr/bin/python3"), 1);
        assert!(f.is_cargo_program("/w/target/debug/deps/t-12"));
    }

    #[test]
    fn patterns_are_checked_and_unmatched_ones_reported() {
        let none: [String; 0] = [];
        assert!(Focus::choose(&[], false, &["a:b".into()], &none).is_err());
        let f = Focus::choose(&["sh".into()], false, &["prog".into(), "foo".into()], &["cat".into()]).unwrap();
        let w = f.unmatched(&["/t/prog".into()], &["/bin/ls".into()]);
        assert_eq!(
            w,
            ["--only 'foo' matched no process", "--skip 'cat' matched no process"]
        );
        assert_eq!(
            f.skipped_note(&["/bin/ls".into(), "/bin/ls".into(), "/bin/x\x1b".into()]),
            ", 3 skipped (ls, x\\x1b; --all traces them)"
        );
    }
}
