#!/usr/bin/env python3
"""Two builds of memscope-cli side by side under `run` on one command (a
shell loop, a build: many process images, each build with its own embedded
library): each round goes A, B, plain (interleaved, so the drift of a shared
machine hits every variant alike); each figure is the median of the runs.
Wall and CPU (user+sys of the whole process tree, run included) are given
as ratios to the un-traced run, with the size of what each build wrote.

usage: ab_run.py [--runs N] CLI_A CLI_B -- COMMAND...
e.g.   ab_run.py /old/target/release/memscope-cli target/release/memscope-cli -- \\
           bash -c 'for i in $(seq 200); do ls / >/dev/null; echo x | grep -q x; done'

Nothing here asserts: it reports (speed claims live here, not in tests).
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

from common import clean_env


def once(cli, command, env):
    """(wall s, cpu s, bytes written) of one run of command, under cli's `run` or plain."""
    d = tempfile.mkdtemp(prefix="memscope-ab-run-")
    try:
        argv = command if cli is None else [cli, "run", "-o", os.path.join(d, "snapshot.json"), "--"] + command
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        written = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        return wall, cpu, written
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("cli_a")
    p.add_argument("cli_b")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no command given")
    env = clean_env()
    # Absolute: each run starts in a directory of its own.
    variants = {"A": os.path.abspath(a.cli_a), "B": os.path.abspath(a.cli_b), "plain": None}
    samples = {k: [] for k in variants}
    for _ in range(a.runs):
        for k, cli in variants.items():
            samples[k].append(once(cli, command, env))
    med = lambda k, i: statistics.median(s[i] for s in samples[k])
    print(" ".join(command), f"({a.runs} interleaved runs)")
    for k in variants:
        size = f"  wrote {med(k, 2) / 1e6:.1f} MB" if variants[k] else ""
        print(
            f"  {k:5}  wall {med(k, 0):.3f}s {med(k, 0) / med('plain', 0):.2f}x"
            f"   cpu {med(k, 1):.3f}s {med(k, 1) / med('plain', 1):.2f}x{size}"
        )


if __name__ == "__main__":
    main()
