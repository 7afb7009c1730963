#!/usr/bin/env python3
"""What each stage of memscope costs a command of many process images (the
bash loop of issue 13 by default), against the same command un-traced:

  any preload      an LD_PRELOAD library that does nothing (empty_preload.c)
  loaded, skipped  libmemscope.so in every image, every image skipped
                   (MEMSCOPE_SKIP=*): no ring, no hooks' work, no snapshot
  no stacks        recording, MEMSCOPE_BACKTRACE=0, no snapshot
                   (MEMSCOPE_AUTO_EXPORT=0)
  stacks           recording at the default depth, no snapshot
  LD_PRELOAD       the default: every image writes its snapshot
  run              memscope-cli run: snapshots handed to run and named there

Each round runs every variant once (interleaved, so the drift of a shared
machine hits them alike); figures are medians, wall and CPU (user+sys of
the whole tree), as ratios to un-traced, each run measured by launch.c
from fork to wait4 (so a 1 ms image can be measured: give it --runs 300).
Runs start in a directory of their own under TMPDIR (set TMPDIR=/dev/shm
for tmpfs). The difference between two rows is what that stage adds; the
"stacks" row is the floor left to any change of the endings alone. It
reports; it asserts nothing. A command that fails under any variant, or a
build that fails, is one line on stderr and exit 2.

usage: floor.py [--runs N] [-- COMMAND...]   (builds memscope first)
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import CLI, LIB, build_c, clean_env

LOOP = "for i in $(seq 200); do ls / >/dev/null; echo x | grep -q x; done"


def variants(empty):
    """name -> (cli or None, environment added)."""
    lib = {"LD_PRELOAD": str(LIB)}
    off = {"MEMSCOPE_AUTO_EXPORT": "0"}
    return {
        "un-traced": (None, {}),
        "any preload": (None, {"LD_PRELOAD": str(empty)}),
        "loaded, skipped": (None, dict(lib, MEMSCOPE_SKIP="*")),
        "no stacks": (None, dict(lib, MEMSCOPE_BACKTRACE="0", **off)),
        "stacks": (None, dict(lib, **off)),
        "LD_PRELOAD": (None, lib),
        "run": (str(CLI), {"MEMSCOPE_LIB": str(LIB)}),
    }


class Failed(Exception):
    pass


def once(launcher, cli, command, added, base):
    """(wall s, cpu s, bytes written) of one run of command, through the
    launcher (which gives `added` to the command alone), under cli's `run`
    or plain; Failed when it exits with anything but 0."""
    d = tempfile.mkdtemp(prefix="memscope-floor-")
    try:
        argv = command if cli is None else [cli, "run", "-o", os.path.join(d, "snapshot.json"), "--"] + command
        cost = os.path.join(d, ".cost")
        settings = [f"{k}={v}" for k, v in added.items()]
        code = subprocess.run(
            [str(launcher), cost, *settings, "--", *argv],
            env=base,
            cwd=d,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        if code != 0:
            raise Failed(f"exited with {code}")
        _, _, user_us, sys_us, wall_ns = (int(x) for x in Path(cost).read_text().split())
        written = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f != ".cost")
        return wall_ns / 1e9, (user_us + sys_us) / 1e6, written
    finally:
        shutil.rmtree(d, ignore_errors=True)


def shown(seconds):
    return f"{seconds * 1e3:.0f} ms" if seconds >= 0.01 else f"{seconds * 1e6:.0f} µs"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    command = command or ["bash", "-c", LOOP]
    try:
        empty = build_c("empty_preload", ["-O2", "-shared", "-fPIC"])
        launcher = build_c("launch", ["-O2"])
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"floor.py: cannot build memscope or the C helpers (cargo and gcc needed): {e}", file=sys.stderr)
        sys.exit(2)
    base = clean_env()
    v = variants(empty)
    samples = {k: [] for k in v}
    for _ in range(a.runs):
        for k, (cli, added) in v.items():
            try:
                samples[k].append(once(launcher, cli, command, added, base))
            except Failed as e:
                print(f"floor.py: `{' '.join(command)}` {e} ({k})", file=sys.stderr)
                sys.exit(2)
    med = lambda k, i: statistics.median(s[i] for s in samples[k])
    print(f"`{' '.join(command)}`, {a.runs} interleaved runs, medians\n")
    print("| variant | wall | wall ratio | CPU | CPU ratio | written |")
    print("|---|---|---|---|---|---|")
    for k in v:
        w, c, b = med(k, 0), med(k, 1), med(k, 2)
        print(
            f"| {k} | {shown(w)} | {w / med('un-traced', 0):.2f}x "
            f"| {shown(c)} | {c / med('un-traced', 1):.2f}x | {b / 1e6:.2f} MB |"
        )


if __name__ == "__main__":
    main()
