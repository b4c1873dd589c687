"""Committed .pte fixtures through ExecuTorch's Python runtime vs the PyTorch modules.

Each fixture is run over a multi-call sequence (prefill with a partial block, block
writes, a rewrite of the same block, a 1-token call, a full-length call) on one
loaded method, so the KV buffers carry state across calls exactly as in the engine.
The int8 fixture is compared with the torchao-quantized PyTorch module (the same
quantized graph run eagerly). XNNPACK computes the dynamic activation scales with
its own float arithmetic, so an activation within an ulp of a rounding boundary can
land one int8 step apart; in a cached program that row's K/V then differs for all
later calls. Measured over 8 seeds: max 0.07, mean <= 0.004 (pte vs quantized
module), while quantization itself moves the logits by mean ~0.018 (vs fp32). The
bounds below sit between the two: a program that skipped quantization would fail.
A contract v2 ("logits rows", manifest "logits": "rows") fixture is run with every row
(rows = arange(T)) and compared with the full module; test_logits_rows.py covers subsets.
"""

from __future__ import annotations

import json
import zlib

import pytest
import torch

from conftest import FIXTURES, REPO
from diffulex_export.export import (constant_methods, digest_words, load_pte_method, quantize_model, read_metadata,
                                    tokenizer_digest, weights_digest)
from diffulex_export.models import load_model
from diffulex_export.shared_embedding import share_embedding

TOL = 1e-4
INT8_MAX_DIFF = 0.15
INT8_MEAN_DIFF = 0.008
MANIFEST = FIXTURES / "pte" / "manifest.json"


def _load(entry):
    """The PyTorch module a manifest entry was exported from (v2 entries: logits_rows)."""
    return load_model(
        REPO / entry["checkpoint"],
        max_seq_len=entry["max_seq_len"],
        kv_cache=entry["kv_cache"],
        logits_rows=entry.get("logits", "all") == "rows",
        max_logits_rows=entry.get("max_logits_rows"),
    )


def _shared(entry) -> bool:
    """A contract-4 fixture: its forward takes the embeddings the lm_head's weights give."""
    return "embedding_layout" in entry["meta"]


def _quantized_as_exported(model, entry):
    """Quantize `model` as the fixture was, with its shared table (contract 4). For 8da4w the
    group scales are rounded to bfloat16, as XNNPACK stores them, so the eager module computes
    with the weights the program holds."""
    quantize_model(model, entry["quantize"])
    if entry["quantize"] == "8da4w":
        with torch.no_grad():
            for module in model.modules():
                weight = getattr(module, "weight", None)
                scale = getattr(weight, "scale", None)
                if isinstance(module, torch.nn.Linear) and scale is not None and scale.shape[-1] > 1:
                    scale.copy_(scale.to(torch.bfloat16).float())
    if _shared(entry):
        share_embedding(model)
    return model


def _manifest():
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())


def cached_calls(block: int, max_len: int):
    """(pos, T) calls: prefill ending mid-block, rewrite that block, next block twice, 1 token, full length."""
    b = block
    calls = [(0, 2 * b + 2), (2 * b, b), (3 * b, b), (3 * b, b), (4 * b, 1), (4 * b, b), (5 * b, 2 * b)]
    return [c for c in calls if c[0] + c[1] <= max_len] + [(0, max_len)]


UNCACHED_LENGTHS = (10, 1, 37, 256)


@pytest.mark.parametrize("name", sorted(_manifest()))
def test_pte_matches_module(name):
    entry = _manifest()[name]
    pte = FIXTURES / "pte" / f"{name}.pte"
    model = _quantized_as_exported(_load(entry), entry)
    method = load_pte_method(pte)
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    max_len = entry["max_seq_len"]
    if model.bidirectional_cache:
        # Contract 3: a full pass over a 40-token canvas, then a dual step (the block [8, 16))
        # and a prefix step ([16, 40)), both reading the cache up to the canvas end.
        canvas = torch.randint(0, 512, (1, 40), generator=gen)
        calls = [(0, 40), (8, 8), (16, 24)]
        steps = [(canvas[:, pos : pos + t], pos) for pos, t in calls]
        kv_ends = [40] * len(calls)
    elif model.sub_block_cache:
        # Contract 3, Fast-dLLM v2: a prefill block, a full forward of the next block, then a
        # forward of its second sub-block alone reading the block's slots up to its end.
        bs, sbs = model.spec.block_size, model.spec.sub_block_size
        canvas = torch.randint(0, 512, (1, 2 * bs), generator=gen)
        calls = [(0, bs, bs), (bs, bs, 2 * bs), (bs + sbs, sbs, 2 * bs)]
        steps = [(canvas[:, pos : pos + t], pos) for pos, t, _ in calls]
        kv_ends = [end for _, _, end in calls]
    elif entry["kv_cache"]:
        steps = [(torch.randint(0, 512, (1, t), generator=gen), pos) for pos, t in cached_calls(model.spec.block_size, max_len)]
    else:
        steps = [(torch.randint(0, 512, (1, t), generator=gen), None) for t in UNCACHED_LENGTHS if t <= max_len]
    for i, (tokens, pos) in enumerate(steps):
        # Contract 4: both take the embeddings, gathered from the module's lm_head.
        tokens = model.input_for(tokens)
        args = [tokens] if pos is None else [tokens, torch.tensor([pos])]
        # Every row, or the last ones the program returns (--max-logits-rows).
        t = tokens.shape[1]
        rows = torch.arange(max(0, t - model.max_logits_rows), t)
        if model.takes_kv_end:
            kv_end = torch.tensor([kv_ends[i]])
            got = method.execute(args + [rows, kv_end])[0]
            with torch.no_grad():
                want = model(*args, rows, kv_end)
        elif model.logits_rows:
            got = method.execute(args + [rows])[0]
            with torch.no_grad():
                want = model(*args, rows=rows)
        else:
            got = method.execute(args)[0]
            with torch.no_grad():
                want = model(*args)
        returned = rows.numel() if model.logits_rows else t
        assert got.dtype == torch.float32 and got.shape == (1, returned, model.spec.vocab_size)
        if entry["quantize"] == "none":
            torch.testing.assert_close(got, want, atol=TOL, rtol=0, msg=lambda m: f"{name} call {i} (pos {pos}): {m}")
        else:
            diff = (got - want).abs()
            stats = f"{name} call {i} (pos {pos}): max {diff.max().item():.4f}, mean {diff.mean().item():.5f}"
            assert diff.max().item() <= INT8_MAX_DIFF, stats
            assert diff.mean().item() <= INT8_MEAN_DIFF, stats


@pytest.mark.parametrize("name", sorted(_manifest()))
def test_pte_metadata(name):
    entry = _manifest()[name]
    model = _load(entry)
    if _shared(entry):
        # The key methods are hashes of the quantized lm_head's bytes.
        _quantized_as_exported(model, entry)
    pte = FIXTURES / "pte" / f"{name}.pte"
    got = read_metadata(pte)
    tokenizer = FIXTURES.parent.parent / entry["checkpoint"] / "tokenizer.json"
    want = constant_methods(model, tokenizer)
    want["get_weights_digest"] = digest_words(weights_digest(pte.read_bytes()))
    assert got == want
    assert bytes.fromhex(entry["tokenizer_digest"]) == tokenizer_digest(tokenizer)
    assert isinstance(got["use_kv_cache"], bool) and isinstance(got["shift_logits"], bool)


def test_every_fixture_is_in_the_manifest():
    on_disk = {p.stem for p in (FIXTURES / "pte").glob("*.pte")}
    assert on_disk and on_disk == set(_manifest())
