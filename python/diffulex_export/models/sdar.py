"""SDAR (JetLM/SDAR-*-Chat): Qwen3 architecture, block-causal, unshifted logits.

config.json: model_type "sdar", architectures ["SDARForCausalLM"], Qwen3 keys
(head_dim, attention_bias, rms_norm_eps, rope_theta, tie_word_embeddings) plus
block_size and (in released configs) mask_token_id. Weights carry per-head
q_norm/k_norm (Qwen3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ..errors import ExportError
from .base import ModelSpec
from .qwen_common import check_plain_attention, mask_id, need, pad_id, qwen_name, qwen_shapes, rope_theta, stop_ids

FAMILY = "sdar"
checkpoint_name = qwen_name


def spec_from_config(config: Dict[str, Any], ckpt_dir: Path) -> ModelSpec:
    """ModelSpec of an SDAR checkpoint.

    Example:
        >>> from diffulex_export.checkpoint import load_config
        >>> d = Path("tests/fixtures/ckpt/sdar")
        >>> spec_from_config(load_config(d), d).block_size  # doctest: +SKIP
        4
    """
    check_plain_attention(config, FAMILY)
    block = int(need(config, "block_size", FAMILY))
    if block <= 0:
        raise ExportError(f"{FAMILY}: block_size must be positive, got {block}")
    bias = bool(config.get("attention_bias", False))
    eos = stop_ids(config, ckpt_dir, FAMILY)
    return ModelSpec(
        family=FAMILY,
        rope_theta=rope_theta(config, FAMILY, 10000.0),
        mask_token_id=mask_id(config, ckpt_dir, FAMILY, ["<|MASK|>", "<MASK>"]),
        eos_ids=eos,
        pad_id=pad_id(config, eos),
        block_size=block,
        shift_logits=False,
        qkv_bias=bias,
        o_bias=bias,
        qk_norm=True,
        **qwen_shapes(config, FAMILY, head_dim_from_config=True),
    )
