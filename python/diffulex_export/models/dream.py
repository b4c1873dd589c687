"""Dream (Dream-org/Dream-v0-*-7B): Qwen2.5, fully bidirectional, shifted logits.

config.json: model_type "Dream", architectures ["DreamModel"], Qwen2 keys plus
mask_token_id (151666) and pad_token_id. head_dim is hidden_size / num_attention_heads
(DreamAttention ignores any head_dim key); q/k/v carry a bias, o_proj does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from .base import ModelSpec
from .qwen_common import check_plain_attention, mask_id, pad_id, qwen_name, qwen_shapes, rope_theta, stop_ids

FAMILY = "dream"
checkpoint_name = qwen_name


def spec_from_config(config: Dict[str, Any], ckpt_dir: Path) -> ModelSpec:
    """ModelSpec of a Dream checkpoint.

    Example:
        >>> from diffulex_export.checkpoint import load_config
        >>> d = Path("tests/fixtures/ckpt/dream")
        >>> spec_from_config(load_config(d), d).shift_logits  # doctest: +SKIP
        True
    """
    check_plain_attention(config, FAMILY)
    eos = stop_ids(config, ckpt_dir, FAMILY)
    return ModelSpec(
        family=FAMILY,
        rope_theta=rope_theta(config, FAMILY, 10000.0),
        mask_token_id=mask_id(config, ckpt_dir, FAMILY, ["<|mask|>"]),
        eos_ids=eos,
        pad_id=pad_id(config, eos),
        block_size=0,
        shift_logits=True,
        qkv_bias=True,
        o_bias=False,
        **qwen_shapes(config, FAMILY, head_dim_from_config=False),
    )
