"""LLaDA (GSAI-ML/LLaDA-8B-*): OLMo-style "llama" blocks, fully bidirectional, unshifted logits.

config.json: model_type "llada", architectures ["LLaDAModelLM"], OLMo-style keys
(d_model, n_heads, n_kv_heads, n_layers, mlp_hidden_size / mlp_ratio, rope_theta,
rms_norm_eps, max_sequence_length, vocab_size, embedding_size, weight_tying,
include_bias, include_qkv_bias, block_type, layer_norm_type, activation_type,
mask_token_id, eos_token_id, pad_token_id). Weights live under model.transformer:
wte, blocks.N.{q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out,attn_norm,ff_norm},
ln_f and ff_out (absent when weight_tying). The MLP is ff_out(silu(ff_proj(x)) * up_proj(x)).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict

from ..errors import ExportError
from .base import ModelSpec
from .qwen_common import mask_id, need, stop_ids

FAMILY = "llada"
_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")
_LAYER_PARTS = {
    "attn.q_proj": "q_proj",
    "attn.k_proj": "k_proj",
    "attn.v_proj": "v_proj",
    "attn.o_proj": "attn_out",
    "mlp.gate": "ff_proj",
    "mlp.up": "up_proj",
    "mlp.down": "ff_out",
    "attn_norm": "attn_norm",
    "mlp_norm": "ff_norm",
}


def checkpoint_name(canonical: str) -> str:
    """Checkpoint name of one of DiffusionLM's parameters, LLaDA layout.

    Example:
        >>> checkpoint_name("layers.0.mlp.down.weight")
        'model.transformer.blocks.0.ff_out.weight'
        >>> checkpoint_name("lm_head.weight")
        'model.transformer.ff_out.weight'
    """
    if canonical == "embed.weight":
        return "model.transformer.wte.weight"
    if canonical.startswith("norm."):
        return "model.transformer.ln_f." + canonical.split(".", 1)[1]
    if canonical == "lm_head.weight":
        return "model.transformer.ff_out.weight"
    m = _LAYER.match(canonical)
    if m:
        idx, rest = m.groups()
        module, _, leaf = rest.rpartition(".")
        if module in _LAYER_PARTS:
            return f"model.transformer.blocks.{idx}.{_LAYER_PARTS[module]}.{leaf}"
    raise KeyError(canonical)


def _expect(config: Dict[str, Any], key: str, allowed, default) -> None:
    value = config.get(key, default)
    if value not in allowed:
        raise ExportError(f"{FAMILY}: {key}={value!r} is not supported (supported: {list(allowed)})")


def spec_from_config(config: Dict[str, Any], ckpt_dir: Path) -> ModelSpec:
    """ModelSpec of a LLaDA checkpoint.

    Example:
        >>> from diffulex_export.checkpoint import load_config
        >>> d = Path("tests/fixtures/ckpt/llada")
        >>> spec_from_config(load_config(d), d).block_size  # doctest: +SKIP
        0
    """
    # The published LLaDA models use exactly these; anything else changes the math.
    _expect(config, "block_type", ("llama",), "sequential")
    _expect(config, "layer_norm_type", ("rms",), "default")
    _expect(config, "activation_type", ("silu",), "swiglu")
    _expect(config, "rope", (True,), False)
    _expect(config, "alibi", (False,), False)
    _expect(config, "attention_layer_norm", (False,), False)
    _expect(config, "block_group_size", (1,), 1)
    _expect(config, "layer_norm_with_affine", (True,), True)
    d_model = int(need(config, "d_model", FAMILY))
    n_heads = int(need(config, "n_heads", FAMILY))
    if d_model % n_heads:
        raise ExportError(f"{FAMILY}: d_model {d_model} is not a multiple of n_heads {n_heads}")
    n_kv = config.get("n_kv_heads")
    if n_kv is None:
        n_kv = 1 if config.get("multi_query_attention") else n_heads
    n_kv = int(n_kv)
    hidden = config.get("mlp_hidden_size")
    if hidden is None:
        hidden = int(config.get("mlp_ratio", 4)) * d_model
    include_bias = bool(config.get("include_bias", False))
    norm_bias = config.get("bias_for_layer_norm")
    if norm_bias is None:
        norm_bias = include_bias
    vocab = int(config.get("embedding_size") or need(config, "vocab_size", FAMILY))
    eos = stop_ids(config, ckpt_dir, FAMILY)
    pad = config.get("pad_token_id")
    return ModelSpec(
        family=FAMILY,
        vocab_size=vocab,
        hidden=d_model,
        n_layers=int(need(config, "n_layers", FAMILY)),
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=d_model // n_heads,
        intermediate=int(hidden),
        rms_eps=float(config.get("rms_norm_eps", 1e-5)),
        rope_theta=float(config.get("rope_theta", 10000.0)),
        max_position_embeddings=int(need(config, "max_sequence_length", FAMILY)),
        mask_token_id=mask_id(config, ckpt_dir, FAMILY, ["<|mdm_mask|>"]),
        eos_ids=eos,
        pad_id=int(pad) if pad is not None else int(eos[0]),
        block_size=0,
        shift_logits=False,
        qkv_bias=include_bias or bool(config.get("include_qkv_bias", False)),
        o_bias=include_bias,
        mlp_bias=include_bias,
        norm_bias=bool(norm_bias),
        tie_embeddings=bool(config.get("weight_tying", True)),
        logit_scale=1.0 / math.sqrt(d_model) if config.get("scale_logits") else 1.0,
        embed_scale=math.sqrt(d_model) if config.get("input_emb_norm") else 1.0,
    )
