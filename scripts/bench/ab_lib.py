#!/usr/bin/env python3
"""Two builds of libmemscope.so side by side on one command: each run goes
A, B, plain, A, B, plain, ... (interleaved, so the drift of a shared machine
hits every variant alike) and each figure is the median of the runs, with the
spread (min..max) beside it so the noise shows. Wall and CPU (user+sys of
the process and its threads) are given as ratios to the un-traced run.

usage: ab_lib.py [--runs N] [--env K=V ...] LIB_A LIB_B -- COMMAND...
e.g.   ab_lib.py before.so after.so -- target/bench/alloc_bench 2 1000000

Nothing here asserts: it reports (speed claims live here, not in tests)."""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

from common import clean_env


def run_once(cmd, env):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with status {status}")
    return wall, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--env", action="append", default=[], help="K=V added to the traced runs")
    ap.add_argument("lib_a")
    ap.add_argument("lib_b")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    out = tempfile.mkdtemp(prefix="ab_lib.")
    base = clean_env()
    extra = dict(kv.split("=", 1) for kv in a.env)
    variants = {
        "A": dict(base, LD_PRELOAD=os.path.abspath(a.lib_a), MEMSCOPE_EXPORT_PATH=f"{out}/a.json", **extra),
        "B": dict(base, LD_PRELOAD=os.path.abspath(a.lib_b), MEMSCOPE_EXPORT_PATH=f"{out}/b.json", **extra),
        "plain": base,
    }
    samples = {k: [] for k in variants}
    for _ in range(a.runs):
        for k, env in variants.items():
            samples[k].append(run_once(cmd, env))
    plain_wall = statistics.median(w for w, _ in samples["plain"])
    plain_cpu = statistics.median(c for _, c in samples["plain"])
    print(f"{' '.join(cmd)}  ({a.runs} interleaved runs; {' '.join(a.env)})")
    for k, s in samples.items():
        walls, cpus = [w for w, _ in s], [c for _, c in s]
        mw, mc = statistics.median(walls), statistics.median(cpus)
        print(
            f"  {k:6s} wall {mw:6.3f}s {mw / plain_wall:5.2f}x ({min(walls):.3f}..{max(walls):.3f})"
            f"   cpu {mc:6.3f}s {mc / plain_cpu:5.2f}x ({min(cpus):.3f}..{max(cpus):.3f})"
        )


if __name__ == "__main__":
    main()
