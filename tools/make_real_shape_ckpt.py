#!/usr/bin/env python3
"""Random-weight checkpoints at the real shapes of published diffusion LMs (issue 16).

    .venv/bin/python tools/make_real_shape_ckpt.py NAME OUT_DIR [--shards N] [--seed S] [--layers L]
    .venv/bin/python tools/make_real_shape_ckpt.py --list

Writes OUT_DIR/config.json, generation_config.json and bf16 weights in the published file
layout: `model-0000i-of-0000N.safetensors` plus `model.safetensors.index.json`. The weights
are seeded N(0, 0.02) noise (norm weights 1): real shapes and sizes, no knowledge. The tensor
names come from the exporter's own name map (`diffulex_export.models.<family>.checkpoint_name`)
applied to the module the config describes, so what is written is exactly what an export of
the real checkpoint reads. No tokenizer is written (export with `--skip-tokenizer`).

Configs: the architecture values of each model's base (Qwen3-1.7B / Qwen3-4B / Qwen3-8B for SDAR,
Qwen2.5-1.5B for Fast-dLLM v2 1.5B) with the family's own fields (SDAR `block_size` 4 and mask
151669; Fast-dLLM v2 `bd_size` 32, `small_block_size` 8 and mask 151665), from the families'
model code and READMEs (docs: ../shared/reference/algorithms.md). The published config.json
files themselves were not reachable here, so a field the runtime does not read (e.g.
`max_window_layers`) may differ from them; every field the exporter reads is listed below.

`llada-8b-instruct` is GSAI-ML/LLaDA-8B-Instruct's OLMo-style config.json, every key of the
published file (d_model 4096, 32 layers of 32 heads, MLP 12288, vocab 126464, rope_theta 5e5,
mask 126336, untied output layer): what diffulex_export.models.llada reads and what llama.cpp's
converter (`LLaDAModelLM`) reads. Its generation_config.json was not reachable: the stop ids
written are config.json's eos (<|endoftext|> 126081) and <|eot_id|> 126348, which ends an
Instruct turn in its chat template. `--layers` sets `n_layers` there (`num_hidden_layers` for
the Qwen-style configs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

QWEN3_COMMON = dict(
    vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1000000.0, hidden_act="silu",
    attention_bias=False, attention_dropout=0.0, rope_scaling=None, use_sliding_window=False,
    sliding_window=None, torch_dtype="bfloat16", bos_token_id=151643, eos_token_id=151643,
)
SDAR_FIELDS = dict(model_type="sdar", architectures=["SDARForCausalLM"], block_size=4, mask_token_id=151669)
QWEN2_COMMON = dict(
    vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1000000.0, hidden_act="silu",
    rope_scaling=None, use_sliding_window=False, sliding_window=None, torch_dtype="bfloat16",
    bos_token_id=151643, eos_token_id=151645,
)
FAST_FIELDS = dict(model_type="Fast_dLLM_Qwen", architectures=["Fast_dLLM_QwenForCausalLM"], bd_size=32,
                   small_block_size=8, mask_token_id=151665)

# GSAI-ML/LLaDA-8B-Instruct's config.json (LLaDA-8B-Base has the same architecture).
LLADA_8B = {
    "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0, "architectures": ["LLaDAModelLM"],
    "attention_dropout": 0.0, "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
    "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                 "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
                 "AutoModel": "modeling_llada.LLaDAModelLM"},
    "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama", "d_model": 4096,
    "embedding_dropout": 0.0, "embedding_size": 126464, "eos_token_id": 126081, "flash_attention": False,
    "include_bias": False, "include_qkv_bias": False, "init_cutoff_factor": None, "init_device": "meta",
    "init_fn": "mitchell", "init_std": 0.02, "input_emb_norm": False, "layer_norm_type": "rms",
    "layer_norm_with_affine": True, "mask_token_id": 126336, "max_sequence_length": 4096,
    "mlp_hidden_size": 12288, "mlp_ratio": 4, "model_type": "llada", "multi_query_attention": None,
    "n_heads": 32, "n_kv_heads": 32, "n_layers": 32, "pad_token_id": 126081, "precision": "amp_bf16",
    "residual_dropout": 0.0, "rms_norm_eps": 1e-05, "rope": True, "rope_full_precision": True,
    "rope_theta": 500000.0, "scale_logits": False, "transformers_version": "4.46.3", "use_cache": False,
    "vocab_size": 126464, "weight_tying": False,
}

CONFIGS = {
    "sdar-1.7b-chat": dict(QWEN3_COMMON, **SDAR_FIELDS, hidden_size=2048, intermediate_size=6144,
                           num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                           max_position_embeddings=32768, tie_word_embeddings=True),
    "sdar-4b-chat": dict(QWEN3_COMMON, **SDAR_FIELDS, hidden_size=2560, intermediate_size=9728,
                         num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                         max_position_embeddings=32768, tie_word_embeddings=True),
    # The 8B-class stretch: Qwen3-8B's shape (untied lm_head, 16.4 GB in bf16).
    "sdar-8b-chat": dict(QWEN3_COMMON, **SDAR_FIELDS, hidden_size=4096, intermediate_size=12288,
                         num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                         max_position_embeddings=40960, tie_word_embeddings=False),
    "fast-dllm-v2-1.5b": dict(QWEN2_COMMON, **FAST_FIELDS, hidden_size=1536, intermediate_size=8960,
                              num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                              max_position_embeddings=32768, tie_word_embeddings=True),
    "llada-8b-instruct": LLADA_8B,
}
GENERATION = {
    "sdar-1.7b-chat": {"eos_token_id": [151645, 151643]},
    "sdar-4b-chat": {"eos_token_id": [151645, 151643]},
    "sdar-8b-chat": {"eos_token_id": [151645, 151643]},
    "fast-dllm-v2-1.5b": {"eos_token_id": 151645},
    # <|endoftext|> and <|eot_id|>; bos <|startoftext|>, pad as config.json.
    "llada-8b-instruct": {"bos_token_id": 126080, "eos_token_id": [126081, 126348], "pad_token_id": 126081},
}


def write(name: str, out: Path, shards: int, seed: int, layers: int = 0) -> None:
    import torch
    from safetensors.torch import save_file

    from diffulex_export.export import give_plain_mode
    from diffulex_export.models import FAMILY_MODULES, DiffusionLM, load_spec

    out.mkdir(parents=True, exist_ok=True)
    config = dict(CONFIGS[name])
    if layers:
        # A slice of the model: every layer has the real shape, there are fewer of them.
        config["n_layers" if "n_layers" in config else "num_hidden_layers"] = layers
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(GENERATION[name], indent=2) + "\n")
    spec = load_spec(out, None)
    name_of = FAMILY_MODULES[spec.family].checkpoint_name
    with torch.device("meta"):
        module = DiffusionLM(spec, max_seq_len=16, kv_cache=False)
    tensors = []
    for canonical, t in module.state_dict().items():
        if canonical == "lm_head.weight" and spec.tie_embeddings:
            continue
        tensors.append((name_of(canonical), tuple(t.shape)))
    total = sum(torch.Size(s).numel() for _, s in tensors)
    print(f"{name}: {len(tensors)} tensors, {total / 1e9:.3f} B parameters, {total * 2 / 2**30:.2f} GiB bf16",
          flush=True)
    gen = torch.Generator().manual_seed(seed)
    per_shard = -(-total // shards)
    index, shard, shard_size, number = {}, {}, 0, 1

    def flush():
        nonlocal shard, shard_size, number
        fname = f"model-{number:05d}-of-{shards:05d}.safetensors"
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        give_plain_mode(out / fname)  # safetensors creates its file 0600
        for key in shard:
            index[key] = fname
        shard, shard_size, number = {}, 0, number + 1

    for key, shape in tensors:
        if len(shape) == 1:
            t = torch.ones(shape, dtype=torch.bfloat16)
        else:
            t = (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)
        shard[key] = t
        shard_size += t.numel()
        if shard_size >= per_shard and number < shards:
            flush()
    if shard:
        flush()
    if number - 1 != shards:
        raise SystemExit(f"wrote {number - 1} shards, expected {shards}: lower --shards")
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total * 2}, "weight_map": index}, indent=2) + "\n"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", choices=sorted(CONFIGS))
    p.add_argument("out", nargs="?", type=Path)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layers", type=int, default=0,
                   help="only this many decoder layers (each of the real shape): a quick stand-in for "
                        "per-layer measurements, exported in minutes instead of ten")
    p.add_argument("--list", action="store_true")
    a = p.parse_args()
    if a.layers < 0:
        p.error("--layers must be 0 (all) or positive")
    if a.list or not a.name:
        for name, cfg in CONFIGS.items():
            print(name, json.dumps(cfg))
        return 0
    if a.out is None:
        p.error("OUT_DIR is required")
    started = time.monotonic()
    write(a.name, a.out, a.shards, a.seed, a.layers)
    print(f"wrote {a.out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
