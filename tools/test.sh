#!/usr/bin/env bash
# The test command of the README: Rust (fmt, clippy, unit, integration and doc tests) and the
# Python toolkit's tests. It creates the pinned Python environment in .venv on first use
# (tools/python_env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/python_env.sh
export PATH="$PWD/.venv/bin:$PATH"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --no-default-features --lib --tests -- -D warnings
cargo test --workspace
# The pure-Rust crate (no `pte`, no `cli`): engine, samplers, hash-model goldens, text; nothing
# of ExecuTorch is built.
cargo test --no-default-features --lib --tests
# From where a user stands: a crate outside the workspace, every target kind, env -i, and the
# packaged crates (tools/downstream.sh).
cargo fmt --manifest-path tests/downstream/Cargo.toml -- --check
bash tools/downstream.sh
(cd python && python -m pytest -q)
