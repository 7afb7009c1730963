//! The outside tools and preconditions some tests need (Chromium, valgrind,
//! a static libc, root). A missing one fails the test with one line that
//! says how to get it — a test that passes by skipping proves nothing —
//! unless the user opted out explicitly with
//! `MEMSCOPE_TESTS_ALLOW_MISSING=chromium,valgrind,…` or `=all` (README).
//! Tools are found on `PATH`, as `.ci/run` finds them with `command -v`.

use std::path::{Path, PathBuf};

/// The opt-out variable: a comma-separated list of tool names, or `all`.
pub const ALLOW_MISSING: &str = "MEMSCOPE_TESTS_ALLOW_MISSING";

/// A tool or precondition a test needs: its name (the word used in
/// [`ALLOW_MISSING`]) and how to get it.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub name: &'static str,
    pub how: &'static str,
}

pub const CHROMIUM: Need = Need {
    name: "chromium",
    how: "apt-get install chromium",
};
pub const VALGRIND: Need = Need {
    name: "valgrind",
    how: "apt-get install valgrind",
};
pub const STATIC_LIBC: Need = Need {
    name: "static-libc",
    how: "apt-get install libc6-dev (gcc -static needs libc.a)",
};
pub const ROOT: Need = Need {
    name: "root",
    how: "run the tests as root (making a set-user-ID program of another user needs it)",
};

/// True when `name` is listed in `value` (the opt-out variable's value).
pub fn allowed_in(value: &str, name: &str) -> bool {
    value.split(',').map(str::trim).any(|w| w == "all" || w == name)
}

/// What a missing `need` means given the opt-out variable's `value`:
/// `Ok(note)` to skip (opted out), `Err(line)` to fail with.
pub fn verdict(value: &str, need: Need) -> Result<String, String> {
    verdict_for(value, need.name, need.how)
}

fn verdict_for(value: &str, name: &str, how: &str) -> Result<String, String> {
    if allowed_in(value, name) {
        return Ok(format!("SKIPPED ({ALLOW_MISSING}={value}): {name} is missing"));
    }
    Err(format!(
        "{name} is missing: {how} (or set {ALLOW_MISSING}={name} to skip the tests that need it)"
    ))
}

/// When `need` is missing: fails the calling test with one line saying how
/// to get it, or — opted out — notes the skip on stderr and returns.
#[track_caller]
pub fn missing(need: Need) {
    missing_named(need.name, need.how);
}

#[track_caller]
fn missing_named(name: &str, how: &str) {
    match verdict_for(&std::env::var(ALLOW_MISSING).unwrap_or_default(), name, how) {
        Ok(note) => eprintln!("{note}"),
        Err(line) => panic!("{line}"),
    }
}

/// The PATH tests that run real programs use: the system's programs, not a
/// user's shims (a pyenv `python3` is a shell script that runs others).
pub const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The program `name` (from Debian's `package`) on [`SYSTEM_PATH`]; when it
/// is missing the test fails saying how to install it, or — the user opted
/// out with `MEMSCOPE_TESTS_ALLOW_MISSING=name` — `None` (skip).
#[track_caller]
pub fn program(name: &str, package: &str) -> Option<PathBuf> {
    let found = on_path_in(SYSTEM_PATH.as_ref(), &[name]);
    if found.is_none() {
        missing_named(name, &format!("apt-get install {package} (.ci/run installs it)"));
    }
    found
}

/// The first of `names` found on `PATH` (`command -v`'s answer).
pub fn on_path(names: &[&str]) -> Option<PathBuf> {
    on_path_in(&std::env::var_os("PATH")?, names)
}

/// The first of `names` found in the directories of `path` (a PATH value).
pub fn on_path_in(path: &std::ffi::OsStr, names: &[&str]) -> Option<PathBuf> {
    names.iter().find_map(|name| {
        std::env::split_paths(path)
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The tool `need` found on `PATH` under one of `names`; `None` only when
/// it is missing and the user opted out (otherwise the test fails).
#[track_caller]
pub fn find(need: Need, names: &[&str]) -> Option<PathBuf> {
    match on_path(names) {
        Some(p) => Some(p),
        None => {
            missing(need);
            None
        }
    }
}

/// Chromium, as Debian (`chromium`) or Ubuntu (`chromium-browser`) names it.
#[track_caller]
pub fn chromium() -> Option<PathBuf> {
    find(CHROMIUM, &["chromium", "chromium-browser"])
}

/// valgrind (for `--tool=dhat`): true when present.
#[track_caller]
pub fn valgrind() -> bool {
    find(VALGRIND, &["valgrind"]).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opt_out_lists_tools_or_all() {
        assert!(allowed_in("all", "chromium"));
        assert!(allowed_in("valgrind, chromium", "chromium"));
        assert!(!allowed_in("valgrind", "chromium"));
        assert!(!allowed_in("", "chromium"));
        assert!(!allowed_in("chromium-browser", "chromium"));
    }

    #[test]
    fn lookup_follows_path() {
        let sh = on_path(&["no-such-tool-xyz", "sh"]).expect("sh is on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(on_path(&["no-such-tool-xyz"]), None);
    }

    #[test]
    fn a_missing_tool_fails_with_how_to_get_it_unless_opted_out() {
        assert_eq!(
            verdict("valgrind", CHROMIUM),
            Err("chromium is missing: apt-get install chromium (or set \
                 MEMSCOPE_TESTS_ALLOW_MISSING=chromium to skip the tests that need it)"
                .into())
        );
        assert!(verdict("all", CHROMIUM).unwrap().starts_with("SKIPPED"));
        assert!(verdict("chromium", CHROMIUM).is_ok());
    }
}
