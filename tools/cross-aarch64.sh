#!/usr/bin/env bash
# Cross-build DiffuLex Edge for aarch64 Linux with Debian's own Rust toolchain and run it under
# user-mode QEMU: the Rust test suite (unit, PTE and engine parity tests on the fixtures) and the
# CLI on the bundled model, whose generated tokens are diffed against the x86_64 build's.
#
#   bash tools/cross-aarch64.sh            # Debian 12, as root: installs what it needs with apt
#   SKIP_APT=1 bash tools/cross-aarch64.sh # the packages are already there
#   CROSS_SKIP="default_model" bash ...     # skip test targets (tests/NAME.rs) under QEMU: the
#                                           # bundled-model test (1000 decodes) takes ~20 min there
#
# Why these pieces (docs/cross-compiling.md has the long version):
# - rustup cannot add the aarch64 standard library without its own download server, so the
#   cross build uses Debian's `rustc-web`/`cargo-web` (1.96 in bookworm-security) with
#   `libstd-rust-web-dev:arm64`, which ships the aarch64 standard library as a package.
# - The ExecuTorch runtime is the pinned executorch 1.5.1 manylinux_2_28_aarch64 wheel that
#   executorch-sys fetches for the target triple (SHA-256 checked); nothing is built from source.
# - QEMU runs without QEMU_LD_PREFIX: with `libc6:arm64` installed the aarch64 loader and
#   libraries live in the host's multiarch directories. Pointing QEMU_LD_PREFIX at
#   /usr/aarch64-linux-gnu mixes that tree's ld.so (cross libc 2.36-8) with the host's
#   /lib/aarch64-linux-gnu/libc.so.6 (found through /etc/ld.so.cache, 2.36-9+deb12uN) and every
#   program that starts a thread hangs in pthread_create.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TRIPLE=aarch64-unknown-linux-gnu
START=$(date +%s)
phase() { echo; echo "=== $* ($(($(date +%s) - START)) s)"; }

# --- 1. Packages ------------------------------------------------------------------------------
PACKAGES=(
    rustc-web cargo-web libstd-rust-web-dev:arm64
    gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev:arm64
    qemu-user-static libclang-dev python3-pip
)
if [ "${SKIP_APT:-0}" != 1 ]; then
    phase "apt: ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    dpkg --add-architecture arm64
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

# --- 2. Toolchain -----------------------------------------------------------------------------
# Debian's cargo and rustc by absolute path: rustup's proxies are usually first on PATH and would
# otherwise be picked up as `rustc` by Debian's cargo.
DEB_CARGO=/usr/bin/cargo
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
for tool in "$DEB_CARGO" "$RUSTC" aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ qemu-aarch64-static; do
    command -v "$tool" >/dev/null || { echo "missing $tool (run without SKIP_APT=1)" >&2; exit 1; }
done
phase "toolchain: $($RUSTC --version), $($DEB_CARGO --version)"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# bindgen (shim bindings) runs clang for the target; the cross sysroot has the C headers.
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="-isystem /usr/aarch64-linux-gnu/include"
unset QEMU_LD_PREFIX
# Emulate a real core (Neoverse N1: Graviton2, Ampere Altra; the Cortex-A76 of a Raspberry Pi 5
# has the same features). QEMU 7.2's default `max` CPU also offers i8mm/SVE2/SME, and with it the
# int8 fixture (XNNPACK qd8 kernels) generates different tokens than x86_64 from the first token
# on, while cortex-a72 and neoverse-n1 match x86_64 exactly.
export QEMU_CPU=${QEMU_CPU:-neoverse-n1}
# executorch-sys runs `python -m pip download` for the wheel; the project venv if there is one.
if [ -z "${EXECUTORCH_PYTHON:-}" ] && [ -x "$ROOT/.venv/bin/python" ]; then
    export EXECUTORCH_PYTHON="$ROOT/.venv/bin/python"
fi
JOBS=${JOBS:-2}
cross_cargo() {
    CARGO_TARGET_DIR="$ROOT/target/cross-aarch64" "$DEB_CARGO" "$@" --locked -j"$JOBS" --target "$TRIPLE"
}

# --- 3. Cross build and tests under QEMU ------------------------------------------------------
phase "cross build (debug) for $TRIPLE"
cross_cargo build --workspace --all-targets
# The CLI tests (tests/cli_*.rs) start the `diffulex` binary themselves, which works only if the
# kernel hands aarch64 ELF files to QEMU (binfmt_misc). As root the script registers QEMU for the
# duration of the run (BINFMT=0 to leave the kernel alone: the CLI tests are then skipped and the
# CLI is only exercised by step 4).
BINFMT_DIR=/proc/sys/fs/binfmt_misc
REGISTERED=0
if [ "${BINFMT:-1}" = 1 ] && [ ! -e "$BINFMT_DIR/qemu-aarch64" ] && [ "$(id -u)" = 0 ] \
    && grep -q binfmt_misc /proc/filesystems; then
    [ -e "$BINFMT_DIR/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" || true
    if [ -w "$BINFMT_DIR/register" ] && [ -r /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
        cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$BINFMT_DIR/register" && REGISTERED=1
    fi
fi
cleanup() {
    if [ "$REGISTERED" = 1 ]; then echo -1 >"$BINFMT_DIR/qemu-aarch64" || true; fi
    if [ -n "${OUT:-}" ]; then rm -rf "$OUT"; fi
}
trap cleanup EXIT
TEST_ARGS=(--lib --bins)
for t in tests/*.rs; do
    name=$(basename "$t" .rs)
    if [[ " ${CROSS_SKIP:-} " == *" $name "* ]]; then
        echo "skipping tests/$name.rs: listed in CROSS_SKIP"
        continue
    fi
    if [[ $name == cli_* ]] && [ ! -e "$BINFMT_DIR/qemu-aarch64" ]; then
        echo "skipping tests/$name.rs: no binfmt_misc entry for aarch64 (see BINFMT above)"
        continue
    fi
    TEST_ARGS+=(--test "$name")
done
# Doc tests are not run: stable rustdoc cannot run them for another target.
phase "tests for $TRIPLE under qemu-aarch64"
cross_cargo test --no-fail-fast --workspace "${TEST_ARGS[@]}" || TESTS_FAILED=1

# --- 4. The CLI on both architectures ---------------------------------------------------------
ARM_BIN="$ROOT/target/cross-aarch64/$TRIPLE/debug/diffulex"
# ELF e_machine 0xb7 = AArch64.
[ "$(od -An -tx1 -j18 -N2 "$ARM_BIN" | tr -d ' ')" = b700 ] || { echo "$ARM_BIN is not aarch64" >&2; exit 1; }
phase "x86_64 reference build (host toolchain: $(env -u RUSTC cargo --version))"
# Without the RUSTC set above, so the build of tools/test.sh in target/ is reused.
env -u RUSTC -u RUSTDOC cargo build --locked -j"$JOBS" --bin diffulex
X86_BIN="$ROOT/target/debug/diffulex"

OUT=$(mktemp -d)
FAILED=${TESTS_FAILED:-0}
# One case: a name and the `diffulex` arguments. Compares prompt tokens, generated tokens, text
# and stop reason of the two builds' --json output, and prints both.
compare() {
    local name=$1
    shift
    "$X86_BIN" "$@" --json >"$OUT/$name.x86_64.json"
    qemu-aarch64-static "$ARM_BIN" "$@" --json >"$OUT/$name.aarch64.json"
    python3 - "$OUT/$name.x86_64.json" "$OUT/$name.aarch64.json" "$name" <<'EOF' || FAILED=1
import json, sys
x86, arm = (json.load(open(p)) for p in sys.argv[1:3])
keys = ["prompt_tokens", "tokens", "text", "stop_reason"]
for arch, v in (("x86_64", x86), ("aarch64", arm)):
    print(f"{sys.argv[3]:>22} {arch:>7}: tokens={v['tokens']} text={v['text']!r} stop={v['stop_reason']}")
same = all(x86[k] == arm[k] for k in keys)
print(f"{sys.argv[3]:>22}   {'SAME' if same else 'DIFFERENT'}")
sys.exit(0 if same else 1)
EOF
}

phase "diffulex generate: x86_64 vs aarch64 (qemu)"
for prompt in "12+34=" "7+8=" "905+88="; do
    compare "default:$prompt" generate --prompt "$prompt"
done
for pair in sdar_cached:sdar sdar_cached_int8:sdar fast_dllm_v2_cached:fast_dllm_v2 llada:llada dream:dream; do
    pte=${pair%%:*}
    ckpt=${pair#*:}
    compare "$pte" generate --model "tests/fixtures/pte/$pte.pte" \
        --tokenizer "tests/fixtures/ckpt/$ckpt/tokenizer.json" --prompt hello --max-new-tokens 16
done

phase "done"
if [ "${TESTS_FAILED:-0}" != 0 ]; then
    echo "some tests failed under qemu-aarch64 (see above)" >&2
fi
if [ "$FAILED" != 0 ]; then
    echo "aarch64 run failed or generated different tokens than x86_64" >&2
    exit 1
fi
echo "aarch64 and x86_64 generated the same tokens in every case"
