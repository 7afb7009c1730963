//! `memscope-cli completions bash|zsh|fish` loaded into the real shells
//! (bash, and Debian's `zsh` and `fish`, which `.ci/run` installs), and
//! `--version` naming the version and the commit the CLI was built from.

use memscope_tests::cli::*;
use memscope_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The completion script for `shell`, written to `dir`.
fn script(dir: &Path, shell: &str) -> PathBuf {
    let out = cli(dir, &["completions", shell]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let path = dir.join(format!("memscope-cli.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// Runs `shell args…`; a missing shell fails with how to install it.
fn shell(shell: &str, args: &[&str]) -> String {
    let out = Command::new(shell)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell} ({e}): apt-get install {shell} (.ci/run installs it)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shell} {args:?}: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// What bash's programmable completion offers for `words`, the last being
/// the word under the cursor.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let n = words.len();
    let prev = if n >= 2 { words[n - 2] } else { "" };
    let cmd = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; _memscope__cli memscope-cli '{}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        n - 1,
        words[n - 1],
    );
    shell("bash", &["--norc", "-c", &cmd])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_commands_options_and_values() {
    let dir = scratch("cli_completions_bash");
    let s = script(&dir, "bash");
    assert_eq!(bash_complete(&s, &["memscope-cli", "ex"]), ["export"]);
    assert_eq!(bash_complete(&s, &["memscope-cli", "c"]), ["check", "completions"]);
    assert_eq!(
        bash_complete(&s, &["memscope-cli", "export", "s.json", "--to", ""]),
        ["dhat", "folded", "pprof"]
    );
    assert_eq!(bash_complete(&s, &["memscope-cli", "run", "--ex"]), ["--export"]);
    assert_eq!(
        bash_complete(&s, &["memscope-cli", "completions", ""]),
        ["-h", "--help", "bash", "elvish", "fish", "powershell", "zsh"]
    );
}

#[test]
fn fish_completes_commands_and_values() {
    let dir = scratch("cli_completions_fish");
    let s = script(&dir, "fish");
    let complete = |line: &str| -> Vec<String> {
        let cmd = format!("source '{}'; complete -C '{line}'", s.display());
        let out = shell("fish", &["--no-config", "-c", &cmd]);
        // `candidate<TAB>description` per line.
        out.lines().map(|l| l.split('\t').next().unwrap().to_string()).collect()
    };
    let top = complete("memscope-cli ");
    for c in ["run", "summary", "check", "diff", "export", "analyze", "completions"] {
        assert!(top.iter().any(|t| t == c), "{c} in {top:?}");
    }
    assert_eq!(
        complete("memscope-cli export s.json --to "),
        ["dhat", "folded", "pprof"]
    );
}

#[test]
fn zsh_loads_the_completion_function() {
    let dir = scratch("cli_completions_zsh");
    let s = script(&dir, "zsh");
    let text = std::fs::read_to_string(&s).unwrap();
    assert!(
        text.starts_with("#compdef memscope-cli"),
        "{}",
        &text[..80.min(text.len())]
    );
    assert!(text.contains("pprof") && text.contains("completions"));
    shell("zsh", &["-n", s.to_str().unwrap()]);
    let cmd = format!(
        "autoload -U compinit; compinit -u -d '{}/zcompdump'; source '{}'; whence -w _memscope-cli",
        dir.display(),
        s.display()
    );
    assert_eq!(shell("zsh", &["-f", "-c", &cmd]).trim(), "_memscope-cli: function");
}

#[test]
fn version_names_the_build() {
    let dir = scratch("cli_version");
    let out = cli(&dir, &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        stdout(&out),
        format!("memscope-cli {} (commit {commit})\n", env!("CARGO_PKG_VERSION"))
    );
}
