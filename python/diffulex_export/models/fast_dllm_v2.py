"""Fast-dLLM v2 (Efficient-Large-Model/Fast_dLLM_v2_*): Qwen2.5, block-causal over bd_size, shifted logits.

config.json: model_type "Fast_dLLM_Qwen", architectures ["Fast_dLLM_QwenForCausalLM"],
Qwen2 keys plus bd_size (32). q/k/v projections carry a bias, o_proj does not
(hard-coded in the family's modeling.py). The decoder's sub-block is 8 tokens
(`small_block_size` of its generate()); a config key of that name overrides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ..errors import ExportError
from .base import ModelSpec
from .qwen_common import check_plain_attention, mask_id, need, pad_id, qwen_name, qwen_shapes, rope_theta, stop_ids

FAMILY = "fast_dllm_v2"
DEFAULT_SUB_BLOCK = 8
checkpoint_name = qwen_name


def spec_from_config(config: Dict[str, Any], ckpt_dir: Path) -> ModelSpec:
    """ModelSpec of a Fast-dLLM v2 checkpoint.

    Example:
        >>> from diffulex_export.checkpoint import load_config
        >>> d = Path("tests/fixtures/ckpt/fast_dllm_v2")
        >>> spec_from_config(load_config(d), d).sub_block_size  # doctest: +SKIP
        8
    """
    check_plain_attention(config, FAMILY)
    block = int(need(config, "bd_size", FAMILY))
    sub = int(config.get("small_block_size", DEFAULT_SUB_BLOCK))
    if block <= 0 or sub <= 0 or block % sub:
        raise ExportError(f"{FAMILY}: bd_size {block} must be a positive multiple of the sub-block size {sub}")
    eos = stop_ids(config, ckpt_dir, FAMILY)
    return ModelSpec(
        family=FAMILY,
        rope_theta=rope_theta(config, FAMILY, 10000.0),
        mask_token_id=mask_id(config, ckpt_dir, FAMILY, ["|<MASK>|", "<|MASK|>", "<|mask|>"]),
        eos_ids=eos,
        pad_id=pad_id(config, eos),
        block_size=block,
        sub_block_size=sub,
        shift_logits=True,
        qkv_bias=True,
        o_bias=False,
        **qwen_shapes(config, FAMILY, head_dim_from_config=True),
    )
