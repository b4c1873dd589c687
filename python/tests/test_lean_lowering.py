"""The memory-lean export path (lean_lowering.py, streamed quantization) writes the same bytes as
the stock ExecuTorch pipeline the committed fixtures were made with (their manifest's sha256)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from diffulex_export import lean_lowering
from diffulex_export.errors import ExportError
from diffulex_export.export import export_model, weights_digest
from diffulex_export.models import load_model

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MANIFEST = json.loads((FIXTURES / "pte" / "manifest.json").read_text())


@pytest.mark.parametrize("name", ["sdar_cached_int8", "sdar_embedded", "dream_rows"])
def test_lean_export_writes_the_committed_fixture(name, tmp_path, monkeypatch):
    """Every payload spilled (threshold 0), the model loaded with streamed quantization and its
    weights freed before serialization, as `diffulex-export export` does: same bytes."""
    entry = MANIFEST[name]
    monkeypatch.setattr(lean_lowering, "SPILL_MIN_BYTES", 0)
    ckpt = REPO / entry["checkpoint"]
    torch.manual_seed(0)
    model = load_model(ckpt, max_seq_len=entry["max_seq_len"], kv_cache=entry["kv_cache"],
                       logits_rows=entry.get("logits") == "rows", quantize=entry["quantize"])
    stages = []
    out = export_model(model, tmp_path / f"{name}.pte", quantize=entry["quantize"], tokenizer=ckpt / "tokenizer.json",
                       embed_tokenizer="embedded" in entry, progress=stages.append, free_model_weights=True)
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert any("kept on disk" in s for s in stages), stages
    # Nothing is left beside the output: no spill directory, no temporary file.
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.pte"]
    # The streamed digest is the one of the joined bytes.
    assert weights_digest(data) == lean_lowering.segments_digest(_cord(data))


def _cord(data: bytes):
    from executorch.exir._serialize._cord import Cord

    cord = Cord()
    for start in range(0, len(data), 1000):
        cord.append(data[start:start + 1000])
    return cord


def test_streamed_quantization_equals_quantizing_the_loaded_model():
    from diffulex_export.export import quantize_model

    ckpt = FIXTURES / "ckpt" / "sdar"
    streamed = load_model(ckpt, max_seq_len=64, kv_cache=True, quantize="8da4w")
    whole = load_model(ckpt, max_seq_len=64, kv_cache=True)
    quantize_model(whole, "8da4w")
    assert streamed.quantization == whole.quantization == "8da4w"
    tokens = torch.tensor([[5, 9, 3, 3]])
    with torch.no_grad():
        a = streamed(tokens, torch.tensor([0]))
        b = whole(tokens, torch.tensor([0]))
    assert torch.equal(a, b)


def test_a_model_is_not_quantized_twice_or_differently(tmp_path):
    model = load_model(FIXTURES / "ckpt" / "sdar", max_seq_len=64, kv_cache=True, quantize="int8")
    with pytest.raises(ExportError, match="loaded quantized as int8"):
        export_model(model, tmp_path / "x.pte", quantize="8da4w")
    from diffulex_export.export import quantize_model

    with pytest.raises(ExportError, match="already quantized"):
        quantize_model(model, "int8")


def test_release_weights_frees_the_float_tensors():
    model = load_model(FIXTURES / "ckpt" / "llada", max_seq_len=32)
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    assert lean_lowering.release_weights(model) >= total
    assert all(p.untyped_storage().nbytes() == 0 for p in model.parameters())


def test_an_export_into_a_missing_directory_says_so(tmp_path):
    model = load_model(FIXTURES / "ckpt" / "llada", max_seq_len=32)
    with pytest.raises(ExportError, match="does not exist"):
        export_model(model, tmp_path / "missing" / "x.pte")
