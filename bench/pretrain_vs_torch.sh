#!/usr/bin/env bash
# pretrain_vs_torch.sh — one pretraining step of hass beside PyTorch's CPU fp32 on the same shapes
# and thread count, in one run: ../shared/bench/torch_train_bench.py (Debian python3-torch,
# /usr/bin/python3) and bench_train --pretrain. PyTorch runs twice: as installed (its OpenBLAS
# picks its own kernels) and with OPENBLAS_CORETYPE set to the family hass gives OpenBLAS, so
# both sides are also compared on their best settings. Prints both tables and the ratios.
#
# Usage: bench/pretrain_vs_torch.sh [BUILD_DIR] [-- shape flags: --d --layers --vocab --ff
#        --heads --kv --seq --batch]   (default: the script's default shape, 2 threads)
set -euo pipefail
cd "$(dirname "$0")/.."
O=build
if [ $# -gt 0 ] && [ "$1" != "--" ]; then O=$1; shift; fi
[ "${1:-}" = "--" ] && shift
SHAPE=("$@")
THREADS=${THREADS:-2}
TORCH=${HASS_SHARED:-../shared}/bench/torch_train_bench.py
[ -x "$O/bench/bench_train" ] || make -s O="$O" "$O/bench/bench_train"
if [ ! -f "$TORCH" ] || ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "pretrain_vs_torch: needs $TORCH and Debian's python3-torch" >&2
    exit 1
fi
# the family src/train/blas.c names: SkylakeX wherever AVX-512 is (AMD too), else Zen or Haswell
core=Haswell
grep -q AuthenticAMD /proc/cpuinfo && core=Zen
grep -qw avx512f /proc/cpuinfo && core=SkylakeX
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $THREADS threads, $(date -u +%Y-%m-%d)"
t_def=$(/usr/bin/python3 "$TORCH" --threads "$THREADS" --only pretrain "${SHAPE[@]}" | tee /dev/stderr |
    sed -n 's/.*step (fp32) *\([0-9.]*\) tokens\/s.*/\1/p')
t_core=$(OPENBLAS_CORETYPE=$core /usr/bin/python3 "$TORCH" --threads "$THREADS" --only pretrain \
    "${SHAPE[@]}" | tee /dev/stderr | sed -n 's/.*step (fp32) *\([0-9.]*\) tokens\/s.*/\1/p')
ours=$("$O/bench/bench_train" --threads "$THREADS" --pretrain "${SHAPE[@]}" | tee /dev/stderr)
echo
echo "| run | tokens/s | vs PyTorch as installed | vs PyTorch with OPENBLAS_CORETYPE=$core |"
echo "|---|---:|---:|---:|"
echo "| PyTorch fp32, as installed | $t_def | 1.00 | |"
echo "| PyTorch fp32, OPENBLAS_CORETYPE=$core | $t_core | | 1.00 |"
echo "$ours" | awk -F, -v a="$t_def" -v b="$t_core" '/^pretrain_step/ {
    printf "| hass %s (%s GFLOP/s) | %s | %.2f | %.2f |\n", substr($1, 15), $6, $7, $7 / a, $7 / b }'
