#!/usr/bin/env bash
# default_model.sh — the recipe of models/default (docs/default_model.md): corpus, tokenizer,
# target pretraining, draft features, EAGLE and HASS drafts in two stages (the corpus's answers,
# then the target's own greedy answers), installation into models/default.
#
# Every stage is resumable and skipped when its output is complete: re-running the script (or
# one stage) continues where it stopped. Pretraining can be time-sliced: PRETRAIN_FLAGS="--stop-at
# N" or "--time-limit SEC" stops it with a checkpoint; the same command continues it.
#
# Usage: tools/default_model.sh [STAGE...]      stages: corpus tokenizer pretrain chatdata
#                                                datagen eagle hass vocab regen eagle2 hass2
#                                                vocab2 eagle3 hass3 vocab3 regen2 eagle4 hass4
#                                                vocab4 install (default: all)
# Env: HASS (build/hass), W (work folder, build/default), THREADS (all CPUs),
#      PRETRAIN_FLAGS, DRAFT_STEPS, DRAFT2_STEPS, DRAFT4_STEPS, DRAFT_VOCAB.
set -euo pipefail
cd "$(dirname "$0")/.."
HASS=${HASS:-build/hass}
W=${W:-build/default}
THREADS=${THREADS:-$(nproc)}
DRAFT_STEPS=${DRAFT_STEPS:-1400}
DRAFT2_STEPS=${DRAFT2_STEPS:-500}
DRAFT4_STEPS=${DRAFT4_STEPS:-500}
DRAFT_VOCAB=${DRAFT_VOCAB:-2048}
mkdir -p "$W"
stages=${*:-corpus tokenizer pretrain chatdata datagen eagle hass vocab regen eagle2 hass2 vocab2 eagle3 hass3 vocab3 regen2 eagle4 hass4 vocab4 install}

for s in $stages; do
    echo "== $s"
    case $s in
    corpus) # chat / instruction / math / code sources + Python stdlib and docs (docs/corpus.md)
        [ -s "$W/corpus/train.jsonl" ] || tools/corpus.sh "$W/corpus" ;;
    tokenizer) # byte-level BPE, 8192 tokens, LLaMA-3 specials and chat template
        [ -s "$W/tokenizer/tokenizer.json" ] ||
            "$HASS" train-tokenizer --data "$W/corpus/train.jsonl" -o "$W/tokenizer" --vocab 8192 \
                --valid "$W/corpus/valid.jsonl" --threads "$THREADS" ;;
    pretrain) # 37.8M parameters: d 384, 20 layers, 6 heads / 2 KV heads, SwiGLU 1024, ctx 1024
        # shellcheck disable=SC2086
        "$HASS" pretrain --data "$W/corpus/train.jsonl" --valid "$W/corpus/valid.jsonl" \
            --tokenizer "$W/tokenizer/tokenizer.json" -o "$W/target" \
            --dim 384 --layers 20 --heads 6 --kv-heads 2 --ffn 1024 --ctx 1024 \
            --batch 4 --accum 2 --steps 650 --lr 1e-3 --min-lr 1e-4 --warmup 100 \
            --weight-decay 0.1 --clip 1.0 --seed 1 --eval-every 100 --eval-windows 64 \
            --ckpt-every 50 --threads "$THREADS" ${PRETRAIN_FLAGS:-} ;;
    chatdata) # the corpus's conversations, once each (the corpus repeats them), the first
        # ones of each source up to a cap (about 0.6M tokens: chat, code and math in proportions
        # that fit the features and two draft trainings in an hour on two cores)
        [ -s "$W/chat.jsonl" ] ||
            { jq -c 'select(has("messages"))' "$W/corpus/train.jsonl" | awk '!seen[$0]++' |
                jq -c --argjson cap '{"gsm8k":1200,"new_codealpaca":800,"code_alpaca":400,"lima":150,"alpaca":500,"dpo":100}' \
                    -n '[inputs] | group_by(.source) | map(.[0:($cap[.[0].source] // length)]) | .[][]' \
                > "$W/chat.jsonl.tmp" && mv "$W/chat.jsonl.tmp" "$W/chat.jsonl"; } ;;
    datagen) # the target's features over those conversations, in its chat template
        "$HASS" datagen -m "$W/target/model" --data "$W/chat.jsonl" -o "$W/feat" --chat \
            --max-len 1024 --threads "$THREADS" ;;
    eagle | hass) # same data, steps, seed and learning rate; fc bias on (EAGLE's training)
        "$HASS" train-draft --method "$s" -m "$W/target/model" --data "$W/feat" \
            -o "$W/draft-$s" --steps "$DRAFT_STEPS" --batch 8 --seq-len 1024 --lr 3e-4 \
            --warmup 200 --seed 1 --ckpt-every 250 --dtype bf16 --log "$W/draft-$s.log.jsonl" \
            --threads "$THREADS" ;;
    regen) # the target's own greedy answers (what a draft sees when it serves) to two in five
        # of those conversations, every source alike, in its chat template
        [ -s "$W/chat-regen.jsonl" ] ||
            { awk 'NR % 5 == 1 || NR % 5 == 3' "$W/chat.jsonl" > "$W/chat-regen.jsonl.tmp" &&
                mv "$W/chat-regen.jsonl.tmp" "$W/chat-regen.jsonl"; }
        "$HASS" datagen -m "$W/target/model" --data "$W/chat-regen.jsonl" -o "$W/feat-regen" \
            --chat --regen -t 0 -n 256 --max-len 1024 --threads "$THREADS" ;;
    eagle2 | hass2) # second stage: from the first-stage draft, on the regenerated answers
        m=${s%2}
        "$HASS" train-draft --method "$m" -m "$W/target/model" --data "$W/feat-regen" \
            --init-from "$W/draft-$m" -o "$W/draft2-$m" --steps "$DRAFT2_STEPS" --batch 8 \
            --seq-len 1024 --lr 2e-4 --warmup 50 --seed 1 --ckpt-every 100 --dtype bf16 \
            --log "$W/draft2-$m.log.jsonl" --threads "$THREADS" ;;
    vocab | vocab2 | vocab3 | vocab4) # drafting scores the most frequent target tokens only
        # (verification scores all): in the corpus's answers (first stage), then in the target's own
        for m in eagle hass; do
            case $s in
            vocab) d=$W/draft-$m f=$W/feat ;;
            vocab2) d=$W/draft2-$m f=$W/feat-regen ;;
            vocab3) d=$W/draft3-$m f=$W/feat-regen ;;
            vocab4) d=$W/draft4-$m f=$W/feat-regen-b ;;
            esac
            "$HASS" draft-vocab -m "$W/target/model" -d "$d" --data "$f" -n "$DRAFT_VOCAB"
        done ;;
    regen2) # the target's own greedy answers to the other three in five conversations
        [ -s "$W/chat-regen-b.jsonl" ] ||
            { awk 'NR % 5 != 1 && NR % 5 != 3' "$W/chat.jsonl" > "$W/chat-regen-b.jsonl.tmp" &&
                mv "$W/chat-regen-b.jsonl.tmp" "$W/chat-regen-b.jsonl"; }
        "$HASS" datagen -m "$W/target/model" --data "$W/chat-regen-b.jsonl" -o "$W/feat-regen-b" \
            --chat --regen -t 0 -n 256 --max-len 1024 --threads "$THREADS" ;;
    eagle3 | hass3 | eagle4 | hass4) # third stage: 300 more steps on the first regenerated
        # answers at half the rate; fourth: DRAFT4_STEPS on the other three in five
        m=${s%[34]}
        if [ "${s#"$m"}" = 3 ]; then
            from=$W/draft2-$m to=$W/draft3-$m data=$W/feat-regen steps=300 seed=3
        else
            from=$W/draft3-$m to=$W/draft4-$m data=$W/feat-regen-b steps=$DRAFT4_STEPS seed=4
        fi
        "$HASS" train-draft --method "$m" -m "$W/target/model" --data "$data" --init-from "$from" \
            -o "$to" --steps "$steps" --batch 8 --seq-len 1024 --lr 1e-4 --warmup 20 --seed "$seed" \
            --ckpt-every 100 --dtype bf16 --log "$to.log.jsonl" --threads "$THREADS" ;;
    install) # BF16 weights into models/default
        mkdir -p models/default
        "$HASS" convert -m "$W/target/model" -o models/default/target --dtype bf16 --force
        cp "$W/target/model/tokenizer.json" "$W/target/model/tokenizer_config.json" \
            "$W/target/model/generation_config.json" models/default/target/
        for m in eagle hass; do
            rm -rf "models/default/draft-$m"
            mkdir -p "models/default/draft-$m"
            cp "$W/draft4-$m/model.safetensors" "models/default/draft-$m/"
            jq '.hass_target = "../target"' "$W/draft4-$m/config.json" \
                > "models/default/draft-$m/config.json"
        done ;;
    *)
        echo "unknown stage $s" >&2
        exit 2 ;;
    esac
done
