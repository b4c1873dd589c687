"""`--backend vulkan`: ExecuTorch's Vulkan partitioner over the four families.

ExecuTorch's Python runtime has no Vulkan delegate, so these files are executed only by the
Rust runtime built with feature `vulkan` (tests/vulkan.rs, against the XNNPACK twins' logits
and the reference decoders' goldens). Checked here: what lowers, what stays on the CPU, that
the committed Vulkan fixtures are what the exporter writes today, and that the programs the
delegate was measured to run wrong are refused.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import FIXTURES, REPO
from diffulex_export.errors import ExportError
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


@pytest.mark.parametrize("name", ["llada_rows", "fast_dllm_v2_uncached"])
def test_vulkan_lowers_and_matches_the_committed_fixture(name):
    entry = json.loads(VULKAN_MANIFEST.read_text())[name]
    plan = _plan(_export(entry))
    assert sorted({d.id for d in plan.delegates}) == ["VulkanBackend"]
    operators = sorted({op.name + (f".{op.overload}" if op.overload else "") for op in plan.operators})
    assert operators == entry["operators"]
    # Only bookkeeping stays on the CPU; no matmul, softmax or norm.
    assert not any(k in op for op in operators for k in ("mm", "linear", "softmax", "mean", "rsqrt"))


@pytest.mark.parametrize(
    "family,kv_cache,why",
    [("llada", True, "KV cache"), ("fast_dllm_v2", True, "KV cache"), ("sdar", False, "for sdar")],
)
def test_vulkan_refuses_what_its_delegate_runs_wrong(family, kv_cache, why):
    """The programs measured to fail or decode wrongly on the Vulkan delegate are refused
    before any lowering (docs/source-build.md, "The Vulkan delegate")."""
    model = load_model(FIXTURES / "ckpt" / family, max_seq_len=64, kv_cache=kv_cache, logits_rows=True)
    with pytest.raises(ExportError, match=why):
        to_program(model, "vulkan")


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
