"""Attention through ExecuTorch's LLM custom operators (`diffulex-export --llm-ops`).

The default export spells attention out in plain ATen ops, which every runtime has. For a
model with grouped-query heads, that path copies each layer's K/V cache once per query
head group (`expand` + `reshape`) before the score matmul, and it runs the score matmul
and softmax as separate kernels. ExecuTorch ships two operators for this (in
`extension/llm/custom_ops`):

- `llama::update_cache(value, cache, start_pos)` writes [1, T, Hkv, D] into a
  [1, S, Hkv, D] cache at `start_pos`, in place;
- `llama::custom_sdpa(q, k, v, start_pos, mask, dropout, is_causal, scale)` is a
  tiled (flash-style) attention that reads the grouped K/V heads where they are.

Semantics are unchanged: every family's mask (block-causal, bidirectional, the
contract-v3 key-only mask) is passed to `custom_sdpa` as an additive float mask, so the
same engine code drives a `--llm-ops` program. The price is that no prebuilt runtime
(the 1.5.1 wheel's libraries) has these operators: such a program runs only on a
runtime built from source with the `llm-ops` feature (docs/source-build.md).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import ExportError
from .layers import Attention, KVCache, apply_rope


def load_custom_ops() -> None:
    """Register `torch.ops.llama.*` (the ExecuTorch wheel's AOT library) with PyTorch.

    Example:
        >>> load_custom_ops()
        >>> hasattr(torch.ops.llama, "custom_sdpa")
        True
    """
    try:
        from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401
    except Exception as e:  # an ImportError, or the shared library failing to load
        raise ExportError(
            f"--llm-ops needs ExecuTorch's LLM custom operators for PyTorch "
            f"(executorch.extension.llm.custom_ops in the executorch wheel): {e}"
        ) from e


def use_llm_ops(model) -> None:
    """Switch a DiffusionLM's attention to the LLM custom operators, in place.

    The KV caches (if any) are recreated empty in the operators' [1, S, Hkv, D] layout.
    The model's metadata then says `uses_llm_ops` (see `DiffusionLM.meta`).

    Example:
        >>> m = load_model("tests/fixtures/ckpt/sdar", max_seq_len=64)  # doctest: +SKIP
        >>> use_llm_ops(m); m.meta["uses_llm_ops"]  # doctest: +SKIP
        True
    """
    load_custom_ops()
    spec = model.spec
    for layer in model.layers:
        attn: Attention = layer.attn
        attn.llm_ops = True
        # Uncached bidirectional models need no mask at all: custom_sdpa then attends to
        # every key of the call, the cheapest form of the operator.
        attn.full_attention = not model.kv_cache and spec.block_size == 0
        if attn.cache is not None:
            old = attn.cache
            attn.cache = KVCache(spec.n_kv_heads, model.max_seq_len, spec.head_dim, old.k.dtype, seq_first=True)
    model.llm_ops = True


def custom_attention(
    attn: Attention,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mask: torch.Tensor,
    positions: Optional[torch.Tensor],
) -> torch.Tensor:
    """Attention of q [1, T, Hq, D] over k, v [1, T, Hkv, D] (after the q/k norms); [1, T, Hq, D].

    With a cache, k and v are first written at `positions[0]` and the scores run over the
    whole cache, under `mask` ([T, S] or key-only [S], True = visible).
    """
    t = q.shape[1]
    # RoPE tables are [T, D]; here the heads are the third dimension.
    q = apply_rope(q, cos.unsqueeze(1), sin.unsqueeze(1))
    k = apply_rope(k, cos.unsqueeze(1), sin.unsqueeze(1))
    if attn.cache is not None:
        assert positions is not None
        start = positions[0].item()
        torch._check(start >= 0)
        torch._check(start + t <= attn.cache.k.shape[1])
        torch.ops.llama.update_cache(k, attn.cache.k, start)
        torch.ops.llama.update_cache(v, attn.cache.v, start)
        keys, values = attn.cache.k, attn.cache.v
    else:
        start = 0
        keys, values = k, v
    if getattr(attn, "full_attention", False):
        bias = None
    else:
        if mask.dim() == 1:
            mask = mask.unsqueeze(0).expand(t, -1)
        # Additive: 0 where visible, -inf elsewhere. Slots of the cache that no call has
        # written yet are zeros (the runtime zero-fills its planned memory), so their
        # scores are finite before the -inf is added and never turn into NaN.
        bias = torch.where(mask, 0.0, float("-inf")).to(torch.float32).contiguous()
    return torch.ops.llama.custom_sdpa(q, keys, values, start, bias, 0.0, False, attn.scale)
