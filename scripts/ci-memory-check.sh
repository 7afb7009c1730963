#!/usr/bin/env bash
# A CI memory-regression gate built on memscope-cli.
#
#   scripts/ci-memory-check.sh [options] -- CMD [ARGS...]
#
# Runs CMD under `memscope-cli run`, checks absolute limits with
# `memscope-cli check`, compares with a committed baseline with
# `memscope-cli diff`, and fails the job when memory grew too much. The
# whole run counts: every process CMD starts (`sh -c`, `make`, `cargo test`
# run the programs that matter as children), matched with the baseline's
# by executable and order of start.
#
# Options (all optional):
#   --baseline PATH         committed baseline: a directory holding a whole run
#                           (what --update-baseline writes), or a single snapshot
#                           (default: memscope-baseline)
#   --update-baseline       write this run as the new baseline directory and pass
#   --process GLOB          gate only executables whose file name matches GLOB
#                           (repeatable; default: every executable with a process
#                           whose heap peak reached 16 KiB)
#   --max-peak SIZE         absolute limit on the heap peak (e.g. 64MiB)
#   --max-leaked SIZE       absolute limit on bytes live at exit
#   --max-allocations N     absolute limit on the number of allocations
#   --max-peak-growth PCT   limit on peak growth against the baseline (default 10)
#   --max-leak-growth SIZE  limit on leak growth against the baseline (default 0)
#   --out DIR               where the run's snapshots, report and diff go (default: memscope-ci)
#
# memscope-cli is taken from $MEMSCOPE_CLI, else target/release/memscope-cli,
# else PATH. The run is DIR/snapshot.run.json (its manifest) and the
# snapshots beside it; the report over every process is DIR/snapshot.html.
# The markdown diff, one section per executable, is written to DIR/diff.md
# (paste it into the pull request) and appended to $GITHUB_STEP_SUMMARY
# when that is set.
#
# Exit status: 0 pass, 1 a limit was exceeded, 2 usage or setup error,
# 3 the traced command itself failed.
set -uo pipefail

baseline=
update=0
out=memscope-ci
check_args=()
process_args=()
peak_growth=10
leak_growth=0

usage() {
    sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

while (($#)); do
    case "$1" in
    --baseline) baseline=${2:?}; shift 2 ;;
    --update-baseline) update=1; shift ;;
    --max-peak | --max-leaked | --max-allocations) check_args+=("$1" "${2:?}"); shift 2 ;;
    --process) process_args+=("$1" "${2:?}"); shift 2 ;;
    --max-peak-growth) peak_growth=${2:?}; shift 2 ;;
    --max-leak-growth) leak_growth=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --) shift; break ;;
    -h | --help) usage ;;
    *) echo "ci-memory-check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
(($#)) || usage
if [ -z "$baseline" ]; then
    baseline=memscope-baseline
    # The single-snapshot baseline of earlier versions of this script.
    if [ ! -e "$baseline" ] && [ -f memscope-baseline.json ] && ((!update)); then
        baseline=memscope-baseline.json
    fi
fi

cli=${MEMSCOPE_CLI:-}
if [ -z "$cli" ]; then
    root=$(cd "$(dirname "$0")/.." && pwd)
    if [ -x "$root/target/release/memscope-cli" ]; then
        cli=$root/target/release/memscope-cli
    else
        cli=$(command -v memscope-cli) || { echo "ci-memory-check: memscope-cli not found (build it or set MEMSCOPE_CLI)" >&2; exit 2; }
    fi
fi

mkdir -p "$out" || exit 2
snapshot=$out/snapshot.json
run=$out/snapshot.run.json
rm -f "$out"/snapshot*.json "$out/diff.md"

echo "== memscope: tracing $*"
"$cli" run --export both -o "$snapshot" -- "$@"
status=$?
if [ $status -ne 0 ]; then
    echo "ci-memory-check: the command failed (exit $status)" >&2
    exit 3
fi
[ -f "$run" ] || { echo "ci-memory-check: no snapshot was written" >&2; exit 2; }

if ((update)); then
    if [ -e "$baseline" ] && [ ! -d "$baseline" ]; then
        echo "ci-memory-check: $baseline is a file (a single-snapshot baseline); remove it or give --baseline DIR" >&2
        exit 2
    fi
    rm -rf "$baseline.new" && mkdir -p "$baseline.new" &&
        cp "$out"/snapshot*.json "$baseline.new"/ &&
        rm -rf "$baseline" && mv "$baseline.new" "$baseline" || exit 2
    echo "== memscope: baseline updated: $baseline/ ($(($(ls "$baseline" | wc -l) - 1)) snapshots and the run manifest; commit it)"
    exit 0
fi

failed=0
if ((${#check_args[@]})); then
    echo "== memscope: absolute limits"
    "$cli" check "$run" "${check_args[@]}" ${process_args[@]+"${process_args[@]}"}
    case $? in 0) ;; 1) failed=1 ;; *) exit 2 ;; esac
fi

if [ -e "$baseline" ]; then
    echo "== memscope: against $baseline"
    limits=(--max-peak-growth "$peak_growth" --max-leak-growth "$leak_growth" ${process_args[@]+"${process_args[@]}"})
    "$cli" diff "$baseline" "$run" "${limits[@]}"
    case $? in 0) ;; 1) failed=1 ;; *) exit 2 ;; esac
    "$cli" diff "$baseline" "$run" "${limits[@]}" --format markdown >"$out/diff.md" 2>/dev/null
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
        cat "$out/diff.md" >>"$GITHUB_STEP_SUMMARY"
    fi
else
    echo "== memscope: no baseline at $baseline; create one with --update-baseline"
fi

if ((failed)); then
    echo "ci-memory-check: FAILED: memory limits exceeded (report: $out/snapshot.html)" >&2
    exit 1
fi
echo "== memscope: passed (report: $out/snapshot.html)"
