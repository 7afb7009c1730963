#!/usr/bin/env python3
"""Where a shell loop's extra time goes, by kind of process image: a shell's
fork child from `fork` to its `execve`, the `execve` call itself, each
exec'd image from `execve` to its exit (by name), and fork children that
never exec (a pipeline's subshell). The loop runs un-traced and under each
variant given, interleaved (the drift of a shared machine hits them alike),
under `perf record -a` of the clone, execve and process-exit tracepoints;
each figure is the median over every process of that kind in every round,
in µs.

A variant is NAME=PREFIX: PREFIX goes before `bash -c LOOP`, split on
spaces (e.g. `env LD_PRELOAD=... MEMSCOPE_SKIP=*`, or `memscope-cli run
-o DIR/s.json --`). Snapshots are best sent to tmpfs (/dev/shm). It reports;
it asserts nothing. Needs `perf` with tracepoints (root, or
kernel.perf_event_paranoid <= -1).

usage: loop_phases.py [--rounds N] [--loop SHELL_CODE] NAME=PREFIX...
e.g.   loop_phases.py skip="env LD_PRELOAD=$PWD/target/release/libmemscope.so MEMSCOPE_SKIP=*" \\
           run="target/release/memscope-cli run -o /dev/shm/s.json --"
"""

import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

LOOP = "for i in $(seq 150); do ls / >/dev/null; echo x | grep -q x; done"
EVENTS = ["syscalls:sys_exit_clone", "syscalls:sys_enter_execve", "syscalls:sys_exit_execve", "sched:sched_process_exit"]
LINE = re.compile(r"\s*(.+?)\s+(\d+)/(\d+)\s+([\d.]+):\s+(\S+):(.*)")


def phases(data):
    """{kind: [seconds]} from one recording: the shell's children only."""
    out = subprocess.run(
        ["perf", "script", "-i", data, "-F", "comm,pid,tid,time,event,trace"],
        capture_output=True,
        text=True,
    ).stdout
    born, exec_start, exec_done = {}, {}, {}
    got = collections.defaultdict(list)
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        comm, pid, tid, t, event, rest = m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4)), m.group(5), m.group(6)
        if event.endswith("sys_exit_clone"):
            child = re.search(r"0x([0-9a-f]+)", rest)
            if child and comm == "bash" and int(child.group(1), 16) > 0:
                born[int(child.group(1), 16)] = t
        elif event.endswith("sys_enter_execve") and pid in born and pid not in exec_start:
            exec_start[pid] = t
            got["fork child, fork -> execve"].append(t - born[pid])
        elif event.endswith("sys_exit_execve") and pid in exec_start and pid not in exec_done:
            exec_done[pid] = t
            got["execve"].append(t - exec_start[pid])
        elif event.endswith("sched_process_exit") and pid == tid and pid in born:
            if pid in exec_done:
                got[f"image {comm}, execve -> exit"].append(t - exec_done[pid])
            else:
                got["fork child that never execs"].append(t - born[pid])
            del born[pid]
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loop", default=LOOP)
    ap.add_argument("variants", nargs="+", metavar="NAME=PREFIX")
    a = ap.parse_args()
    if shutil.which("perf") is None:
        print("loop_phases.py: perf is missing (apt-get install linux-perf)", file=sys.stderr)
        return 2
    variants = [("un-traced", [])]
    for v in a.variants:
        name, sep, prefix = v.partition("=")
        if not sep:
            print(f"loop_phases.py: {v!r} is not NAME=PREFIX", file=sys.stderr)
            return 2
        variants.append((name, prefix.split()))
    acc = {name: collections.defaultdict(list) for name, _ in variants}
    with tempfile.TemporaryDirectory(prefix="loop-phases-") as d:
        data = os.path.join(d, "perf.data")
        for _ in range(a.rounds):
            for name, prefix in variants:
                cmd = ["perf", "record", "-q", "-a"]
                for e in EVENTS:
                    cmd += ["-e", e]
                cmd += ["-o", data, "--"] + prefix + ["bash", "-c", a.loop]
                r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if r.returncode != 0:
                    print(f"loop_phases.py: {name}: {r.stderr.strip()[-300:]}", file=sys.stderr)
                    return 1
                for kind, secs in phases(data).items():
                    acc[name][kind] += secs
    kinds = sorted({k for per in acc.values() for k in per})
    width = max(len(k) for k in kinds)
    print(f"{'µs, median':{width}}" + "".join(f"{n:>14}" for n, _ in variants))
    for k in kinds:
        cells = [statistics.median(acc[n][k]) * 1e6 if acc[n][k] else float("nan") for n, _ in variants]
        print(f"{k:{width}}" + "".join(f"{c:14.0f}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
