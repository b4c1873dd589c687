"""Exact-match accuracy and tokens per forward of the default model under SDAR block decoding.

Runs the trained PyTorch checkpoint (training/sdar_tiny.py, Qwen3 maths) with the decoder in
training/sdar_decode.py: block size 4, temperature 0 (argmax, ties to the lowest id), KV cache of
whole clean blocks, and two unmasking strategies:
- low_confidence_static, steps = block_size (1 token per denoising forward);
- low_confidence_dynamic, threshold 0.9 (every masked position with confidence > 0.9 at once).
Prompts are encoded and answers decoded with the checkpoint's tokenizer.json.

"tokens/forward" = positions unmasked / denoising forwards (the forwards whose logits pick tokens).
"tokens/forward incl. cache" also counts the prefill and the per-block K/V-append forwards that
SDAR's reference loop runs (an engine can fold the append into the next block's first forward).

Run:
    .venv/bin/python training/eval_default.py --ckpt models/default/ckpt
    .venv/bin/python training/eval_default.py --ckpt models/default/ckpt --check-hf
    .venv/bin/python training/eval_default.py --ckpt models/default/ckpt --pte models/default/model.pte
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdar_decode import PteRunner, TorchRunner, answer_text, decode  # noqa: E402
from sdar_tiny import block_causal_mask, load_checkpoint  # noqa: E402

HERE = Path(__file__).resolve().parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", default="models/default/ckpt")
    p.add_argument("--eval", default=str(HERE / "default_eval.jsonl"))
    p.add_argument("--threads", type=int, default=1, help="1 is fastest for per-token decoding forwards")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--gen-length", type=int, default=8)
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N problems")
    p.add_argument("--strategies", default="low_confidence_static,low_confidence_dynamic")
    p.add_argument("--check-hf", action="store_true", help="also check logits against transformers Qwen3ForCausalLM")
    p.add_argument("--show-errors", type=int, default=5)
    p.add_argument("--pte", help="decode with this exported .pte (ExecuTorch runtime) instead of PyTorch")
    return p.parse_args()


def check_against_transformers(model, ckpt: Path) -> float:
    """Max |logit difference| between our model and transformers' Qwen3ForCausalLM given the same
    weights and the block-causal mask, on a few token sequences. Proves the weight names and maths
    match the Qwen3 architecture the export toolkit implements."""
    from safetensors.torch import load_file
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = json.loads((ckpt / "config.json").read_text())
    keys = [
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "max_position_embeddings",
        "tie_word_embeddings", "attention_bias", "hidden_act",
    ]
    hf_cfg = Qwen3Config(**{k: cfg[k] for k in keys})
    hf_cfg._attn_implementation = "eager"
    hf = Qwen3ForCausalLM(hf_cfg).eval()
    missing, unexpected = hf.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=False)
    if unexpected or [m for m in missing if not m.endswith("rotary_emb.inv_freq")]:
        raise SystemExit(f"weight names differ from Qwen3ForCausalLM: missing {missing} unexpected {unexpected}")
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for t in (5, 8, 13, 16):
        ids = torch.randint(0, cfg["vocab_size"], (1, t), generator=gen)
        allowed = block_causal_mask(t, cfg["block_size"])
        additive = torch.zeros(1, 1, t, t).masked_fill(~allowed, torch.finfo(torch.float32).min)
        with torch.no_grad():
            ref = hf(input_ids=ids, attention_mask=additive).logits
            ours = model(ids, allowed)
        worst = max(worst, (ref - ours).abs().max().item())
    return worst


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    ckpt = Path(args.ckpt)
    model = load_checkpoint(ckpt)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    tcfg = json.loads((ckpt / "tokenizer_config.json").read_text())
    mask_id = tok.token_to_id(tcfg["mask_token"])
    eos_ids = {tok.token_to_id(tcfg["eos_token"])}
    detok = lambda ids: tok.decode(ids, skip_special_tokens=False)  # noqa: E731

    if args.check_hf:
        diff = check_against_transformers(model, ckpt)
        print(f"max |logits - Qwen3ForCausalLM logits| = {diff:.2e}")
        if diff > 1e-4:
            raise SystemExit("mismatch against transformers Qwen3ForCausalLM")

    runner = PteRunner(args.pte) if args.pte else TorchRunner(model)
    print(f"backend: {'pte ' + args.pte if args.pte else 'pytorch ' + str(ckpt)}")
    problems = [json.loads(line) for line in open(args.eval)]
    if args.limit:
        problems = problems[: args.limit]
    print(f"{len(problems)} problems from {args.eval}; mask {mask_id} eos {sorted(eos_ids)}")
    for strategy in args.strategies.split(","):
        t0 = time.time()
        correct = decoded = denoise = cache_fw = 0
        errors = []
        for p in problems:
            r = decode(
                runner,
                tok.encode(p["prompt"]).ids,
                mask_id=mask_id,
                eos_ids=eos_ids,
                gen_length=args.gen_length,
                strategy=strategy,
                threshold=args.threshold,
            )
            got = answer_text(r.tokens, eos_ids, detok)
            if got == p["answer"]:
                correct += 1
            elif len(errors) < args.show_errors:
                errors.append((p["prompt"], p["answer"], got))
            decoded += r.decoded
            denoise += r.denoise_forwards
            cache_fw += r.cache_forwards
        n = len(problems)
        print(
            f"{strategy:24s} exact-match {correct}/{n} = {100 * correct / n:.1f}%  "
            f"tokens/forward {decoded / denoise:.2f}  tokens/forward incl. cache {decoded / (denoise + cache_fw):.2f}  "
            f"({time.time() - t0:.1f}s)"
        )
        for prompt, answer, got in errors:
            print(f"    wrong: {prompt}{answer}  got {got!r}")


if __name__ == "__main__":
    main()
