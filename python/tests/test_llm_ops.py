"""`--llm-ops`: attention through ExecuTorch's LLM custom operators.

The reference is the plain-ATen model of the same weights: in eager PyTorch (every family,
cached and uncached, the contract-v3 cache) and as the committed .pte twins run by
ExecuTorch's Python runtime, which has the operators once their AOT library is loaded. The
Rust runtime runs the same twins when built with feature `llm-ops` (tests/llm_ops.rs).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import FIXTURES, REPO
from diffulex_export.errors import ExportError
from diffulex_export.export import export_model, load_pte_method, read_metadata, to_program
from diffulex_export.models import load_model
from diffulex_export.models.llm_ops import load_custom_ops, use_llm_ops

LLM_OPS_MANIFEST = FIXTURES / "pte" / "llm_ops" / "manifest.json"
# fp32 on both sides; only the attention's summation order and exp differ.
TOLERANCE = 1e-4


def _calls(model):
    """(tokens, input_pos) of three calls: a prefill over several blocks, then two more."""
    g = torch.Generator().manual_seed(1)
    vocab = model.spec.vocab_size
    if model.kv_cache:
        return [(torch.randint(0, vocab, (1, n), generator=g), torch.tensor([p])) for n, p in ((12, 0), (4, 12), (4, 16))]
    return [(torch.randint(0, vocab, (1, n), generator=g), None) for n in (10, 1, 37)]


def _run(model, tokens, pos):
    t = tokens.shape[1]
    rows = torch.arange(t) if model.logits_rows else None
    if model.takes_kv_end:
        return model(tokens, pos, rows, pos + t)
    if model.kv_cache:
        return model(tokens, pos, rows) if rows is not None else model(tokens, pos)
    return model(tokens, rows=rows)


@pytest.mark.parametrize(
    "family,kv_cache,rows",
    [
        ("sdar", True, False),
        ("sdar", False, True),
        ("fast_dllm_v2", True, True),
        ("llada", False, True),
        ("dream", False, False),
        ("llada", True, True),
        ("dream", True, True),
    ],
)
def test_eager_llm_ops_model_matches_the_plain_model(family, kv_cache, rows):
    plain = load_model(FIXTURES / "ckpt" / family, max_seq_len=64, kv_cache=kv_cache, logits_rows=rows)
    fused = load_model(FIXTURES / "ckpt" / family, max_seq_len=64, kv_cache=kv_cache, logits_rows=rows)
    use_llm_ops(fused)
    assert fused.meta["uses_llm_ops"] is True and "uses_llm_ops" not in plain.meta
    for tokens, pos in _calls(plain):
        want = _run(plain, tokens, pos)
        got = _run(fused, tokens, pos)
        assert (got - want).abs().max().item() <= TOLERANCE
    if plain.takes_kv_end:
        # Contract 3's span: 8 tokens at 8 that also read the slots [16, 20) written before
        # (the dual cache's suffix; Fast-dLLM v2's rest of the block).
        tokens = torch.randint(0, plain.spec.vocab_size, (1, 8), generator=torch.Generator().manual_seed(2))
        args = (tokens, torch.tensor([8]), torch.arange(8), torch.tensor([20]))
        with torch.no_grad():
            assert (fused(*args) - plain(*args)).abs().max().item() <= TOLERANCE


def _pte_inputs(entry, tokens, pos):
    t = tokens.shape[1]
    inputs = [tokens] + ([pos] if entry["kv_cache"] else [])
    if entry.get("logits") == "rows":
        inputs.append(torch.arange(t))
    if entry["meta"].get("cache_modes"):
        inputs.append(pos + t)
    return inputs


@pytest.mark.parametrize("name", sorted(json.loads(LLM_OPS_MANIFEST.read_text())))
def test_llm_ops_fixture_matches_its_plain_twin_on_the_python_runtime(name):
    load_custom_ops()
    entry = json.loads(LLM_OPS_MANIFEST.read_text())[name]
    fused = load_pte_method(FIXTURES / "pte" / "llm_ops" / f"{name}.pte")
    plain = load_pte_method(FIXTURES / "pte" / f"{name}.pte")
    model = load_model(REPO / entry["checkpoint"], max_seq_len=entry["max_seq_len"], kv_cache=entry["kv_cache"],
                       logits_rows=entry.get("logits") == "rows")
    for tokens, pos in _calls(model):
        inputs = _pte_inputs(entry, tokens, pos)
        want = plain.execute(inputs)[0]
        got = fused.execute(inputs)[0]
        assert torch.isfinite(got).all()
        assert (got - want).abs().max().item() <= TOLERANCE, name


def test_every_llm_ops_fixture_is_a_twin_that_uses_the_operators():
    manifest = json.loads(LLM_OPS_MANIFEST.read_text())
    on_disk = {p.stem for p in (FIXTURES / "pte" / "llm_ops").glob("*.pte")}
    assert on_disk and on_disk == set(manifest)
    plain = json.loads((FIXTURES / "pte" / "manifest.json").read_text())
    for name, entry in manifest.items():
        assert entry["llm_ops"] is True and entry["meta"]["uses_llm_ops"] is True, name
        assert "llama::custom_sdpa.out" in entry["operators"], name
        # The cache write is the operator's only where there is a cache.
        assert ("llama::update_cache.out" in entry["operators"]) == entry["kv_cache"], name
        # No attention matmul or softmax is left in the graph (the delegate would hold them).
        assert not any("softmax" in op or "bmm" in op for op in entry["operators"]), name
        twin = plain[name]
        for key in ("checkpoint", "family", "kv_cache", "quantize", "max_seq_len", "delegates"):
            assert entry[key] == twin[key], (name, key)
        assert {k: v for k, v in entry["meta"].items() if k != "uses_llm_ops"} == twin["meta"], name


def test_llm_ops_fixture_is_what_the_exporter_writes_today():
    """The committed twin is reproducible (same bytes as the export of its manifest entry)."""
    import hashlib

    from diffulex_export.export import add_weights_digest

    entry = json.loads(LLM_OPS_MANIFEST.read_text())["llada_rows"]
    model = load_model(REPO / entry["checkpoint"], max_seq_len=entry["max_seq_len"], kv_cache=False, logits_rows=True)
    use_llm_ops(model)
    torch.manual_seed(0)
    program = to_program(model, "xnnpack", tokenizer=REPO / entry["checkpoint"] / "tokenizer.json")
    assert hashlib.sha256(add_weights_digest(program)).hexdigest() == entry["sha256"]


def test_llm_ops_is_refused_with_vulkan(tmp_path):
    model = load_model(FIXTURES / "ckpt" / "llada", max_seq_len=32)
    with pytest.raises(ExportError, match="--llm-ops with --backend vulkan"):
        export_model(model, tmp_path / "x.pte", backend="vulkan", llm_ops=True)
    assert not list(tmp_path.iterdir())


def test_cli_llm_ops_writes_the_flag(tmp_path):
    out = tmp_path / "d.pte"
    proc = subprocess.run(
        [sys.executable, "-m", "diffulex_export", "export", "--checkpoint", str(FIXTURES / "ckpt" / "dream"),
         "--max-seq-len", "32", "--llm-ops", "--skip-tokenizer", "-o", str(out)],
        capture_output=True, text=True, cwd=REPO / "python",
    )
    assert proc.returncode == 0, proc.stderr
    assert "LLM custom operators" in proc.stdout
    load_custom_ops()
    assert read_metadata(out)["uses_llm_ops"] is True
