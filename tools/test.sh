#!/usr/bin/env bash
# The test command of the README: Rust (fmt, clippy, unit, integration and doc tests) and the
# Python toolkit's tests. It creates the pinned Python environment in .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    # On x86_64 Linux the exact lock (without torch's GPU compiler, triton) saves ~1 GB of disk;
    # elsewhere pip resolves the top-level pins.
    if [ "$(uname -sm)" = "Linux x86_64" ]; then
        .venv/bin/pip install --quiet --no-deps -r python/requirements-lock.txt
    else
        .venv/bin/pip install --quiet -r python/requirements.txt
    fi
    .venv/bin/pip install --quiet --no-deps -e python/
fi
export PATH="$PWD/.venv/bin:$PATH"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
(cd python && python -m pytest -q)
