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


@pytest.mark.parametrize("name", ["fast_dllm_v2_uncached", "llada_rows"])
def test_vulkan_masks_enter_where_at_the_scores_rank(name):
    """ExecuTorch's Vulkan `where` resizes operands of different ranks wrongly (a [T, S] mask
    beside [1, H, T, S] scores gave a [T, S, T, S] output that failed from T = 160), so a Vulkan
    export gives the mask the scores' rank; XNNPACK exports keep the [T, S] mask."""
    from diffulex_export.models.layers import masked_attention

    q = torch.randn(1, 4, 3, 8)
    kv = torch.randn(1, 2, 3, 8)
    mask = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    assert torch.equal(masked_attention(q, kv, kv, mask, 0.5, True), masked_attention(q, kv, kv, mask, 0.5, False))
    entry = json.loads(VULKAN_MANIFEST.read_text())[name]
    graph = _export(entry).exported_program().graph_module
    ranks = set()
    for module in [graph, *(m for _, m in graph.named_modules() if hasattr(m, "original_module"))]:
        gm = module.original_module.graph_module if hasattr(module, "original_module") else module
        for node in gm.graph.nodes:
            if node.op == "call_function" and "where" in str(node.target):
                ranks |= {len(a.meta["val"].shape) for a in node.args if hasattr(a, "meta") and "val" in a.meta}
    # Rank 0 is the -inf fill value, which the resize skips.
    assert ranks - {0} == {4}, ranks
