#!/usr/bin/env bash
# ablations.sh — HASS's two ideas taken apart on the default target (docs/ablations.md):
# drafts trained on the same features with the same steps (and, for the equal-compute rows,
# the same training FLOPs), three seeds each, then their tau on the evaluation prompts with
# one fixed tree, as mean +- spread over the seeds.
#
#   eagle        n = 1, w = 0            (EAGLE)
#   eagle_topk   n = 1, w = 1            (+ Top-K distillation only)
#   align        n = 3, w = 0            (+ context alignment only)
#   hass         n = 3, w = 1, K = 10    (HASS)
#   K1 K5 K20    HASS with K = 1, 5, 20  (K = 10 is hass)
#   w05 w2       HASS with w = 0.5, 2    (w = 1 is hass)
#   n2 n4 n5     n alignment steps, w = 1 (n = 1 is eagle_topk, n = 3 is hass)
#   eagle_3x     EAGLE with 3x the steps: the compute of one HASS run (n = 3 costs ~3x a step)
#
# Every run is resumable (train-draft and eval resume; finished runs are skipped), so the script
# can be time-sliced: stop it at any point and run it again.
# Usage: tools/ablations.sh [CONFIG...]   (default: all)
# Env: HASS (build/hass), W (build/default: the folder of tools/default_model.sh, which holds
#      target/model and feat), OUT (build/ablations), STEPS (1500), SEEDS ("1 2 3"),
#      LIMIT (questions per suite in the evaluation, 20), THREADS, FEAT ($W/feat: the feature
#      store), BATCH (8), SEQ (1024), WARMUP (200), TREE (24: nodes of the fixed tree),
#      GROUP (all: names the evaluation folders, so that configs can be run in groups).
set -euo pipefail
cd "$(dirname "$0")/.."
HASS=${HASS:-build/hass}
W=${W:-build/default}
OUT=${OUT:-build/ablations}
STEPS=${STEPS:-1500}
SEEDS=${SEEDS:-1 2 3}
LIMIT=${LIMIT:-20}
THREADS=${THREADS:-$(nproc)}
M=$W/target/model
FEAT=${FEAT:-$W/feat}
BATCH=${BATCH:-8}
SEQ=${SEQ:-1024}
WARMUP=${WARMUP:-200}
TREE=${TREE:-24}
GROUP=${GROUP:-all}
mkdir -p "$OUT"

flags() { # config -> train-draft flags
    case $1 in
    eagle) echo "--method eagle" ;;
    eagle_topk) echo "--method eagle --topk-w 1" ;;
    align) echo "--method hass --topk-w 0" ;;
    hass) echo "--method hass" ;;
    K1) echo "--method hass --topk 1" ;;
    K5) echo "--method hass --topk 5" ;;
    K20) echo "--method hass --topk 20" ;;
    w05) echo "--method hass --topk-w 0.5" ;;
    w2) echo "--method hass --topk-w 2" ;;
    n2) echo "--method hass --align-steps 2" ;;
    n4) echo "--method hass --align-steps 4" ;;
    n5) echo "--method hass --align-steps 5" ;;
    eagle_3x) echo "--method eagle" ;;
    *) echo "unknown config $1" >&2; exit 2 ;;
    esac
}

configs=${*:-eagle eagle_topk align hass K1 K5 K20 w05 w2 n2 n4 n5 eagle_3x}
# seed by seed: every config's draft, then their tau on the same prompts and the same fixed tree
# (speed is not the point here: one evaluation per seed and group keeps the runs comparable),
# T = 0; a stopped run leaves whole seeds behind it
for s in $SEEDS; do
    ds="" ns=""
    for c in $configs; do
        steps=$STEPS
        [ "$c" = eagle_3x ] && steps=$((3 * STEPS))
        d=$OUT/$c-s$s
        # shellcheck disable=SC2046
        "$HASS" train-draft $(flags "$c") -m "$M" --data "$FEAT" -o "$d" --steps "$steps" \
            --batch "$BATCH" --seq-len "$SEQ" --lr 3e-4 --warmup "$WARMUP" --seed "$s" \
            --ckpt-every 100 --dtype bf16 --log "$d.log.jsonl" --threads "$THREADS"
        ds="$ds${ds:+,}$d"
        ns="$ns${ns:+,}$c"
    done
    "$HASS" eval -m "$M" --drafts "$ds" --names "$ns" --limit "$LIMIT" -n 128 \
        --tree-tokens "$TREE" --tree-depth 6 --tree-topk 10 --out "$OUT/eval-$GROUP-s$s" --threads "$THREADS" > /dev/null
done

# mean +- spread (half the range) of tau over the seeds, per config and family, as a Markdown
# table (the configs in the order of their first evaluation; "seeds": how many evaluations)
jq -s -r '
  def cell($f): map(select(.family == $f) | .tau) as $t
    | if ($t | length) == 0 then "—"
      else "\(($t | add) / ($t | length) * 100 | round / 100) ± \((($t | max) - ($t | min)) / 2 * 100 | round / 100)"
      end;
  [ .[] | .cells[] | select(.method != "plain" and .temp == 0) ] as $c
  | ($c | map(.method) | reduce .[] as $m ([]; if index([$m]) then . else . + [$m] end)) as $ms
  | "| config | seeds | all | chat (MT-bench) | code (HumanEval) | math (GSM8K) |",
    "|---|---:|---:|---:|---:|---:|",
    ($ms[] as $m | ($c | map(select(.method == $m))) as $x
     | "| \($m) | \($x | map(select(.family == "all")) | length) | \($x | cell("all")) | \($x | cell("mt_bench")) | \($x | cell("humaneval")) | \($x | cell("gsm8k")) |")
' "$OUT"/eval-*-s*/results.json | tee "$OUT/ablations.md"
