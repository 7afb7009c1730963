#!/usr/bin/env python3
"""What a running snapshot costs the program (issue 16): a process holding
LIVE blocks from SITES call stacks, with busy threads that malloc/free in a
loop, is asked for `memscope-cli snapshot PID` again and again. Reported:
how long the library took to build and write it (its MEMSCOPE_LOG=info
line), how long the CLI waited, and the longest stall a busy thread saw
during the snapshot — beside the longest stall it saw in an equally long
window with no snapshot (interleaved, so the machine's own noise shows in
both columns). Nothing here asserts; it prints a markdown table.

    scripts/bench/running_snapshot.py [--live N] [--sites N] [--busy N] [--runs N]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLI, LIB, build_c  # noqa: E402


def build():
    # -fno-builtin: gcc would otherwise drop the busy threads' free(malloc(n)).
    return build_c("running_stall", ["-O1", "-g", "-fno-builtin", "-fno-omit-frame-pointer",
                                     "-fno-optimize-sibling-calls", "-pthread"])


class Program:
    def __init__(self, exe, a, scratch):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
        env.update(LD_PRELOAD=str(LIB), MEMSCOPE_LOG="debug", MEMSCOPE_AUTO_EXPORT="0",
                   MEMSCOPE_EXPORT_PATH=str(scratch / "final.json"))
        self.log = open(scratch / "stderr.log", "w+")
        self.p = subprocess.Popen([str(exe), str(a.live), str(a.sites), str(a.busy)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=scratch, env=env)
        self.pid = int(self.ask(None).split()[1])

    def ask(self, cmd):
        if cmd:
            self.p.stdin.write(cmd + "\n")
            self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def stall_ms(self):
        ns, _ = self.ask("stall").split()
        return int(ns) / 1e6

    def last_write(self):
        """(built ms, built CPU ms, written ms, written CPU ms, lock held ms)
        of the last snapshot, from the library's log."""
        self.log.seek(0)
        text = self.log.read().splitlines()
        wrote = [l for l in text if "wrote running snapshot" in l][-1]
        held = [l for l in text if "consumer lock was held" in l][-1]
        m = re.search(r"built in ([\d.]+) ms \(([\d.]+) ms CPU\), written in ([\d.]+) ms \(([\d.]+) ms CPU\)", wrote)
        h = re.search(r"held ([\d.]+) ms \(([\d.]+) ms CPU\)", held)
        return tuple(float(x) for x in m.groups() + h.groups())

    def quit(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--live", type=int, default=1_000_000)
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--busy", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    exe = build()
    scratch = Path(tempfile.mkdtemp(prefix="memscope-running-bench-"))
    prog = Program(exe, a, scratch)
    rows = []
    for i in range(a.runs):
        # A window with no snapshot, then one with, equally long.
        prog.ask("reset")
        t0 = time.monotonic()
        out = scratch / f"s{i}.json"
        r = subprocess.run([str(CLI), "snapshot", str(prog.pid), "-o", str(out)], capture_output=True, text=True)
        waited = time.monotonic() - t0
        with_snap = prog.stall_ms()
        if r.returncode != 0:
            sys.exit(f"snapshot failed: {r.stderr.strip()}")
        figures = prog.last_write()
        prog.ask("reset")
        time.sleep(waited)
        without = prog.stall_ms()
        rows.append(figures + (waited * 1e3, with_snap, without, out.stat().st_size))
        out.unlink()
    prog.quit()
    med = lambda k: statistics.median(r[k] for r in rows)
    worst = lambda k: max(r[k] for r in rows)
    print(f"running snapshot of {a.live:,} live blocks from {a.sites:,} sites, {a.busy} busy thread(s), "
          f"{a.runs} runs (median / worst), {os.cpu_count()} cores")
    print()
    print("| figure | median | worst |")
    print("|---|---|---|")
    print(f"| built (library), wall | {med(0):.0f} ms | {worst(0):.0f} ms |")
    print(f"| built (library), CPU of the collector thread | {med(1):.0f} ms | {worst(1):.0f} ms |")
    print(f"| written (library), wall | {med(2):.0f} ms | {worst(2):.0f} ms |")
    print(f"| written (library), CPU | {med(3):.0f} ms | {worst(3):.0f} ms |")
    print(f"| consumer lock held (the most a program thread can wait for it), wall | {med(4):.1f} ms | {worst(4):.1f} ms |")
    print(f"| consumer lock held, CPU | {med(5):.1f} ms | {worst(5):.1f} ms |")
    print(f"| `memscope-cli snapshot` wall (incl. up to 50 ms until the next poll) | {med(6):.0f} ms | {worst(6):.0f} ms |")
    print(f"| longest busy-thread stall during the snapshot | {med(7):.2f} ms | {worst(7):.2f} ms |")
    print(f"| longest busy-thread stall, same window, no snapshot | {med(8):.2f} ms | {worst(8):.2f} ms |")
    print(f"| snapshot size | {med(9) / 1e6:.1f} MB | |")
    print()
    print(f"load average while measuring: {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()
