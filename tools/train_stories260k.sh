#!/usr/bin/env bash
# train_stories260k.sh — end-to-end draft training on the stories260K target (docs/training.md):
#   1. story openings sampled from the target itself (T=1 from BOS, one seed each, cut to whole
#      words): a training set (seeds 1..N_TRAIN) and a disjoint held-out set (seeds 100001..),
#      with exact duplicates of held-out openings removed from the training set;
#   2. hass datagen --regen: the target's own greedy continuations + features;
#   3. hass train-draft --method eagle and --method hass: same data, steps, seed, lr;
#   4. hass bench on the held-out openings, auto tree and a fixed tree shape.
# Usage: tools/train_stories260k.sh [WORKDIR]   (env: HASS=build/hass, N_TRAIN, N_HELD, STEPS,
#        BATCH, SEQ, LR, GEN_N, THREADS, FC_BIAS)
# FC_BIAS: --no-bias (default here: the drafts in models/ and the numbers in docs/training.md
# were trained without an fc bias) or --bias (train-draft's default, as in EAGLE's training).
set -euo pipefail
HASS=${HASS:-build/hass}
SH=${HASS_SHARED:-../shared}
M=$SH/models/stories260K.bin
Z=$SH/models/tok512.bin
W=${1:-/tmp/hass-stories-train}
N_TRAIN=${N_TRAIN:-1000}
N_HELD=${N_HELD:-40}
STEPS=${STEPS:-1500}
BATCH=${BATCH:-8}
SEQ=${SEQ:-256}
LR=${LR:-1e-3}
GEN_N=${GEN_N:-300}
THREADS=${THREADS:-2}
FC_BIAS=${FC_BIAS:---no-bias}
mkdir -p "$W"

opening() { # seed -> one JSON line {"prompt": ...}
    "$HASS" generate -m "$M" -z "$Z" -p "" -t 1 --seed "$1" -n 16 --json --threads 1 |
        python3 -c 'import json,sys; t=json.load(sys.stdin)["text"]; t=t[:t.rfind(" ")] if " " in t else t; sys.stdout.write(json.dumps({"prompt": t.strip()}) + "\n")'
}
export -f opening
export HASS M Z

if [ ! -s "$W/train_prompts.jsonl" ]; then
    [ -s "$W/held_raw.jsonl" ] ||
        seq 100001 $((100000 + N_HELD)) | xargs -P 2 -I{} bash -c 'opening {}' > "$W/held_raw.jsonl"
    [ -s "$W/train_raw.jsonl" ] ||
        seq 1 "$N_TRAIN" | xargs -P 2 -I{} bash -c 'opening {}' > "$W/train_raw.jsonl"
    python3 - "$W" <<'EOF'
import json, sys
w = sys.argv[1]
def lines(f):  # one object per line (lines written by parallel jobs may have been glued)
    txt = open(f).read().replace("}{", "}\n{")
    return list(dict.fromkeys(json.dumps(json.loads(l)) for l in txt.splitlines() if l.strip()))
held = lines(f"{w}/held_raw.jsonl")
hp = {json.loads(l)["prompt"] for l in held}
train = lines(f"{w}/train_raw.jsonl")  # duplicates removed: greedy continuations would repeat
kept = [l for l in train if json.loads(l)["prompt"] not in hp]
open(f"{w}/heldout.jsonl", "w").write("\n".join(held) + "\n")
open(f"{w}/train_prompts.jsonl", "w").write("\n".join(kept) + "\n")
print(f"held-out {len(held)} openings, train {len(kept)} (dropped {len(train) - len(kept)} "
      f"overlapping), overlap now {len(hp & {json.loads(l)['prompt'] for l in kept})}")
EOF
fi

"$HASS" datagen -m "$M" -z "$Z" --data "$W/train_prompts.jsonl" -o "$W/feat" -n "$GEN_N" \
    --threads "$THREADS"

train() { # method outdir extra-flags...
    local method=$1 out=$2
    shift 2
    "$HASS" train-draft --method "$method" -m "$M" --data "$W/feat" -o "$out" --steps "$STEPS" \
        --batch "$BATCH" --seq-len "$SEQ" --lr "$LR" --seed 1 --ckpt-every 500 \
        --log "$out.jsonl" --log-every 10 --threads "$THREADS" "$FC_BIAS" "$@"
}
train eagle "$W/eagle"
train hass "$W/hass"

bench() { # draft label extra-flags...
    local d=$1 label=$2
    shift 2
    "$HASS" bench -m "$M" -z "$Z" -d "$d" --prompts "$W/heldout.jsonl" -n 128 --reps 3 --json \
        --threads 1 "$@" > "$W/bench_$label.json"
    python3 - "$W/bench_$label.json" "$label" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
s = j.get("summary", j)
keys = ["tau", "speedup", "identical", "plain_tokens_per_s", "spec_tokens_per_s"]
print(sys.argv[2], {k: s.get(k) for k in keys})
EOF
}
for m in eagle hass; do
    bench "$W/$m" "${m}_auto" --tree-tokens auto
    bench "$W/$m" "${m}_fixed16" --tree-tokens 16 --tree-depth 6 --tree-topk 4
done
