#!/usr/bin/env bash
# The test command of the README: Rust (fmt, clippy, unit, integration and doc tests) and the
# Python toolkit's tests. It creates the pinned Python environment in .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet -r python/requirements.txt
    .venv/bin/pip install --quiet --no-deps -e python/
fi
export PATH="$PWD/.venv/bin:$PATH"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
(cd python && python -m pytest -q)
