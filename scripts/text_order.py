#!/usr/bin/env python3
"""Writes preload/text_order.ld: the linker script that packs the code a
short process image runs into one stretch at the start of libmemscope.so's
text, so that the kernel maps (and at exit unmaps) fewer pages of it.

Every page of the library a process touches costs it a fault, and each
fault maps the 16 pages around it (fault-around); the process pays again to
unmap them at exit. Left to the linker, the ~300 KB of code a short image
runs (start-up, the hooks, the snapshot at exit) lies scattered over the
library's 1.8 MB of text: a recording `sleep` had 275 of its pages mapped.

This runs the library under `valgrind --tool=callgrind` on a few short
programs (skipped, recording, forking, under `memscope-cli run`), collects
every function of the library that ran, and writes one input-section
pattern per function, at the start of the `.text` section: first the
functions a skipped image runs, then the library's entry points (the
hooks), then the rest by how many of the images ran them, then by cost. Patterns leave out the hash
rustc puts in each symbol name (`17h<16 hex>E`, and the crate hash of
`_R` names), so the file stays valid across rebuilds and toolchains; a
function renamed since simply matches nothing and is placed as before.
Rerun it after large changes to what an image runs at start or exit:

    cargo build --release && python3 scripts/text_order.py

usage: text_order.py [--lib PATH] [--cli PATH] [--out PATH]
"""

import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Where the packed code ends (tests/tests/text_layout.rs reads it).
END = "__memscope_packed_end"
# What the linkers' default scripts put in `.text`, after the packed code.
DEFAULT_TEXT = """    *(.text.unlikely .text.*_unlikely .text.unlikely.*)
    *(.text.exit .text.exit.*)
    *(.text.startup .text.startup.*)
    *(.text.hot .text.hot.*)
    *(.text .stub .text.*)
"""

# Programs nobody here wrote, each a short image or a tree of them.
LOOP = "for i in 1 2; do ls / >/dev/null; echo x | grep -q x; done; cat /etc/hostname | wc -c >/dev/null"


def functions_run(path, obj="libmemscope"):
    """Function name -> instructions (self cost) of `obj`, from one callgrind file."""
    obs, fns = {}, {}
    cur_ob = cur_fn = None
    out = collections.Counter()
    skip_cost = False

    def name(table, v):
        m = re.match(r"\((\d+)\)(?: (.*))?", v)
        if not m:
            return v
        if m.group(2):
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), "?")

    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("ob="):
            cur_ob = name(obs, line[3:])
        elif line.startswith("fn="):
            cur_fn = name(fns, line[3:])
            if obj in (cur_ob or ""):
                out[cur_fn] += 0
        elif line.startswith("cob="):
            name(obs, line[4:])
        elif line.startswith("cfn="):
            name(fns, line[4:])
        elif line.startswith("calls="):
            skip_cost = True  # the next cost line is the call's inclusive cost
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip_cost:
                skip_cost = False
            elif obj in (cur_ob or "") and cur_fn:
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    out[cur_fn] += int(parts[1])
    return out


def pattern(symbol):
    """An input-section name pattern for `symbol` without rustc's hashes."""
    symbol = symbol.split("'")[0]  # callgrind's recursion-depth suffix
    if symbol.startswith("0x"):
        return None
    m = re.match(r"(_ZN.*?)17h[0-9a-f]{16}E(\..*)?$", symbol)
    if m:
        return m.group(1) + "*"
    if symbol.startswith("_R"):
        s = re.sub(r"Cs[0-9a-zA-Z]+_", "Cs*_", symbol)
        return re.sub(r"\.(llvm\.)?[0-9].*$", "", s) + "*"
    return re.sub(r"\.(llvm\.)?[0-9]+$", "", symbol)


def callgrind(out_dir, tag, env, cmd):
    full = dict(os.environ, **env)
    subprocess.run(
        ["valgrind", "--tool=callgrind", "--demangle=no", "--trace-children=yes", "-q",
         f"--callgrind-out-file={out_dir}/{tag}.%p"] + cmd,
        env=full, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=out_dir)
    return [functions_run(p) for p in glob.glob(f"{out_dir}/{tag}.*") if not p.endswith(".json")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=str(ROOT / "target/memscope-embed/release/libmemscope.so"))
    ap.add_argument("--cli", default=str(ROOT / "target/release/memscope-cli"))
    ap.add_argument("--out", default=str(ROOT / "preload/text_order.ld"))
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    for p in (a.lib, a.cli):
        if not Path(p).is_file():
            print(f"{p} is missing: cargo build --release", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="text_order.") as d:
        pre = {"LD_PRELOAD": a.lib, "MEMSCOPE_EXPORT_PATH": f"{d}/snap.json"}
        skipped = callgrind(d, "skip", {"LD_PRELOAD": a.lib, "MEMSCOPE_SKIP": "true"}, ["env", "/bin/true"])
        images = callgrind(d, "true", pre, ["env", "/bin/true"])
        images += callgrind(d, "ls", pre, ["env", "ls", "-l", "/"])
        images += callgrind(d, "sh", pre, ["env", "bash", "-c", LOOP])
        images += callgrind(d, "run", {"MEMSCOPE_LIB": a.lib}, [a.cli, "run", "--", "bash", "-c", LOOP + "; python3 -c pass"])
    images = [i for i in images if i]
    print(f"functions run: {[len(i) for i in images]} by the images, {[len(s) for s in skipped]} skipped", file=sys.stderr)
    if len(images) < 5 or not any(skipped) or len(set().union(*images)) < 100:
        print(f"callgrind saw too little of the library ({len(images)} images): is {a.lib} the one they loaded?", file=sys.stderr)
        return 1
    ran = collections.Counter()
    cost = collections.Counter()
    for i in images:
        ran.update(set(i))
        cost.update(i)
    # The library's own entry points (the hooks) run in every image; under
    # callgrind some show up by another name of the same code.
    exported = subprocess.run(["nm", "-D", "--defined-only", a.lib], capture_output=True, text=True, check=True)
    entry_points = [l.split()[-1] for l in exported.stdout.splitlines() if len(l.split()) == 3]
    order, seen = [], set()
    for f in (
        sorted(set().union(*skipped), key=lambda f: -sum(s[f] for s in skipped))
        + entry_points
        + sorted(ran, key=lambda f: (-ran[f], -cost[f]))
    ):
        p = pattern(f)
        if p and p not in seen:
            seen.add(p)
            order.append(p)
    with open(a.out, "w") as out:
        out.write("/* Generated by scripts/text_order.py from what short process images run\n")
        out.write(f" * ({len(images)} images under callgrind): the code they run, first in the\n")
        out.write(" * library's text. See preload/build.rs. */\n")
        out.write("SECTIONS {\n  .text : {\n")
        # crtbegin's frame_dummy runs at every start.
        out.write("    *crtbeginS.o(.text .text.*)\n")
        for p in order:
            alts = " ".join(f".text{prefix}.{p}" for prefix in ("", ".unlikely", ".hot", ".startup"))
            out.write(f"    *({alts})\n")
        # One section, as the default layout makes it: valgrind and other
        # tools read the symbols of `.text` only.
        out.write(f"    HIDDEN({END} = .);\n{DEFAULT_TEXT}  }}\n}} INSERT AFTER .init;\n")
    print(f"{a.out}: {len(order)} patterns from {len(images)} images", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
