#!/usr/bin/env bash
# Two `diffulex` builds, A (before) and B (after), on the same bench models in one run: each case
# runs A then B back to back, so slow drift of the machine hits both sides alike. Prints a
# Markdown table of decode tokens/s, execute ms and engine ms (medians of --runs 3) per case.
#
#   tools/bench_ab.sh A/diffulex B/diffulex [out-dir]     # default out-dir: target/bench-ab
#
# Each binary must find its runtime (`diffulex runtime --copy-to DIR` puts it beside a copy).
# Needs the bench models (python tools/make_bench_models.py --logits both) and an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
    echo "usage: tools/bench_ab.sh BEFORE_BINARY AFTER_BINARY [out-dir]" >&2
    exit 2
fi
before=$1 after=$2 out=${3:-target/bench-ab}
mkdir -p "$out"
cat bench-models/*.pte > /dev/null # the first load of a file is slower: warm the page cache
cases=(
    "sdar_fp32|--model bench-models/sdar_v152k_b4.pte --prompt-len 32 --gen-len 32"
    "sdar_int8|--model bench-models/sdar_v152k_b4_int8.pte --prompt-len 32 --gen-len 32"
    "sdar_8da4w|--model bench-models/sdar_v152k_b4_8da4w.pte --prompt-len 32 --gen-len 32"
    "sdar_rows|--model bench-models/sdar_v152k_b4_rows.pte --prompt-len 32 --gen-len 32"
    "fdllm_fp32|--model bench-models/fdllm_v152k_b32.pte --prompt-len 32 --gen-len 64"
    "fdllm_int8_rows|--model bench-models/fdllm_v152k_b32_int8_rows.pte --prompt-len 32 --gen-len 64"
    "llada_rows|--model bench-models/llada_v126k_rows.pte --prompt-len 32 --gen-len 32"
    "sdar_no_kv|--model bench-models/sdar_v152k_b4.pte --prompt-len 64 --gen-len 64 --no-kv-cache"
)
for entry in "${cases[@]}"; do
    name=${entry%%|*} args=${entry#*|}
    for side in before after; do
        bin=$before
        [ "$side" = after ] && bin=$after
        echo "== $name ($side): $args ($(date -u +%T), load $(cut -d' ' -f1 /proc/loadavg))" >&2
        # shellcheck disable=SC2086 # the case's arguments are words
        "$bin" bench $args --runs 3 --json > "$out/${name}_$side.json"
    done
done
python3 - "$out" "${cases[@]}" << 'EOF'
import json, sys
out, cases = sys.argv[1], [c.split("|")[0] for c in sys.argv[2:]]
print("| case | decode tok/s (before / after) | execute ms | engine ms | tokens/forward |")
print("|---|---|---|---|---|")
for name in cases:
    a, b = (json.load(open(f"{out}/{name}_{s}.json"))["median"] for s in ("before", "after"))
    print(f"| {name} | {a['decode_tokens_per_s']:.1f} / {b['decode_tokens_per_s']:.1f} "
          f"| {a['execute_ms']:.1f} / {b['execute_ms']:.1f} | {a['engine_ms']:.2f} / {b['engine_ms']:.2f} "
          f"| {a['tokens_per_forward']:.2f} / {b['tokens_per_forward']:.2f} |")
EOF
