"""Train the bundled default model: a tiny SDAR (Qwen3-architecture, block size 4) diffusion LM
that adds two integers of 1-3 digits ("123+45=" -> "168<|endoftext|>").

Objective (SDAR / BD3-LM): every example is laid out as [noisy copy | clean copy] (2 x 16 tokens).
In the noisy copy, each block that holds answer tokens gets its own rate t ~ U(0, 1); its answer
positions (never prompt positions) are replaced by <|MASK|> with probability t, at least one per
block. The attention mask lets a noisy block see itself and the CLEAN copies of earlier blocks, and
the clean copy is block-causal, which is exactly the context a block has at inference. The loss is
the cross-entropy of the unshifted logits at masked positions (no 1/t weight: we care about greedy
accuracy at every noise level equally). Blocks after EOS (EOS padding) are trained too, so the
model learns to fill the final block with EOS and stop.

Run (CPU, seeded, 1 thread by default; see --threads):
    .venv/bin/python training/train_default.py --out models/default/ckpt

Writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
generation_config.json into --out and the held-out set to training/default_eval.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from addition_task import (  # noqa: E402
    BLOCK_SIZE,
    SEQ_LEN,
    Vocab,
    build_tokenizer,
    encode_example,
    make_eval_set,
    problem_text,
    sample_pairs,
)
from sdar_decode import answer_text, decode  # noqa: E402
from sdar_tiny import SdarTiny, TinyConfig, bd3_training_mask  # noqa: E402

EVAL_SEED = 20261125  # held-out problems
VAL_SEED = 7  # monitoring problems (not the held-out set)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="models/default/ckpt")
    p.add_argument("--eval-out", default=str(Path(__file__).resolve().parent / "default_eval.jsonl"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; on the shared 2-core box 2 threads ran 5x slower than 1 (OpenMP barriers)",
    )
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=384)
    p.add_argument("--max-pos", type=int, default=64)
    p.add_argument("--n-eval", type=int, default=500)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--n-val", type=int, default=100)
    p.add_argument("--max-minutes", type=float, default=60.0, help="stop early (and say so) past this")
    return p.parse_args()


def noisy_batch(clean: torch.Tensor, prompt_len: torch.Tensor, mask_id: int, gen: torch.Generator):
    """Mask answer positions block-wise with per-block rate t ~ U(0,1), at least one per block."""
    b, length = clean.shape
    nb = length // BLOCK_SIZE
    pos = torch.arange(length)[None, :].expand(b, length)
    maskable = pos >= prompt_len[:, None]
    t = torch.rand(b, nb, generator=gen).repeat_interleave(BLOCK_SIZE, dim=1)
    u = torch.rand(b, length, generator=gen)
    masked = maskable & (u < t)
    # Blocks with maskable positions but no mask: mask the maskable position with the lowest u.
    mb = masked.view(b, nb, BLOCK_SIZE).any(-1)
    can = maskable.view(b, nb, BLOCK_SIZE).any(-1)
    need = can & ~mb
    score = torch.where(maskable, u, torch.full_like(u, 2.0)).view(b, nb, BLOCK_SIZE)
    pick = F.one_hot(score.argmin(-1), BLOCK_SIZE).bool() & need[..., None]
    masked = masked | pick.view(b, length)
    noisy = torch.where(masked, torch.full_like(clean, mask_id), clean)
    return noisy, masked


def training_pairs(rng: np.random.Generator, n: int, held_out: set) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    while len(out) < n:
        for a, b in sample_pairs(rng, n):
            if (int(a), int(b)) not in held_out:
                out.append((int(a), int(b)))
    return out[:n]


def exact_match(model, vocab: Vocab, pairs, strategy: str) -> tuple[float, float]:
    correct = decoded = forwards = 0
    for a, b in pairs:
        prompt, answer = problem_text(a, b)
        r = decode(model, vocab.encode(prompt), mask_id=vocab.mask_id, eos_ids={vocab.eos_id}, strategy=strategy)
        correct += answer_text(r.tokens, {vocab.eos_id}, vocab.decode) == answer
        decoded += r.decoded
        forwards += r.denoise_forwards
    return correct / len(pairs), decoded / forwards


def save_checkpoint(model: SdarTiny, vocab: Vocab, out: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg.to_hf_dict(eos_id=vocab.eos_id, pad_id=vocab.pad_id, mask_id=vocab.mask_id)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    gen_cfg = {
        "bos_token_id": vocab.eos_id,
        "eos_token_id": [vocab.eos_id],
        "pad_token_id": vocab.pad_id,
        "mask_token_id": vocab.mask_id,
        "block_size": BLOCK_SIZE,
        "denoising_steps": BLOCK_SIZE,
        "remasking_strategy": "low_confidence_static",
        "confidence_threshold": 0.9,
        "temperature": 0.0,
        "max_new_tokens": 8,
    }
    (out / "generation_config.json").write_text(json.dumps(gen_cfg, indent=2) + "\n")
    build_tokenizer(out, vocab, model_max_length=model.cfg.max_position_embeddings)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    vocab = Vocab()

    eval_pairs = make_eval_set(EVAL_SEED, args.n_eval)
    held_out = set(eval_pairs)
    with open(args.eval_out, "w") as f:
        for a, b in eval_pairs:
            prompt, answer = problem_text(a, b)
            f.write(json.dumps({"prompt": prompt, "answer": answer}) + "\n")
    val_pairs = training_pairs(np.random.default_rng(VAL_SEED), args.n_val, held_out)

    cfg = TinyConfig(
        vocab_size=len(vocab),
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads,
        max_position_embeddings=args.max_pos,
        block_size=BLOCK_SIZE,
    )
    model = SdarTiny(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params}  config {cfg}", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    attn_mask = bd3_training_mask(SEQ_LEN, BLOCK_SIZE)
    positions = torch.arange(SEQ_LEN).repeat(2)
    t0 = time.time()
    cpu0 = time.process_time()
    ema = None
    step = 0
    for step in range(args.steps):
        pairs = training_pairs(rng, args.batch, held_out)
        enc = [encode_example(vocab, a, b) for a, b in pairs]
        clean = torch.tensor([e[0] for e in enc], dtype=torch.long)
        plen = torch.tensor([e[1] for e in enc], dtype=torch.long)
        noisy, masked = noisy_batch(clean, plen, vocab.mask_id, gen)
        logits = model(torch.cat((noisy, clean), dim=1), attn_mask, positions)[:, :SEQ_LEN]
        loss = F.cross_entropy(logits[masked], clean[masked])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        elapsed = time.time() - t0
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  ema {ema:.4f}  lr {lr_at(step):.2e}  {elapsed:6.0f}s", flush=True)
        if args.val_every and (step + 1) % args.val_every == 0:
            # One thread: per-token decoding forwards are tiny, and OpenMP barriers on a busy
            # 2-core machine made them ~6x slower with two threads.
            model.eval()
            torch.set_num_threads(1)
            acc, _ = exact_match(model, vocab, val_pairs, "low_confidence_static")
            torch.set_num_threads(args.threads)
            model.train()
            print(f"  val exact-match (static, {len(val_pairs)} problems) {acc:.3f}", flush=True)
        if elapsed > args.max_minutes * 60:
            print(f"stopping early at step {step}: time budget {args.max_minutes} min reached", flush=True)
            break

    wall = time.time() - t0
    cpu = time.process_time() - cpu0
    model.eval()
    save_checkpoint(model, vocab, Path(args.out))
    print(f"done: {step + 1} steps, wall {wall:.0f}s ({wall / 60:.1f} min), process CPU {cpu:.0f}s, final loss ema {ema:.4f}", flush=True)
    print(f"saved {args.out}; held-out set {args.eval_out}", flush=True)


if __name__ == "__main__":
    main()
