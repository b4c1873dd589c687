"""Config parsing and weight names shared by the Qwen-derived families (SDAR, Fast-dLLM v2, Dream).

Their checkpoints use the Hugging Face Qwen2/Qwen3 layout:
model.embed_tokens, model.layers.N.self_attn.{q,k,v,o}_proj, (Qwen3) self_attn.{q,k}_norm,
model.layers.N.mlp.{gate,up,down}_proj, input_layernorm, post_attention_layernorm,
model.norm, lm_head.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterable, List

from ..checkpoint import eos_ids, token_id_from_tokenizer
from ..errors import ExportError

_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")
_LAYER_PARTS = {
    "attn.q_proj": "self_attn.q_proj",
    "attn.k_proj": "self_attn.k_proj",
    "attn.v_proj": "self_attn.v_proj",
    "attn.o_proj": "self_attn.o_proj",
    "attn.q_norm": "self_attn.q_norm",
    "attn.k_norm": "self_attn.k_norm",
    "mlp.gate": "mlp.gate_proj",
    "mlp.up": "mlp.up_proj",
    "mlp.down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "mlp_norm": "post_attention_layernorm",
}


def qwen_name(canonical: str) -> str:
    """Checkpoint name of one of DiffusionLM's parameters, Qwen layout.

    Example:
        >>> qwen_name("layers.3.attn.q_norm.weight")
        'model.layers.3.self_attn.q_norm.weight'
        >>> qwen_name("embed.weight")
        'model.embed_tokens.weight'
    """
    if canonical == "embed.weight":
        return "model.embed_tokens.weight"
    if canonical.startswith("norm."):
        return "model." + canonical
    if canonical == "lm_head.weight":
        return "lm_head.weight"
    m = _LAYER.match(canonical)
    if m:
        idx, rest = m.groups()
        module, _, leaf = rest.rpartition(".")
        if module in _LAYER_PARTS:
            return f"model.layers.{idx}.{_LAYER_PARTS[module]}.{leaf}"
    raise KeyError(canonical)


def need(config: Dict[str, Any], key: str, family: str) -> Any:
    """config[key], or an ExportError naming the missing key.

    Example:
        >>> need({"a": 1}, "a", "sdar")
        1
    """
    if key not in config or config[key] is None:
        raise ExportError(f"{family} config.json lacks required key {key!r}")
    return config[key]


def rope_theta(config: Dict[str, Any], family: str, default: float) -> float:
    """RoPE base from rope_theta, or from rope_parameters (transformers >= 5 layout).

    Only the default (unscaled) RoPE is supported.

    Example:
        >>> rope_theta({"rope_theta": 1000000}, "sdar", 1e4)
        1000000.0
        >>> rope_theta({"rope_parameters": {"rope_type": "default", "rope_theta": 5.0}}, "dream", 1e4)
        5.0
    """
    params = config.get("rope_parameters")
    scaling = config.get("rope_scaling")
    for block in (params, scaling):
        if isinstance(block, dict):
            kind = block.get("rope_type", block.get("type", "default"))
            if kind not in ("default", None):
                raise ExportError(f"{family}: rope type {kind!r} is not supported (only default RoPE)")
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    return float(config.get("rope_theta", default))


def check_plain_attention(config: Dict[str, Any], family: str) -> None:
    """Refuse features the exported graph does not implement (sliding window, non-SiLU MLP)."""
    if config.get("use_sliding_window"):
        raise ExportError(f"{family}: sliding-window attention (use_sliding_window=true) is not supported")
    act = config.get("hidden_act", "silu")
    if act != "silu":
        raise ExportError(f"{family}: hidden_act {act!r} is not supported (only silu)")


def mask_id(config: Dict[str, Any], ckpt_dir: Path, family: str, token_texts: Iterable[str]) -> int:
    """Mask token id from config.json's mask_token_id, else from tokenizer.json's added tokens.

    Example:
        >>> mask_id({"mask_token_id": 7}, Path("/nonexistent"), "sdar", [])
        7
    """
    if config.get("mask_token_id") is not None:
        return int(config["mask_token_id"])
    texts = list(token_texts)
    found = token_id_from_tokenizer(ckpt_dir, texts)
    if found is None:
        raise ExportError(
            f"{family}: cannot determine the mask token id: config.json has no mask_token_id "
            f"and tokenizer.json has none of the added tokens {texts}"
        )
    return found


def stop_ids(config: Dict[str, Any], ckpt_dir: Path, family: str) -> List[int]:
    """Stop ids (generation_config.json, then config.json); at least one is required."""
    ids = eos_ids(ckpt_dir, config)
    if not ids:
        raise ExportError(
            f"{family}: no eos_token_id in config.json or generation_config.json; the engine needs a stop id"
        )
    return ids


def qwen_shapes(config: Dict[str, Any], family: str, head_dim_from_config: bool) -> Dict[str, Any]:
    """Common size fields of a Qwen2/Qwen3-style config."""
    hidden = int(need(config, "hidden_size", family))
    n_heads = int(need(config, "num_attention_heads", family))
    n_kv = int(config.get("num_key_value_heads") or n_heads)
    if head_dim_from_config and config.get("head_dim"):
        head_dim = int(config["head_dim"])
    else:
        if hidden % n_heads:
            raise ExportError(f"{family}: hidden_size {hidden} is not a multiple of num_attention_heads {n_heads}")
        head_dim = hidden // n_heads
    if n_heads % n_kv:
        raise ExportError(f"{family}: num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv}")
    return dict(
        vocab_size=int(need(config, "vocab_size", family)),
        hidden=hidden,
        n_layers=int(need(config, "num_hidden_layers", family)),
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        intermediate=int(need(config, "intermediate_size", family)),
        rms_eps=float(config.get("rms_norm_eps", 1e-6)),
        max_position_embeddings=int(need(config, "max_position_embeddings", family)),
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
    )


def pad_id(config: Dict[str, Any], eos: List[int]) -> int:
    """config.json's pad_token_id, else the first stop id (what the families pad with).

    Example:
        >>> pad_id({}, [9, 4])
        9
    """
    if config.get("pad_token_id") is not None:
        return int(config["pad_token_id"])
    return int(eos[0])
