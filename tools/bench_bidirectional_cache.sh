#!/usr/bin/env bash
# LLaDA and Dream with Fast-dLLM v1's KV caches (issue 17): cache none / prefix / dual on the
# bench models, prompt 128 and 256, gen 256, block 32, one token per step (steps = 256), plus
# none on the uncached (contract-2) file of the same weights. Prints one TSV row per run.
#
#   tools/bench_bidirectional_cache.sh [THREADS]     (default 2)
#
# Needs a release build (cargo build --release) and the bench models:
#   .venv/bin/python tools/make_bench_models.py --only llada_v126k llada_v126k_cached \
#       dream_v152k dream_v152k_cached llada_v126k_int8 llada_v126k_cached_int8 --logits rows
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
bin=target/release/diffulex
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
row() { # model prompt cache [extra flags...]
    local model=$1 prompt=$2 cache=$3
    shift 3
    "$bin" bench --model "bench-models/$model.pte" --prompt-len "$prompt" --gen-len 256 \
        --block-size 32 --steps 256 --cache "$cache" --runs 1 --threads "$threads" --json "$@" |
        python3 -c '
import json, sys
r = json.load(sys.stdin)
m = r["median"]
print("\t".join(str(x) for x in (sys.argv[1], sys.argv[2], sys.argv[3], int(m["forwards"]),
      int(m["logit_rows"]), round(m["total_ms"] / 1000, 2), round(256 / (m["total_ms"] / 1000), 2))))
' "$model" "$prompt" "$cache"
}
printf 'model\tprompt\tcache\tforwards\tlogit_rows\tseconds\ttokens_per_s\n'
for family in llada_v126k dream_v152k; do
    for prompt in 128 256; do
        row "${family}_rows" "$prompt" none
        for cache in none prefix dual; do
            row "${family}_cached" "$prompt" "$cache"
        done
    done
done
# int8 (lm_head included): the output layer streams a quarter of the bytes.
for prompt in 128 256; do
    row llada_v126k_int8_rows "$prompt" none
    for cache in none dual; do
        row llada_v126k_cached_int8 "$prompt" "$cache"
    done
done
