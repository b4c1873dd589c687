"""Shared transformer pieces, written with plain ATen ops by default.

By default the exported program must run on ExecuTorch's stock kernels
(portable/optimized) and the XNNPACK delegate, which have no fused LLM ops: attention
is spelled out as matmul + masked softmax + matmul, and the KV cache is a pair of
mutable buffers. With `--llm-ops` (see `llm_ops.py`) attention and the cache write use
ExecuTorch's LLM custom operators instead, which only a runtime built from source with
them can run.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class RMSNorm(nn.Module):
    """RMSNorm computed in float32 and cast back, as the families' reference code does.

    Example:
        >>> n = RMSNorm(4, eps=1e-6)
        >>> n(torch.ones(1, 2, 4)).shape
        torch.Size([1, 2, 4])
    """

    def __init__(self, dim: int, eps: float, bias: bool = False):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        out = self.weight * h.to(dtype)
        if self.bias is not None:
            out = out + self.bias
        return out


def rope_tables(head_dim: int, theta: float, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables [max_len, head_dim] for the half-split ("rotate_half") RoPE layout.

    Computed in float32 the same way the reference code does (positions x inverse
    frequencies, duplicated across the two halves) so values match bit for bit.

    Example:
        >>> cos, sin = rope_tables(8, 10000.0, 16)
        >>> cos.shape, float(cos[0, 0])
        (torch.Size([16, 8]), 1.0)
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    pos = torch.arange(max_len, dtype=torch.int64).float()
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, T, D] by cos/sin [T, D] (broadcast over batch and heads)."""
    return x * cos + rotate_half(x) * sin


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)).

    Example:
        >>> SwiGLU(4, 8, bias=False)(torch.zeros(1, 1, 4)).shape
        torch.Size([1, 1, 4])
    """

    def __init__(self, dim: int, hidden: int, bias: bool):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=bias)
        self.up = nn.Linear(dim, hidden, bias=bias)
        self.down = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))


def family_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, block_size: int) -> torch.Tensor:
    """Boolean [Tq, Tk] visibility by absolute position.

    block_size > 0: block-causal (key k visible to query q iff k // bs <= q // bs,
    blocks aligned at absolute 0). block_size == 0: everything visible.

    Example:
        >>> family_mask(torch.arange(4), torch.arange(4), 2).int().tolist()
        [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    """
    if block_size > 0:
        return (k_pos // block_size).unsqueeze(0) <= (q_pos // block_size).unsqueeze(1)
    return torch.ones(q_pos.shape[0], k_pos.shape[0], dtype=torch.bool)


def masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float, full_rank_mask: bool = False
) -> torch.Tensor:
    """softmax(q k^T * scale, masked) v with grouped-query heads.

    q: [B, Hq, T, D]; k, v: [B, Hkv, S, D], or [Hkv, S, D] when B is 1 (the KV cache's
    layout); mask: bool [T, S], True = visible, or bool [S] when visibility depends on the key
    only (the same for every query).
    Softmax runs in float32. Every query row must see at least one key.

    Example:
        >>> q = torch.zeros(1, 2, 3, 4); kv = torch.zeros(1, 1, 3, 4)
        >>> masked_attention(q, kv, kv, torch.ones(3, 3, dtype=torch.bool), 0.5).shape
        torch.Size([1, 2, 3, 4])
    """
    b, hq, t, d = q.shape
    hkv = k.shape[-3]
    rep = hq // hkv
    if rep > 1:
        # Grouped-query heads without copying K/V once per group: the `rep` query heads that
        # share a K/V head are stacked along the query axis ([B, Hkv, rep*T, D]), so one batched
        # matmul per K/V head serves them all. Expanding K/V to Hq heads instead copied the
        # whole cache `rep` times in every layer of every forward (a portable-kernel copy of
        # Hq x S x D floats, most of a decode forward's non-linear time at real size).
        q = q.reshape(b, hkv, rep * t, d)
    # bmm over the batch-free [heads, rows, D] views rather than a 4-D matmul: torch.matmul's
    # decomposition adds a same-shape `expand_copy` of both operands, which the portable
    # kernel runs as a full copy of each layer's K and V caches outside the delegate.
    rows = q.shape[2]
    s = k.shape[-2]
    if k.dim() == 4:
        k = k.reshape(b * hkv, s, d)
        v = v.reshape(b * hkv, s, d)
    scores = torch.bmm(q.reshape(b * hkv, rows, d), k.transpose(1, 2)).view(b, hkv, rows, s)
    scores = scores * scale
    if full_rank_mask and mask.dim() == 2:
        # ExecuTorch's Vulkan delegate (1.5) resizes a `where` whose operands differ in rank
        # wrongly: resize_where_node left-aligns the lower-rank sizes, so a [T, S] condition
        # beside [1, H, T, S] scores gives a [T, S, T, S] output, which overflows its texture
        # indices from T = 160 on ("safe_downcast ... out of range", docs/source-build.md).
        # The same mask at the scores' rank is sized right; Vulkan runs the select itself.
        if rep > 1:
            mask = mask.repeat(rep, 1)
        scores = scores.masked_fill(~mask.view(1, 1, *mask.shape), float("-inf"))
    else:
        # An additive bias (0 where visible, -inf where not) instead of a select on the scores:
        # the `where` runs on the small mask ([T, S] or [S], outside the delegate), the add on
        # the [Hkv, rep*T, S] scores inside XNNPACK. A select on the scores ran on the portable
        # kernel in every layer, a cost that grew with the rows of a block (5 / 9 / 18 ms per
        # real-size forward at 1 / 4 / 8 tokens, BENCHMARKS.md). x + 0 is x and x + -inf is
        # -inf, so the softmax sees what the select gave it.
        bias = torch.where(mask, 0.0, float("-inf")).to(scores.dtype)
        if rep > 1 and bias.dim() == 2:
            bias = bias.repeat(rep, 1)
        scores = scores + bias
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    out = torch.bmm(probs.reshape(b * hkv, rows, s), v)
    return out.reshape(b, hq, t, d)


class KVCache(nn.Module):
    """Per-layer K/V buffers [Hkv, max_len, D] (batch 1) that persist across calls.

    In the exported program these are mutable buffers: ExecuTorch keeps their
    contents between executions of the same loaded method.

    Example:
        >>> c = KVCache(2, 16, 4, torch.float32)
        >>> c.k.shape
        torch.Size([2, 16, 4])
    """

    def __init__(self, n_kv_heads: int, max_len: int, head_dim: int, dtype: torch.dtype, seq_first: bool = False):
        super().__init__()
        # seq_first: [1, max_len, Hkv, D], the layout of ExecuTorch's llama::update_cache and
        # llama::custom_sdpa (see llm_ops.py). Otherwise no batch axis: the buffers are then
        # already the [heads, keys, D] operands of the attention's bmm. With a batch axis,
        # dropping it was a reshape inside the XNNPACK delegate, which copies: both whole
        # buffers, in every layer of every forward.
        shape = (1, max_len, n_kv_heads, head_dim) if seq_first else (n_kv_heads, max_len, head_dim)
        self.register_buffer("k", torch.zeros(*shape, dtype=dtype))
        self.register_buffer("v", torch.zeros(*shape, dtype=dtype))

    def write(self, positions: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v [1, Hkv, T, D] at the absolute positions [T] (int64); return the full
        buffers [Hkv, max_len, D].

        An index with a position tensor (not a slice at a Python int) keeps the exported
        graph free of data-dependent shapes: a slice view of the buffer is contiguous only
        when T equals the buffer length, which the exporter would otherwise have to
        special-case. `index_copy_` rather than `self.k[:, positions] = k`: both export as
        an `index_put` on the buffer, but only this one keeps the values' shape equal to the
        buffer's outside the indexed dimension, which ExecuTorch's in-place `index_put_`
        kernel requires (the exporter's reinplace pass turns the write into that kernel, see
        export.backend_config; out of place, every layer would copy its whole K and V buffers
        twice per forward).
        """
        self.k.index_copy_(1, positions, k.reshape(k.shape[1:]))
        self.v.index_copy_(1, positions, v.reshape(v.shape[1:]))
        return self.k, self.v

    def reset(self) -> None:
        """Zero both buffers."""
        self.k.zero_()
        self.v.zero_()


class Attention(nn.Module):
    """Multi-head attention with optional q/k RMSNorm (Qwen3) and an optional KV cache.

    Example:
        >>> a = Attention(8, 2, 1, 4, qkv_bias=True, o_bias=False, qk_norm=False, eps=1e-6)
        >>> a.q_proj.out_features
        8
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int,
        head_dim: int,
        qkv_bias: bool,
        o_bias: bool,
        qk_norm: bool,
        eps: float,
    ):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.q_proj = nn.Linear(dim, n_heads * head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(n_heads * head_dim, dim, bias=o_bias)
        self.q_norm = RMSNorm(head_dim, eps) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, eps) if qk_norm else None
        self.cache: Optional[KVCache] = None
        # Set by llm_ops.use_llm_ops: attention through ExecuTorch's LLM custom operators.
        self.llm_ops = False
        # Set for Vulkan exports: the [T, S] mask enters `where` as [1, 1, T, S] (see
        # masked_attention).
        self.full_rank_mask = False

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor,
        positions: Optional[torch.Tensor],
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim)
        if self.q_norm is not None and self.k_norm is not None:
            q = self.q_norm(q)
            k = self.k_norm(k)
        if self.llm_ops:
            from .llm_ops import custom_attention

            out = custom_attention(self, q, k, v, cos, sin, mask, positions)
            return self.o_proj(out.reshape(b, t, self.n_heads * self.head_dim))
        q = apply_rope(q.transpose(1, 2), cos, sin)
        k = apply_rope(k.transpose(1, 2), cos, sin)
        v = v.transpose(1, 2)
        if self.cache is not None:
            assert positions is not None
            # Slots no call has written yet are read too (their scores are replaced by -inf,
            # and 0 * value enters probs @ v). They hold zeros: ExecuTorch serializes no
            # initial value for a mutated buffer, and the runtime's planned memory (extension
            # Module's, which the Rust shim and the Python runtime use) is zero-filled when the
            # method loads. Zeroing the invisible value rows here instead cost a full pass over
            # every layer's V cache per forward on the portable `where` kernel.
            k, v = self.cache.write(positions, k, v)
        out = masked_attention(q, k, v, mask, self.scale, self.full_rank_mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, attn: Attention, mlp: SwiGLU, attn_norm: RMSNorm, mlp_norm: RMSNorm):
        super().__init__()
        self.attn = attn
        self.mlp = mlp
        self.attn_norm = attn_norm
        self.mlp_norm = mlp_norm

    def forward(self, x, cos, sin, mask, positions):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, positions)
        return x + self.mlp(self.mlp_norm(x))
