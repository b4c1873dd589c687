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
