//! Every way a process can end leaves a snapshot with the right `end`, and the
//! program's own status, output and signal handlers are untouched.

use memscope_format::EndKind;
use memscope_tests::*;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

/// Runs `endings MODE` traced and untraced; returns the traced snapshot.
fn ending(mode: &str) -> (Run, std::process::Output) {
    let prog = c_program("endings", &[]);
    let run = traced(&format!("endings_{mode}"), &prog, &[mode], &[]);
    let plain = untraced(&prog, &[mode]);
    assert_eq!(
        run.output.status.code(),
        plain.status.code(),
        "{mode}: exit status changed"
    );
    assert_eq!(
        run.output.status.signal(),
        plain.status.signal(),
        "{mode}: signal changed"
    );
    assert_eq!(run.output.stdout, plain.stdout, "{mode}: stdout changed");
    assert_eq!(
        run.stderr(),
        String::from_utf8_lossy(&plain.stderr),
        "{mode}: stderr changed"
    );
    let s = run.only();
    check_invariants(s);
    let leaked: Vec<u64> = s.allocations.iter().filter(|a| a.is_leaked).map(|a| a.size).collect();
    assert!(
        leaked.contains(&1234),
        "{mode}: the leaked block is reported: {leaked:?}"
    );
    assert!(s.allocations.iter().any(|a| a.size == 99 && !a.is_leaked));
    (run, plain)
}

fn expect(mode: &str, end: EndKind, code: Option<i32>, signal: Option<i32>) {
    let (run, _) = ending(mode);
    let p = &run.only().process;
    assert_eq!((p.end, p.exit_code, p.signal), (end, code, signal), "{mode}");
}

#[test]
fn return_from_main() {
    expect("return", EndKind::Exit, Some(0), None);
}

#[test]
fn exit() {
    expect("exit", EndKind::Exit, Some(2), None);
}

#[test]
fn underscore_exit() {
    expect("_exit", EndKind::UnderscoreExit, Some(3), None);
}

#[test]
fn upper_exit() {
    expect("_Exit", EndKind::UnderscoreExit, Some(4), None);
}

#[test]
fn quick_exit() {
    expect("quick_exit", EndKind::UnderscoreExit, Some(6), None);
}

#[test]
fn abort() {
    expect("abort", EndKind::Abort, None, Some(libc::SIGABRT));
}

#[test]
fn segfault() {
    expect("segv", EndKind::Signal, None, Some(libc::SIGSEGV));
}

#[test]
fn sigterm_with_the_default_disposition() {
    expect("sigterm", EndKind::Signal, None, Some(libc::SIGTERM));
}

#[test]
fn sigint_and_sighup_with_the_default_disposition() {
    expect("sigint", EndKind::Signal, None, Some(libc::SIGINT));
    expect("sighup", EndKind::Signal, None, Some(libc::SIGHUP));
}

#[test]
fn sigterm_after_the_program_set_the_default_itself() {
    // The program's handler, then SIG_DFL again (as dash does at start-up):
    // memscope's handler stays, and the program still reads SIG_DFL.
    expect("sigterm-reset", EndKind::Signal, None, Some(libc::SIGTERM));
}

#[test]
fn a_shell_killed_by_sigterm_writes_its_snapshot() {
    let run = traced("endings_dash_term", Path::new("/bin/sh"), &["-c", "kill -TERM $$"], &[]);
    assert_eq!(run.output.status.signal(), Some(libc::SIGTERM));
    let p = &run.only().process;
    assert_eq!((p.end, p.signal), (EndKind::Signal, Some(libc::SIGTERM)));
}

#[test]
fn sigterm_with_the_programs_own_handler() {
    let (run, _) = ending("sigterm-handler");
    assert_eq!(run.stdout(), "custom handler ran\n");
    let p = &run.only().process;
    assert_eq!((p.end, p.exit_code), (EndKind::Exit, Some(7)));
}

#[test]
fn exit_from_a_thread_while_others_allocate() {
    // Racy by nature: run it several times (it has caught two real races).
    for _ in 0..8 {
        expect("thread-exit", EndKind::Exit, Some(5), None);
    }
}

#[test]
fn closed_and_reused_stdio_never_gets_memscope_text() {
    let prog = c_program("endings", &[]);
    let dir = scratch("endings_closed_stdio_file");
    let file = dir.join("program-stdio.txt");
    let f = file.to_str().unwrap();
    let run = traced(
        "endings_closed_stdio",
        &prog,
        &["closed-stdio", f],
        &[("MEMSCOPE_LOG", "debug")],
    );
    assert!(run.output.status.success());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "program output\nprogram error output\n"
    );
    // The debug lines went to the stderr the program started with.
    assert!(run.stderr().contains("memscope["), "{}", run.stderr());
    check_invariants(run.only());
}
