#!/usr/bin/env python3
"""Export random-weight benchmark models at real vocabulary sizes into bench-models/ (not committed).

    .venv/bin/python tools/make_bench_models.py [--out bench-models] [--only NAME ...]
                                                       [--logits all|rows|both] [--list] [--force]
    .venv/bin/python tools/make_bench_models.py --only fdllm_v152k_b32 --logits rows
        # -> bench-models/fdllm_v152k_b32_rows.pte

Each model is an HF-layout checkpoint (config.json, generation_config.json, model.safetensors
of seeded random weights, written with the toolkit's own tiny-checkpoint writer at bigger
dimensions), then exported with the toolkit's `load_model` + `export_model` (XNNPACK). The
shapes follow the real families where the runtime cost lives (vocabulary = logits width and
lm_head size, block size); depth and width are reduced so one block forward takes tens of ms
on a 2-core x86_64 machine. The export time of every file is printed (and appended to
bench-models/export_times.json). No tokenizer is written: `diffulex bench` uses random ids.
`--logits rows` exports contract v2 ("logits rows": the lm_head runs only on the rows the
engine asks for) from the same checkpoint, so the weights are identical to the v1 model;
the file gets a `_rows` suffix (NAME_rows.pte). The default `--logits all` writes v1.
`--llm-ops` exports attention through ExecuTorch's LLM custom operators (a `_llmops` suffix
after the others, e.g. sdar_v152k_b4_rows_llmops.pte); those files run only on a runtime
built from source with feature `llm-ops`.

Models (NAME: family, vocab, block, kv cache, quantization):
    sdar_v152k_b4[_int8|_8da4w]     sdar, 151,936, block 4, cached   (SDAR / Qwen vocabulary)
    fdllm_v152k_b32[_int8]          fast_dllm_v2, 151,936, block 32, cached (tied embeddings)
    llada_v126k                     llada, 126,464, uncached
    llada_v126k_cached              llada, 126,464, Fast-dLLM prefix/dual cache (contract 3, rows)
    dream_v152k                     dream, 151,936, uncached
    dream_v152k_cached              dream, 151,936, Fast-dLLM prefix/dual cache (contract 3, rows)
    llada_v126k[_cached]_int8       the llada models with int8 linear layers (lm_head included)
A cached llada/dream model is always written as contract 3 (it selects logits rows), whatever
`--logits` says, under its own name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from safetensors.torch import save_file  # noqa: E402

from diffulex_export import tiny  # noqa: E402

# Shape of the transformer body shared by all bench models (Qwen-like ratios, shallower).
BODY = dict(HIDDEN=512, LAYERS=4, HEADS=8, KV_HEADS=4, HEAD_DIM=64, INTERMEDIATE=1536, MAX_POS=1024)
MAX_SEQ_LEN = 640  # 256-token prompt + 256 new tokens, rounded up to whole 32-blocks, with room

MODELS = {
    "sdar_v152k_b4": ("sdar", 151_936, 4, "none"),
    "sdar_v152k_b4_int8": ("sdar", 151_936, 4, "int8"),
    "sdar_v152k_b4_8da4w": ("sdar", 151_936, 4, "8da4w"),
    "fdllm_v152k_b32": ("fast_dllm_v2", 151_936, 32, "none"),
    "fdllm_v152k_b32_int8": ("fast_dllm_v2", 151_936, 32, "int8"),
    "llada_v126k": ("llada", 126_464, 0, "none"),
    "llada_v126k_cached": ("llada", 126_464, 0, "none"),
    "dream_v152k": ("dream", 151_936, 0, "none"),
    "dream_v152k_cached": ("dream", 151_936, 0, "none"),
    "llada_v126k_int8": ("llada", 126_464, 0, "int8"),
    "llada_v126k_cached_int8": ("llada", 126_464, 0, "int8"),
}
# Exported with the KV cache of Fast-dLLM's prefix and dual modes (contract 3).
BIDIRECTIONAL_CACHED = {"llada_v126k_cached", "dream_v152k_cached", "llada_v126k_cached_int8"}


def write_checkpoint(out: Path, family: str, vocab: int, block: int, seed: int = 0) -> Path:
    """tiny.write_checkpoint's config and weights at the bench dimensions (no tokenizer).

    The special ids stay those of the tiny tokenizer (mask 3 etc.), which is all the runtime
    needs; the mask id is put into config.json for every family so no tokenizer is required.
    """
    saved = {k: getattr(tiny, k) for k in (*BODY, "VOCAB")}
    try:
        for k, v in BODY.items():
            setattr(tiny, k, v)
        tiny.VOCAB = vocab
        out.mkdir(parents=True, exist_ok=True)
        cfg = tiny._config(family, block)
        cfg["mask_token_id"] = tiny.token_id(family, tiny.MASK_TEXT[family])
        tiny._dump(out / "config.json", cfg)
        tiny._dump(out / "generation_config.json", tiny._generation_config(family))
        save_file(tiny.weights(family, seed), str(out / "model.safetensors"), metadata={"format": "pt"})
    finally:
        for k, v in saved.items():
            setattr(tiny, k, v)
    return out


def output_name(name: str, logits: str, llm_ops: bool = False) -> str:
    """File stem of a bench model: the v2 ("rows") variant gets a `_rows` suffix, the
    `--llm-ops` one `_llmops`.

    Example:
        >>> output_name("fdllm_v152k_b32_int8", "rows")
        'fdllm_v152k_b32_int8_rows'
        >>> output_name("sdar_v152k_b4", "rows", llm_ops=True)
        'sdar_v152k_b4_rows_llmops'
    """
    stem = f"{name}_rows" if logits == "rows" else name
    return f"{stem}_llmops" if llm_ops else stem


def export_one(name: str, out_dir: Path, force: bool, logits: str = "all", llm_ops: bool = False) -> dict:
    from diffulex_export.export import export_model
    from diffulex_export.models import load_model

    family, vocab, block, quant = MODELS[name]
    cached = name in BIDIRECTIONAL_CACHED
    if cached:
        logits = "all"  # the stem stays NAME; the program selects rows anyway (contract 3)
    stem = output_name(name, logits, llm_ops)
    pte = out_dir / f"{stem}.pte"
    if pte.is_file() and not force:
        print(f"{stem}: exists ({pte}), skipping (--force to redo)")
        return {}
    ckpt = out_dir / "ckpt" / f"{family}_v{vocab}_b{block}"
    if not (ckpt / "model.safetensors").is_file():
        write_checkpoint(ckpt, family, vocab, block)
    t0 = time.time()
    if cached:
        model = load_model(ckpt, family=family, max_seq_len=MAX_SEQ_LEN, kv_cache=True, logits_rows=True)
    else:
        model = load_model(ckpt, family=family, max_seq_len=MAX_SEQ_LEN, logits_rows=logits == "rows")
    export_model(model, pte, backend="xnnpack", quantize=quant, llm_ops=llm_ops)
    secs = time.time() - t0
    size = pte.stat().st_size
    print(f"{stem}: {pte} {size / 2**20:.1f} MiB, exported in {secs:.0f} s", flush=True)
    rec = {"name": stem, "family": family, "vocab": vocab, "block": block, "quantize": quant,
           "bytes": size, "export_s": round(secs, 1), **{k.lower(): v for k, v in BODY.items()}}
    if logits == "rows" or cached:
        # Only v2 records say so: the existing v1 records keep their exact shape.
        rec.update(logits="rows", contract_version=model.meta["contract_version"])
    if llm_ops:
        rec["llm_ops"] = True
    return rec


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench-models")
    p.add_argument("--only", nargs="+", choices=sorted(MODELS), help="export only these models")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    p.add_argument("--force", action="store_true", help="re-export existing files")
    p.add_argument("--logits", choices=("all", "rows", "both"), default="all",
                   help="all: contract v1 (NAME.pte); rows: contract v2, logits only for the rows asked "
                        "for (NAME_rows.pte, same weights); both: each model in both forms")
    p.add_argument("--llm-ops", action="store_true",
                   help="attention through ExecuTorch's LLM custom operators (NAME[_rows]_llmops.pte)")
    args = p.parse_args()
    modes = ("all", "rows") if args.logits == "both" else (args.logits,)
    if args.list:
        for mode in modes:
            for name, spec in MODELS.items():
                print(output_name(name, mode, args.llm_ops), *spec)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "export_times.json"
    times = json.loads(log.read_text()) if log.is_file() else {}
    for mode in modes:
        for name in args.only or list(MODELS):
            rec = export_one(name, args.out, args.force, mode, args.llm_ops)
            if rec:
                times[rec["name"]] = rec
                log.write_text(json.dumps(times, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
