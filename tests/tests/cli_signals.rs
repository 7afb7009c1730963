//! Signals sent to `memscope-cli run` reach the command exactly once, and
//! the snapshot and report are still written (SPEC §4, issue 9).

use memscope_format::EndKind;
use memscope_tests::cli::*;
use memscope_tests::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Starts `run --export both -o <dir>/s.json cli_prog MODE` and returns once
/// the program said "ready".
fn start(dir: &std::path::Path, mode: &str) -> Child {
    let mut child = command(dir)
        .args(["run", "--export", "both", "-o", "s.json"])
        .arg(prog())
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    child
}

fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

fn send(child: &Child, sig: i32) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[test]
fn sigint_to_run_reaches_the_program_once_and_the_report_is_written() {
    let dir = scratch("cli_signals_int");
    let child = start(&dir, "wait");
    send(&child, libc::SIGINT);
    let (code, err) = finish(child);
    assert_eq!(code, Some(11), "one SIGINT arrived, the program exited 10+1: {err}");
    let s = memscope_format::read_snapshot_file(&dir.join("s.json")).unwrap();
    assert_eq!((s.process.end, s.process.exit_code), (EndKind::Exit, Some(11)));
    assert_eq!(s.summary.live_at_exit_allocations, 5, "the five 1000-byte blocks");
    assert!(dir.join("s.html").is_file(), "{err}");
    assert!(err.contains("exited with code 11"), "{err}");
}

#[test]
fn sighup_and_sigterm_are_forwarded_too() {
    for (sig, name) in [(libc::SIGHUP, "hup"), (libc::SIGTERM, "term")] {
        let dir = scratch(&format!("cli_signals_{name}"));
        let child = start(&dir, "wait");
        send(&child, sig);
        let (code, err) = finish(child);
        assert_eq!(code, Some(11), "{name}: {err}");
    }
}

#[test]
fn a_program_killed_by_the_forwarded_signal_gives_128_plus_n() {
    let dir = scratch("cli_signals_default");
    let child = start(&dir, "pause");
    send(&child, libc::SIGTERM);
    let (code, err) = finish(child);
    assert_eq!(code, Some(128 + 15), "{err}");
    let s = memscope_format::read_snapshot_file(&dir.join("s.json")).unwrap();
    assert_eq!((s.process.end, s.process.signal), (EndKind::Signal, Some(15)));
    assert!(dir.join("s.html").is_file());
    assert!(err.contains("killed by SIGTERM"), "{err}");
}

/// Ctrl-C typed in a terminal goes to the whole foreground process group:
/// the program gets it from the terminal, and `run` must not send it again.
#[test]
fn ctrl_c_in_a_terminal_is_delivered_once() {
    let dir = scratch("cli_signals_tty");
    let (mut master, slave) = {
        let (mut m, mut s) = (0, 0);
        // SAFETY: out-pointers to ints; null name/termios/winsize are allowed.
        let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
        assert_eq!(r, 0, "openpty");
        // SAFETY: fresh descriptors we own.
        unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
    };
    let mut cmd = command(&dir);
    cmd.args(["run", "-o", "t.json"])
        .arg(prog())
        .arg("wait")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid and ioctl are async-signal-safe; the new session takes
    // the pty (now its stdin) as its controlling terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // closes our copies of the slave
    let mut reader = master.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains("ready") {
        assert!(
            Instant::now() < deadline,
            "no ready: {:?}",
            String::from_utf8_lossy(&seen)
        );
        if let Ok(b) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.extend(b);
        }
    }
    master.write_all(b"\x03").unwrap();
    let status = child.wait().unwrap();
    while let Ok(b) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.extend(b);
    }
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(status.code(), Some(11), "SIGINT delivered once: {text}");
    let s = memscope_format::read_snapshot_file(&dir.join("t.json")).unwrap();
    assert_eq!(s.process.exit_code, Some(11));
    assert!(text.contains("exited with code 11"), "the summary was printed: {text}");
}
