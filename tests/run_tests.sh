#!/usr/bin/env bash
# Runs every test program of every build in $HASS_BUILDS (default: build) and ends with
# exactly one line "tests: N passed, N failed, N skipped". Exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
builds=${HASS_BUILDS:-build}
P=0; F=0; S=0; crashed=0
export HASS_SHARED=${HASS_SHARED:-$(cd .. && pwd)/shared}
# the kernel choices and cost curves the engine measures go to a temporary cache, not $HOME
cache_dir=$(mktemp -d); trap 'rm -rf "$cache_dir"' EXIT
export HASS_CACHE_DIR=${HASS_CACHE_DIR:-$cache_dir}
for b in $builds; do
    for t in "$b"/tests/test_*; do
        [ -x "$t" ] || continue
        name="$b/$(basename "$t")"
        start=$(date +%s.%N)
        out=$("$t" 2>&1); rc=$?
        line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_./-]+: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -1)
        el=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
        if [ -z "$line" ]; then
            printf '%s\n' "$out" | tail -20
            echo "CRASH $name (exit $rc, ${el}s)"
            F=$((F+1)); crashed=1; continue
        fi
        p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        s=$(echo "$line" | sed -E 's/.* ([0-9]+) skipped/\1/')
        if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then
            printf '%s\n' "$out" | grep -E '^(FAIL|SKIP)' | head -30
            [ "$f" -eq 0 ] && f=1
        fi
        P=$((P+p)); F=$((F+f)); S=$((S+s))
        printf '%-40s %5d passed %3d failed %3d skipped  %6ss\n' "$name" "$p" "$f" "$s" "$el"
    done
done
echo "tests: $P passed, $F failed, $S skipped"
[ "$F" -eq 0 ] && [ "$crashed" -eq 0 ]
