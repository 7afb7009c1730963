"""What the benchmark scripts share: where the build puts memscope,
building it and a C workload, and an environment without memscope in it."""

import functools
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "target" / "release" / "libmemscope.so"
CLI = ROOT / "target" / "release" / "memscope-cli"
OUT = ROOT / "target" / "bench"


@functools.cache
def build_memscope():
    """Builds memscope (release), once per script however many C programs
    it builds."""
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)


def build_c(name, flags):
    """Builds memscope (release), then scripts/bench/NAME.c with gcc FLAGS
    into target/bench/NAME; returns its path."""
    build_memscope()
    OUT.mkdir(parents=True, exist_ok=True)
    exe = OUT / name
    src = ROOT / "scripts" / "bench" / f"{name}.c"
    subprocess.run(["gcc", *flags, "-o", str(exe), str(src)], check=True)
    return exe


def clean_env():
    """This environment without any memscope setting or preload."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_") and k != "LD_PRELOAD"}
