"""Train a tiny LLaDA-style masked-diffusion LM on the default model's addition task
("123+45=" -> "168<|endoftext|>"), with the export toolkit's own module.

Model: `diffulex_export.models.base.DiffusionLM` built from a ModelSpec of family "llada"
(pre-norm RMSNorm, rotate-half RoPE, SwiGLU, FULL bidirectional attention, unshifted logits:
the logit at position p predicts token p). Training uses exactly the module's layers; the only
addition is a per-example key-padding mask, because prompts have 4-8 characters and a batch is
right-padded to the longest example (a padded key is invisible, so each example computes what
the unpadded sequence computes at inference).

Layout (LLaDA SFT): prompt + answer + <|endoftext|>, padded with <|endoftext|> to GEN = 16
positions after the prompt, so the sequence is prompt_len + 16 tokens (at most 24).

Objective (LLaDA SFT masking): per example t ~ U(0, 1), p = (1 - eps) t + eps (eps 1e-3); every
generation position (never a prompt position) becomes <|MASK|> independently with probability p,
at least one per example. Loss, `--weighting none` (the default): the plain mean cross-entropy of
the unshifted logits over all masked positions of the batch. `--weighting inv_t` is LLaDA's SFT
loss: sum over masked positions of CE / p, divided by the 16 generation positions (LLaDA's
"answer length", EOS padding included), averaged over the batch. In a 500-step pilot (same seed
and schedule) the unweighted loss reached masked-CE 0.32 and 7/100 monitoring exact match
against 0.40 and 1/100 with 1/p weighting (whose small-t examples make very noisy gradients), so
the default is unweighted (training/LLADA.md).

Writes an LLaDA-layout HF checkpoint (config.json with OLMo-style keys, model.safetensors with
model.transformer.* names, tokenizer.json, tokenizer_config.json, generation_config.json), then
reloads it with `diffulex_export.models.load_model` and checks the logits equal the trained
module's.

Run (CPU, seeded, 1 thread):
    .venv/bin/python training/train_llada.py --out models/llada-addition/ckpt
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "python"))

from addition_task import Vocab, build_tokenizer, problem_text, sample_pairs  # noqa: E402
from diffulex_export.models import load_model  # noqa: E402
from diffulex_export.models.base import DiffusionLM, ModelSpec  # noqa: E402
from diffulex_export.models.llada import checkpoint_name  # noqa: E402

GEN = 16  # generation positions after the prompt (decoding: gen_length 16)
BLOCK = 4  # decoding block_length (monitoring only; the model itself is block-free)
MAX_PROMPT = 8  # "999+999="
VAL_SEED = 7  # monitoring problems (not the held-out set)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="models/llada-addition/ckpt")
    p.add_argument("--held-out", default=str(HERE / "default_eval.jsonl"), help="problems never trained on")
    p.add_argument("--eval-out", default=str(HERE / "llada_eval.jsonl"), help="copy of the held-out set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--weighting", choices=["inv_t", "none"], default="none")
    p.add_argument("--eps", type=float, default=1e-3)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--mlp-hidden", type=int, default=384)
    p.add_argument("--max-seq", type=int, default=64)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--n-val", type=int, default=100)
    p.add_argument("--max-minutes", type=float, default=30.0, help="stop early (and say so) past this")
    return p.parse_args()


def make_spec(args, vocab: Vocab) -> ModelSpec:
    return ModelSpec(
        family="llada",
        vocab_size=len(vocab),
        hidden=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        n_kv_heads=args.kv_heads,
        head_dim=args.d_model // args.heads,
        intermediate=args.mlp_hidden,
        rms_eps=1e-5,
        rope_theta=10000.0,
        max_position_embeddings=args.max_seq,
        mask_token_id=vocab.mask_id,
        eos_ids=[vocab.eos_id],
        pad_id=vocab.pad_id,
        block_size=0,
        shift_logits=False,
        tie_embeddings=False,
    )


def config_json(spec: ModelSpec, vocab: Vocab) -> dict:
    """config.json laid out like GSAI-ML/LLaDA-8B-* (OLMo-style keys)."""
    return {
        "architectures": ["LLaDAModelLM"],
        "model_type": "llada",
        "activation_type": "silu",
        "alibi": False,
        "attention_dropout": 0.0,
        "attention_layer_norm": False,
        "bias_for_layer_norm": False,
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": spec.hidden,
        "embedding_dropout": 0.0,
        "embedding_size": spec.vocab_size,
        "eos_token_id": vocab.eos_id,
        "include_bias": False,
        "include_qkv_bias": False,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "mask_token_id": vocab.mask_id,
        "max_sequence_length": spec.max_position_embeddings,
        "mlp_hidden_size": spec.intermediate,
        "multi_query_attention": None,
        "n_heads": spec.n_heads,
        "n_kv_heads": spec.n_kv_heads,
        "n_layers": spec.n_layers,
        "pad_token_id": vocab.pad_id,
        "residual_dropout": 0.0,
        "rms_norm_eps": spec.rms_eps,
        "rope": True,
        "rope_theta": spec.rope_theta,
        "scale_logits": False,
        "torch_dtype": "float32",
        "use_cache": False,
        "vocab_size": spec.vocab_size,
        "weight_tying": False,
    }


def init_weights(model: DiffusionLM) -> None:
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            torch.nn.init.normal_(p, std=0.02)
        else:
            torch.nn.init.ones_(p)  # RMSNorm weights


def batch_forward(model: DiffusionLM, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """DiffusionLM's uncached forward for a right-padded batch: ids [B, T], valid bool [B, T]
    (False = padding, invisible as a key). Same layers and maths as model(ids[b:b+1, :len])."""
    t = ids.shape[1]
    mask = valid[:, None, None, :]  # [B, 1, 1, T] broadcasts over heads and queries
    x = model.embed(ids)
    cos, sin = model.rope_cos[:t], model.rope_sin[:t]
    for layer in model.layers:
        x = layer(x, cos, sin, mask, None)
    return model.lm_head(model.norm(x)).float()


def encode(vocab: Vocab, a: int, b: int) -> tuple[list[int], int]:
    prompt, answer = problem_text(a, b)
    gen = vocab.encode(answer) + [vocab.eos_id]
    return vocab.encode(prompt) + gen + [vocab.eos_id] * (GEN - len(gen)), len(prompt)


def make_batch(vocab: Vocab, pairs, mask_id: int, eps: float, gen: torch.Generator):
    """Clean and noisy ids [B, T], valid [B, T], masked [B, T], p [B] (mask probability)."""
    enc = [encode(vocab, a, b) for a, b in pairs]
    bsz, t = len(enc), max(len(e[0]) for e in enc)
    clean = torch.full((bsz, t), vocab.pad_id, dtype=torch.long)
    valid = torch.zeros(bsz, t, dtype=torch.bool)
    plen = torch.tensor([e[1] for e in enc])
    for i, (ids, _) in enumerate(enc):
        clean[i, : len(ids)] = torch.tensor(ids)
        valid[i, : len(ids)] = True
    pos = torch.arange(t)[None, :]
    maskable = valid & (pos >= plen[:, None])
    p = (1 - eps) * torch.rand(bsz, generator=gen) + eps
    u = torch.rand(bsz, t, generator=gen)
    masked = maskable & (u < p[:, None])
    # At least one masked position per example: the maskable one with the lowest u.
    none = ~masked.any(1)
    pick = torch.where(maskable, u, torch.full_like(u, 2.0)).argmin(1)
    masked[none, pick[none]] = True
    noisy = torch.where(masked, torch.full_like(clean, mask_id), clean)
    return clean, noisy, valid, masked, p


@torch.no_grad()
def greedy_decode(model: DiffusionLM, prompt: list[int], mask_id: int, eos_id: int, threshold=None):
    """Greedy LLaDA low-confidence remasking, gen 16, block 4; one token per forward (or, with
    threshold, every position with confidence >= threshold plus the most confident one); stop
    after a block once an EOS is committed with no mask before it. Returns (tokens, forwards)."""
    lp = len(prompt)
    x = torch.tensor([prompt + [mask_id] * GEN])
    forwards = 0
    for b in range(GEN // BLOCK):
        s, e = lp + b * BLOCK, lp + (b + 1) * BLOCK
        while True:
            pos = [p for p in range(s, e) if x[0, p] == mask_id]
            if not pos:
                break
            logits = model(x)[0, pos].clone()
            forwards += 1
            logits[:, mask_id] = float("-inf")
            probs = logits.softmax(-1)
            conf, tok = probs.max(-1)
            best = int(conf.argmax())  # ties -> lowest position
            chosen = [best]
            if threshold is not None:
                chosen = sorted(set(chosen) | {k for k in range(len(pos)) if conf[k] >= threshold})
            for k in chosen:
                x[0, pos[k]] = tok[k]
        gen = x[0, lp:].tolist()
        for tkn in gen:
            if tkn == mask_id:
                break
            if tkn == eos_id:
                return gen, forwards
    return x[0, lp:].tolist(), forwards


def answer_of(tokens: list[int], vocab: Vocab) -> str:
    out = []
    for t in tokens:
        if t == vocab.eos_id or t == vocab.mask_id:
            break
        out.append(t)
    return vocab.decode(out)


def monitor(model, vocab, pairs, threshold=None) -> tuple[float, float]:
    correct = forwards = 0
    for a, b in pairs:
        prompt, answer = problem_text(a, b)
        toks, fw = greedy_decode(model, vocab.encode(prompt), vocab.mask_id, vocab.eos_id, threshold)
        correct += answer_of(toks, vocab) == answer
        forwards += fw
    return correct / len(pairs), forwards / len(pairs)


def training_pairs(rng: np.random.Generator, n: int, held_out: set) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    while len(out) < n:
        for a, b in sample_pairs(rng, n):
            if (int(a), int(b)) not in held_out:
                out.append((int(a), int(b)))
    return out[:n]


def save_checkpoint(model: DiffusionLM, vocab: Vocab, out: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config_json(model.spec, vocab), indent=2) + "\n")
    state = {checkpoint_name(k): v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    gen_cfg = {
        "bos_token_id": vocab.eos_id,
        "eos_token_id": [vocab.eos_id],
        "pad_token_id": vocab.pad_id,
        "mask_token_id": vocab.mask_id,
        "max_new_tokens": GEN,
        "block_length": BLOCK,
        "steps": GEN,
        "remasking": "low_confidence",
        "temperature": 0.0,
    }
    (out / "generation_config.json").write_text(json.dumps(gen_cfg, indent=2) + "\n")
    build_tokenizer(out, vocab, model_max_length=model.max_seq_len)


def check_reload(model: DiffusionLM, out: Path, vocab: Vocab) -> float:
    """Max |logits| difference between the trained module and load_model(out) on task sequences,
    and between the padded-batch training forward and the plain forward."""
    loaded = load_model(out)
    assert loaded.spec == model.spec, (loaded.spec, model.spec)
    worst = 0.0
    rng = np.random.default_rng(123)
    gen = torch.Generator().manual_seed(123)
    pairs = [tuple(map(int, p)) for p in sample_pairs(rng, 16)]
    clean, noisy, valid, _, _ = make_batch(vocab, pairs, vocab.mask_id, 1e-3, gen)
    with torch.no_grad():
        batched = batch_forward(model, noisy, valid)
        for i in range(len(pairs)):
            n = int(valid[i].sum())
            ids = noisy[i : i + 1, :n]
            a, b = model(ids), loaded(ids)
            worst = max(worst, (a - b).abs().max().item())
            pad_diff = (batched[i : i + 1, :n] - a).abs().max().item()
            assert pad_diff < 1e-4, f"padded-batch forward differs from the plain forward by {pad_diff}"
    return worst


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    vocab = Vocab()

    held = [json.loads(line) for line in open(args.held_out)]
    held_out = {tuple(int(x) for x in h["prompt"].rstrip("=").split("+")) for h in held}
    if Path(args.eval_out).resolve() != Path(args.held_out).resolve():
        with open(args.eval_out, "w") as f:
            for h in held:
                f.write(json.dumps({"prompt": h["prompt"], "answer": h["answer"]}) + "\n")
    val_pairs = training_pairs(np.random.default_rng(VAL_SEED), args.n_val, held_out)

    spec = make_spec(args, vocab)
    model = DiffusionLM(spec, max_seq_len=args.max_seq, kv_cache=False)
    init_weights(model)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params}  spec {spec}", flush=True)
    print(f"held-out {len(held_out)} problems from {args.held_out}; weighting {args.weighting}", flush=True)
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

    t0 = time.time()
    cpu0 = time.process_time()
    ema = ema_ce = None
    step = 0
    for step in range(args.steps):
        pairs = training_pairs(rng, args.batch, held_out)
        clean, noisy, valid, masked, p = make_batch(vocab, pairs, vocab.mask_id, args.eps, gen)
        logits = batch_forward(model, noisy, valid)
        ce = F.cross_entropy(logits[masked], clean[masked], reduction="none")
        if args.weighting == "inv_t":
            w = (1.0 / p)[:, None].expand_as(masked)[masked]
            loss = (ce * w).sum() / (GEN * len(pairs))
        else:
            loss = ce.mean()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        mce = ce.mean().item()
        ema_ce = mce if ema_ce is None else 0.98 * ema_ce + 0.02 * mce
        elapsed = time.time() - t0
        if step % 100 == 0 or step == args.steps - 1:
            print(
                f"step {step:5d}  loss {loss.item():.4f}  ema {ema:.4f}  masked-CE ema {ema_ce:.4f}  "
                f"lr {lr_at(step):.2e}  {elapsed:6.0f}s",
                flush=True,
            )
        if args.val_every and (step + 1) % args.val_every == 0:
            model.eval()
            acc, fw = monitor(model, vocab, val_pairs)
            model.train()
            print(f"  val exact-match (greedy, 1 token/step, block 4, {len(val_pairs)} problems) {acc:.3f}  forwards/problem {fw:.2f}", flush=True)
        if elapsed > args.max_minutes * 60:
            print(f"stopping early at step {step}: time budget {args.max_minutes} min reached", flush=True)
            break

    wall = time.time() - t0
    cpu = time.process_time() - cpu0
    model.eval()
    acc, fw = monitor(model, vocab, val_pairs)
    acc_t, fw_t = monitor(model, vocab, val_pairs, threshold=0.9)
    print(f"final val exact-match: 1 token/step {acc:.3f} ({fw:.2f} forwards/problem); threshold 0.9 {acc_t:.3f} ({fw_t:.2f} forwards/problem)", flush=True)
    out = Path(args.out)
    save_checkpoint(model, vocab, out)
    diff = check_reload(model, out, vocab)
    print(f"reload check: max |trained - load_model({out})| logits = {diff:.3e}", flush=True)
    if diff != 0.0:
        raise SystemExit("reloaded checkpoint differs from the trained module")
    print(f"done: {step + 1} steps, wall {wall:.0f}s ({wall / 60:.1f} min), process CPU {cpu:.0f}s, final loss ema {ema:.4f}", flush=True)
    print(f"saved {out}; held-out copy {args.eval_out}", flush=True)


if __name__ == "__main__":
    main()
