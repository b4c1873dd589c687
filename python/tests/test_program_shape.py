"""What the committed XNNPACK fixtures leave outside the delegate, where the portable kernels
run it one thread at a time: no copy of a whole KV cache, no select over attention scores;
and K/V buffers without a batch axis, which the attention's `bmm` reads without a reshape.

Both were measured costs at real size (BENCHMARKS.md, "The in-place cache write"): the
out-of-place cache write copied every layer's K and V buffers twice per forward, and a `where`
over the [heads, rows, keys] scores grew with the rows of a block, and dropping the buffers'
batch axis inside XNNPACK copied them whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PTE = REPO / "tests" / "fixtures" / "pte"
MANIFEST = json.loads((PTE / "manifest.json").read_text())
XNNPACK = sorted(name for name, entry in MANIFEST.items() if entry.get("backend") == "xnnpack")


def _kernel_calls(path: Path):
    """(operator name, [argument values]) of every kernel call in `forward`."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(path.read_bytes())
    program = getattr(program, "program", program)
    plan = next(p for p in program.execution_plan if p.name == "forward")
    for chain in plan.chains:
        for instruction in chain.instructions:
            call = instruction.instr_args
            if type(call).__name__ == "KernelCall":
                yield plan.operators[call.op_index].name, [plan.values[i].val for i in call.args]


def test_the_manifest_lists_xnnpack_fixtures():
    assert len(XNNPACK) >= 10, XNNPACK


@pytest.mark.parametrize("name", XNNPACK)
def test_no_cache_copies_and_no_select_over_scores(name):
    entry = MANIFEST[name]
    calls = list(_kernel_calls(PTE / f"{name}.pte"))
    names = {op for op, _ in calls}
    if entry["kv_cache"]:
        assert "aten::index_put_" in names, sorted(names)
    assert "aten::index_put" not in names and "aten::copy_" not in names, sorted(names)
    for op, values in calls:
        if op == "aten::index_put_":
            # The buffer written in place: [Hkv, max_seq_len, D].
            assert len(values[0].sizes) == 3, f"{name}: a K/V buffer of shape {list(values[0].sizes)}"
        if op == "aten::where":
            out = values[-1]
            # The mask ([T, S] or [S], repeated per query group) is rank <= 2; the scores are 4-D.
            assert len(out.sizes) <= 2, f"{name}: a where over {list(out.sizes)}"
