#!/usr/bin/env bash
# Every measurement in BENCHMARKS.md's "Quiet machine" section, in one run (about 5 minutes on
# 2 cores). Run it on an idle machine: other jobs inflate the times. Needs the bench models
# (python tools/make_bench_models.py --logits both) and, for the Python baseline and the profile, the
# project venv and perf.
#
#   tools/bench_all.sh [out-dir]      # default: target/bench-all
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-all}
mkdir -p "$out"
python=${PYTHON:-.venv/bin/python}
cargo build --release --quiet
B=target/release/diffulex
cat bench-models/*.pte > /dev/null # warm the page cache: the first load of a file is slower
run() { # name, bench arguments...
    local name=$1; shift
    echo "== $name: $* ($(date -u +%T), load $(cut -d' ' -f1 /proc/loadavg))" >&2
    "$B" bench "$@" --json > "$out/$name.json"
}
run sdar_fp32 --model bench-models/sdar_v152k_b4.pte --prompt-len 32 --gen-len 32 --runs 2
run sdar_int8 --model bench-models/sdar_v152k_b4_int8.pte --prompt-len 32 --gen-len 32 --runs 2
run sdar_8da4w --model bench-models/sdar_v152k_b4_8da4w.pte --prompt-len 32 --gen-len 32 --runs 2
run fdllm_fp32 --model bench-models/fdllm_v152k_b32.pte --prompt-len 32 --gen-len 64 --runs 2
run fdllm_int8 --model bench-models/fdllm_v152k_b32_int8.pte --prompt-len 32 --gen-len 64 --runs 2
run llada_fp32 --model bench-models/llada_v126k.pte --prompt-len 32 --gen-len 32 --runs 1
for t in 1 2; do
    run "sdar_int8_t$t" --model bench-models/sdar_v152k_b4_int8.pte --prompt-len 32 --gen-len 32 --runs 2 --threads $t
    run "sdar_fp32_t$t" --model bench-models/sdar_v152k_b4.pte --prompt-len 32 --gen-len 32 --runs 2 --threads $t
    run "fdllm_t$t" --model bench-models/fdllm_v152k_b32.pte --prompt-len 32 --gen-len 64 --runs 1 --threads $t
done
# Contract 2 ("logits rows", python tools/make_bench_models.py --logits rows): same weights, the
# lm_head only on the rows a step reads. Each pair right after its contract-1 twin.
for m in "sdar_v152k_b4 32" "sdar_v152k_b4_int8 32" "fdllm_v152k_b32 64" "fdllm_v152k_b32_int8 64"; do
    set -- $m
    run "pair_$1" --model "bench-models/$1.pte" --prompt-len 32 --gen-len "$2" --runs 2
    run "pair_$1_rows" --model "bench-models/$1_rows.pte" --prompt-len 32 --gen-len "$2" --runs 2
done
run pair_llada_v126k --model bench-models/llada_v126k.pte --prompt-len 32 --gen-len 32 --runs 1
run pair_llada_v126k_rows --model bench-models/llada_v126k_rows.pte --prompt-len 32 --gen-len 32 --runs 1
run kv_on --model bench-models/sdar_v152k_b4.pte --prompt-len 64 --gen-len 64 --runs 1
run kv_off --model bench-models/sdar_v152k_b4.pte --prompt-len 64 --gen-len 64 --runs 1 --no-kv-cache
if command -v perf > /dev/null; then
    echo "== perf profile (int8)" >&2
    perf record -q -g -o "$out/perf.data" "$B" bench --model bench-models/sdar_v152k_b4_int8.pte \
        --prompt-len 32 --gen-len 32 --runs 2 --json > "$out/perf_run.json" 2> /dev/null
    perf report -i "$out/perf.data" --no-children --sort dso --stdio -g none 2> /dev/null > "$out/perf_dso.txt"
fi
echo "== criterion" >&2
cargo bench --bench samplers > "$out/criterion.txt" 2>&1
echo "== Python baseline" >&2
for m in sdar_v152k_b4 sdar_v152k_b4_int8 sdar_v152k_b4_8da4w fdllm_v152k_b32 llada_v126k \
    sdar_v152k_b4_rows fdllm_v152k_b32_rows llada_v126k_rows; do
    "$python" tools/bench_python_baseline.py --model "bench-models/$m.pte" --prompt-len 16 \
        --gen-len 16 --runs 3 > "$out/python_$m.json"
done
echo "results in $out" >&2
