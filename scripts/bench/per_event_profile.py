#!/usr/bin/env python3
"""Where memscope's time goes per event, by thread: `perf record` of one
traced `alloc_bench` run, every sample put in a bucket (libc, the program,
hooks and ring writes, stack walk, merge + collector, snapshot, kernel) and
turned into ns per event (per hooked call: allocation, realloc or free) on
the program's threads, on memscope's collector thread, and on the main
thread (start-up, and the snapshot at exit). Sampled CPU time, so the
figures are as noisy as the machine; it reports, it asserts nothing.

usage: per_event_profile.py [--threads N] [--iters N] [--freq HZ] [--lib PATH] [--env K=V] [--plain]
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parent


def bucket(dso, sym, lib_name="libmemscope"):
    if "kernel" in dso:
        return "kernel"
    if "libc" in dso:
        return "libc"
    if "alloc_bench" in dso:
        return "program"
    if lib_name not in dso:
        return "other"
    if "unwind" in sym:
        return "stack walk"
    if re.search(r"consumer|collector|hashbrown|HashMap|records|timeline|sort", sym):
        return "merge + collector"
    if re.search(r"serde|itoa|snapshot|format|symbol|gimli|report|json", sym):
        return "snapshot"
    return "hooks + ring"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=None, help="per thread (default: 2 M in all)")
    ap.add_argument("--freq", type=int, default=10000)
    ap.add_argument("--lib", default=str(ROOT / "target/release/libmemscope.so"))
    ap.add_argument("--env", action="append", default=[], help="K=V for the traced run")
    ap.add_argument("--plain", action="store_true", help="profile the un-traced program (the baseline)")
    a = ap.parse_args()
    for tool in ("perf", "gcc"):
        if not shutil.which(tool):
            print(f"{tool} is not installed: apt-get install {'linux-perf' if tool == 'perf' else 'gcc'}", file=sys.stderr)
            return 2
    if not Path(a.lib).is_file():
        print(f"{a.lib} is missing: cargo build --release -p memscope-preload", file=sys.stderr)
        return 2
    iters = a.iters or 2_000_000 // a.threads
    tmp = Path(tempfile.mkdtemp(prefix="per_event."))
    prog = tmp / "alloc_bench"
    subprocess.run(["gcc", "-O2", "-g", "-pthread", "-o", prog, BENCH / "alloc_bench.c"], check=True)
    env = dict(os.environ)
    if not a.plain:
        env.update(LD_PRELOAD=a.lib, MEMSCOPE_EXPORT_PATH=str(tmp / "s.json"))
        env.update(kv.split("=", 1) for kv in a.env)
    data = tmp / "perf.data"
    run = subprocess.run(
        ["perf", "record", "-q", "-o", data, "-F", str(a.freq), "--", prog, str(a.threads), str(iters)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    counts = dict(re.findall(r"(\w+)=(\d+)", run.stdout))
    events = int(counts["total_alloc_calls"]) + int(counts["free"])
    script = subprocess.run(
        ["perf", "script", "-i", data, "-F", "comm,tid,ip,sym,dso"], capture_output=True, text=True
    ).stdout
    per = collections.defaultdict(collections.Counter)
    top = collections.defaultdict(collections.Counter)
    for line in script.splitlines():
        m = re.match(r"\s*(\S+)\s+(\d+)\s+\S+\s+(.*)\((.*)\)\s*$", line)
        if not m:
            continue
        comm, tid, sym, dso = m.groups()
        per[(comm, tid)][bucket(dso, sym, Path(a.lib).name)] += 1
        top[(comm, tid)][sym.strip()[:80]] += 1
    ns = 1e9 / a.freq / events
    how = "un-traced" if a.plain else f"traced {' '.join(a.env)}"
    print(f"alloc_bench {a.threads} thread(s) x {iters} iterations, {how}: {events} hooked calls")
    total = 0.0
    for (comm, tid), c in sorted(per.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(c.values())
        total += n * ns
        print(f"\n{comm} (tid {tid}): {n * ns:.1f} ns/event")
        for name, k in c.most_common():
            print(f"  {name:18s} {k * ns:5.1f} ns  ({k / n * 100:4.1f}%)")
        if n * ns > 5:
            print("  top symbols:")
            for s, k in top[(comm, tid)].most_common(6):
                print(f"    {k * ns:5.1f} ns  {s}")
    print(f"\nall threads: {total:.1f} ns/event")
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
