#!/usr/bin/env python3
"""A bounded load test of `diffulex serve` with the official openai client.

    .venv/bin/python tools/serve_load.py [--requests 200] [--clients 8] [--bin target/release/diffulex]
                                         [--instances N] [-- SERVE ARGS...]

Starts the server on a free port (bundled model unless SERVE ARGS name another), sends
`--requests` chat completions of the bundled model's held-out problems from `--clients` threads
at once, checks every response (HTTP 200, an assistant message, finish_reason stop or length,
usage consistent), and prints one JSON object: errors, latency percentiles (ms), throughput.
`--instances N` starts N servers (each with `--threads` = cores / N) and spreads the clients
over them round robin: one model instance per core against one instance using every core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--bin", type=Path, default=ROOT / "target" / "release" / "diffulex")
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("serve_args", nargs="*")
    args = ap.parse_args()
    golden = json.loads((ROOT / "tests/fixtures/goldens/default_model.json").read_text())
    prompts = [p["prompt"] for p in golden["problems"]]
    import os
    threads_each = max(1, (os.cpu_count() or 1) // args.instances)
    procs, clients = [], []
    for _ in range(args.instances):
        extra = ["--threads", str(threads_each)] if args.instances > 1 else []
        proc = subprocess.Popen([str(args.bin), "serve", "--port", "0", *extra, *args.serve_args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        address = proc.stderr.readline().split("http://")[1].split("/")[0]
        procs.append(proc)
        clients.append(openai.OpenAI(base_url=f"http://{address}/v1", api_key="unused", max_retries=0,
                                     timeout=120))
    latencies, errors, lock = [], [], threading.Lock()
    next_index = iter(range(args.requests))

    def worker(client):
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            prompt = prompts[i % len(prompts)]
            start = time.perf_counter()
            try:
                r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
                ok = (r.choices[0].message.role == "assistant" and r.choices[0].finish_reason in ("stop", "length")
                      and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
                      and isinstance(r.choices[0].message.content, str))
                if not ok:
                    raise ValueError(f"malformed response {r}")
                with lock:
                    latencies.append((time.perf_counter() - start) * 1e3)
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    errors.append(f"{prompt}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(clients[k % len(clients)],)) for k in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for proc in procs:
        proc.kill()
        proc.wait()
    latencies.sort()

    def pct(q):
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None

    print(json.dumps({
        "requests": args.requests, "clients": args.clients, "instances": args.instances, "ok": len(latencies), "errors": len(errors),
        "first_errors": errors[:3], "wall_s": round(wall, 2), "requests_per_s": round(len(latencies) / wall, 1),
        "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0)},
    }, indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
