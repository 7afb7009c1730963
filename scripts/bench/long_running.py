#!/usr/bin/env python3
"""A long traced run with periodic snapshots (issue 16): a process holding
LIVE blocks while busy threads malloc/free for SECONDS (10^9 events takes a
few minutes here), traced with MEMSCOPE_EVERY. Reported: events traced,
memscope's extra resident memory (the traced process's RSS, sampled every
second, minus the same program's RSS un-traced), and whether every periodic
snapshot agrees with the final one on the blocks they share (address, size,
call site; birth time within 1 µs — the clock calibration the later snapshot
refines). Nothing here asserts; it prints a markdown table.

    scripts/bench/long_running.py [--seconds N] [--every 10s] [--live N] [--busy N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from running_snapshot import LIB, build  # noqa: E402


def start(exe, a, scratch, traced):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    if traced:
        env.update(LD_PRELOAD=str(LIB), MEMSCOPE_EVERY=a.every, MEMSCOPE_EXPORT_PATH=str(scratch / "snap.json"))
    p = subprocess.Popen([str(exe), str(a.live), str(a.sites), str(a.busy)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, cwd=scratch, env=env)
    p.stdout.readline()
    return p


def ask(p, cmd):
    p.stdin.write(cmd + "\n")
    p.stdin.flush()
    return p.stdout.readline().strip()


def blocks(snap):
    """Live blocks listed: (ptr, size, callsite) -> birth."""
    end = snap["process"]["end_unix_ns"]
    return {(a["ptr"], a["size"], a["callsite"]): a["timestamp_alloc"]
            for a in snap["allocations"] if a["timestamp_dealloc"] == end}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--every", default="10s")
    ap.add_argument("--live", type=int, default=100_000)
    ap.add_argument("--sites", type=int, default=1000)
    ap.add_argument("--busy", type=int, default=1)
    a = ap.parse_args()
    exe = build()
    scratch = Path(tempfile.mkdtemp(prefix="memscope-long-"))
    untraced = start(exe, a, scratch, False)
    time.sleep(1)
    base_rss = int(ask(untraced, "rss"))
    untraced.communicate("quit\n")
    p = start(exe, a, scratch, True)
    peak_rss = 0
    t_end = time.monotonic() + a.seconds
    while time.monotonic() < t_end:
        time.sleep(1)
        peak_rss = max(peak_rss, int(ask(p, "rss")))
    p.stdin.write("leave\n")
    p.stdin.close()
    p.wait()
    final = json.loads((scratch / "snap.json").read_text())
    fin_blocks = blocks(final)
    periodic = sorted(scratch.glob("snap.at-*.json"))
    mismatched = shared = 0
    for path in periodic:
        for key, born in blocks(json.loads(path.read_text())).items():
            if key in fin_blocks:
                shared += 1
                mismatched += abs(fin_blocks[key] - born) > 1000
    m = final["summary"]
    events = m["total_allocations"] + m["reallocs"] + m["total_frees"]
    print(f"{a.seconds} s traced, {a.busy} busy thread(s), {a.live:,} blocks held, MEMSCOPE_EVERY={a.every}, "
          f"{os.cpu_count()} cores")
    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| events traced (allocations + reallocs + frees) | {events:,} |")
    print(f"| events dropped | {m['events_dropped']} |")
    print(f"| RSS un-traced | {base_rss / 2**20:.1f} MiB |")
    print(f"| peak RSS traced | {peak_rss / 2**20:.1f} MiB |")
    print(f"| memscope's extra resident memory | {(peak_rss - base_rss) / 2**20:.1f} MiB |")
    print(f"| periodic snapshots | {len(periodic)} |")
    print(f"| blocks shared with the final snapshot, checked | {shared:,} |")
    print(f"| of those, differing from the final | {mismatched} |")
    print()
    print(f"load average while measuring: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
