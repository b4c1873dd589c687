"""Minimal SDAR (Qwen3-architecture) model for training and validating the bundled default model.

Why a hand-written model instead of transformers' Qwen3ForCausalLM: training needs a custom
[noisy | clean] attention mask and a cheap forward on 2 CPU cores. The parameter names and the
maths are identical to ``transformers.Qwen3ForCausalLM`` (RMSNorm in float32, per-head q/k RMSNorm
before RoPE, rotate-half RoPE, grouped-query attention, SiLU-gated MLP, separate lm_head), so the
saved ``model.safetensors`` loads into Qwen3ForCausalLM / SDARForCausalLM unchanged;
``eval_default.py --check-hf`` verifies that.

Example:
    >>> cfg = TinyConfig(vocab_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
    ...                  num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    >>> model = SdarTiny(cfg)
    >>> ids = torch.zeros(1, 8, dtype=torch.long)
    >>> model(ids, block_causal_mask(8, 4)).shape
    torch.Size([1, 8, 16])
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass
class TinyConfig:
    """Hyper-parameters; field names follow the Qwen3/SDAR config.json keys."""

    vocab_size: int = 16
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 64
    block_size: int = 4
    tie_word_embeddings: bool = False

    def to_hf_dict(self, *, eos_id: int, pad_id: int, mask_id: int) -> dict:
        """The config.json content, laid out like the released SDAR checkpoints."""
        return {
            "architectures": ["SDARForCausalLM"],
            "model_type": "sdar",
            "attention_bias": False,
            "attention_dropout": 0.0,
            "block_size": self.block_size,
            "bos_token_id": eos_id,
            "eos_token_id": eos_id,
            "pad_token_id": pad_id,
            "mask_token_id": mask_id,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "max_window_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_scaling": None,
            "rope_theta": self.rope_theta,
            "sliding_window": None,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "float32",
            "use_cache": False,
            "use_sliding_window": False,
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_hf_dict(cls, d: dict) -> "TinyConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_dir(cls, ckpt_dir: str | Path) -> "TinyConfig":
        return cls.from_hf_dict(json.loads((Path(ckpt_dir) / "config.json").read_text()))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables [..., T, head_dim] for absolute positions (Qwen3 default RoPE)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        h, d, kv = cfg.num_attention_heads, cfg.head_dim, cfg.num_key_value_heads
        self.q_proj = nn.Linear(cfg.hidden_size, h * d, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, kv * d, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, kv * d, bias=False)
        self.o_proj = nn.Linear(h * d, cfg.hidden_size, bias=False)
        self.q_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(d, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask, cache=None):
        """``cache`` (optional) is a (K, V) pair of earlier positions' keys/values, [B, kv, S, d],
        prepended to this call's keys; ``mask`` then covers [T, S+T]."""
        c = self.cfg
        b, t, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(b, t, c.num_attention_heads, c.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(b, t, c.num_key_value_heads, c.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(b, t, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        new_kv = (k, v)
        if cache is not None:
            k = torch.cat((cache[0], k), dim=2)
            v = torch.cat((cache[1], v), dim=2)
        rep = c.num_attention_heads // c.num_key_value_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=c.head_dim**-0.5)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1)), new_kv


class MLP(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask, cache=None):
        a, new_kv = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), new_kv


class Backbone(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class SdarTiny(nn.Module):
    """Qwen3-layout causal-LM body with an explicit attention mask (True = may attend)."""

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.apply(self._init)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, mask, positions=None, caches=None, return_kv=False):
        """ids [B, T]; mask bool [T, S+T] or [B, 1, T, S+T]; positions [T] or [B, T] absolute
        (default 0..T-1); caches: per-layer (K, V) of S earlier positions or None.
        Returns raw (unshifted) logits [B, T, V], plus per-layer new (K, V) if return_kv."""
        t = ids.shape[1]
        if positions is None:
            positions = torch.arange(t)
        cos, sin = rope_tables(positions, self.cfg.head_dim, self.cfg.rope_theta)
        if cos.dim() == 2:
            cos, sin = cos.unsqueeze(0), sin.unsqueeze(0)
        x = self.model.embed_tokens(ids)
        kvs = []
        for i, layer in enumerate(self.model.layers):
            x, kv = layer(x, cos, sin, mask, None if caches is None else caches[i])
            kvs.append(kv)
        logits = self.lm_head(self.model.norm(x))
        return (logits, kvs) if return_kv else logits


def block_causal_mask(t: int, block_size: int, offset: int = 0, total: int | None = None) -> torch.Tensor:
    """Inference mask for queries at absolute positions [offset, offset+t) over keys [0, total):
    key j is visible to query i iff j // BS <= i // BS (blocks aligned at absolute 0)."""
    total = offset + t if total is None else total
    q = torch.arange(offset, offset + t)[:, None] // block_size
    k = torch.arange(total)[None, :] // block_size
    return k <= q


def bd3_training_mask(length: int, block_size: int) -> torch.Tensor:
    """[2L, 2L] mask for the [noisy | clean] concatenation (BD3-LM / SDAR training):
    noisy block b sees noisy block b and clean blocks < b; clean block b sees clean blocks <= b;
    the clean half never sees the noisy half."""
    blk = torch.arange(length) // block_size
    q, k = blk[:, None], blk[None, :]
    noisy_noisy = q == k
    noisy_clean = k < q
    clean_clean = k <= q
    clean_noisy = torch.zeros(length, length, dtype=torch.bool)
    top = torch.cat((noisy_noisy, noisy_clean), dim=1)
    bottom = torch.cat((clean_noisy, clean_clean), dim=1)
    return torch.cat((top, bottom), dim=0)


def load_checkpoint(ckpt_dir: str | Path) -> SdarTiny:
    """Load config.json + model.safetensors written by train_default.py."""
    from safetensors.torch import load_file

    cfg = TinyConfig.from_dir(ckpt_dir)
    model = SdarTiny(cfg)
    state = load_file(str(Path(ckpt_dir) / "model.safetensors"))
    if cfg.tie_word_embeddings and "lm_head.weight" not in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state, strict=True)
    model.eval()
    return model
