#!/usr/bin/env bash
# Runs the whole Rust test suite (library, executorch-sys and every integration test, the CLI
# binaries they spawn included) with AddressSanitizer on the Rust code and on the C++ shim.
# Any invalid read or write, use after free, double free or leak in our code, or a bad free
# reaching the allocator from ExecuTorch, fails the run. The prebuilt ExecuTorch libraries
# are not instrumented; tools/memcheck.sh (valgrind) covers their reads and writes.
#
#   tools/asan.sh                    # everything
#   tools/asan.sh --test engine_parity   # extra arguments go to `cargo test`
#
# Needs a nightly toolchain (rustup toolchain install nightly). Build dir: target/asan.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes"
export CFLAGS="-fsanitize=address -fno-omit-frame-pointer"
export CXXFLAGS="$CFLAGS"
# allocator_may_return_null: a hostile .pte asking for terabytes must get std::bad_alloc (as it
# does without ASan) instead of an ASan abort. handle_sigbus=0: tests/control.rs checks that
# truncating a mapped file kills its child process with SIGBUS, as documented; ASan would turn
# the signal into a report and exit(1). Leaks are reported at exit and fail the run.
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1:handle_sigbus=0"
if [[ $# -eq 0 ]]; then set -- --workspace --lib --tests; fi
exec cargo +nightly test --no-fail-fast --target "$host" --target-dir target/asan "$@"
