#!/usr/bin/env bash
# Replays every fuzz target over its committed seeds (fuzz/seeds/<target>) and, when present,
# the local corpus a longer run grew (fuzz/corpus/<target>), once each (-runs=0): a fast
# regression check for CI. Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#
#   tools/fuzz_replay.sh            # all targets
#   tools/fuzz_replay.sh text       # one target
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=(pte_load text chat_template engine cli); fi
cargo +nightly fuzz build
for t in "${targets[@]}"; do
  dirs=("seeds/$t")
  [[ -d "corpus/$t" ]] && dirs+=("corpus/$t")
  echo "== $t: replaying ${dirs[*]}"
  cargo +nightly fuzz run "$t" "${dirs[@]}" -- -runs=0 -rss_limit_mb=4096
done
echo "fuzz replay: all targets clean"
