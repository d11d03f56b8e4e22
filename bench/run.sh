#!/usr/bin/env bash
# Runs every benchmark program of a build folder ($1, default build) with $BENCH_ARGS (e.g.
# --quick) and prints their CSV. With PERF_APPEND=1 it also appends a dated section (date,
# commit, machine, command, output) to bench/PERF.md, in the format that file's header describes.
set -eu
cd "$(dirname "$0")/.."
O=${1:-build}
args=${BENCH_ARGS:-}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for b in "$O"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "## $b $args" | tee -a "$out"
    "$b" $args | tee -a "$out"
done
if [ "${PERF_APPEND:-0}" = 1 ]; then
    {
        echo
        echo "## $(date -u +%Y-%m-%d) — $(git rev-parse --short HEAD) — bench/run.sh $O $args"
        echo
        echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus," \
             "$(grep -o -w -E 'avx512f|avx512_bf16|avx2|fma|f16c' /proc/cpuinfo | sort -u | tr '\n' ' ')"
        echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo
        echo '```'
        cat "$out"
        echo '```'
    } >> bench/PERF.md
fi
