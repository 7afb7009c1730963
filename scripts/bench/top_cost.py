#!/usr/bin/env python3
"""What `memscope-cli top` costs the program it watches (issue 16: at most
2 % extra wall time). alloc_bench runs traced (LD_PRELOAD) with a fixed
amount of work, alternately alone and watched by `top` in a tmux terminal
(A B A B …, so the machine's drifts hit both alike); the medians and their
ratio are printed. Nothing here asserts.

    scripts/bench/top_cost.py [--runs N] [--iters N]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLI, LIB, build_c  # noqa: E402


def build():
    return build_c("alloc_bench", ["-O2", "-g", "-pthread"])


def once(exe, iters, watched, scratch):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    env.update(LD_PRELOAD=str(LIB), MEMSCOPE_EXPORT_PATH=str(scratch / "final.json"))
    t0 = time.monotonic()
    p = subprocess.Popen([str(exe), "1", str(iters)], env=env, stdout=subprocess.DEVNULL, cwd=scratch)
    session = None
    if watched:
        session = f"memscope-top-cost-{os.getpid()}"
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "32",
                        f"{CLI} top {p.pid}"], check=True)
    p.wait()
    wall = time.monotonic() - t0
    if session:
        subprocess.run(["tmux", "kill-session", "-t", f"={session}"], capture_output=True)
    return wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20_000_000)
    a = ap.parse_args()
    exe = build()
    scratch = Path(tempfile.mkdtemp(prefix="memscope-top-cost-"))
    alone, watched = [], []
    for _ in range(a.runs):
        alone.append(once(exe, a.iters, False, scratch))
        watched.append(once(exe, a.iters, True, scratch))
    ma, mw = statistics.median(alone), statistics.median(watched)
    print(f"alloc_bench 1 thread, {a.iters:,} iterations, traced; {a.runs} interleaved runs, {os.cpu_count()} cores")
    print()
    print("| | median wall | runs |")
    print("|---|---|---|")
    print(f"| traced | {ma:.2f} s | {', '.join(f'{x:.2f}' for x in alone)} |")
    print(f"| traced, watched by `memscope-cli top` | {mw:.2f} s | {', '.join(f'{x:.2f}' for x in watched)} |")
    print(f"| ratio | {mw / ma:.3f} | |")
    print()
    print(f"load average while measuring: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
