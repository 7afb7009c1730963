#!/usr/bin/env bash
# memscope's overhead benchmarks against the un-traced run, heaptrack and
# DHAT, side by side. Writes scripts/bench/RESULTS.md. Options: --quick,
# --runs N, --only KEYS, --list, --memscope-root DIR (see
# scripts/bench/bench.py --help and scripts/bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p memscope-preload -p memscope-cli
exec python3 scripts/bench/bench.py "$@"
