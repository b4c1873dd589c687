"""Before an export starts: will it fit this machine's memory and disk?

A real-size export runs for many minutes; running out of memory ends it with the kernel's
OOM kill and no message, running out of disk ends it at the very end. Both are predictable
from the model's size, so `check_resources` refuses up front with the numbers and what to do.

The estimates are calibrated on measured exports (BENCHMARKS.md, "Real-size models"):
- peak memory: fp32 holds the whole model while it is lowered, about 5 bytes per weight
  (SDAR-1.7B: 10.8 GB for 2.03 G weights); a quantized export holds about one byte per weight,
  or the float temporaries of quantizing its output layer if that is more;
- disk: the `.pte` (4, 1 or about 0.6 bytes per weight) twice, the spilled weight payloads and
  the file they are streamed into.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional, Tuple

import torch

from .errors import ExportError

GB = 1e9
# Bytes per weight of the program, by quantization (8da4w: 4 bits + a 16-bit scale per 32).
PTE_BYTES_PER_WEIGHT = {"none": 4.0, "int8": 1.05, "8da4w": 0.6}
# Float temporaries of quantizing one Linear layer (torchao), in multiples of its fp32 size:
# SDAR-1.7B's lm_head (1.24 GB in fp32) peaks 2.6 GB above the fp32 weight itself.
QUANTIZE_TEMPORARIES = 2.1
BASE_BYTES = 1.0 * GB  # Python, torch, ExecuTorch and the traced graphs
LOWERING_BYTES = 1.0 * GB  # XNNPACK's per-partition work and the emitted constants


def estimate(model: torch.nn.Module, quantize: str) -> Tuple[float, float]:
    """(peak memory, disk needed) in bytes for exporting `model` (which may be on the meta
    device) at `quantize`."""
    weights = sum(p.numel() for p in model.parameters())
    largest = max((m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)), default=0)
    if quantize == "none":
        memory = 4.9 * weights + BASE_BYTES
    else:
        # The output layer is quantized first, before the layers are resident (models/
        # __init__.py, _unit_names); lowering then adds about a gigabyte to the quantized model.
        memory = max(4.0 * largest * (1 + QUANTIZE_TEMPORARIES), 1.05 * weights + LOWERING_BYTES) + BASE_BYTES
    return memory, 2 * PTE_BYTES_PER_WEIGHT[quantize] * weights


def _available_memory() -> Optional[float]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_resources(model: torch.nn.Module, quantize: str, out_dir: Path) -> str:
    """Refuse an export that cannot fit; returns a one-line summary of the estimate otherwise.

    Memory is compared with what the kernel reports as available (Linux; skipped elsewhere),
    disk with the free space of the output's filesystem. Set DIFFULEX_EXPORT_NO_PREFLIGHT=1 to
    skip both (for a machine whose swap or other processes the estimate cannot see).
    """
    memory, disk = estimate(model, quantize)
    summary = f"estimated peak memory {memory / GB:.1f} GB, disk {disk / GB:.1f} GB"
    if os.environ.get("DIFFULEX_EXPORT_NO_PREFLIGHT") == "1":
        return summary + " (not checked: DIFFULEX_EXPORT_NO_PREFLIGHT=1)"
    available = _available_memory()
    hint = " Quantize (--quantize int8 or 8da4w: about one byte per weight)" if quantize == "none" else ""
    if available is not None and memory > available:
        raise ExportError(
            f"this export needs about {memory / GB:.1f} GB of memory and {available / GB:.1f} GB is available.{hint}"
            f" Free memory, or set DIFFULEX_EXPORT_NO_PREFLIGHT=1 to try anyway"
        )
    free = shutil.disk_usage(out_dir).free
    if disk > free:
        raise ExportError(
            f"this export needs about {disk / GB:.1f} GB of disk in {out_dir} (the .pte and its weights on "
            f"the way) and {free / GB:.1f} GB is free. Free space or write elsewhere"
        )
    return summary
