#!/usr/bin/env bash
# tools/corpus.sh [OUTDIR] [--chat-weight N] — the pretraining corpus of hass's own small model
# (docs/corpus.md): chat/instruction/math data and documents (Wikipedia, C4, the Python 3.11
# standard library and its documentation) as JSONL records of exactly two shapes,
#   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...], "source": S}
#   {"text": "...", "source": S}
# split into OUTDIR/train.jsonl and OUTDIR/valid.jsonl by a stable hash of each record (~1% of
# every source goes to valid), with OUTDIR/stats.json and a table of records and bytes.
# Deterministic: the same inputs give the same bytes (C locale, sorted file lists, no dates).
# Needs bash, jq, coreutils and the Debian packages libpython3.11-stdlib and python3.11-doc.
set -euo pipefail
export LC_ALL=C

usage() { echo "usage: tools/corpus.sh [OUTDIR] [--chat-weight N]   (OUTDIR: build/corpus)" >&2; exit 2; }
out=build/corpus
weight=2
while [ $# -gt 0 ]; do
    case "$1" in
    --chat-weight) [ $# -ge 2 ] || usage; weight=$2; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "corpus.sh: unknown flag '$1'" >&2; usage ;;
    *) out=$1; shift ;;
    esac
done
case "$weight" in '' | *[!0-9]* | 0) echo "corpus.sh: --chat-weight must be an integer >= 1" >&2; exit 2 ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
shared=${HASS_SHARED:-$root/../shared}
data=$shared/data
pylib=/usr/lib/python3.11
pydoc=/usr/share/doc/python3.11/html/_sources
command -v jq >/dev/null || { echo "corpus.sh: jq is missing (make deps)" >&2; exit 1; }
for f in corpus/llamafactory/alpaca_en_demo.json corpus/llamafactory/lima.json \
    corpus/llamafactory/dpo_en_demo.json corpus/llamafactory/wiki_demo.txt \
    corpus/llamafactory/c4_demo.jsonl corpus/codealpaca/code_alpaca_2k.json \
    corpus/codealpaca/new_codealpaca.json corpus/fastchat/dummy_conversation.json \
    gsm8k/train.jsonl; do
    [ -f "$data/$f" ] || { echo "corpus.sh: $data/$f is missing" >&2; exit 1; }
done
[ -d "$pylib" ] || { echo "corpus.sh: $pylib is missing (libpython3.11-stdlib)" >&2; exit 1; }
[ -d "$pydoc" ] || { echo "corpus.sh: $pydoc is missing (make deps: python3.11-doc)" >&2; exit 1; }

mkdir -p "$out"
tmp=$(mktemp -d "$out/.corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
all=$tmp/all.jsonl

# ---- chat, instruction and math records ----
# instruction (+ "\n\n" + input when non-empty) -> user, output -> assistant; LIMA's history
# pairs come first; ShareGPT roles human/gpt/system -> user/assistant/system. Records with an
# empty (all-whitespace) message are dropped.
# shellcheck disable=SC2016 # jq programs, not shell expansions
defs='def prompt: .instruction + (if (.input // "") != "" then "\n\n" + .input else "" end);
def turn(u; a): [{role: "user", content: u}, {role: "assistant", content: a}];
def role: . as $f | {"human": "user", "gpt": "assistant", "system": "system"} | .[$f];
def keep: select(all(.messages[]; .content | test("\\S")));'
instruct() { # source file: instruction data (LIMA's with a history of [user, assistant] pairs)
    jq -c "$defs"' .[] | {messages: (([(.history // [])[] | turn(.[0]; .[1])] | add // [])
        + turn(prompt; .output)), source: $s} | keep' --arg s "$1" "$2" >>"$all"
}
sharegpt() { # source file: ShareGPT conversations (+ the DPO "chosen" answer)
    jq -c "$defs"' .[] | {messages: [(.conversations[], (.chosen // empty))
        | {role: (.from | role), content: .value}], source: $s} | keep' --arg s "$1" "$2" >>"$all"
}
instruct alpaca "$data/corpus/llamafactory/alpaca_en_demo.json"
instruct lima "$data/corpus/llamafactory/lima.json"
sharegpt dpo "$data/corpus/llamafactory/dpo_en_demo.json"
instruct code_alpaca "$data/corpus/codealpaca/code_alpaca_2k.json"
instruct new_codealpaca "$data/corpus/codealpaca/new_codealpaca.json"
sharegpt fastchat "$data/corpus/fastchat/dummy_conversation.json"
# GSM8K: the calculator annotations <<48/2=24>> go; the final "#### N" becomes "The answer is N."
jq -c "$defs"' {messages: turn(.question; .answer | gsub("<<[^>]*>>"; "")
        | sub("\n#### (?<n>[^\n]*)$"; "\nThe answer is \(.n).")), source: $s} | keep' \
    --arg s gsm8k "$data/gsm8k/train.jsonl" >>"$all"

# ---- documents ----
jq -Rc 'select(test("\\S")) | {text: ., source: $s}' --arg s wiki \
    "$data/corpus/llamafactory/wiki_demo.txt" >>"$all"
jq -c 'select(.text | test("\\S")) | {text: .text, source: $s}' --arg s c4 \
    "$data/corpus/llamafactory/c4_demo.jsonl" >>"$all"
# whole files, one record each; test suites, other packages' dist-packages and empty files left out
docs_jq() { # source-name, then --rawfile fNNNNNN PATH arguments
    jq -nc --arg s "$1" '$ARGS.named | keys[] as $k | select($k | startswith("f"))
        | {text: $ARGS.named[$k], source: $s}' "${@:2}"
}
docs() { # source-name, then file paths (NUL-separated) on stdin; one jq run per 100 files
    local args=() n=0 f
    while IFS= read -r -d '' f; do
        args+=(--rawfile "$(printf 'f%06d' $n)" "$f")
        n=$((n + 1))
        [ ${#args[@]} -lt 300 ] || { docs_jq "$1" "${args[@]}"; args=(); }
    done
    [ ${#args[@]} -eq 0 ] || docs_jq "$1" "${args[@]}"
}
(cd "$pylib" && find . -type f -name '*.py' -size +0 -not -path '*/test/*' -not -path '*/tests/*' \
    -not -path '*/idle_test/*' -not -path './dist-packages/*' -not -path './site-packages/*' \
    -print0 | sort -z | docs python) >>"$all"
(cd "$pydoc" && find . -type f -name '*.rst.txt' -size +0 -print0 | sort -z | docs python_docs) >>"$all"

# ---- split and shuffle ----
# The stable hash is GNU sort's --random-sort: MD5 of the key, salted from a fixed seed file.
# valid.jsonl: in every source, the 1% of records (at least one) that come first in hash order
# (identical records stay together). train.jsonl: the other records, the chat/instruction/math
# ones `weight` times and the documents once, in the hash order of "copy-number<TAB>record" (a
# deterministic shuffle that spreads the copies of a record apart).
tab=$(printf '\t')
seed=$tmp/seed
for i in $(seq 64); do printf 'hass corpus split seed %08d %032d\n' "$i" 0; done >"$seed"
jq -r '"\(.source)\t\(if has("messages") then "m" else "d" end)\t\(tojson)"' "$all" |
    sort -t "$tab" -k1,1 -k3,3R --random-source="$seed" >"$tmp/keyed"
awk -F "$tab" -v w="$weight" -v valid="$tmp/valid.keyed" -v train="$tmp/train.keyed" '
    NR == FNR { n[$1]++; next }
    {
        k = int((n[$1] + 50) / 100); if (k < 1) k = 1
        if (rank[$1]++ < k || $3 == last) { print $3 > valid; last = $3; next }
        for (i = 0; i < ($2 == "m" ? w : 1); i++) print i "\t" $3 > train
    }' "$tmp/keyed" "$tmp/keyed"
sort -R --random-source="$seed" "$tmp/valid.keyed" >"$tmp/valid.jsonl"
sort -R --random-source="$seed" "$tmp/train.keyed" | cut -f2- >"$tmp/train.jsonl"

# ---- statistics: records and content bytes (UTF-8 of text / message contents) ----
stat() { # split file -> {split: {source: {records, bytes}}}
    jq -n --arg split "$1" 'reduce (inputs | {s: .source, b: (if has("text") then .text | utf8bytelength
        else [.messages[].content | utf8bytelength] | add end)}) as $r
        ({}; .[$r.s].records += 1 | .[$r.s].bytes += $r.b) | {($split): .}' "$2"
}
ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }
jq -S -n --argjson w "$weight" --arg v1 "$(ver libpython3.11-stdlib)" --arg v2 "$(ver python3.11-doc)" \
    --slurpfile t <(stat train "$tmp/train.jsonl") --slurpfile v <(stat valid "$tmp/valid.jsonl") '
    {chat_weight: $w, packages: {"libpython3.11-stdlib": $v1, "python3.11-doc": $v2},
     splits: ($t[0] + $v[0])}
    | .total = (.splits | map_values({records: (map(.records) | add // 0), bytes: (map(.bytes) | add // 0)}))' \
    >"$tmp/stats.json"
mv "$tmp/train.jsonl" "$tmp/valid.jsonl" "$tmp/stats.json" "$out/"

jq -r '.splits as $p | ($p.train | keys[]) as $s
    | [$s, $p.train[$s].records, $p.train[$s].bytes, $p.valid[$s].records // 0, $p.valid[$s].bytes // 0]
    | @tsv' "$out/stats.json" | awk -F '\t' -v w="$weight" '
    BEGIN { printf "%-16s %11s %10s %11s %10s\n", "source", "train recs", "train MB", "valid recs", "valid MB" }
    { printf "%-16s %11d %10.2f %11d %10.3f\n", $1, $2, $3 / 1e6, $4, $5 / 1e6; r += $2; b += $3; vr += $4; vb += $5 }
    END { printf "%-16s %11d %10.2f %11d %10.3f\n(chat/instruction/math records are in train %dx)\n", "total", r, b / 1e6, vr, vb / 1e6, w }'
echo "corpus: $out/train.jsonl $out/valid.jsonl $out/stats.json"
