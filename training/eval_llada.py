"""Exact match and forwards per problem of the LLaDA addition model under the project's reference
LLaDA decoder (python/diffulex_export/reference/llada.py, the twin of the Rust engine's sampler).

The forward is the PyTorch module from `diffulex_export.models.load_model(--ckpt)` and, with
`--pte PATH`, also the exported .pte run by ExecuTorch's Python runtime (tools/make_goldens.py's
PteForward); then the two backends' generated tokens are compared problem by problem.

Settings (greedy, gen_length 16 = max_new_tokens, block_length 4):
- steps 16: one token per forward (low-confidence remasking);
- threshold 0.9: every masked position of the block with confidence >= 0.9, at least the most
  confident one, per forward.
The decoder stops after a block once an EOS is committed (no mask before it). Exact match: the
answer text before the first EOS equals the true sum. "forwards/problem" = model calls;
"positions/forward" = positions unmasked / forwards (a stop after block k means blocks 0..k were
fully unmasked, 4 positions each).

Run:
    .venv/bin/python training/eval_llada.py --ckpt models/llada-addition/ckpt
    .venv/bin/python training/eval_llada.py --ckpt models/llada-addition/ckpt --pte models/llada-addition/model.pte
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tools"))

from diffulex_export import reference  # noqa: E402
from diffulex_export.models import load_model  # noqa: E402

SETTINGS = {
    "steps16_bl4": dict(steps=16, block_length=4),
    "threshold0.9_bl4": dict(block_length=4, threshold=0.9),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", default="models/llada-addition/ckpt")
    p.add_argument("--eval", default=str(HERE / "llada_eval.jsonl"))
    p.add_argument("--pte", help="also decode with this exported .pte (ExecuTorch runtime) and compare")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--gen-length", type=int, default=16)
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N problems")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--show-errors", type=int, default=5)
    return p.parse_args()


def torch_forward(model):
    def f(tokens, input_pos=None):
        with torch.no_grad():
            return model(tokens)

    return f


def run(f, meta, problems, enc, detok, eos_ids, sampler, n_new):
    """Returns per-problem (tokens, answer_text, forwards) and the wall time."""
    t0 = time.time()
    out = []
    for p in problems:
        r = reference.generate(f, meta, enc(p["prompt"]), n_new, sampler)
        toks = r["tokens"]
        body = toks[:-1] if toks and toks[-1] in eos_ids else toks
        blocks = -(-len(toks) // 4) if r["stop_reason"] == "eos" else n_new // 4
        out.append((toks, detok(body), r["forwards"], 4 * blocks))
    return out, time.time() - t0


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    ckpt = Path(args.ckpt)
    model = load_model(ckpt)
    meta = dict(model.meta, family=model.spec.family)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    enc = lambda s: tok.encode(s).ids  # noqa: E731
    detok = lambda ids: tok.decode(ids, skip_special_tokens=False)  # noqa: E731
    eos_ids = set(meta["eos_ids"])
    problems = [json.loads(line) for line in open(args.eval)]
    if args.limit:
        problems = problems[: args.limit]
    backends = [("pytorch", torch_forward(model), meta)]
    if args.pte:
        from make_goldens import PteForward, pte_meta

        pmeta = pte_meta(args.pte)
        for k in ("family", "vocab_size", "mask_token_id", "eos_ids", "block_size", "use_kv_cache", "shift_logits", "pad_id"):
            if pmeta[k] != meta[k]:
                raise SystemExit(f".pte metadata {k}={pmeta[k]!r} differs from the checkpoint's {meta[k]!r}")
        pf = PteForward(args.pte, cached=pmeta["use_kv_cache"])
        backends.append((f"pte", pf, pmeta))
        print(f"pte {args.pte}: {pmeta}, contract v{pf.contract_version}")
    print(f"{len(problems)} problems from {args.eval}; ckpt {ckpt}; meta {meta}")
    rows = []
    for sname in args.settings.split(","):
        sampler = SETTINGS[sname]
        results = {}
        for bname, f, m in backends:
            res, wall = run(f, m, problems, enc, detok, eos_ids, sampler, args.gen_length)
            results[bname] = res
            n = len(problems)
            correct = sum(r[1] == p["answer"] for r, p in zip(res, problems))
            fw = sum(r[2] for r in res)
            ntok = sum(r[3] for r in res)
            rows.append((sname, bname, correct, n, fw / n, ntok / fw, wall))
            errors = [(p["prompt"], p["answer"], r[1]) for r, p in zip(res, problems) if r[1] != p["answer"]]
            print(f"{sname:18s} {bname:8s} exact-match {correct}/{n}  forwards/problem {fw / n:.2f}  ({wall:.1f}s)", flush=True)
            for prompt, answer, got in errors[: args.show_errors]:
                print(f"    wrong: {prompt}{answer}  got {got!r}")
        if len(results) == 2:
            a, b = results["pytorch"], results["pte"]
            diff = [i for i in range(len(problems)) if a[i][0] != b[i][0]]
            diff50 = [i for i in diff if i < 50]
            print(f"{sname}: pytorch vs pte token mismatches {len(diff)}/{len(problems)} "
                  f"(first 50 problems: {len(diff50)}) {diff[:8]}", flush=True)
    print()
    print("| setting | backend | exact match | forwards/problem | positions/forward | wall |")
    print("|---|---|---|---|---|---|")
    for sname, bname, c, n, fwp, tpf, wall in rows:
        print(f"| {sname} | {bname} | {c}/{n} = {100 * c / n:.1f} % | {fwp:.2f} | {tpf:.2f} | {wall:.0f} s |")


if __name__ == "__main__":
    main()
