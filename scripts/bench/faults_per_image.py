#!/usr/bin/env python3
"""Page faults per process image of a command of many processes (a shell
loop, a build), un-traced and under one or more builds of `memscope-cli
run`: `perf record -e page-faults -c 1 -a` counts every fault of every
process, and each process is put in a group by its command name, a forked
child (same name as its parent, another pid) apart from the first image.
Prints the median faults per process of each group for each variant, and
where in the traced processes the extra ones come from (the innermost
function of the library, or of libc, in each fault's user stack).

A page fault costs ~1.5-2.5 µs on the 2-core VM these benchmarks run on,
and in a shell loop they are most of what a traced image costs beyond
the un-traced one (see README.md, "Page faults per image"). It reports; it asserts
nothing. Needs `perf` and permission to record system-wide.

usage: faults_per_image.py [--where N] CLI [CLI…] -- COMMAND...
e.g.   faults_per_image.py target/release/memscope-cli -- \\
           bash -c 'for i in $(seq 50); do ls / >/dev/null; echo x | grep -q x; done'
"""

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile


def record(n, cli, command, workdir):
    """The perf data file of variant n's run of command (under cli's `run`, or plain)."""
    data = os.path.join(workdir, "faults-%d.data" % n)
    out = os.path.join(workdir, "out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    argv = command if cli is None else [cli, "run", "-o", os.path.join(out, "s.json"), "--"] + command
    perf = ["perf", "record", "-q", "-e", "page-faults", "-c", "1", "-a", "-g", "-o", data, "--"]
    subprocess.run(perf + argv, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return data


def samples(data):
    """(command name, pid, user frames innermost first) of every fault."""
    text = subprocess.run(
        ["perf", "script", "-i", data, "-F", "comm,pid,ip,sym,dso"], capture_output=True, text=True, check=True
    ).stdout
    for block in text.split("\n\n"):
        lines = [l.strip() for l in block.strip().split("\n") if l.strip()]
        if not lines:
            continue
        head = lines[0].split()
        if len(head) < 2 or not head[1].isdigit():
            continue
        frames = [l for l in lines[1:] if "kernel" not in l]
        yield head[0], int(head[1]), frames


def per_process(data):
    """{group: [faults of each process]} and the fault samples themselves."""
    counts = collections.Counter()
    all_samples = list(samples(data))
    for comm, pid, _ in all_samples:
        counts[(comm, pid)] += 1
    # The first pid of a name is its first image; later pids of a name that
    # ran before as another pid are forks or later images: told apart by
    # name only, so a shell's forked children form the group "bash (fork)".
    first = {}
    for comm, pid in sorted(counts, key=lambda k: k[1]):
        first.setdefault(comm, pid)
    groups = collections.defaultdict(list)
    for (comm, pid), n in counts.items():
        if comm.startswith(("memscope-", "kworker", "perf")) or comm == "swapper":
            continue
        forked = comm in ("bash", "sh", "dash") and pid != first[comm]
        groups[comm + (" (fork)" if forked else "")].append(n)
    return groups, all_samples


def where(all_samples, limit):
    """The innermost function of the library (else of libc) in each fault."""
    c = collections.Counter()
    for comm, _, frames in all_samples:
        if comm.startswith("memscope-"):
            continue
        ours = [f for f in frames if "libmemscope" in f]
        pick = ours[0] if ours else (frames[0] if frames else "(kernel only)")
        name = pick.split(None, 1)[1].rsplit(" (", 1)[0] if " " in pick else pick
        c[("memscope: " if ours else "other: ") + name[:90]] += 1
    return c.most_common(limit)


def label(name):
    """A short column title: "plain", or the directory a build is in."""
    if name == "plain":
        return name
    return os.path.basename(os.path.dirname(os.path.abspath(name)))[-27:]


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        print("usage: faults_per_image.py [--where N] CLI [CLI...] -- COMMAND...", file=sys.stderr)
        sys.exit(2)
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--where", type=int, default=20, help="lines of where the faults come from (0: none)")
    ap.add_argument("clis", nargs="+", help="memscope-cli builds to compare")
    args = ap.parse_args(argv[:cut])
    # Absolute: each run's working directory is a scratch one.
    clis, command = [os.path.abspath(c) for c in args.clis], argv[cut + 1 :]
    if not command:
        ap.error("give the command after --")
    if shutil.which("perf") is None:
        print("faults_per_image.py: perf not found (apt-get install linux-perf)", file=sys.stderr)
        sys.exit(2)
    workdir = tempfile.mkdtemp(prefix="memscope-faults-")
    try:
        variants = [("plain", None)] + [(cli, cli) for cli in clis]
        results = {}
        for n, (name, cli) in enumerate(variants):
            results[name] = per_process(record(n, cli, command, workdir))
        groups = sorted({g for r in results.values() for g in r[0]})
        print("page faults per process (median; processes in brackets): " + " ".join(command))
        print("%-22s" % "group" + "".join("%28s" % label(n) for n, _ in variants))
        for g in groups:
            cells = []
            for name, _ in variants:
                v = results[name][0].get(g, [])
                cells.append("%28s" % ("%d [%d]" % (statistics.median(v), len(v)) if v else "-"))
            print("%-22s" % g + "".join(cells))
        for name, cli in variants[1:]:
            if args.where:
                print("\nwhere %s's processes fault (all faults, innermost library or libc function):" % name)
                for what, n in where(results[name][1], args.where):
                    print("%8d  %s" % (n, what))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
