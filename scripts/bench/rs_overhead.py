#!/usr/bin/env python3
"""memscope-rs's own overhead, printed (nothing asserts; this machine is noisy).

1. The in-process allocator: the same churn workload built twice, with
   std's allocator (examples/alloc_plain.rs) and with memscope_rs::Allocator
   (examples/alloc_tracked.rs), plus the plain binary under LD_PRELOAD for
   comparison. Runs alternate (A B C A B C ...); each figure is the median of
   the workload's own elapsed time, measured inside the process (start-up
   and the snapshot at exit are not part of it).
2. track_var! itself (examples/track_overhead.rs), alone and under LD_PRELOAD:
   the program alternates rounds with and without it and prints the ratio.

usage: scripts/bench/rs_overhead.py [--runs N] [--threads T] [--iters N]
"""

import argparse
import json
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import clean_env

ROOT = Path(__file__).resolve().parents[2]
REL = ROOT / "target" / "release"
EXAMPLES = REL / "examples"
LIB = REL / "libmemscope.so"


def base_env():
    env = clean_env()
    env["MEMSCOPE_AUTO_EXPORT"] = "0"
    return env


def elapsed_ns(argv, env):
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    return int(re.search(r"elapsed_ns=(\d+)", out).group(1))


def events_per_run(args):
    """Allocations + frees + reallocs of one run, from an in-process snapshot."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(base_env(), MEMSCOPE_AUTO_EXPORT="1", MEMSCOPE_EXPORT_PATH=f"{d}/snap.json")
        subprocess.run([str(EXAMPLES / "alloc_tracked"), *args], env=env, check=True, capture_output=True)
        s = json.load(open(f"{d}/snap.json"))["summary"]
        return s["total_allocations"] + s["total_frees"] + s["reallocs"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="runs per variant (median reported)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=1_500_000)
    a = ap.parse_args()
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "memscope-preload", "-p", "memscope-rs", "--examples"],
        cwd=ROOT,
        check=True,
    )
    args = [str(a.threads), str(a.iters)]
    env = base_env()
    variants = [
        ("std allocator (alloc_plain)", [str(EXAMPLES / "alloc_plain"), *args], env),
        ("memscope_rs::Allocator in-process (alloc_tracked)", [str(EXAMPLES / "alloc_tracked"), *args], env),
        ("alloc_plain under LD_PRELOAD=libmemscope.so", [str(EXAMPLES / "alloc_plain"), *args], dict(env, LD_PRELOAD=str(LIB))),
    ]
    times = {name: [] for name, _, _ in variants}
    for _ in range(a.runs):
        for name, argv, e in variants:
            times[name].append(elapsed_ns(argv, e))
    events = events_per_run(args)
    base = statistics.median(times[variants[0][0]])
    print(f"churn workload, {a.threads} thread(s) x {a.iters} iterations, {events} heap events per run, median of {a.runs}:")
    for name, _, _ in variants:
        m = statistics.median(times[name])
        extra = (m - base) / events
        print(f"  {name:<52} {m / 1e6:8.1f} ms  ratio {m / base:5.2f}  +{extra:5.1f} ns/event")
    print("track_var! (20 000 variables per round, 11 rounds, medians):")
    for label, e in [("in-process", env), ("LD_PRELOAD", dict(env, LD_PRELOAD=str(LIB)))]:
        out = subprocess.run([str(EXAMPLES / "track_overhead")], env=e, check=True, capture_output=True, text=True)
        print(f"  {label:<11} {out.stdout.strip()}")


if __name__ == "__main__":
    main()
