#!/usr/bin/env bash
# memscope's overhead benchmarks against the un-traced run, heaptrack and
# DHAT, side by side. Writes scripts/bench/RESULTS.md. Options: --quick,
# --runs N, --only TEXT (see scripts/bench/bench.py --help).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p memscope-preload
exec python3 scripts/bench/bench.py "$@"
