#!/usr/bin/env bash
# ExecuTorch built from source, end to end (docs/source-build.md). Run by hand, not in CI: the
# CMake build of ExecuTorch + XNNPACK + kernels takes tens of minutes on two cores.
#
#   EXECUTORCH_SOURCE_DIR=/path/to/executorch bash tools/source_build.sh
#
# Steps (each can be skipped with SKIP="build tests static compare"; AARCH64=1 adds the last):
#   build    the one command, timed:  EXECUTORCH_SOURCE_DIR=... cargo build
#   compare  `diffulex generate --json` on the bundled model (3 prompts) and the four family
#            fixtures with the source build and with the prebuilt-wheel build: same tokens
#   tests    cargo test --workspace on the source build
#   static   cargo build --release --features static; ldd; the binary copied alone into an
#            empty directory and run under `env -i`; size, startup and load time against the
#            shared (prebuilt) release binary
#   aarch64  (AARCH64=1) the static binary cross-built from the same tree, run under QEMU alone in
#            an empty directory, tokens against x86_64
#   vulkan   (VULKAN=1) mesa's lavapipe (a CPU Vulkan device) from apt, a new enough glslc
#            (tools/build_glslc.sh, or GLSLC=...), `--features vulkan`, tests/vulkan.rs (Vulkan
#            fixtures against the XNNPACK twins and the goldens), and XNNPACK vs Vulkan timings
#   llm-ops  (LLM_OPS=1) `--features llm-ops` (ExecuTorch's LLM custom operators; the tree needs
#            third-party/ao: WITH_AO=1 tools/executorch_source.sh), tests/llm_ops.rs (the
#            --llm-ops twins against the plain programs' logits and the goldens), and the whole
#            test suite on that runtime
#
# Variables: EXECUTORCH_SOURCE_DIR (required; tools/executorch_source.sh makes one),
# EXECUTORCH_PYTHON (a Python with torch for ExecuTorch's code generator; default .venv),
# SRC_TARGET_DIR (default target/source-build), PREBUILT_BIN (a prebuilt-runtime `diffulex`
# release binary; default: built here into target/), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${EXECUTORCH_SOURCE_DIR:?set EXECUTORCH_SOURCE_DIR (tools/executorch_source.sh assembles one)}"
export EXECUTORCH_SOURCE_DIR
SRC_TARGET_DIR=${SRC_TARGET_DIR:-$ROOT/target/source-build}
JOBS=${JOBS:-2}
SKIP=${SKIP:-}
OUT=$SRC_TARGET_DIR/source-build-run
mkdir -p "$OUT"
START=$(date +%s)
phase() { echo; echo "=== $* ($(($(date +%s) - START)) s, load $(cut -d' ' -f1-3 /proc/loadavg))"; }
skip() { [[ " $SKIP " == *" $1 "* ]]; }
src_cargo() { CARGO_TARGET_DIR=$SRC_TARGET_DIR nice -n 10 cargo "$@" -j"$JOBS" --locked; }

echo "source-build run: $(date -u '+%F %T UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
echo "ExecuTorch source: $EXECUTORCH_SOURCE_DIR"
[ -f "$EXECUTORCH_SOURCE_DIR/.diffulex-source-manifest" ] && cat "$EXECUTORCH_SOURCE_DIR/.diffulex-source-manifest"

if ! skip build; then
    phase "one command: EXECUTORCH_SOURCE_DIR=$EXECUTORCH_SOURCE_DIR cargo build"
    t0=$(date +%s)
    src_cargo build 2>&1 | tee "$OUT/build.log" | grep -E '^(warning: executorch-sys|error|   Compiling executorch-sys|    Finished)' || true
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "build failed (log: $OUT/build.log)"; exit 1; }
    echo "build: $(($(date +%s) - t0)) s"
fi
SRC_BIN=$SRC_TARGET_DIR/debug/diffulex
"$SRC_BIN" runtime | head -5

FAILED=0
if ! skip compare; then
    phase "diffulex generate: source build vs prebuilt runtime"
    if [ -z "${PREBUILT_BIN:-}" ]; then
        (unset EXECUTORCH_SOURCE_DIR; nice -n 10 cargo build --release --bin diffulex -j"$JOBS" --locked)
        PREBUILT_BIN=$ROOT/target/release/diffulex
    fi
    "$PREBUILT_BIN" runtime | head -3
    compare() {
        local name=$1
        shift
        env -u EXECUTORCH_SOURCE_DIR "$PREBUILT_BIN" "$@" --json >"$OUT/$name.prebuilt.json"
        "$SRC_BIN" "$@" --json >"$OUT/$name.source.json"
        python3 - "$OUT/$name.prebuilt.json" "$OUT/$name.source.json" "$name" <<'EOF' || FAILED=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
keys = ["prompt_tokens", "tokens", "text", "stop_reason"]
for what, v in (("prebuilt", a), ("source", b)):
    print(f"{sys.argv[3]:>18} {what:>8}: tokens={v['tokens']} text={v['text']!r} stop={v['stop_reason']}")
same = all(a[k] == b[k] for k in keys)
print(f"{sys.argv[3]:>18}   {'SAME' if same else 'DIFFERENT'}")
sys.exit(0 if same else 1)
EOF
    }
    for prompt in "12+34=" "7+8=" "905+88="; do
        compare "default:$prompt" generate --prompt "$prompt"
    done
    for pair in sdar_cached:sdar sdar_cached_int8:sdar fast_dllm_v2_cached:fast_dllm_v2 llada:llada dream:dream; do
        pte=${pair%%:*}
        ckpt=${pair#*:}
        compare "$pte" generate --model "tests/fixtures/pte/$pte.pte" \
            --tokenizer "tests/fixtures/ckpt/$ckpt/tokenizer.json" --prompt hello --max-new-tokens 16
    done
fi

if ! skip tests; then
    phase "cargo test --workspace (source build)"
    t0=$(date +%s)
    if src_cargo test --workspace --no-fail-fast 2>&1 | tee "$OUT/test.log" | grep -E '^(test result|     Running|failures:|    [a-z_:]+$)'; then :; fi
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "tests FAILED (log: $OUT/test.log)"; FAILED=1; }
    echo "tests: $(($(date +%s) - t0)) s"
fi

if ! skip static; then
    phase "--features static"
    t0=$(date +%s)
    src_cargo build --release --features static --bin diffulex 2>&1 | tail -3
    echo "static build: $(($(date +%s) - t0)) s"
    STATIC_BIN=$SRC_TARGET_DIR/release/diffulex
    echo "ldd:"; ldd "$STATIC_BIN"
    EMPTY=$(mktemp -d)
    cp "$STATIC_BIN" "$EMPTY/diffulex"
    cp models/default/model.pte models/default/tokenizer.json models/default/tokenizer_config.json "$EMPTY/"
    (cd "$EMPTY" && env -i ./diffulex generate --model model.pte --prompt "12+34=" --json) >"$OUT/static.json"
    python3 -c "import json,sys; v=json.load(open(sys.argv[1])); print('static, env -i, alone in', sys.argv[2], ':', v['tokens'], repr(v['text']))" "$OUT/static.json" "$EMPTY"
    ls -l "$EMPTY"
    if [ -n "${PREBUILT_BIN:-}" ]; then
        echo "sizes: static $(stat -c %s "$STATIC_BIN") B; shared binary $(stat -c %s "$PREBUILT_BIN") B + runtime:"
        "$PREBUILT_BIN" runtime | grep -E '\.so' || true
        timeit() { python3 - "$@" <<'EOF'
import subprocess, sys, time
runs = []
for _ in range(5):
    t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True, capture_output=True); runs.append(time.perf_counter() - t)
print(f"{min(runs)*1000:8.1f} ms min, {sorted(runs)[2]*1000:8.1f} ms median: {' '.join(sys.argv[1:])}")
EOF
        }
        for bin in "$PREBUILT_BIN" "$EMPTY/diffulex"; do
            timeit "$bin" --version
            timeit "$bin" inspect "$ROOT/models/default/model.pte"
            timeit "$bin" generate --model "$ROOT/models/default/model.pte" --prompt "12+34="
        done
    fi
    rm -rf "$EMPTY"
fi

if [ "${AARCH64:-0}" = 1 ]; then
    # aarch64 from the same tree: cross build of the static binary, run under QEMU alone in an
    # empty directory, tokens compared with the x86_64 static binary. Needs the packages of
    # tools/cross-aarch64.sh, CMake >= 3.26 (CMAKE=...; Debian's 3.25 cannot generate ExecuTorch's
    # aarch64 kernels) and, with Debian's GCC 12, -fno-tree-vectorize for C (it crashes in the
    # vectorizer on a KleidiAI file).
    phase "aarch64 (cross, --features static, QEMU)"
    : "${CMAKE:?AARCH64=1 needs CMAKE pointing at cmake >= 3.26}"
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="-isystem /usr/aarch64-linux-gnu/include"
    export CFLAGS_aarch64_unknown_linux_gnu=${CFLAGS_aarch64_unknown_linux_gnu:--fno-tree-vectorize}
    t0=$(date +%s)
    CARGO_TARGET_DIR=$SRC_TARGET_DIR nice -n 10 /usr/bin/cargo build -j"$JOBS" --locked --release \
        --features static --target aarch64-unknown-linux-gnu --bin diffulex 2>&1 | tail -3
    echo "aarch64 static build: $(($(date +%s) - t0)) s"
    ARM_BIN=$SRC_TARGET_DIR/aarch64-unknown-linux-gnu/release/diffulex
    aarch64-linux-gnu-readelf -d "$ARM_BIN" | grep NEEDED
    EMPTY=$(mktemp -d)
    cp "$ARM_BIN" models/default/model.pte models/default/tokenizer.json models/default/tokenizer_config.json "$EMPTY/"
    (cd "$EMPTY" && env -i /usr/bin/qemu-aarch64-static -cpu neoverse-n1 ./diffulex generate --model model.pte --prompt "12+34=")
    rm -rf "$EMPTY"
    X86_BIN=$SRC_TARGET_DIR/release/diffulex
    for prompt in "12+34=" "7+8=" "905+88="; do
        a=$("$X86_BIN" generate --model models/default/model.pte --prompt "$prompt" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['tokens'])")
        b=$(/usr/bin/qemu-aarch64-static -cpu neoverse-n1 "$ARM_BIN" generate --model models/default/model.pte --prompt "$prompt" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['tokens'])")
        echo "$prompt x86_64 $a aarch64 $b"; [ "$a" = "$b" ] || FAILED=1
    done
fi

if [ "${VULKAN:-0}" = 1 ]; then
    # The tree needs the Vulkan submodules (WITH_VULKAN=1 tools/executorch_source.sh).
    phase "Vulkan (lavapipe)"
    if ! command -v vulkaninfo >/dev/null || [ ! -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ]; then
        apt-get update -qq && apt-get install -y -qq libvulkan-dev mesa-vulkan-drivers vulkan-tools >/dev/null
    fi
    vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName|apiVersion" || true
    if [ -z "${GLSLC:-}" ]; then
        bash tools/build_glslc.sh "$SRC_TARGET_DIR/glslc"
        GLSLC=$SRC_TARGET_DIR/glslc/bin/glslc
    fi
    export GLSLC
    t0=$(date +%s)
    src_cargo build --release --features vulkan --bin diffulex 2>&1 | tail -3
    echo "vulkan build: $(($(date +%s) - t0)) s"
    VK_BIN=$SRC_TARGET_DIR/release/diffulex
    "$VK_BIN" runtime | grep backends
    t0=$(date +%s)
    src_cargo test --release --features vulkan --test vulkan -- --test-threads 1 --nocapture 2>&1 |
        tee "$OUT/vulkan-test.log" | grep -E '^(test |test result)|max \||skipped' || true
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "vulkan tests FAILED (log: $OUT/vulkan-test.log)"; FAILED=1; }
    echo "vulkan tests: $(($(date +%s) - t0)) s"
    for pte in llada dream; do
        for dir in "" vulkan/; do
            echo "bench $dir$pte:"
            "$VK_BIN" bench --model "tests/fixtures/pte/$dir$pte.pte" --prompt-len 64 --gen-len 32 --runs 3 |
                grep -E "method load|decode|first token"
        done
    done
fi

if [ "${LLM_OPS:-0}" = 1 ]; then
    phase "LLM custom operators (--features llm-ops)"
    t0=$(date +%s)
    src_cargo build --release --features llm-ops --bin diffulex 2>&1 | tail -3
    echo "llm-ops build: $(($(date +%s) - t0)) s"
    t0=$(date +%s)
    # Every test on the runtime with the operators: the llm-ops twins run, and nothing else
    # changes because of them.
    src_cargo test --release --features llm-ops --workspace -- --nocapture 2>&1 |
        tee "$OUT/llm-ops-test.log" | grep -E '^test result|max \||FAILED|panicked' || true
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "llm-ops tests FAILED (log: $OUT/llm-ops-test.log)"; FAILED=1; }
    echo "llm-ops tests: $(($(date +%s) - t0)) s"
fi

phase "done"
[ "$FAILED" = 0 ] && echo "source build: all steps passed" || { echo "source build: FAILURES (above)"; exit 1; }
