#!/usr/bin/env python3
"""The real-size table of BENCHMARKS.md (issue 16), from nothing: checkpoints, exports, benches.

    .venv/bin/python tools/real_size.py --work DIR [--models NAME ...] [--quantize 8da4w int8 none]
        [--binary target/release/diffulex] [--max-seq-len 1024] [--no-bench]

For each model (names of tools/make_real_shape_ckpt.py; default the three the issue names):
1. writes its random-weight checkpoint in the published layout into DIR/ckpt/NAME, unless there;
2. exports it at each `--quantize` with `diffulex-export export --kv-cache --max-seq-len N`
   under `/usr/bin/time`, unless DIR/NAME-QUANT.pte exists, and records the export's time, its
   peak RSS and the file size in DIR/exports.json (a failed export is recorded with its error);
3. benches every .pte with tools/bench_table.py at 2 threads, prompt 256: SDAR at 1, 2 and 4
   tokens per forward (`low_confidence_static`, steps 4, 2, 1 per block of 4), Fast-dLLM v2 at
   1, 2, 4 and 8 tokens per forward (`--threshold 1 --min-tokens-per-step N`: it has no step
   count), without and with its sub-block cache; and each at one token per forward
   (`--autoregressive`), the cost of an autoregressive decoder of the same network.
Prints the export table, then bench_table.py's two tables. Nothing here is committed: DIR holds
gigabytes (a 1.7B checkpoint is 3.4 GB, its fp32 .pte 8 GB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DEFAULT_MODELS = ["sdar-1.7b-chat", "fast-dllm-v2-1.5b", "sdar-4b-chat"]
# SDAR's steps per block of 4: 1, 2 and 4 tokens per forward.
STEPS = ["4", "2", "1"]
# Fast-dLLM v2 has no step count: a quota of N tokens per forward at threshold 1 (no
# probability exceeds it), up to the whole sub-block of 8.
QUOTAS = ["1", "2", "4", "8"]


def ensure_checkpoint(name: str, ckpt: Path) -> None:
    if (ckpt / "model.safetensors.index.json").is_file():
        return
    shards = "4" if "8b" in name or "4b" in name else "2"
    subprocess.run([PYTHON, str(ROOT / "tools" / "make_real_shape_ckpt.py"), name, str(ckpt), "--shards", shards],
                   check=True)


def export(ckpt: Path, quant: str, out: Path, max_seq_len: int) -> dict:
    """Runs one export under /usr/bin/time; returns its record."""
    log = out.with_suffix(".export.log")
    cmd = ["/usr/bin/time", "-f", "%e s %M KB", PYTHON, "-m", "diffulex_export", "export", "--checkpoint", str(ckpt),
           "--max-seq-len", str(max_seq_len), "--kv-cache", "--quantize", quant, "--skip-tokenizer", "-o", str(out)]
    started = time.monotonic()
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    lines = log.read_text().splitlines()
    record = {"checkpoint": str(ckpt), "quantize": quant, "pte": str(out), "log": str(log),
              "wall_s": round(time.monotonic() - started, 1), "ok": proc.returncode == 0}
    timed = [x for x in lines if x.endswith(" KB") and " s " in x]
    if timed:
        seconds, _, kb, _ = timed[-1].split()
        record["peak_rss_gib"] = round(int(kb) / 2**20, 2)
    if proc.returncode == 0:
        record["bytes"] = out.stat().st_size
    else:
        record["error"] = next((x for x in reversed(lines) if x.startswith("error")), lines[-1] if lines else "")
    return record


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--quantize", nargs="+", default=["8da4w", "int8"])
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "diffulex"))
    p.add_argument("--max-seq-len", type=int, default=1024)
    p.add_argument("--no-bench", action="store_true")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    records_path = a.work / "exports.json"
    records = json.loads(records_path.read_text()) if records_path.is_file() else {}
    cases = []
    for name in a.models:
        ckpt = a.work / "ckpt" / name
        ensure_checkpoint(name, ckpt)
        for quant in a.quantize:
            out = a.work / f"{name}-{quant}.pte"
            if not out.is_file():
                print(f"exporting {out.name} ...", file=sys.stderr, flush=True)
                record = export(ckpt, quant, out, a.max_seq_len)
                # Re-read before writing: invocations for different models may run side by side
                # (an export is mostly one core) and each must keep the others' records.
                records = json.loads(records_path.read_text()) if records_path.is_file() else {}
                records[out.name] = record
                records_path.write_text(json.dumps(records, indent=2) + "\n")
            if out.is_file():
                cases.append((name, quant, out))
    print("| .pte | export time | peak export RSS GiB | size MiB | result |")
    print("|---|---|---|---|---|")
    for key, r in records.items():
        size = f"{r['bytes'] / 2**20:.0f}" if "bytes" in r else "-"
        print(f"| {key} | {r['wall_s']:.0f} s | {r.get('peak_rss_gib', '-')} | {size} | "
              f"{'ok' if r['ok'] else r['error']} |")
    if a.no_bench or not cases:
        return 0
    print()
    for name, quant, out in cases:
        schedule = ["--steps", *STEPS] if name.startswith("sdar") else ["--quota", *QUOTAS, "--sub-block-cache"]
        # The autoregressive baseline: one token per forward of the same program.
        subprocess.run([PYTHON, str(ROOT / "tools" / "bench_table.py"), *schedule, "--prompt-len", "256",
                        "--gen-len", "64", "--runs", "1", "--threads", "2",
                        "--case", f"{name} {quant}", a.binary, str(out),
                        "--ar-case", f"{name} {quant}, autoregressive", a.binary, str(out),
                        "--json", str(out.with_suffix(".bench.json"))], check=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
