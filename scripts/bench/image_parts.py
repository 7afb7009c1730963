#!/usr/bin/env python3
"""Where one traced process image's extra time goes, part by part: the
command un-traced and under plain `LD_PRELOAD` of a libmemscope.so with
stacks off, 1, 8 and 32 frames (the default) without a snapshot
(`MEMSCOPE_AUTO_EXPORT=0`), then the default with its snapshot. Each step
adds one part: recording events, a frame, deeper stacks (new call sites,
their stores), the snapshot (naming, building, writing). Every variant
runs once per round, rounds interleaved (the drift of a shared machine
hits them alike); each figure is the median, with `perf stat`'s task clock
(CPU), wall time and page faults.

Meant for one big image, not a tree of processes (`gcc -O2 -c` is three;
run its `cc1` alone: `gcc -### ...` prints its command line). A page
fault costs ~1.8 µs on the VM these benchmarks run on, so the faults
column explains part of each step. It reports; it asserts nothing. Needs
`perf`.

usage: image_parts.py [--runs N] [--lib PATH] -- COMMAND...
e.g.   image_parts.py -- /usr/lib/gcc/x86_64-linux-gnu/12/cc1 -quiet x.c -O2 -o /dev/null
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from common import clean_env

VARIANTS = [
    ("un-traced", None),
    ("stacks off, no snapshot", {"MEMSCOPE_BACKTRACE": "0", "MEMSCOPE_AUTO_EXPORT": "0"}),
    ("1 frame, no snapshot", {"MEMSCOPE_BACKTRACE": "1", "MEMSCOPE_AUTO_EXPORT": "0"}),
    ("8 frames, no snapshot", {"MEMSCOPE_BACKTRACE": "8", "MEMSCOPE_AUTO_EXPORT": "0"}),
    ("32 frames, no snapshot", {"MEMSCOPE_AUTO_EXPORT": "0"}),
    ("default, with its snapshot", {}),
]


def once(command, lib, env_extra, out_dir):
    """(cpu ms, wall ms, page faults) of one run."""
    env = clean_env()
    if env_extra is not None:
        env.update(env_extra)
        env["LD_PRELOAD"] = lib
        env["MEMSCOPE_EXPORT_PATH"] = os.path.join(out_dir, "s.json")
    events = "task-clock,page-faults,duration_time"
    r = subprocess.run(
        ["perf", "stat", "-x,", "-e", events, "--"] + command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    got = {}
    for line in r.stderr.splitlines():
        f = line.split(",")
        if len(f) > 3 and f[2] in ("task-clock", "page-faults", "duration_time"):
            got[f[2]] = float(f[0])
    if len(got) != 3:
        sys.exit("perf stat printed no counts:\n" + r.stderr[-2000:])
    for name in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, name))
    return got["task-clock"], got["duration_time"] / 1e6, got["page-faults"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--lib", default=os.path.join(os.path.dirname(__file__), "../../target/release/libmemscope.so"))
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no command given")
    if shutil.which("perf") is None:
        sys.exit("perf is not installed: apt-get install linux-perf")
    lib = os.path.abspath(a.lib)
    if not os.path.exists(lib):
        sys.exit(f"{lib} does not exist: cargo build --release -p memscope-preload")
    samples = {name: [] for name, _ in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="memscope-image-parts-") as out_dir:
        for _ in range(a.runs):
            for name, extra in VARIANTS:
                samples[name].append(once(command, lib, extra, out_dir))
    med = lambda name, i: statistics.median(s[i] for s in samples[name])
    base = med("un-traced", 1)
    print(" ".join(command), f"({a.runs} interleaved runs)")
    print(f"{'variant':28} {'cpu ms':>8} {'wall ms':>8} {'ratio':>6} {'faults':>7}")
    for name, _ in VARIANTS:
        print(f"{name:28} {med(name, 0):8.1f} {med(name, 1):8.1f} {med(name, 1) / base:6.2f} {med(name, 2):7.0f}")


if __name__ == "__main__":
    main()
