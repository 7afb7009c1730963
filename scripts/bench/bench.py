#!/usr/bin/env python3
"""memscope's overhead benchmarks, side by side with heaptrack and DHAT.

Every workload runs under every variant in turn (A B C A B C ...), so slow
drifts of a noisy machine hit all variants alike; each figure is the median
of the runs. Wall-time ratios are to the un-traced run. Nothing here asserts:
the benchmark only reports (scripts/bench.sh is the entry point).
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench"
LIB = ROOT / "target" / "release" / "libmemscope.so"
OUT = ROOT / "target" / "bench"


def build_workloads():
    OUT.mkdir(parents=True, exist_ok=True)

    def build(out, cmd):
        if not (OUT / out).exists() or any(
            (BENCH / src).stat().st_mtime > (OUT / out).stat().st_mtime for src in os.listdir(BENCH)
        ):
            subprocess.run(cmd, check=True, cwd=BENCH)

    build("launch", ["gcc", "-O2", "-o", str(OUT / "launch"), "launch.c"])
    build("alloc_bench", ["gcc", "-O2", "-g", "-pthread", "-o", str(OUT / "alloc_bench"), "alloc_bench.c"])
    build("cpp_churn", ["g++", "-O2", "-g", "-o", str(OUT / "cpp_churn"), "cpp_churn.cpp"])
    build("rust_churn", ["rustc", "-O", "-g", "--edition", "2021", "-o", str(OUT / "rust_churn"), "rust_churn.rs"])


def workloads(quick):
    """(name, argv, cwd, run DHAT?) — sized to take ~0.1-0.5 s un-traced."""
    w = [
        ("alloc_bench 1 thread", [str(OUT / "alloc_bench"), "1", "2000000"], None, True),
        ("alloc_bench 2 threads", [str(OUT / "alloc_bench"), "2", "1000000"], None, True),
        ("alloc_bench 4 threads", [str(OUT / "alloc_bench"), "4", "500000"], None, not quick),
        ("rust_churn 1 thread", [str(OUT / "rust_churn"), "1", "1500000"], None, True),
        ("rust_churn 2 threads", [str(OUT / "rust_churn"), "2", "750000"], None, not quick),
        ("cpp_churn", [str(OUT / "cpp_churn"), "1000000"], None, True),
        ("python3 (dicts, lists)", [sys.executable, str(BENCH / "py_workload.py")], None, not quick),
        ("gcc -O2 -c alloc_bench.c", ["gcc", "-O2", "-c", "-o", "/dev/null", str(BENCH / "alloc_bench.c")], None, False),
    ]
    if shutil.which("sqlite3"):
        w.append(("sqlite3 (60k rows)", ["sh", "-c", f"sqlite3 :memory: < {BENCH / 'sqlite_workload.sql'}"], None, False))
    if shutil.which("git") and (ROOT / ".git").exists():
        w.append(("git log --stat", ["git", "-C", str(ROOT), "log", "--stat", "-n", "200"], None, False))
    return w


class Run:
    def __init__(self, wall, maxrss_kib, snapshots=(), stderr=""):
        self.wall = wall
        self.maxrss_kib = maxrss_kib
        self.snapshots = list(snapshots)
        self.stderr = stderr


def run_once(argv, env, cwd=None):
    # The small launcher forks the command, so its peak RSS is its own (and
    # that of the descendants it waited for: heaptrack's interpreter).
    with tempfile.NamedTemporaryFile(prefix="memscope-bench-rss-") as rss:
        t = time.perf_counter()
        p = subprocess.run([str(OUT / "launch"), rss.name] + argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t
        stderr = p.stderr.decode(errors="replace")
        if p.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited with {p.returncode}: {stderr[-500:]}")
        maxrss = int(Path(rss.name).read_text().split()[0])
    return Run(wall, maxrss, stderr=stderr)


def variants(depth_default, with_dhat):
    """name -> function(argv, scratch dir) -> (argv, env)."""
    base = dict(os.environ)
    for k in list(base):
        if k.startswith("MEMSCOPE_") or k == "LD_PRELOAD":
            del base[k]

    def untraced(argv, d):
        return argv, base

    def memscope(bt):
        def f(argv, d):
            env = dict(base, LD_PRELOAD=str(LIB), MEMSCOPE_EXPORT_PATH=str(d / "snap.json"), MEMSCOPE_MANIFEST=str(d / "manifest"))
            if bt is not None:
                env["MEMSCOPE_BACKTRACE"] = str(bt)
            return argv, env

        return f

    def heaptrack(argv, d):
        return ["heaptrack", "-o", str(d / "heaptrack")] + argv, base

    def dhat(argv, d):
        return ["valgrind", "--tool=dhat", "-q", f"--dhat-out-file={d / 'dhat.json'}"] + argv, base

    v = {"untraced": untraced, "memscope bt=0": memscope(0), f"memscope bt={depth_default}": memscope(None)}
    if shutil.which("heaptrack"):
        v["heaptrack"] = heaptrack
    if with_dhat and shutil.which("valgrind"):
        v["DHAT"] = dhat
    return v


def snapshot_facts(d):
    """Events, snapshot bytes and exit-time cost from a memscope run's dir."""
    manifest = d / "manifest"
    paths = manifest.read_text().split() if manifest.exists() else []
    events = size = 0
    for p in dict.fromkeys(paths):
        size += os.path.getsize(p)
        with open(p) as f:
            s = json.load(f)["summary"]
        events += s["total_allocations"] + s["total_frees"] + s["reallocs"]
    return events, size


def exit_cost_ms(stderr):
    """Sum of 'snapshot built in X ms, written in Y ms' over the run's images."""
    total = 0.0
    for built, written in re.findall(r"built in ([0-9.]+) ms, written in ([0-9.]+) ms", stderr):
        total += float(built) + float(written)
    return total


def default_depth():
    cfg = (ROOT / "engine" / "src" / "config.rs").read_text()
    m = re.search(r"DEFAULT_BACKTRACE: u32 = (\d+)", cfg)
    return m.group(1) if m else "?"


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024 // 1024
    except OSError:
        pass
    glibc = platform.libc_ver()[1]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    ht = subprocess.run(["heaptrack", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("heaptrack") else "absent"
    vg = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("valgrind") else "absent"
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {mem} GiB RAM; Linux {platform.release()}, glibc {glibc}; "
        f"{ht}, {vg}; memscope {commit}; {time.strftime('%Y-%m-%d %H:%M')}"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5, help="runs per variant (median reported)")
    ap.add_argument("--quick", action="store_true", help="3 runs, DHAT on the yardstick workloads only")
    ap.add_argument("--only", help="run workloads whose name contains this text")
    ap.add_argument("--results", default=str(BENCH / "RESULTS.md"), help="markdown file to (re)write")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from the last raw results")
    a = ap.parse_args()
    if a.report_only:
        raw = json.loads((OUT / "results.json").read_text())
        return write_report(raw["rows"], raw["runs"], raw["depth"], a.results)
    runs = 3 if a.quick else a.runs
    build_workloads()
    depth = default_depth()
    rows = []
    for name, argv, cwd, want_dhat in workloads(a.quick):
        if a.only and a.only not in name:
            continue
        vs = variants(depth, want_dhat)
        results = {k: [] for k in vs}
        facts = {}
        for _ in range(runs):
            for k, make in vs.items():
                with tempfile.TemporaryDirectory(prefix="memscope-bench-") as d:
                    d = Path(d)
                    cmd, env = make(argv, d)
                    r = run_once(cmd, env, cwd)
                    if k.startswith("memscope") and k not in facts:
                        facts[k] = snapshot_facts(d)
                    results[k].append(r)
        # One more memscope run at MEMSCOPE_LOG=info for the exit-time cost.
        with tempfile.TemporaryDirectory(prefix="memscope-bench-") as d:
            d = Path(d)
            cmd, env = vs[f"memscope bt={depth}"](argv, d)
            exit_ms = exit_cost_ms(run_once(cmd, dict(env, MEMSCOPE_LOG="info"), cwd).stderr)
        med = {k: statistics.median(r.wall for r in v) for k, v in results.items()}
        rss = {k: statistics.median(r.maxrss_kib for r in v) / 1024 for k, v in results.items()}
        events, snap_bytes = facts.get(f"memscope bt={depth}", (0, 0))
        rows.append((name, med, rss, events, snap_bytes, exit_ms))
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}s" for k, v in med.items()), file=sys.stderr)
        (OUT / "results.json").write_text(json.dumps({"runs": runs, "depth": depth, "rows": rows}))
    write_report(rows, runs, depth, a.results)


def write_report(rows, runs, depth, path):
    keys = list(dict.fromkeys(k for r in rows for k in r[1]))
    traced = [k for k in keys if k != "untraced"]
    head = ["workload", "untraced"] + traced + ["RSS untraced", f"RSS memscope bt={depth}"]
    if "heaptrack" in keys:
        head.append("RSS heaptrack")
    head += ["events", "ns/event (memscope)", "snapshot", "exit write"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, med, rss, events, snap_bytes, exit_ms in rows:
        base = med["untraced"]
        cells = [name, f"{base:.3f} s"] + [f"{med[k] / base:.2f}x" if k in med else "—" for k in traced]
        cells += [f"{rss['untraced']:.1f} MiB", f"{rss[f'memscope bt={depth}']:.1f} MiB"]
        if "heaptrack" in keys:
            cells.append(f"{rss['heaptrack']:.1f} MiB" if "heaptrack" in rss else "—")
        # Per-event cost only means something when events dominate the run.
        extra = med[f"memscope bt={depth}"] - base
        ns = f"{extra / events * 1e9:.1f}" if events >= 100_000 and extra > 0 else "—"
        cells += [f"{events:,}", ns, f"{snap_bytes / 1e6:.1f} MB", f"{exit_ms:.0f} ms"]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(
        [
            "# memscope benchmark results",
            "",
            "Regenerated by `scripts/bench.sh` (median of %d runs per variant, variants interleaved)." % runs,
            "",
            "Machine: " + machine(),
            "",
            "Ratios are wall time over the un-traced run. `bt=N`: call-stack depth "
            "(`MEMSCOPE_BACKTRACE`); `bt=%s` is the default. RSS is the peak resident set of the "
            "traced process tree. `events` counts allocations, frees and reallocs in the "
            "snapshot(s); `ns/event` is memscope's extra wall time per event at the default depth; "
            "`exit write` is the time spent building and writing the snapshot(s) at exit." % depth,
            "",
        ]
        + lines
        + [""]
    )
    Path(path).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
