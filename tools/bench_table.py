#!/usr/bin/env python3
"""One Markdown table of `diffulex bench` runs: several models (and binaries) x tokens per forward.

    python3 tools/bench_table.py --case LABEL BINARY MODEL [--case ...] [--ar-case LABEL BINARY MODEL]
        [--steps 4 2 1 | --threshold 0.9 0 | --quota 1 2 4 8 [--sub-block-cache]]
        [--prompt-len 256] [--gen-len 64] [--runs 1] [--threads 2] [--json OUT]

For each case and each `--steps S` value, runs

    BINARY bench --model MODEL --prompt-len P --gen-len G --runs R --threads N
                 --strategy low_confidence_static --steps S --json

(SDAR: S steps per block of B tokens commit B/S tokens per forward; Fast-dLLM v2 and the
bidirectional families ignore `--strategy`, give `--steps` to taste) and prints one row per run:
tokens per forward, prefill and decode tokens/s, milliseconds per decode forward, method load
(XNNPACK packing) and peak RSS; then one row per case with the load time, the method load time
and the memory after each. Random weights never make a confidence threshold fire, so a
fixed quota per step is what shows the cost of committing several tokens per forward.
Fast-dLLM v2 has no step count: `--quota N` runs it at `--threshold 1 --min-tokens-per-step N`
(exactly N tokens per forward, as no probability exceeds 1), and `--sub-block-cache` runs each
`--case` a second time with its sub-block cache (`diffulex bench --sub-block-cache`).
Cases run one after the other, in the order given: put the ones to compare next to each other.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(binary: str, model: str, steps: int, a: argparse.Namespace, extra: list) -> dict:
    """One `diffulex bench --json` run; steps -1 decodes autoregressively (`--autoregressive`)."""
    cmd = [
        binary, "bench", "--model", model, "--prompt-len", str(a.prompt_len), "--gen-len", str(a.gen_len),
        "--runs", str(a.runs), "--threads", str(a.threads), "--json", *extra,
    ]
    if steps < 0:
        cmd.append("--autoregressive")
    elif a.quota is not None:
        # Fast-dLLM v2 at exactly `steps` tokens per forward.
        cmd += ["--threshold", "1", "--min-tokens-per-step", str(steps)]
    elif a.threshold is not None:
        # Families without a step count (Fast-dLLM v2): `steps` is a threshold in thousandths.
        cmd += ["--threshold", str(steps / 1000)]
    elif steps:
        cmd += ["--strategy", "low_confidence_static", "--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", nargs=3, action="append", metavar=("LABEL", "BINARY", "MODEL"), default=[])
    p.add_argument("--ar-case", nargs=3, action="append", metavar=("LABEL", "BINARY", "MODEL"), default=[],
                   help="a case decoded autoregressively (`diffulex bench --autoregressive`: one token per "
                        "forward), the baseline of the dLLM's parallel commits")
    p.add_argument("--steps", type=int, nargs="+", default=[0],
                   help="values of --steps (0: the model's default schedule)")
    p.add_argument("--threshold", type=float, nargs="+",
                   help="confidence thresholds instead of --steps (Fast-dLLM v2: 0.9 commits one token per "
                        "forward on random weights, 0 a whole sub-block)")
    p.add_argument("--quota", type=int, nargs="+",
                   help="Fast-dLLM v2: tokens per forward instead of --steps (--threshold 1 "
                        "--min-tokens-per-step N)")
    p.add_argument("--sub-block-cache", action="store_true",
                   help="run each --case again with Fast-dLLM v2's sub-block cache")
    p.add_argument("--prompt-len", type=int, default=256)
    p.add_argument("--gen-len", type=int, default=64)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write every run's JSON here")
    a = p.parse_args()
    if not a.case and not a.ar_case:
        p.error("give at least one --case or --ar-case")
    if a.quota is not None and a.threshold is not None:
        p.error("--quota and --threshold are two schedules: give one")
    if a.quota is not None:
        schedule = a.quota
    elif a.threshold is not None:
        schedule = [round(t * 1000) for t in a.threshold]
    else:
        schedule = a.steps
    cases = [(label, binary, model, schedule, []) for label, binary, model in a.case]
    if a.sub_block_cache:
        cases += [(f"{label} + sub-block cache", binary, model, schedule, ["--sub-block-cache"])
                  for label, binary, model in a.case]
    cases += [(label, binary, model, [-1], []) for label, binary, model in a.ar_case]
    for label, binary, model, _, _ in cases:
        if not Path(model).is_file():
            p.error(f"case {label}: {model}: no such file")
    print("| case | steps | tokens per forward | prefill tok/s | decode tok/s | ms per decode forward "
          "| method load ms | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    records = []
    for label, binary, model, case_steps, extra in cases:
        for steps in case_steps:
            r = run(binary, model, steps, a, extra)
            m = r["median"]
            per_run = r["per_run"]
            forwards = sorted(x["decode_forwards"] for x in per_run)[len(per_run) // 2]
            decode_ms = sorted(x["decode_ms"] for x in per_run)[len(per_run) // 2]
            ms_per_forward = decode_ms / forwards if forwards else float("nan")
            if steps < 0:
                shown = "AR"
            elif a.quota is not None:
                shown = f"{steps} per forward"
            elif a.threshold is not None:
                shown = f"threshold {steps / 1000:g}"
            else:
                shown = steps or "default"
            print(f"| {label} | {shown} | {m['tokens_per_forward']:.2f} | "
                  f"{m['prefill_tokens_per_s']:.1f} | {m['decode_tokens_per_s']:.2f} | {ms_per_forward:.1f} | "
                  f"{r['method_load_ms']:.0f} | {r['memory']['peak_rss'] / 2**20:.0f} |", flush=True)
            records.append({"case": label, "binary": binary, "steps": steps, "args": extra, **r})
    # Load and memory do not depend on the schedule: one row per case, from its first run.
    print()
    print("| case | file MiB | load ms | method load ms | RSS after load MiB | RSS after method load MiB "
          "| private after method load MiB | anonymous after method load MiB | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, _binary, model, _, _ in cases:
        r = next(x for x in records if x["case"] == label)
        mem = r["memory"]
        print(f"| {label} | {Path(model).stat().st_size / 2**20:.0f} | {r['load_ms']:.0f} | {r['method_load_ms']:.0f} | "
              f"{mem['after_load']['rss'] / 2**20:.0f} | {mem['after_method_load']['rss'] / 2**20:.0f} | "
              f"{mem['after_method_load']['private'] / 2**20:.0f} | {mem['after_method_load']['anonymous'] / 2**20:.0f} | "
              f"{mem['peak_rss'] / 2**20:.0f} |")
    if a.json:
        a.json.write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
