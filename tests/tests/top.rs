//! `memscope-cli top PID` in a real terminal (tmux): the live view shows
//! what the program holds as it changes, and `q` / Ctrl-C leave it with the
//! program untouched (issue 16).

use memscope_tests::running::*;
use memscope_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs tmux with `args`; a missing tmux fails the test with how to get it.
fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tmux ({e}): install it (apt-get install tmux)"));
    assert!(
        out.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tmux session running `memscope-cli top PID` (then `echo EXIT=$?`).
struct Screen {
    name: String,
}

impl Screen {
    fn start(name: &str, pid: u32) -> Screen {
        Screen::command(name, &format!("{} top {pid}", cli_path().display()))
    }

    /// A tmux session running `cmd` (a shell command line), then `echo EXIT=$?`.
    fn command(name: &str, cmd: &str) -> Screen {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &format!("={name}")])
            .output();
        let cmd = format!("{cmd}; echo EXIT=$?; sleep 60");
        tmux(&["new-session", "-d", "-s", name, "-x", "120", "-y", "32", &cmd]);
        Screen { name: name.to_string() }
    }

    /// The session exactly (a bare name would also match a longer one).
    fn target(&self) -> String {
        format!("={}", self.name)
    }

    fn capture(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &format!("{}:", self.target())])
    }

    /// Waits (at most 20 s) until the pane shows something `pred` accepts.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.capture();
            if pred(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "waiting for {what}; the pane shows:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn keys(&self, keys: &str) {
        tmux(&["send-keys", "-t", &format!("{}:", self.target()), keys]);
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.target()])
            .output();
    }
}

/// The line of a site in the pane.
fn line_of<'a>(text: &'a str, site: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(site)).collect()
}

/// The test program, traced, and `top` watching it in tmux session `test`.
fn watched(test: &str) -> (std::path::PathBuf, Live, Screen) {
    let dir = scratch(test);
    let p = Live::preloaded(&dir, &[]);
    let screen = Screen::start(&format!("memscope-{test}"), p.pid);
    screen.wait_for("the first screen", |t| t.contains("heap now:"));
    (dir, p, screen)
}

#[test]
fn top_shows_the_heap_as_it_changes_and_q_leaves_it() {
    let (dir, mut p, screen) = watched("top_q");
    assert_eq!(p.send("hold 1000 7777"), (1000, 7_777_000));
    let text = screen.wait_for("hold_blocks", |t| t.contains("hold_blocks"));
    // 7,777,000 B = 7.42 MiB, from 1,000 blocks, all grown since the start.
    let rows = line_of(&text, "hold_blocks");
    assert_eq!(rows.len(), 2, "once by live bytes, once by growth:\n{text}");
    assert!(
        rows.iter().all(|l| l.contains("7.42 MiB") && l.contains("1,000")),
        "{text}"
    );
    assert!(text.contains("+7.42 MiB"), "{text}");
    assert_eq!(p.send("grow 300 50000"), (1300, 7_777_000 + 15_000_000));
    let text = screen.wait_for("grow_blocks", |t| t.contains("grow_blocks"));
    let rows = line_of(&text, "grow_blocks");
    assert!(
        rows.iter().all(|l| l.contains("14.3 MiB") && l.contains("300")),
        "{text}"
    );
    // The bigger site comes first in both tables.
    let first_live = text.lines().position(|l| l.contains("grow_blocks")).unwrap();
    assert!(
        first_live < text.lines().position(|l| l.contains("hold_blocks")).unwrap(),
        "{text}"
    );
    assert!(text.contains("peak so far:") && text.contains("resident:"), "{text}");
    assert!(text.contains(&format!("(pid {})", p.pid)), "{text}");

    screen.keys("q");
    screen.wait_for("top to leave", |t| t.contains("EXIT=0"));
    // The program did not notice: it still answers and ends normally.
    assert_eq!(p.send("free"), (0, 0));
    let out = p.quit();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(running_snapshots_left(&dir), 0);
}

/// Running snapshots in `dir`: `top` writes its samples to a private
/// temporary directory, never beside the program's own snapshots.
/// (it writes its samples to a private temporary directory).
fn running_snapshots_left(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".at-"))
        .count()
}

#[test]
fn ctrl_c_leaves_top_and_the_program_goes_on() {
    let (_dir, mut p, screen) = watched("top_ctrl_c");
    screen.keys("C-c");
    screen.wait_for("top to leave", |t| t.contains("EXIT=0"));
    assert_eq!(p.send("hold 10 10"), (10, 100));
    assert_eq!(p.quit().status.code(), Some(0));
}

#[test]
fn top_of_a_process_that_is_not_traced_is_one_line_and_exit_2() {
    let dir = scratch("top_bad");
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let o = memscope_tests::cli::cli(&dir, &["top", &sleeper.id().to_string()]);
    let err = memscope_tests::cli::assert_one_line_error(&o, "untraced");
    assert!(err.contains("not traced"), "{err}");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

/// `memscope-cli run --live -o <dir>/out.json ARGS` in tmux, once its view shows.
fn run_live(test: &str, args: &str) -> (std::path::PathBuf, Screen, String) {
    let dir = scratch(test);
    let cmd = format!(
        "cd {} && {} run --live -o out.json {args}",
        dir.display(),
        cli_path().display()
    );
    let screen = Screen::command(&format!("memscope-{test}"), &cmd);
    let view = screen.wait_for("the live view", |t| t.contains("heap now:"));
    (dir, screen, view)
}

#[test]
fn run_live_shows_the_view_until_the_command_ends_then_the_summary() {
    let (dir, screen, view) = run_live("top_run_live", "sleep 2");
    assert!(view.contains("sleep"), "{view}");
    let after = screen.wait_for("run's summary", |t| t.contains("EXIT=0"));
    assert!(after.contains("memscope: sleep exited with code 0"), "{after}");
    let s = memscope_format::read_snapshot_file(&dir.join("out.json")).unwrap();
    assert_eq!(s.process.end, memscope_format::EndKind::Exit);
}

#[test]
fn q_leaves_run_lives_view_and_the_command_goes_on() {
    let (_dir, screen, _) = run_live("top_run_live_q", "sh -c 'sleep 3; echo done-$((6*7))'");
    screen.keys("q");
    let after = screen.wait_for("the command's end", |t| t.contains("EXIT=0"));
    assert!(after.contains("done-42"), "the command went on: {after}");
    assert!(after.contains("memscope: sh exited with code 0"), "{after}");
}
