#!/usr/bin/env python3
"""memscope's overhead benchmarks, side by side with heaptrack and DHAT.

Every workload runs under every variant in turn (A B C A B C ...), so slow
drifts of a noisy machine hit all variants alike; each figure is the median
of the runs. Wall and CPU ratios are to the un-traced run. Nothing here
asserts: the benchmark only reports (scripts/bench.sh is the entry point).
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from common import clean_env

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench"
OUT = ROOT / "target" / "bench"
LAUNCH = OUT / "launch"

# How memscope is put on a workload: plain LD_PRELOAD of the library, or the
# CLI (`memscope-cli run -o FILE -- CMD`), which also reads every snapshot and
# prints its summary before it returns (that time counts).
PRELOAD = "LD_PRELOAD"
RUN = "run"

UNTRACED = "untraced"
HEAPTRACK = "heaptrack"
DHAT = "DHAT"


class Memscope:
    """The memscope build under test: a checkout whose target/release holds
    libmemscope.so and memscope-cli (this one, or another for before/after)."""

    def __init__(self, root):
        self.root = Path(root).resolve()
        self.lib = self.root / "target" / "release" / "libmemscope.so"
        self.cli = self.root / "target" / "release" / "memscope-cli"

    def default_depth(self):
        config = self.root / "engine" / "src" / "config.rs"
        m = re.search(r"DEFAULT_BACKTRACE: u32 = (\d+)", config.read_text()) if config.exists() else None
        return m.group(1) if m else "?"

    def commit(self):
        git = ["git", "-C", str(self.root), "rev-parse", "--short", "HEAD"]
        return subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"

    def missing(self, workloads):
        """Why this build cannot run these workloads, or None."""
        needed = [self.lib] + ([self.cli] if any(w.traced_by == RUN for w in workloads) else [])
        absent = [str(p) for p in needed if not p.is_file()]
        if not absent:
            return None
        return f"missing {', '.join(absent)}; build it: cd {self.root} && cargo build --release -p memscope-preload -p memscope-cli"


@dataclass
class Workload:
    key: str  # the short name --only takes
    name: str  # the row's label
    argv: list
    traced_by: str = PRELOAD
    cwd: Optional[Path] = None
    stdin: Optional[Path] = None  # a file the command reads as its standard input
    dhat: bool = False  # also run it under DHAT (slow: only small workloads)
    backtrace_off: bool = True  # also measure memscope with MEMSCOPE_BACKTRACE=0
    repeat: int = 1  # back-to-back invocations averaged into one sample (very short commands)
    count_events: bool = True  # read the events from the snapshots (not worth it for 2 GB)
    run_env: Callable[[Path], dict] = lambda run_dir: {}  # extra environment of one run
    prepare: Callable[[], Optional[str]] = lambda: None  # once, before timing; returns why it can't run
    skip: Optional[str] = None  # why this machine cannot run it
    note: str = ""


def build_workloads():
    OUT.mkdir(parents=True, exist_ok=True)

    def build(out, cmd):
        if not (OUT / out).exists() or any(
            (BENCH / src).stat().st_mtime > (OUT / out).stat().st_mtime for src in os.listdir(BENCH)
        ):
            subprocess.run(cmd, check=True, cwd=BENCH)

    build("launch", ["gcc", "-O2", "-o", str(LAUNCH), "launch.c"])
    build("alloc_bench", ["gcc", "-O2", "-g", "-pthread", "-o", str(OUT / "alloc_bench"), "alloc_bench.c"])
    build("cpp_churn", ["g++", "-O2", "-g", "-o", str(OUT / "cpp_churn"), "cpp_churn.cpp"])
    build("rust_churn", ["rustc", "-O", "-g", "--edition", "2021", "-o", str(OUT / "rust_churn"), "rust_churn.rs"])
    build("big_heap", ["gcc", "-O2", "-g", "-o", str(OUT / "big_heap"), "big_heap.c"])


def absent(program):
    return None if shutil.which(program) else f"{program} is not installed"


HEAPTRACK_FIRST_IMAGE = "heaptrack traces the first process image only (its library drops LD_PRELOAD before the program starts)"


def single_process_workloads(quick):
    """Sized to take ~0.1-0.5 s un-traced; memscope goes in with LD_PRELOAD."""
    alloc_bench, rust_churn, cpp_churn = (str(OUT / p) for p in ("alloc_bench", "rust_churn", "cpp_churn"))
    gcc_c = ["gcc", "-O2", "-c", "-o", "/dev/null", str(BENCH / "alloc_bench.c")]
    return [
        Workload("alloc1", "alloc_bench 1 thread", [alloc_bench, "1", "2000000"], dhat=True),
        Workload("alloc2", "alloc_bench 2 threads", [alloc_bench, "2", "1000000"], dhat=True),
        Workload("alloc4", "alloc_bench 4 threads", [alloc_bench, "4", "500000"], dhat=not quick),
        Workload("rust1", "rust_churn 1 thread", [rust_churn, "1", "1500000"], dhat=True),
        Workload("rust2", "rust_churn 2 threads", [rust_churn, "2", "750000"], dhat=not quick),
        Workload("cpp", "cpp_churn", [cpp_churn, "1000000"], dhat=True),
        Workload("bigheap", "big heap (500k live blocks)", [str(OUT / "big_heap"), "500000", "2000000"]),
        Workload("python", "python3 (dicts, lists)", [sys.executable, str(BENCH / "py_workload.py")], dhat=not quick),
        Workload(
            "gcc",
            "gcc -O2 -c alloc_bench.c",
            gcc_c,
            note="plain LD_PRELOAD: the gcc driver, cc1 and as each write a snapshot (LD_PRELOAD is inherited); "
            f"{HEAPTRACK_FIRST_IMAGE}, the gcc driver",
        ),
        Workload(
            "sqlite",
            "sqlite3 (60k rows)",
            ["sqlite3", ":memory:"],
            stdin=BENCH / "sqlite_workload.sql",
            skip=absent("sqlite3"),
        ),
        Workload(
            "git",
            "git log --stat",
            ["git", "-C", str(ROOT), "log", "--stat", "-n", "200"],
            skip=absent("git") or (None if (ROOT / ".git").exists() else "not a git checkout"),
        ),
        Workload(
            "node",
            "node (objects, strings, arrays)",
            ["node", str(BENCH / "node_workload.js")],
            skip=absent("node"),
        ),
    ]


# The bash loop of issue 13: 200 x (ls, echo, grep), ~800 short process images.
BASH_LOOP = "for i in $(seq 200); do ls / >/dev/null; echo x | grep -q x; done"
PYENV_SHIM = Path.home() / ".pyenv" / "shims" / "python3"


def multi_process_workloads(scratch):
    """Workloads of many process images, where the per-image cost shows."""
    return [
        Workload(
            "true",
            "/bin/true",
            ["/bin/true"],
            backtrace_off=False,
            repeat=20,
            note="each sample is the median of 20 back-to-back runs; the +ms is what one process image costs",
        ),
        Workload(
            "bash-loop",
            "bash loop (seq 200: ls, echo | grep)",
            ["bash", "-c", BASH_LOOP],
            traced_by=RUN,
            backtrace_off=False,
            count_events=False,
            note=f"{HEAPTRACK_FIRST_IMAGE}, the outer bash",
        ),
        cargo_build("cargo-build", "cargo build --release (serde + serde_json)", SERDE_CRATE, scratch),
        cargo_build("cargo-build-tiny", "cargo build --release (itoa + smallvec)", TINY_CRATE, scratch),
        Workload(
            "gcc-run",
            "gcc -O2 -c alloc_bench.c (run)",
            ["gcc", "-O2", "-c", "-o", "/dev/null", str(BENCH / "alloc_bench.c")],
            traced_by=RUN,
            backtrace_off=False,
            count_events=False,
            note=f"the gcc row under memscope-cli run; {HEAPTRACK_FIRST_IMAGE}, the gcc driver",
        ),
        Workload(
            "pyenv",
            "python3 via pyenv shim",
            [str(PYENV_SHIM), str(BENCH / "py_workload.py")],
            traced_by=RUN,
            backtrace_off=False,
            count_events=False,
            skip=None if os.access(PYENV_SHIM, os.X_OK) else f"no pyenv shim at {PYENV_SHIM}",
            note=f"the shim is a bash script that execs pyenv, which execs python; {HEAPTRACK_FIRST_IMAGE}, the shim's bash",
        ),
    ]


@dataclass
class Crate:
    """A binary crate with two crates.io dependencies, built from clean."""

    dir_name: str
    dependencies: str  # the [dependencies] section's lines
    main_rs: str


# Two dependencies that pull in ~10 crates and build scripts (serde_derive,
# syn, proc-macro2...): the shape of issue 13's cargo row, ~100 process images.
SERDE_CRATE = Crate(
    "serde-deps",
    'serde = { version = "1", features = ["derive"] }\nserde_json = "1"\n',
    """\
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct Point {
    x: i64,
    y: i64,
    label: String,
}

fn main() {
    let p = Point { x: 1, y: 2, label: "a".into() };
    let text = serde_json::to_string(&p).unwrap();
    let back: Point = serde_json::from_str(&text).unwrap();
    println!("{text} {back:?}");
}
""",
)

# Two leaf dependencies: a build of a handful of rustc runs, where fixed
# per-image and per-run costs dominate.
TINY_CRATE = Crate(
    "tiny-deps",
    'itoa = "1"\nsmallvec = "1"\n',
    """\
use smallvec::SmallVec;

fn main() {
    let mut digits: SmallVec<[u8; 32]> = SmallVec::new();
    let mut buffer = itoa::Buffer::new();
    for i in 0..1000u64 {
        digits.extend_from_slice(buffer.format(i * i).as_bytes());
    }
    println!("{}", digits.len());
}
""",
)


def make_crate(crate, where):
    """Writes the crate and fetches its dependencies now, so the timed builds
    run --offline. Returns why it cannot, or None."""
    (where / "src").mkdir(parents=True, exist_ok=True)
    manifest = f'[package]\nname = "{crate.dir_name}"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
    (where / "Cargo.toml").write_text(manifest + crate.dependencies)
    (where / "src" / "main.rs").write_text(crate.main_rs)
    fetch = subprocess.run(["cargo", "fetch"], cwd=where, env=clean_env(), capture_output=True, text=True)
    if fetch.returncode != 0:
        return "cargo fetch failed: " + (fetch.stderr.strip().splitlines() or ["?"])[-1]
    return None


def cargo_build(key, name, crate, scratch):
    """`cargo build --release` of crate from clean: a fresh CARGO_TARGET_DIR
    inside each run's directory (deleted with it)."""
    where = scratch / crate.dir_name
    return Workload(
        key,
        name,
        ["cargo", "build", "--release", "--offline"],
        traced_by=RUN,
        cwd=where,
        backtrace_off=False,
        count_events=False,
        run_env=lambda run_dir: {"CARGO_TARGET_DIR": str(run_dir / "target")},
        prepare=lambda: make_crate(crate, where),
        skip=absent("cargo"),
        note="from clean (a fresh CARGO_TARGET_DIR per run), dependencies fetched beforehand; run's default "
        "for a cargo command (SPEC §4: only what cargo runs from the target directory, where implemented; "
        f"else every process); {HEAPTRACK_FIRST_IMAGE}, cargo (not rustc)",
    )


def all_workloads(quick, scratch):
    return single_process_workloads(quick) + multi_process_workloads(scratch)


def chosen(workloads, only):
    """--only A,B: a workload whose key is one of them, or (for a text that is
    no key) whose name contains it."""
    if not only:
        return workloads
    texts = only.split(",")
    keys = {w.key for w in workloads}
    return [w for w in workloads if any(t == w.key or (t not in keys and t in w.name) for t in texts)]


def variants(w, build, depth):
    """name -> function(run dir) -> (argv, env). Each variant writes its
    output inside the run dir: memscope's snapshots in memscope/, heaptrack's
    file in heaptrack/."""
    base = clean_env()

    def untraced(run_dir):
        return w.argv, base

    def memscope(backtrace):
        def command(run_dir):
            out = run_dir / "memscope"
            out.mkdir()
            env = dict(base) if backtrace is None else dict(base, MEMSCOPE_BACKTRACE=str(backtrace))
            first = str(out / "snapshot.json")  # other images insert .<pid> before .json
            if w.traced_by == RUN:
                return [str(build.cli), "run", "-o", first, "--"] + w.argv, dict(env, MEMSCOPE_LIB=str(build.lib))
            return w.argv, dict(env, LD_PRELOAD=str(build.lib), MEMSCOPE_EXPORT_PATH=first)

        return command

    def heaptrack(run_dir):
        out = run_dir / "heaptrack"
        out.mkdir()
        return ["heaptrack", "-o", str(out / "heaptrack")] + w.argv, base

    def dhat(run_dir):
        return ["valgrind", "--tool=dhat", "-q", f"--dhat-out-file={run_dir / 'dhat.json'}"] + w.argv, base

    v = {UNTRACED: untraced}
    if w.backtrace_off:
        v["memscope bt=0"] = memscope(0)
    v[f"memscope bt={depth}"] = memscope(None)
    if shutil.which("heaptrack"):
        v[HEAPTRACK] = heaptrack
    if w.dhat and shutil.which("valgrind"):
        v[DHAT] = dhat
    return v


@dataclass
class Sample:
    wall: float  # seconds, fork to wait4
    cpu: float  # user + sys seconds of the whole process tree
    maxrss_kib: float  # the largest process of the tree
    snapshot_files: int = 0
    snapshot_bytes: int = 0
    heaptrack_bytes: int = 0
    events: Optional[int] = None
    stderr: str = ""


# A run this long has hung (heaptrack once waited 25 minutes on a futex in a
# fork child of the bash loop): it is killed and its variant left out of the
# row, which says so, instead of the benchmark never ending.
HANG_SECONDS = 300


class Hung(Exception):
    pass


def launch(argv, env, cwd, stdin):
    """Runs argv through the launcher, which measures it (see launch.c). What
    env adds to the clean environment reaches argv only: an LD_PRELOAD on the
    launcher would trace it too (its snapshots, its exit) and count that."""
    base = clean_env()
    added = [f"{k}={v}" for k, v in env.items() if base.get(k) != v]
    removed = set(base) - set(env)
    assert not removed, f"a variant may only add to the environment, not remove {removed}"
    with tempfile.NamedTemporaryFile(prefix="memscope-bench-cost-") as cost:
        cmd = [str(LAUNCH), cost.name] + added + ["--"] + argv
        with open(stdin or os.devnull, "rb") as given:
            p = subprocess.Popen(cmd, env=base, cwd=cwd, stdin=given, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            try:
                _, err = p.communicate(timeout=HANG_SECONDS)
            except subprocess.TimeoutExpired:
                # The whole tree: the launcher, the command and its children.
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
                raise Hung(f"{' '.join(argv)} still running after {HANG_SECONDS} s, killed")
        stderr = err.decode(errors="replace")
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {p.returncode}: {stderr[-500:]}")
        maxrss, _, user_us, sys_us, wall_ns = (int(x) for x in Path(cost.name).read_text().split())
    return Sample(wall=wall_ns / 1e9, cpu=(user_us + sys_us) / 1e6, maxrss_kib=maxrss, stderr=stderr)


def files_in(d):
    """(count, total bytes) of the files under d."""
    paths = [p for p in d.rglob("*") if p.is_file()] if d.exists() else []
    return len(paths), sum(p.stat().st_size for p in paths)


def snapshot_events(d):
    """Allocations + frees + reallocs over the snapshots in d."""
    events = 0
    for p in sorted(d.glob("*.json")):
        with open(p) as f:
            s = json.load(f)["summary"]
        events += s["total_allocations"] + s["total_frees"] + s["reallocs"]
    return events


def measure_once(w, command, read_events=False, extra_env=None):
    with tempfile.TemporaryDirectory(prefix="memscope-bench-") as run_dir:
        run_dir = Path(run_dir)
        argv, env = command(run_dir)
        env = dict(env, **w.run_env(run_dir), **(extra_env or {}))
        s = launch(argv, env, w.cwd, w.stdin)
        s.snapshot_files, s.snapshot_bytes = files_in(run_dir / "memscope")
        s.heaptrack_bytes = files_in(run_dir / "heaptrack")[1]
        if read_events:
            s.events = snapshot_events(run_dir / "memscope")
    return s


def measure(w, command, read_events=False):
    """One sample: the median of w.repeat back-to-back runs (outputs: the first run's)."""
    samples = [measure_once(w, command, read_events and i == 0) for i in range(w.repeat)]
    first = samples[0]
    first.wall = statistics.median(s.wall for s in samples)
    first.cpu = statistics.median(s.cpu for s in samples)
    return first


def exit_cost_ms(stderr):
    """Sum of 'snapshot built in X ms, written in Y ms' over the run's images."""
    total = 0.0
    for built, written in re.findall(r"built in ([0-9.]+) ms, written in ([0-9.]+) ms", stderr):
        total += float(built) + float(written)
    return total


def medians(samples):
    """The median of each figure over one variant's samples."""
    med = lambda attr: statistics.median(getattr(s, attr) for s in samples)
    return {
        "wall": med("wall"),
        "cpu": med("cpu"),
        "rss_mib": med("maxrss_kib") / 1024,
        "snapshot_files": med("snapshot_files"),
        "snapshot_bytes": med("snapshot_bytes"),
        "heaptrack_bytes": med("heaptrack_bytes"),
    }


def bench_workload(w, build, depth, runs):
    """Interleaved runs of every variant; the row of medians."""
    vs = variants(w, build, depth)
    default = f"memscope bt={depth}"
    samples = {k: [] for k in vs}
    hung = []
    for i in range(runs):
        for k, command in vs.items():
            if k in hung:
                continue
            try:
                samples[k].append(measure(w, command, read_events=(i == 0 and k == default and w.count_events)))
            except Hung as e:
                if k in (UNTRACED, default):
                    raise
                print(f"bench: {w.key}: {k}: {e}", file=sys.stderr)
                hung.append(k)
    note = "; ".join([w.note] * bool(w.note) + [f"{k} hung (killed after {HANG_SECONDS} s): left out" for k in hung])
    # One more run at MEMSCOPE_LOG=info for the time spent writing snapshots.
    logged = measure_once(w, vs[default], extra_env={"MEMSCOPE_LOG": "info"})
    return {
        "key": w.key,
        "name": w.name,
        "traced_by": w.traced_by,
        "note": note,
        "variants": {k: medians(v) for k, v in samples.items() if k not in hung},
        "events": samples[default][0].events,
        "exit_ms": exit_cost_ms(logged.stderr),
    }


def skipped_row(w, why):
    return {"key": w.key, "name": w.name, "traced_by": w.traced_by, "note": w.note, "skip": why}


def machine(build):
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
    ht = subprocess.run(["heaptrack", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("heaptrack") else "absent"
    vg = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("valgrind") else "absent"
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {mem} GiB RAM; Linux {platform.release()}, glibc {glibc}; "
        f"{ht}, {vg}; memscope {build.commit()} ({build.root}); {time.strftime('%Y-%m-%d %H:%M')}"
    )


def default_results_path(a, build):
    """RESULTS.md only for a full run of this checkout's build; a partial run
    or another build's figures go under target/bench, so they never replace
    the committed table."""
    if a.results:
        return Path(a.results)
    if not a.only and build.root == ROOT:
        return BENCH / "RESULTS.md"
    return OUT / ("RESULTS-" + build.commit() + ("-partial" if a.only else "") + ".md")


def raw_results_path(results):
    return OUT / (Path(results).stem + ".json")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5, help="runs per variant (median reported)")
    ap.add_argument("--quick", action="store_true", help="3 runs, DHAT on the yardstick workloads only")
    ap.add_argument("--only", help="comma-separated workload keys (see --list), or text in workload names")
    ap.add_argument("--list", action="store_true", help="print the workloads' keys and names, and exit")
    ap.add_argument(
        "--memscope-root",
        default=str(ROOT),
        help="the memscope checkout to measure (its target/release must be built); default: this one",
    )
    ap.add_argument("--results", help="markdown file to (re)write; default: RESULTS.md for a full run of this checkout, else under target/bench")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from the last raw results")
    a = ap.parse_args()
    build = Memscope(a.memscope_root)
    results = default_results_path(a, build)
    if a.report_only:
        raw = json.loads(raw_results_path(results).read_text())
        return write_report(raw["rows"], raw["runs"], raw["depth"], raw["machine"], results)
    with tempfile.TemporaryDirectory(prefix="memscope-bench-scratch-") as scratch:
        workloads = chosen(all_workloads(a.quick, Path(scratch)), a.only)
        if a.list:
            for w in all_workloads(a.quick, Path(scratch)):
                print(f"{w.key:17} {w.traced_by:11} {w.name}")
            return
        if not workloads:
            sys.exit(f"no workload matches --only {a.only} (see --list)")
        why = build.missing(workloads)
        if why:
            sys.exit(why)
        run_all(workloads, build, 3 if a.quick else a.runs, results)


def run_all(workloads, build, runs, results):
    build_workloads()
    depth = build.default_depth()
    about = machine(build)
    rows = []
    for w in workloads:
        why = w.skip or w.prepare()
        if why:
            rows.append(skipped_row(w, why))
            print(f"{w.name}: skipped ({why})", file=sys.stderr)
        else:
            rows.append(bench_workload(w, build, depth, runs))
            print(f"{w.name}: " + "  ".join(f"{k} {v['wall']:.3f}s" for k, v in rows[-1]["variants"].items()), file=sys.stderr)
        raw = {"runs": runs, "depth": depth, "machine": about, "rows": rows}
        raw_results_path(results).write_text(json.dumps(raw, indent=1))
    write_report(rows, runs, depth, about, results)


# ---------------------------------------------------------------- the report


def duration(seconds):
    if abs(seconds) < 0.01:
        return f"{seconds * 1e3:.2f} ms"
    if abs(seconds) < 1:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def data_size(n):
    if n < 10e3:
        return f"{n / 1e3:.1f} kB"
    if n < 1e6:
        return f"{n / 1e3:.0f} kB"
    return f"{n / 1e6:.2f} MB" if n < 10e6 else f"{n / 1e6:.0f} MB"


def file_count(n):
    return f"{n:.0f} file" + ("" if n == 1 else "s")


def against_untraced(row, variant, figure):
    """'2.10x (+124 ms)': a variant's figure over the un-traced one."""
    base = row["variants"][UNTRACED][figure]
    if variant not in row["variants"]:
        return "—"
    mine = row["variants"][variant][figure]
    sign = "+" if mine >= base else "−"
    ratio = f"{mine / base:.2f}x " if base > 0 else ""
    return f"{ratio}({sign}{duration(abs(mine - base))})"


def markdown_table(head, lines):
    row = lambda cells: "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    return [row(head), "|" + "---|" * len(head)] + [row(c) for c in lines]


def time_table(rows, traced, figure):
    head = ["workload", "traced with", UNTRACED] + traced
    lines = []
    for r in rows:
        if "skip" in r:
            lines.append([r["name"], r["traced_by"], f"skipped: {r['skip']}"] + ["—"] * len(traced))
            continue
        base = duration(r["variants"][UNTRACED][figure])
        lines.append([r["name"], r["traced_by"], base] + [against_untraced(r, k, figure) for k in traced])
    return markdown_table(head, lines)


def output_table(rows, depth):
    default = f"memscope bt={depth}"
    head = ["workload", "RSS untraced", "RSS memscope", "RSS heaptrack", "events", "ns/event", "memscope snapshots", "heaptrack file", "exit write"]
    lines = []
    for r in rows:
        if "skip" in r:
            continue
        v = r["variants"]
        rss = lambda k: f"{v[k]['rss_mib']:.1f} MiB" if k in v else "—"
        events = r["events"]
        # Per-event cost only means something when events dominate the run.
        extra = v[default]["wall"] - v[UNTRACED]["wall"]
        ns = f"{extra / events * 1e9:.1f}" if events and events >= 100_000 and extra > 0 else "—"
        snapshots = f"{file_count(v[default]['snapshot_files'])}, {data_size(v[default]['snapshot_bytes'])}"
        heaptrack_file = data_size(v[HEAPTRACK]["heaptrack_bytes"]) if HEAPTRACK in v else "—"
        exit_write = f"{r['exit_ms']:.0f} ms" if r["exit_ms"] else "—"
        events_cell = f"{events:,}" if events is not None else "—"
        lines.append([r["name"], rss(UNTRACED), rss(default), rss(HEAPTRACK), events_cell, ns, snapshots, heaptrack_file, exit_write])
    return markdown_table(head, lines)


def notes(rows):
    return [f"- {r['name']}: {r['note']}" for r in rows if r.get("note")]


def write_report(rows, runs, depth, about, path):
    keys = list(dict.fromkeys(k for r in rows for k in r.get("variants", {})))
    traced = [k for k in keys if k != UNTRACED]
    text = "\n".join(
        [
            "# memscope benchmark results",
            "",
            "Regenerated by `scripts/bench.sh` (median of %d runs per variant, variants interleaved)." % runs,
            "",
            "Machine: " + about,
            "",
            "`traced with`: memscope put on the workload with plain `LD_PRELOAD` of the library, or "
            "`memscope-cli run` (its time includes reading the snapshots and printing its summary). "
            "`bt=N`: call-stack depth (`MEMSCOPE_BACKTRACE`); `bt=%s` is the default. "
            "Each traced cell is the ratio to the un-traced run and, in brackets, the difference." % depth,
            "",
            "## Wall time",
            "",
        ]
        + time_table(rows, traced, "wall")
        + [
            "",
            "## CPU time (user + sys of the whole process tree)",
            "",
        ]
        + time_table(rows, traced, "cpu")
        + [
            "",
            "## Memory and output",
            "",
            "RSS is the peak resident set of the largest process of the tree. `events` counts "
            "allocations, frees and reallocs in the snapshots (not read for workloads of many "
            "processes); `ns/event` is memscope's extra wall time per event at the default depth; "
            "`memscope snapshots` is the number and total size of the files written at the default "
            "depth; `heaptrack file` the size of heaptrack's compressed output; `exit write` the "
            "time spent building and writing the snapshots at exit, summed over the images "
            "(from `MEMSCOPE_LOG=info`).",
            "",
        ]
        + output_table(rows, depth)
        + ["", "Notes:", ""]
        + notes(rows)
        + [""]
    )
    Path(path).write_text(text)
    print(text)
    print(f"(written to {path})", file=sys.stderr)


if __name__ == "__main__":
    main()
