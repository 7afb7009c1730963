#!/usr/bin/env python3
"""Where a snapshot's bytes go (issue 13): the size of each top-level part
of memscope snapshots, per executable.

    python3 scripts/bench/snapshot_parts.py FILE_OR_DIR...

A directory stands for the snapshots in it (`*.json`, not the run file
`*.run.json`). Images are grouped by executable base name, a `fork()` child
apart (`bash (fork)`); each row gives the number of images, their mean file
size and the mean bytes of each part, the part re-serialized as compact JSON
(as memscope writes it), plus the mean number of records, call sites and
frames. The last row sums every image."""

import json
import os
import sys
from collections import defaultdict

PARTS = [
    "allocations",
    "callsites",
    "frames",
    "modules",
    "module_info",
    "lifetime_histogram",
    "timeline",
    "threads",
    "variables",
    "summary",
    "process",
    "tool",
]
COUNTS = ["allocations", "callsites", "frames"]


def files(args):
    for a in args:
        if os.path.isdir(a):
            for name in sorted(os.listdir(a)):
                if name.endswith(".json") and not name.endswith(".run.json"):
                    yield os.path.join(a, name)
        else:
            yield a


def compact(value):
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def main(args):
    if not args:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    groups = defaultdict(lambda: defaultdict(int))
    for path in files(args):
        with open(path, "rb") as f:
            raw = f.read()
        try:
            snap = json.loads(raw)
            proc = snap["process"]
        except (ValueError, KeyError, TypeError):
            print(f"snapshot_parts: {path}: not a memscope snapshot", file=sys.stderr)
            return 2
        name = os.path.basename(proc.get("exe", "?")) + (" (fork)" if proc.get("forked") else "")
        for key in (name, "all images"):
            g = groups[key]
            g["images"] += 1
            g["file"] += len(raw)
            for part in PARTS:
                g[part] += compact(snap.get(part, []))
            for part in COUNTS:
                g["#" + part] += len(snap.get(part, []))
    head = ["image", "images", "file"] + PARTS + ["records", "sites", "frames"]
    print("| " + " | ".join(head) + " |")
    print("|---" + "|---:" * (len(head) - 1) + "|")
    order = sorted((k for k in groups if k != "all images"), key=lambda k: -groups[k]["file"])
    for key in order + ["all images"]:
        g = groups[key]
        n = g["images"]
        mean = [round(g[p] / n) for p in ["file"] + PARTS + ["#" + c for c in COUNTS]]
        if key == "all images":
            mean = [g[p] for p in ["file"] + PARTS + ["#" + c for c in COUNTS]]
        print(f"| {key} | {n} | " + " | ".join(f"{v:,}" for v in mean) + " |")
    print("\nPer image: means; `all images`: totals. Bytes of compact JSON.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
