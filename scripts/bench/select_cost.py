#!/usr/bin/env python3
"""What choosing images costs (issue 20), interleaved runs, medians.

1. Per image: `/bin/true` un-traced, under LD_PRELOAD with a MEMSCOPE_SKIP
   pattern that matches it (skipped: no engine, no snapshot), and traced.
2. The seed's usage: `cargo run --release -q -- out.json` on an already
   built memscope-rs program, plain vs `memscope-cli run` (default: only the
   program records) vs `memscope-cli run --all`; wall time, bytes written,
   the summary's first line.

Usage: scripts/bench/select_cost.py [--runs N] (build first:
cargo build --release). Nothing here asserts; it prints a markdown table.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import clean_env

ROOT = Path(__file__).resolve().parents[2]
REL = ROOT / "target" / "release"
LIB = REL / "libmemscope.so"
CLI = REL / "memscope-cli"
CRATE = ROOT / "target" / "bench" / "seed-crate"
CRATE_TARGET = ROOT / "target" / "bench" / "seed-crate-target"

MAIN_RS = """use memscope_rs::track_var;

fn main() {
    memscope_rs::init();
    let out = std::env::args().nth(1).unwrap_or_else(|| "my_memory_analysis.json".into());
    memscope_rs::enable_auto_export(Some(&out));
    let my_vec = vec![1, 2, 3];
    let tracked_vec = track_var!(my_vec);
    assert_eq!(tracked_vec.len(), 3);
}
"""


def clean_env():
    env = clean_env()
    env["CARGO_TARGET_DIR"] = str(CRATE_TARGET)
    return env


def timed(argv, env, cwd):
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{argv} exited with {p.returncode}: {p.stderr.decode(errors='replace')[-500:]}")
    return wall, p.stderr.decode(errors="replace")


def interleaved(variants, runs, after=lambda name, stderr: None):
    """variants: name -> (argv, env, cwd, before); runs them in turn (A B C A
    B C ...), calling after(name, stderr) after each. Returns name -> walls."""
    walls = {k: [] for k in variants}
    for _ in range(runs):
        for name, (argv, env, cwd, before) in variants.items():
            before()
            w, err = timed(argv, env, cwd)
            walls[name].append(w)
            after(name, err)
    return walls


def per_image(runs):
    base = clean_env()
    scratch = Path(tempfile.mkdtemp(prefix="memscope-select-"))
    skipped = dict(base, LD_PRELOAD=str(LIB), MEMSCOPE_SKIP="true", MEMSCOPE_EXPORT_PATH=str(scratch / "s-%p.json"))
    traced = dict(base, LD_PRELOAD=str(LIB), MEMSCOPE_EXPORT_PATH=str(scratch / "t-%p.json"))
    nothing = lambda: None
    walls = interleaved(
        {
            "untraced": (["/bin/true"], base, scratch, nothing),
            "skipped": (["/bin/true"], skipped, scratch, nothing),
            "traced": (["/bin/true"], traced, scratch, nothing),
        },
        runs,
    )
    written = sorted(p.name[:2] for p in scratch.iterdir())
    shutil.rmtree(scratch)
    med = {k: statistics.median(v) * 1e3 for k, v in walls.items()}
    print(f"\n## Per image: /bin/true, {runs} interleaved runs each, median wall (ms)\n")
    print("| variant | wall | − untraced |\n|---|---|---|")
    for k in ("untraced", "skipped", "traced"):
        print(f"| {k} | {med[k]:.3f} | {med[k] - med['untraced']:+.3f} |")
    print(f"\nsnapshots written by the skipped runs: {sum(1 for n in written if n == 's-')}; "
          f"by the traced runs: {sum(1 for n in written if n == 't-')}")


def build_crate():
    (CRATE / "src").mkdir(parents=True, exist_ok=True)
    (CRATE / "Cargo.toml").write_text(
        '[package]\nname = "seedprog"\nversion = "0.1.0"\nedition = "2021"\n\n'
        f'[dependencies]\nmemscope-rs = {{ path = "{ROOT / "memscope-rs"}" }}\n\n[workspace]\n'
    )
    (CRATE / "src" / "main.rs").write_text(MAIN_RS)
    if not (CRATE / "Cargo.lock").exists():
        shutil.copy(ROOT / "Cargo.lock", CRATE / "Cargo.lock")
    subprocess.run(["cargo", "build", "--release", "--offline", "-q"], cwd=CRATE, env=clean_env(), check=True)


def cargo_run(runs):
    build_crate()
    env = clean_env()
    out_dir = Path(tempfile.mkdtemp(prefix="memscope-select-out-"))

    def fresh():
        for p in out_dir.iterdir():
            p.unlink()

    args = ["run", "--release", "-q", "--manifest-path", str(CRATE / "Cargo.toml"), "--", "out.json"]
    variants = {
        "cargo run": (["cargo"] + args, env, out_dir, fresh),
        "memscope-cli run cargo run": ([str(CLI), "run", "cargo"] + args, env, out_dir, fresh),
        "memscope-cli run --all cargo run": ([str(CLI), "run", "--all", "cargo"] + args, env, out_dir, fresh),
    }
    sizes, firsts = {}, {}

    def after(name, err):
        sizes[name] = sum(p.stat().st_size for p in out_dir.iterdir())
        firsts[name] = err.splitlines()[0] if err else ""

    walls = interleaved(variants, runs, after)
    shutil.rmtree(out_dir)
    base = statistics.median(walls["cargo run"])
    print(f"\n## `cargo run --release -q -- out.json` (built), {runs} interleaved runs each\n")
    print("| variant | median wall | × plain | bytes written | summary's first line |\n|---|---|---|---|---|")
    for k, v in walls.items():
        m = statistics.median(v)
        print(f"| {k} | {m * 1e3:.0f} ms | {m / base:.2f} | {sizes[k]:,} | {firsts.get(k, '')[:160]} |")


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--runs", type=int, default=15)
    a = a.parse_args()
    for f in (LIB, CLI):
        if not f.exists():
            sys.exit(f"{f} is missing: cargo build --release first")
    per_image(a.runs * 10)
    cargo_run(a.runs)


if __name__ == "__main__":
    main()
