"""Tiny, seeded, random checkpoints in each family's published HF layout.

Used by tools/make_fixtures.py (committed fixtures) and by the tests (CLI runs on
freshly written checkpoints). Same arguments, same bytes: every random tensor
comes from a torch.Generator seeded from (seed, family, tensor name).

Example:
    >>> from diffulex_export.tiny import write_checkpoint
    >>> write_checkpoint("/tmp/tiny_sdar", "sdar")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Union

import torch
from safetensors.torch import save_file

VOCAB = 512
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
INTERMEDIATE = 128
MAX_POS = 1024

# Special tokens take the first ids (the BPE trainer puts them first).
SPECIALS: Dict[str, List[str]] = {
    "sdar": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|MASK|>"],
    "fast_dllm_v2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "|<MASK>|"],
    "dream": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>"],
    "llada": [
        "<|endoftext|>",
        "<|startoftext|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|mdm_mask|>",
    ],
}
MASK_TEXT = {"sdar": "<|MASK|>", "fast_dllm_v2": "|<MASK>|", "dream": "<|mask|>", "llada": "<|mdm_mask|>"}

_QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_LLADA_TEMPLATE = (
    "<|startoftext|>{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

# A small fixed corpus for the BPE trainer (any text would do; it only has to be fixed).
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A diffusion language model fills in masked tokens in parallel, block by block.",
    "What is the capital of France? The capital of France is Paris.",
    "Two plus three equals five, and five times four equals twenty.",
    "Hello! How are you today? I am fine, thank you.",
    "Write a short poem about the sea, the sky and the wind.",
    "def add(a, b):\n    return a + b\n",
    "Once upon a time there was a little robot who wanted to learn to sing.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000.",
    "user assistant system question answer reasoning step result",
]


def token_id(family: str, text: str) -> int:
    """Id of a special token in the tiny tokenizer of `family`.

    Example:
        >>> token_id("sdar", "<|MASK|>")
        3
    """
    return SPECIALS[family].index(text)


def _config(family: str, block_size: int) -> Dict[str, Any]:
    eos = token_id(family, "<|endoftext|>")
    mask = token_id(family, MASK_TEXT[family])
    if family == "llada":
        return {
            "architectures": ["LLaDAModelLM"],
            "model_type": "llada",
            "activation_type": "silu",
            "alibi": False,
            "alibi_bias_max": 8.0,
            "attention_dropout": 0.0,
            "attention_layer_norm": False,
            "attention_layer_norm_with_affine": True,
            "bias_for_layer_norm": False,
            "block_group_size": 1,
            "block_type": "llama",
            "d_model": HIDDEN,
            "embedding_dropout": 0.0,
            "embedding_size": VOCAB,
            "eos_token_id": eos,
            "flash_attention": False,
            "include_bias": False,
            "include_qkv_bias": False,
            "init_device": "meta",
            "init_fn": "mitchell",
            "input_emb_norm": False,
            "layer_norm_type": "rms",
            "layer_norm_with_affine": True,
            "mask_token_id": mask,
            "max_sequence_length": MAX_POS,
            "mlp_hidden_size": INTERMEDIATE,
            "mlp_ratio": 4,
            "multi_query_attention": None,
            "n_heads": HEADS,
            "n_kv_heads": KV_HEADS,
            "n_layers": LAYERS,
            "pad_token_id": eos,
            "precision": "amp_bf16",
            "residual_dropout": 0.0,
            "rms_norm_eps": 1e-05,
            "rope": True,
            "rope_full_precision": True,
            "rope_theta": 500000.0,
            "scale_logits": False,
            "torch_dtype": "float32",
            "use_cache": False,
            "vocab_size": VOCAB,
            "weight_tying": False,
        }
    cfg: Dict[str, Any] = {
        "attention_dropout": 0.0,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": MAX_POS,
        "max_window_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "torch_dtype": "float32",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": VOCAB,
    }
    if family == "sdar":
        cfg.update(
            architectures=["SDARForCausalLM"],
            model_type="sdar",
            attention_bias=False,
            block_size=block_size,
            head_dim=HEAD_DIM,
            mask_token_id=mask,
            tie_word_embeddings=False,
        )
    elif family == "fast_dllm_v2":
        # No mask_token_id on purpose: the loader then finds "|<MASK>|" in tokenizer.json.
        cfg.update(
            architectures=["Fast_dLLM_QwenForCausalLM"],
            model_type="Fast_dLLM_Qwen",
            bd_size=block_size,
            eos_token_id=token_id(family, "<|im_end|>"),
            tie_word_embeddings=True,
        )
    elif family == "dream":
        cfg.update(
            architectures=["DreamModel"],
            model_type="Dream",
            mask_token_id=mask,
            pad_token_id=eos,
            tie_word_embeddings=False,
        )
    else:
        raise ValueError(family)
    return dict(sorted(cfg.items()))


def _weight_names(family: str, tied: bool) -> Dict[str, tuple]:
    names: Dict[str, tuple] = {}
    q_out, kv_out = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    if family == "llada":
        p = "model.transformer."
        names[p + "wte.weight"] = (VOCAB, HIDDEN)
        names[p + "ln_f.weight"] = (HIDDEN,)
        names[p + "ff_out.weight"] = (VOCAB, HIDDEN)
        for i in range(LAYERS):
            b = f"{p}blocks.{i}."
            names[b + "q_proj.weight"] = (q_out, HIDDEN)
            names[b + "k_proj.weight"] = (kv_out, HIDDEN)
            names[b + "v_proj.weight"] = (kv_out, HIDDEN)
            names[b + "attn_out.weight"] = (HIDDEN, q_out)
            names[b + "ff_proj.weight"] = (INTERMEDIATE, HIDDEN)
            names[b + "up_proj.weight"] = (INTERMEDIATE, HIDDEN)
            names[b + "ff_out.weight"] = (HIDDEN, INTERMEDIATE)
            names[b + "attn_norm.weight"] = (HIDDEN,)
            names[b + "ff_norm.weight"] = (HIDDEN,)
        return names
    names["model.embed_tokens.weight"] = (VOCAB, HIDDEN)
    names["model.norm.weight"] = (HIDDEN,)
    if not tied:
        names["lm_head.weight"] = (VOCAB, HIDDEN)
    qkv_bias = family in ("fast_dllm_v2", "dream")
    for i in range(LAYERS):
        b = f"model.layers.{i}."
        names[b + "self_attn.q_proj.weight"] = (q_out, HIDDEN)
        names[b + "self_attn.k_proj.weight"] = (kv_out, HIDDEN)
        names[b + "self_attn.v_proj.weight"] = (kv_out, HIDDEN)
        names[b + "self_attn.o_proj.weight"] = (HIDDEN, q_out)
        if qkv_bias:
            names[b + "self_attn.q_proj.bias"] = (q_out,)
            names[b + "self_attn.k_proj.bias"] = (kv_out,)
            names[b + "self_attn.v_proj.bias"] = (kv_out,)
        if family == "sdar":
            names[b + "self_attn.q_norm.weight"] = (HEAD_DIM,)
            names[b + "self_attn.k_norm.weight"] = (HEAD_DIM,)
        names[b + "mlp.gate_proj.weight"] = (INTERMEDIATE, HIDDEN)
        names[b + "mlp.up_proj.weight"] = (INTERMEDIATE, HIDDEN)
        names[b + "mlp.down_proj.weight"] = (HIDDEN, INTERMEDIATE)
        names[b + "input_layernorm.weight"] = (HIDDEN,)
        names[b + "post_attention_layernorm.weight"] = (HIDDEN,)
    return names


def _random(name: str, shape: tuple, seed: int) -> torch.Tensor:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    x = torch.randn(shape, generator=gen, dtype=torch.float32)
    if name.endswith("norm.weight") or name.endswith("ln_f.weight"):
        return 1.0 + 0.1 * x  # norms near 1, but not exactly, so a missed norm shows up
    if name.endswith(".bias"):
        return 0.05 * x
    if "wte" in name or "embed_tokens" in name:
        return 0.5 * x
    # Linear layers: ~1/sqrt(fan_in) keeps activations O(1) through the layers.
    return x / (shape[-1] ** 0.5)


def weights(family: str, seed: int = 0) -> Dict[str, torch.Tensor]:
    """The checkpoint tensors (published names) of the tiny `family` model.

    Example:
        >>> sorted(weights("llada"))[0]
        'model.transformer.blocks.0.attn_norm.weight'
    """
    tied = family == "fast_dllm_v2"
    return {name: _random(name, shape, seed) for name, shape in sorted(_weight_names(family, tied).items())}


def build_tokenizer(family: str):
    """A byte-level BPE tokenizer with exactly VOCAB ids, the family's special tokens first.

    Example:
        >>> build_tokenizer("dream").get_vocab_size()
        512
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIALS[family],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    if tok.get_vocab_size() != VOCAB:
        raise RuntimeError(f"tiny tokenizer has {tok.get_vocab_size()} ids, expected {VOCAB}")
    return tok


def _tokenizer_config(family: str) -> Dict[str, Any]:
    eos = "<|eot_id|>" if family == "llada" else ("<|im_end|>" if family != "dream" else "<|endoftext|>")
    return {
        "bos_token": "<|startoftext|>" if family == "llada" else None,
        "chat_template": _LLADA_TEMPLATE if family == "llada" else _QWEN_TEMPLATE,
        "eos_token": eos,
        "mask_token": MASK_TEXT[family],
        "model_max_length": MAX_POS,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def _generation_config(family: str) -> Dict[str, Any]:
    ids = [token_id(family, "<|endoftext|>")]
    if family != "llada":
        ids = [token_id(family, "<|im_end|>"), token_id(family, "<|endoftext|>")]
    return {"eos_token_id": ids}


def _dump(path: Path, obj: Dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_checkpoint(
    out_dir: Union[str, Path], family: str, seed: int = 0, block_size: int = 0, tokenizer: bool = True
) -> Path:
    """Write config.json, generation_config.json, model.safetensors and the tokenizer files.

    block_size 0 takes the family's default (sdar 4, fast_dllm_v2 32).

    Example:
        >>> write_checkpoint("/tmp/tiny_llada", "llada")  # doctest: +SKIP
        PosixPath('/tmp/tiny_llada')
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not block_size:
        block_size = {"sdar": 4, "fast_dllm_v2": 32}.get(family, 0)
    _dump(out / "config.json", _config(family, block_size))
    if family != "dream":
        _dump(out / "generation_config.json", _generation_config(family))
    save_file(weights(family, seed), str(out / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer:
        build_tokenizer(family).save(str(out / "tokenizer.json"))
        _dump(out / "tokenizer_config.json", _tokenizer_config(family))
    return out
