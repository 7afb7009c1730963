//! Programs no one here wrote that check their own process — a browser whose
//! zygote CHECKs it is single-threaded before it forks, sandboxes that need
//! a single-threaded process for `unshare(CLONE_NEWUSER)` — and programs of
//! other kinds (interpreters, a JIT, servers that fork, fd closers): traced,
//! each prints what it prints un-traced and exits with the same status.
//! Their own allocators are not counted as heap: the resident-memory
//! summary says so (see tests/rss.rs for the exact figures).

use memscope_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The installed program `name` (chromium's own binary, not the shell
/// script that starts it), or — see `tools::program` — the test fails
/// saying how to install it, unless the user opted out (`None`).
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let own = Path::new("/usr/lib/chromium").join(name);
    if name == "chromium" && own.exists() {
        return Some(own);
    }
    tools::program(name, package)
}

/// Runs `argv` in `dir`, traced or not, with `stdin` as its input.
fn run(dir: &Path, argv: &[&str], stdin: &[u8], traced: bool) -> Output {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..])
        .current_dir(dir)
        .env("HOME", dir)
        .env("LC_ALL", "C")
        .env_remove("LD_PRELOAD")
        .env("MEMSCOPE_EXPORT_PATH", dir.join("snap.json"))
        .env("MEMSCOPE_MANIFEST", dir.join("manifest"))
        .env("MEMSCOPE_RUN_PPID", std::process::id().to_string())
        .env_remove("MEMSCOPE_ROOT_PID")
        .env_remove("MEMSCOPE_EXEC_SEQ")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if traced {
        c.env("LD_PRELOAD", lib_path());
    }
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Runs `argv` un-traced, then traced; their stdout and exit status must be
/// the same (and stderr too when `same_stderr`). Returns the traced run.
fn same_as_untraced(test: &str, argv: &[&str], stdin: &[u8], same_stderr: bool) -> Run {
    let dir = scratch(test);
    let plain = run(&dir, argv, stdin, false);
    let output = run(&dir, argv, stdin, true);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(
        output.status.code(),
        plain.status.code(),
        "{test}: exit status; traced stderr:\n{}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), text(&plain.stdout), "{test}: stdout");
    if same_stderr {
        assert_eq!(text(&output.stderr), text(&plain.stderr), "{test}: stderr");
    }
    let snapshots = read_manifest(&dir);
    assert!(!snapshots.is_empty(), "{test}: no snapshot");
    for (_, s) in &snapshots {
        check_invariants(s);
    }
    Run { output, dir, snapshots }
}

fn has_arg(s: &memscope_format::Snapshot, arg: &str) -> bool {
    s.process.argv.iter().any(|a| a == arg)
}

#[test]
fn chromium_dumps_the_same_dom_traced() {
    let Some(chromium) = tool("chromium", "chromium") else {
        return;
    };
    let dir = scratch("chromium_page");
    let page = dir.join("page.html");
    std::fs::write(
        &page,
        "<html><body><p id=\"x\">static</p><script>\
         document.getElementById('x').textContent = 'script ran ' + (6 * 7);</script></body></html>",
    )
    .unwrap();
    let url = format!("file://{}", page.display());
    let argv = [
        chromium.to_str().unwrap(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--dump-dom",
        &url,
    ];
    let run = same_as_untraced("chromium_dom", &argv, b"", false);
    assert!(run.stdout().contains("script ran 42"), "DOM: {}", run.stdout());
    // The zygotes (the images that CHECK they are single-threaded) were
    // traced and did not die of SIGTRAP.
    let zygotes = run.find(|s| has_arg(s, "--type=zygote"));
    assert!(!zygotes.is_empty(), "no zygote snapshot among {:?}", run.paths());
    for s in run.find(|s| s.process.signal.is_some()) {
        assert_ne!(
            s.process.signal,
            Some(libc::SIGTRAP),
            "{:?} died of SIGTRAP",
            s.process.argv
        );
    }
}

#[test]
fn unshare_into_a_user_namespace_still_works() {
    let Some(unshare) = tool("unshare", "util-linux") else {
        return;
    };
    same_as_untraced(
        "unshare_user",
        &[unshare.to_str().unwrap(), "-U", "id", "-u"],
        b"",
        true,
    );
    same_as_untraced(
        "unshare_root_pid",
        &[
            unshare.to_str().unwrap(),
            "-r",
            "-p",
            "-f",
            "sh",
            "-c",
            "echo pid $$; id -u",
        ],
        b"",
        true,
    );
}

/// A daemon closes fds 0–2 and lives on; its caller reads the pipe it had as
/// stdout and stderr until EOF. memscope keeps no descriptor of its own (a
/// duplicate of stderr used to hold the pipe open until the daemon ended).
#[test]
fn a_daemon_that_closes_its_stdio_does_not_hold_its_callers_pipe() {
    let Some(python) = tool("python3", "python3") else {
        return;
    };
    let script = "import os,time\n\
                  if os.fork() == 0:\n    os.setsid()\n    [os.close(f) for f in (0, 1, 2)]\n\
                  \x20   open('daemon.pid', 'w').write(str(os.getpid()))\n    time.sleep(120)\n    os._exit(0)\n\
                  while not os.path.exists('daemon.pid'): time.sleep(0.01)\n\
                  print('parent done', flush=True)\n";
    let dir = scratch("daemon_pipe");
    let out = run(&dir, &[python.to_str().unwrap(), "-c", script], b"", true);
    let pid: i32 = std::fs::read_to_string(dir.join("daemon.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Reading to EOF returned while the daemon still sleeps.
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    // SAFETY: ends the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "parent done\n");
    assert!(alive, "the caller saw EOF only after the daemon had ended");
}

#[test]
fn a_program_sees_only_its_own_descriptors() {
    let Some(ls) = tool("ls", "coreutils") else { return };
    // The same list as un-traced: no descriptor of memscope's among them.
    same_as_untraced("own_fds", &[ls.to_str().unwrap(), "/proc/self/fd"], b"", true);
}

/// Interpreters with arenas of their own, a JIT, a parallel make, a forking
/// server, archivers, a shell spawning 200 children: same output and status.
#[test]
fn programs_of_many_kinds_behave_as_untraced() {
    let Some(sh) = tool("sh", "dash") else { return };
    let cases: [(&str, &str); 8] = [
        ("python3", "python3 -c 'import json; d=[{\"k\":i,\"v\":str(i)*10} for i in range(100000)]; print(len(json.dumps(d)))'"),
        ("node", "node -e 'let s=0; for (let i=0;i<5e6;i++) s+=i%7; const a=[]; for(let i=0;i<1e5;i++) a.push({i}); console.log(s, a.length)'"),
        ("perl", "perl -e 'my %h; $h{$_}=\"x\" x 100 for 1..100000; print scalar(keys %h), qq(\\n)'"),
        ("make", "printf 'all: a b c\\na:\\n\\t@echo a\\nb:\\n\\t@echo b\\nc:\\n\\t@echo c\\n' > Makefile && make -s -j3 | sort"),
        ("archives", "seq 1 100000 > data && tar czf d.tgz data && tar cJf d.txz data && tar xzOf d.tgz | md5sum && xz -dc d.txz | tar xO | md5sum"),
        ("forking_server", "python3 -c '\nimport socketserver,threading,socket\nclass H(socketserver.StreamRequestHandler):\n    def handle(self): self.wfile.write(self.rfile.readline().upper())\nclass S(socketserver.ForkingMixIn, socketserver.TCPServer): allow_reuse_address=True\ns=S((\"127.0.0.1\",0),H); t=threading.Thread(target=s.serve_forever); t.start()\nfor w in [b\"one\",b\"two\",b\"three\"]:\n    c=socket.create_connection(s.server_address); c.sendall(w+b\"\\n\"); print(c.makefile().readline().strip()); c.close()\ns.shutdown(); s.server_close()'"),
        ("posix_spawn", "python3 -c 'import os,subprocess; print(subprocess.run([\"echo\",\"hi\"],capture_output=True,text=True).stdout.strip()); pid=os.posix_spawnp(\"true\",[\"true\"],os.environ); print(os.waitpid(pid,0)[1])'"),
        ("shell_children", "for i in $(seq 200); do /bin/true; done; echo $((6 * 7))"),
    ];
    // Each program the cases run is installed (else the shell's "not
    // found", traced and un-traced alike, would pass unseen).
    for (program, package) in [
        ("python3", "python3"),
        ("node", "nodejs"),
        ("perl", "perl"),
        ("make", "make"),
        ("tar", "tar"),
        ("gzip", "gzip"),
        ("xz", "xz-utils"),
        ("md5sum", "coreutils"),
    ] {
        if tool(program, package).is_none() {
            return;
        }
    }
    for (name, cmd) in cases {
        let run = same_as_untraced(name, &[sh.to_str().unwrap(), "-c", cmd], b"", false);
        assert!(!run.stdout().is_empty(), "{name}: no output");
    }
}
