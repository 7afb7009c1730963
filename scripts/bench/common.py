"""What the issue-16 benchmark scripts (running_snapshot, long_running,
top_cost) share: where the build puts memscope, and building it and a C
workload."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "target" / "release" / "libmemscope.so"
CLI = ROOT / "target" / "release" / "memscope-cli"
OUT = ROOT / "target" / "bench"


def build_c(name, flags):
    """Builds memscope (release), then scripts/bench/NAME.c with gcc FLAGS
    into target/bench/NAME; returns its path."""
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    exe = OUT / name
    src = ROOT / "scripts" / "bench" / f"{name}.c"
    subprocess.run(["gcc", *flags, "-o", str(exe), str(src)], check=True)
    return exe
