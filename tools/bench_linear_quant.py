#!/usr/bin/env python3
"""One Linear layer of SDAR-1.7B's MLP through XNNPACK, per weight format and token count.

    .venv/bin/python tools/bench_linear_quant.py [--threads 2] [--reps 30]

Answers whether a decode forward's cost at 4-bit comes from XNNPACK's 4-bit kernels or from
our export (BENCHMARKS.md, "Real-size models"): the same 2048 -> 6144 and 6144 -> 2048 layers,
exported alone with the quantization configs of `diffulex_export.export.quantize_model`
(int8 per channel; 4-bit in groups of 32, our 8da4w) and with other 4-bit group sizes, run by
ExecuTorch's Python runtime (the same XNNPACK as the Rust runtime's wheel) at M = 1, 4, 8 and
16 rows. Prints the median time per call and the weight bytes streamed per second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

SHAPES = ((2048, 6144), (6144, 2048))  # SDAR-1.7B (Qwen3-1.7B): hidden 2048, intermediate 6144
ROWS = (1, 4, 8, 16)


def _config(scheme: str):
    import torch
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quant_api import Int8DynamicActivationIntxWeightConfig

    if scheme == "int8":
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))
    if scheme == "int4-channel":
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerAxis(0))
    group = int(scheme.removeprefix("int4-g"))
    return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(group))


def _weight_bytes(scheme: str, n_in: int, n_out: int) -> float:
    if scheme == "fp32":
        return 4.0 * n_in * n_out
    if scheme == "int8":
        return n_in * n_out + 4.0 * n_out
    if scheme == "int4-channel":
        return n_in * n_out / 2 + 4.0 * n_out
    group = int(scheme.removeprefix("int4-g"))
    return n_in * n_out / 2 + 4.0 * n_out * n_in / group


def _export(scheme: str, n_in: int, n_out: int, path: Path) -> None:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torch.export import Dim, export

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(n_in, n_out, bias=False)).eval()
    if scheme != "fp32":
        from torchao.quantization import quantize_

        quantize_(model, _config(scheme))
    x = torch.randn(4, n_in)
    with torch.no_grad():
        ep = export(model, (x,), dynamic_shapes=({0: Dim("m", min=1, max=64)},), strict=False)
        program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(program.buffer)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--schemes", nargs="*", default=["fp32", "int8", "int4-channel", "int4-g256", "int4-g128",
                                                        "int4-g32"])
    args = ap.parse_args()
    import torch

    from diffulex_export.export import runtime

    torch.set_num_threads(args.threads)
    rt = runtime()
    try:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(args.threads)
    except (ImportError, AttributeError):
        print("(could not set ExecuTorch's thread count; it uses its default)")
    print(f"threads {args.threads}; median of {args.reps} calls; GB/s = weight bytes / time")
    print(f"{'layer':>12} {'format':>13} " + " ".join(f"{'M=' + str(m):>17}" for m in ROWS))
    with tempfile.TemporaryDirectory() as tmp:
        for n_in, n_out in SHAPES:
            for scheme in args.schemes:
                path = Path(tmp) / f"{scheme}_{n_in}x{n_out}.pte"
                _export(scheme, n_in, n_out, path)
                method = rt.load_program(str(path)).load_method("forward")
                cells = []
                for m in ROWS:
                    x = torch.randn(m, n_in)
                    for _ in range(3):
                        method.execute([x])
                    times = []
                    for _ in range(args.reps):
                        t = time.perf_counter()
                        method.execute([x])
                        times.append(time.perf_counter() - t)
                    med = statistics.median(times)
                    gbs = _weight_bytes(scheme, n_in, n_out) / med / 1e9
                    cells.append(f"{med * 1e3:7.3f} ms {gbs:5.1f}")
                print(f"{f'{n_in}x{n_out}':>12} {scheme:>13} " + " ".join(f"{c:>17}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
