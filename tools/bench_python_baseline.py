#!/usr/bin/env python3
"""Rust engine vs the Python decoding loop on the same .pte, same prompt, same tokens.

    .venv/bin/python tools/bench_python_baseline.py --model M.pte [--prompt-len 16]
        [--gen-len 16] [--runs 1] [--diffulex target/release/diffulex] [-- extra bench flags]

Runs `diffulex bench --json` (its random prompt is printed in the JSON), then decodes that
prompt with the toolkit's reference decoder (`diffulex_export.reference`, the float64
operation-by-operation twin of the Rust engine) over ExecuTorch's Python runtime
(`PteForward` of tools/make_goldens.py), with the same family defaults, greedy, no early stop.
Prints both timings, the ratios, and whether the tokens are identical. Only the family default
sampler settings are mirrored, so pass no decoding flags to compare like with like.
A contract v2 ("logits rows") program is asked only for the rows the decoders read
(`NeededRows`), like the engine does, so its lm_head savings show in both timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tools"))

from diffulex_export import reference  # noqa: E402
from make_goldens import PteForward, pte_meta  # noqa: E402


def needed_rows(tokens, mask_id: int, shift: bool):
    """The logits rows a reference decoder reads from one forward over `tokens` [1, T].

    Masked positions p need row p (row p - 1 when logits are shifted; row 0 for p = 0),
    and the last row is always included: the shifted families predict the token after the
    block / prompt from it, and a forward with no masked position (prefill, KV commit)
    still needs R >= 1.

    Example:
        >>> needed_rows(torch.tensor([[5, 3, 3, 7]]), mask_id=3, shift=True).tolist()
        [0, 1, 3]
    """
    import torch

    t = tokens.shape[1]
    masked = (tokens[0] == mask_id).nonzero().flatten()
    if shift:
        masked = (masked - 1).clamp(min=0)
    return torch.unique(torch.cat([masked, torch.tensor([t - 1])])).to(torch.long)


class NeededRows:
    """A v2 PteForward asked for `needed_rows` only; the rows not computed are NaN.

    The result keeps the v1 shape [1, T, V] that the reference decoders index. A decoder
    reading a NaN row would change the tokens, which `same_tokens` reports.
    """

    def __init__(self, inner, meta):
        self.inner = inner
        self.mask_id = int(meta["mask_token_id"])
        self.shift = bool(meta["shift_logits"])

    def __call__(self, tokens, input_pos=None):
        import torch

        rows = needed_rows(tokens, self.mask_id, self.shift)
        got = self.inner(tokens, input_pos, rows=rows)
        out = torch.full((1, tokens.shape[1], got.shape[2]), float("nan"), dtype=got.dtype)
        out[0, rows] = got[0]
        return out


class TimedForward:
    """PteForward that books the time spent in `execute`, like the engine's execute_time."""

    def __init__(self, inner):
        self.inner = inner
        self.execute_s = 0.0

    def __call__(self, tokens, input_pos=None):
        t0 = time.perf_counter()
        out = self.inner(tokens, input_pos)
        self.execute_s += time.perf_counter() - t0
        return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--gen-len", type=int, default=16)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--no-kv-cache", action="store_true")
    p.add_argument("--diffulex", default=str(ROOT / "target/release/diffulex"))
    args = p.parse_args()

    cmd = [args.diffulex, "bench", "--model", args.model, "--prompt-len", str(args.prompt_len),
           "--gen-len", str(args.gen_len), "--runs", str(args.runs), "--json"]
    if args.no_kv_cache:
        cmd.append("--no-kv-cache")
    rust = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    prompt = rust["prompt_tokens"]

    meta = pte_meta(args.model)
    t0 = time.perf_counter()
    inner = PteForward(args.model, meta["use_kv_cache"])
    load_s = time.perf_counter() - t0
    if inner.contract_version >= 2:
        inner = NeededRows(inner, meta)
    # Warm-up forward: pays the method load (XNNPACK packing) like the Rust bench's warm-up.
    import torch

    inner(torch.tensor([prompt[:1]], dtype=torch.long), torch.zeros(1, dtype=torch.long))
    totals = []
    out = None
    for _ in range(args.runs):
        f = TimedForward(inner)
        t0 = time.perf_counter()
        out = reference.generate(f, meta, prompt, args.gen_len, sampler=None, seed=0, stop_ids=[],
                                 use_kv_cache=not args.no_kv_cache and meta["use_kv_cache"])
        totals.append((time.perf_counter() - t0, f.execute_s))
    totals.sort()
    py_total, py_exec = totals[len(totals) // 2]
    rs_total = rust["median"]["total_ms"] / 1e3
    rs_exec = rust["median"]["execute_ms"] / 1e3
    report = {
        "model": args.model,
        "prompt_len": args.prompt_len,
        "gen_len": args.gen_len,
        "same_tokens": out["tokens"] == rust["tokens"],
        "rust": {"total_s": rs_total, "execute_s": rs_exec, "engine_s": rs_total - rs_exec,
                 "load_ms": rust["load_ms"], "tokens_per_s": args.gen_len / rs_total},
        "python": {"total_s": py_total, "execute_s": py_exec, "engine_s": py_total - py_exec,
                   "load_ms": load_s * 1e3, "tokens_per_s": args.gen_len / py_total,
                   "forwards": out["forwards"]},
        "speedup_total": py_total / rs_total,
        "speedup_outside_execute": (py_total - py_exec) / max(rs_total - rs_exec, 1e-9),
    }
    print(json.dumps(report, indent=2))
    return 0 if report["same_tokens"] else 1


if __name__ == "__main__":
    sys.exit(main())
