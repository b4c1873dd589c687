#!/usr/bin/env python3
"""Where a decode forward's time goes, operator by operator (ExecuTorch's ETDump profiler).

    .venv/bin/python tools/profile_pte.py MODEL.pte [--prompt-len 128] [--tokens 4]
                                                    [--forwards 4] [--top 25] [--json OUT]

Runs MODEL.pte on ExecuTorch's Python runtime (the 1.5.1 wheel: the same kernels and XNNPACK
delegate as the Rust runtime's prebuilt default; the LLM custom operators are loaded too, so
`--llm-ops` programs run) with event tracing on. One prefill of `--prompt-len` tokens at
position 0, then `--forwards` forwards of `--tokens` tokens at the following positions, as a
block-diffusion decode does (uncached programs get the whole growing sequence instead). The
table is the mean over the decode forwards only:

- every operator outside a delegate (portable/optimized/quantized/custom kernels), by name;
- every delegate call, and inside them XNNPACK's own operators by kind (`Fully Connected
  (NC, QD8, F32, QC4W) GEMM`, ...), so "the linear layers" and "everything else" separate.

Times are wall milliseconds from the runtime's own timestamps; the sum of top-level events is
printed next to the measured forward time, so what the tracer misses shows up as a gap.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch


def _load(path: Path):
    import executorch.kernels.quantized  # noqa: F401  (quantized embedding / linear kernels)
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    try:
        from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401  (--llm-ops programs)
    except Exception as e:  # the program may not need them
        print(f"note: LLM custom operators not loaded: {e}", file=sys.stderr)
    return _load_for_executorch(str(path), enable_etdump=True)


def _scalar(module, name: str, default):
    try:
        return module.run_method(name, ())[0]
    except Exception:
        return default


def _inputs(module, cached: bool, tokens: torch.Tensor, pos: int):
    """Inputs of the forward contract (docs/pte-contract.md) for `tokens` at `pos`."""
    n = module.method_meta("forward").num_inputs()
    t = tokens.shape[1]
    args = [tokens]
    if cached:
        args.append(torch.tensor([pos]))
    if len(args) < n:
        # rows: every row (what the engine asks of a decode step), at most the program's bound
        # (--max-logits-rows); a longer prefill gets its last rows.
        bound = module.method_meta("forward").input_tensor_meta(len(args)).sizes()[0]
        args.append(torch.arange(max(0, t - bound), t))
    if len(args) < n:
        args.append(torch.tensor([pos + t]))  # kv_end (contract 3)
    return tuple(args)


def _kind(name: str) -> str:
    """`Fully Connected (NC, F32) GEMM #12` -> `Fully Connected (NC, F32) GEMM`."""
    return re.sub(r"\s*#\d+$", "", name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--tokens", type=int, default=4, help="tokens per decode forward (the block size)")
    p.add_argument("--forwards", type=int, default=4, help="decode forwards to average over")
    p.add_argument("--top", type=int, default=25, help="rows of the table")
    p.add_argument("--json", type=Path, help="also write the table as JSON")
    args = p.parse_args()
    for name in ("prompt_len", "tokens", "forwards"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.model.is_file():
        p.error(f"{args.model}: no such file")

    module = _load(args.model)
    cached = bool(_scalar(module, "use_kv_cache", False))
    vocab = int(_scalar(module, "get_vocab_size", 1000))
    max_len = int(_scalar(module, "get_max_seq_len", 0))
    need = args.prompt_len + args.tokens * args.forwards
    if max_len and need > max_len:
        p.error(f"prompt {args.prompt_len} + {args.forwards} x {args.tokens} tokens = {need} > max_seq_len {max_len}")
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(0, vocab, (1, need), generator=g)
    wall = []
    for i in range(args.forwards + 1):
        if i == 0:
            start, end = 0, args.prompt_len
        else:
            start = args.prompt_len + (i - 1) * args.tokens
            end = start + args.tokens
        tokens = seq[:, start:end] if cached else seq[:, :end]
        inputs = _inputs(module, cached, tokens, start if cached else 0)
        t0 = time.perf_counter()
        module.run_method("forward", inputs)
        wall.append((time.perf_counter() - t0) * 1e3)

    from executorch.devtools import Inspector

    with tempfile.TemporaryDirectory() as tmp:
        etdump = Path(tmp) / "profile.etdp"
        module.write_etdump_result_to_file(str(etdump))
        inspector = Inspector(etdump_path=str(etdump))
    # One block per executed method; the metadata methods run above are tiny: forward's is the
    # one with the most events.
    block = max(inspector.event_blocks, key=lambda b: len(b.events))
    decode = slice(1, args.forwards + 1)
    top_level = defaultdict(float)  # operator / delegate call -> ms per forward
    calls = defaultdict(int)
    inside = defaultdict(float)  # XNNPACK operator kind -> ms per forward
    for event in block.events:
        if event.perf_data is None:
            continue
        raw = event.perf_data.raw
        if len(raw) < args.forwards + 1:
            continue  # an event of the prefill only
        ms = sum(raw[decode]) / args.forwards
        name = event.name
        if name in ("OPERATOR_CALL", "Method::execute"):
            continue  # wrappers: of the native_call_* event next to it, of the whole forward
        if name.startswith("native_call_"):
            key = name.removeprefix("native_call_")
            top_level[key] += ms
            calls[key] += 1
        elif "::" in name:
            # A custom operator (llama::custom_sdpa.out, ...): named without the prefix.
            top_level[name] += ms
            calls[name] += 1
        elif name == "DELEGATE_CALL":
            top_level["(delegate calls)"] += ms
            calls["(delegate calls)"] += 1
        else:
            inside[_kind(name)] += ms
    measured = sum(wall[decode]) / args.forwards
    traced = sum(top_level.values())
    rows = sorted(top_level.items(), key=lambda kv: -kv[1])
    print(f"{args.model.name}: {'cached' if cached else 'uncached'}, prefill {args.prompt_len} tokens "
          f"({wall[0]:.1f} ms), then {args.forwards} forwards of {args.tokens} tokens")
    print(f"decode forward: {measured:.2f} ms measured, {traced:.2f} ms in traced top-level events")
    print(f"\n{'top-level event':48} {'calls':>6} {'ms/forward':>11} {'share':>7}")
    for name, ms in rows[: args.top]:
        print(f"{name:48} {calls[name]:6d} {ms:11.3f} {ms / measured:7.1%}")
    print(f"\n{'inside the delegates (XNNPACK operator kind)':48} {'':6} {'ms/forward':>11} {'share':>7}")
    for name, ms in sorted(inside.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{name:48} {'':6} {ms:11.3f} {ms / measured:7.1%}")
    if args.json:
        args.json.write_text(json.dumps({
            "model": str(args.model), "prompt_len": args.prompt_len, "tokens": args.tokens,
            "forwards": args.forwards, "prefill_ms": wall[0], "decode_forward_ms": measured,
            "traced_ms": traced, "top_level": dict(rows), "calls": dict(calls),
            "inside_delegates": dict(sorted(inside.items(), key=lambda kv: -kv[1])),
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
