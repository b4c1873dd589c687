#!/usr/bin/env bash
# Runs the Rust test suite and the CLI on every fixture under valgrind memcheck (debug build)
# and fails on any invalid read/write, use of uninitialised memory or definite leak.
#
#   tools/memcheck.sh                # every integration and unit test binary + the CLI runs
#   tools/memcheck.sh engine_parity  # only the named test binaries (no CLI runs)
#   tools/memcheck.sh --cli          # only the CLI runs
#
# Logs: target/memcheck/<name>.log. Needs valgrind (apt-get install valgrind). Child processes
# that some tests spawn (the CLI tests, hostile_pte's crash isolation) are not traced; the CLI
# itself is checked directly below.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "memcheck: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
out=target/memcheck
mkdir -p "$out"
VG=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=30)

cargo build --quiet --bin diffulex
mapfile -t bins < <(cargo test --workspace --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"] + " " + m["executable"])')

fail=0
run() {  # name, command...
    local name=$1; shift
    local t0=$SECONDS
    if "${VG[@]}" --log-file="$out/$name.log" "$@" >"$out/$name.out" 2>&1; then
        printf '%-28s clean   %4ds  %s\n' "$name" $((SECONDS - t0)) "$(grep -h 'ERROR SUMMARY' "$out/$name.log" | head -1 | sed 's/^==[0-9]*== //')"
    else
        printf '%-28s FAILED  %4ds  see %s\n' "$name" $((SECONDS - t0)) "$out/$name.log"
        fail=1
    fi
}

cli_only=0
[[ "${1:-}" == "--cli" ]] && { cli_only=1; shift; }
for entry in "${bins[@]}"; do
    [[ $cli_only -eq 1 ]] && break
    name=${entry%% *}; exe=${entry#* }
    if [[ $# -gt 0 ]] && [[ ! " $* " == *" $name "* ]]; then continue; fi
    # One test thread: valgrind serialises threads anyway, and reports stay readable.
    run "test-$name" "$exe" --test-threads=1
done

if [[ $# -eq 0 ]]; then
    run cli-default target/debug/diffulex generate --prompt "12+34="
    for pte in tests/fixtures/pte/*.pte; do
        name=$(basename "$pte" .pte)
        family=${name%%_cached*}; family=${family%%_uncached*}
        run "cli-$name" target/debug/diffulex generate --model "$pte" \
            --tokenizer "tests/fixtures/ckpt/$family/tokenizer.json" --prompt hello --max-new-tokens 16
    done
fi
exit $fail
