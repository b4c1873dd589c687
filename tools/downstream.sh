#!/usr/bin/env bash
# Uses diffulex-edge from where a user stands (issue #12): tests/downstream is a crate outside
# the workspace with a plain dependency on this repository, no build script, no link flags.
# Each target kind it has runs with an empty environment (`env -i`, only PATH and HOME) and
# decodes the fixtures of all four families against the reference goldens:
#   1. bin, example, test and cdylib (loaded by a C caller: Python's ctypes), path dependency;
#   2. the same crate against the packaged .crate files (`cargo package --workspace`, unpacked
#      and used through [patch.crates-io]): what a crates.io user gets;
#   3. `diffulex` from `cargo install`, after its build directory is gone.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
clean_env=(env -i "PATH=$PATH" "HOME=$HOME")

# run_all_kinds CRATE_DIR REPOSITORY: REPOSITORY holds the goldens and fixtures.
run_all_kinds() {
    local crate=$1 repo=$2
    echo "downstream ($crate): build"
    (cd "$crate" && cargo build --quiet --bins --examples --lib)
    # The test binary is run directly (under `env -i`, cargo would rebuild everything for the
    # profile settings the environment no longer carries).
    local test_binary
    test_binary=$(cd "$crate" && cargo test --quiet --no-run --test goldens --message-format=json \
        | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "goldens" and m.get("executable"):
        print(m["executable"])')
    [[ -x $test_binary ]] || { echo "downstream: no test binary for goldens" >&2; exit 1; }
    echo "downstream ($crate): bin"
    "${clean_env[@]}" "$crate/target/debug/diffulex-downstream" "$repo"
    echo "downstream ($crate): example"
    "${clean_env[@]}" "$crate/target/debug/examples/decode"
    echo "downstream ($crate): test"
    "${clean_env[@]}" "$test_binary"
    echo "downstream ($crate): cdylib from a C caller"
    "${clean_env[@]}" python3 -c '
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.downstream_check_goldens.restype = ctypes.c_int64
n = lib.downstream_check_goldens(sys.argv[2].encode())
print(n, "golden cases match")
sys.exit(0 if n > 0 else 1)
' "$crate/target/debug/libdiffulex_downstream.so" "$repo"
}

# 1. Path dependency on this checkout.
run_all_kinds "$repo/tests/downstream" "$repo"

# 2. The packaged crates. `cargo package --workspace` verifies each one by building it from
#    its .crate alone (diffulex-edge against the packaged executorch-sys).
echo "downstream: cargo package --workspace"
# No crate of an earlier run may stand in for this one: a failed packaging must fail here.
rm -f target/package/executorch-sys-0.1.0.crate target/package/diffulex-edge-0.1.0.crate
# Cargo extracts a registry crate once per registry and version and never again (a published
# version cannot change). The verification's local registry has the same path and versions at
# every packaging, so an extraction left by an earlier run would be built instead of this
# checkout's crates (a new shim function then "cannot be found").
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/executorch-sys-0.1.0 \
    "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/diffulex-edge-0.1.0
cargo package --workspace --allow-dirty --quiet 2> >(grep -v '^warning: ignoring' >&2)
test -f target/package/executorch-sys-0.1.0.crate
test -f target/package/diffulex-edge-0.1.0.crate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for crate in executorch-sys-0.1.0 diffulex-edge-0.1.0; do
    tar -xzf "target/package/$crate.crate" -C "$work"
done
mkdir -p "$work/tests"
cp -r tests/downstream "$work/tests/downstream"
rm -rf "$work/tests/downstream/target"
# The goldens' fixtures and the sampler mapping come from this checkout; only the crates are
# the packaged ones.
cp -r tests/fixtures tests/common "$work/tests/"
python3 - "$work/tests/downstream/Cargo.toml" "$work" <<'PY'
import sys
manifest, work = sys.argv[1], sys.argv[2]
text = open(manifest).read()
text = text.replace(
    'diffulex-edge = { path = "../.." }',
    'diffulex-edge = "0.1.0"',
)
text += f'''
[patch.crates-io]
diffulex-edge = {{ path = "{work}/diffulex-edge-0.1.0" }}
executorch-sys = {{ path = "{work}/executorch-sys-0.1.0" }}
'''
open(manifest, "w").write(text)
PY
# The packaged default model, not the checkout's, for the example.
mkdir -p "$work/models"
ln -s "$work/diffulex-edge-0.1.0/models/default" "$work/models/default"
run_all_kinds "$work/tests/downstream" "$work"
# 3. `cargo install`: its build directory is deleted afterwards, and the installed binary still
#    finds the runtime (the build stored the shim in the per-user cache). A debug build keeps
#    this step short; what is checked does not depend on the profile.
echo "downstream: cargo install, build directory deleted, run with env -i"
cargo install --quiet --debug --locked --path . --root "$work/install" --target-dir "$work/install-target"
rm -rf "$work/install-target"
answer=$("${clean_env[@]}" "$work/install/bin/diffulex" generate --prompt "123+456=" 2>/dev/null)
[[ $answer == 579 ]] || { echo "downstream: installed diffulex answered '$answer', not 579" >&2; exit 1; }
echo "installed diffulex: 123+456=$answer"

echo "downstream: every target kind decodes every family, from the checkout and from the packages"
