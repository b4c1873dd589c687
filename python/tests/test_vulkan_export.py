"""`--backend vulkan`: ExecuTorch's Vulkan partitioner over the four families.

ExecuTorch's Python runtime has no Vulkan delegate, so these files are executed only by the
Rust runtime built with feature `vulkan` (tests/vulkan.rs, against the XNNPACK twins' logits
and the reference decoders' goldens). Checked here: that every family lowers, what stays on
the CPU, and that the committed Vulkan fixtures are what the exporter writes today.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import FIXTURES, REPO
from diffulex_export.export import to_program
from diffulex_export.models import load_model

VULKAN_MANIFEST = FIXTURES / "pte" / "vulkan" / "manifest.json"


def _plan(program):
    return next(p for p in program.executorch_program.execution_plan if p.name == "forward")


def _export(entry):
    model = load_model(
        REPO / entry["checkpoint"],
        max_seq_len=entry["max_seq_len"],
        kv_cache=entry["kv_cache"],
        logits_rows=entry.get("logits", "all") == "rows",
    )
    torch.manual_seed(0)
    return to_program(model, "vulkan")


@pytest.mark.parametrize("name", ["sdar_cached", "llada_cached"])
def test_vulkan_lowers_and_matches_the_committed_fixture(name):
    """The KV-cache programs are the hard case: with them the partitioner proposed a delegate
    holding only an integer `sym_size`, which Vulkan's memory planning rejects at export; the
    exporter keeps such partitions on the CPU."""
    entry = json.loads(VULKAN_MANIFEST.read_text())[name]
    program = _export(entry)
    plan = _plan(program)
    assert sorted({d.id for d in plan.delegates}) == ["VulkanBackend"]
    operators = sorted({op.name + (f".{op.overload}" if op.overload else "") for op in plan.operators})
    assert operators == entry["operators"]
    # Only bookkeeping stays on the CPU: the cache write, a size, a scalar; no matmul, no
    # softmax, no norm.
    assert not any(k in op for op in operators for k in ("mm", "linear", "softmax", "mean", "rsqrt"))


def test_every_vulkan_fixture_is_in_its_manifest():
    on_disk = {p.stem for p in (FIXTURES / "pte" / "vulkan").glob("*.pte")}
    manifest = json.loads(VULKAN_MANIFEST.read_text())
    assert on_disk and on_disk == set(manifest)
    plain = json.loads((FIXTURES / "pte" / "manifest.json").read_text())
    for name, entry in manifest.items():
        assert entry["backend"] == "vulkan" and entry["delegates"] == ["VulkanBackend"], name
        twin = plain[name]
        for key in ("checkpoint", "family", "kv_cache", "quantize", "max_seq_len", "meta"):
            assert entry[key] == twin[key], (name, key)
