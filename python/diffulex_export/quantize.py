"""Weight quantization for XNNPACK (torchao), of a whole model or one loaded unit at a time.

`quantize_unit` is what lets `load_model(..., quantize=...)` quantize each decoder layer as soon
as its weights are read, so a quantized export never holds the whole model in fp32
(python/README.md, "Real-size checkpoints"). Both paths give the same tensors: each Linear
layer and the embedding table are quantized on their own.
"""

from __future__ import annotations

import torch

from .errors import ExportError

QUANTIZE = ("none", "int8", "8da4w")
# 4-bit weights of 8da4w: input features per scale (0: one scale per output channel). 32 is
# llama.cpp's Q4_0 block, so sizes and quality compare like for like. Larger groups quantize
# coarser and run faster on XNNPACK at 4-16 rows: one SDAR-1.7B MLP layer at 4 rows takes
# 0.51 ms at 32, 0.41-0.43 at 128, 0.37 per channel, 0.42 in int8 (tools/bench_linear_quant.py,
# BENCHMARKS.md).
DEFAULT_GROUP_SIZE = 32


def check_group_size(group_size: int) -> None:
    """A group size XNNPACK's blockwise 4-bit kernels take: 0 (per channel) or a positive
    multiple of 32."""
    if not isinstance(group_size, int) or group_size < 0 or group_size % 32:
        raise ExportError(
            f"--group-size {group_size!r}: expected 0 (one scale per output channel) or a positive multiple of 32"
        )


def check_quantizable(model: torch.nn.Module, scheme: str, group_size: int = DEFAULT_GROUP_SIZE) -> None:
    """Refuse an unknown scheme, or 8da4w groups that do not divide some layer's input size,
    before any weight is read (works on a model still on the meta device)."""
    if scheme not in QUANTIZE:
        raise ExportError(f"unknown quantization {scheme!r}; expected one of {', '.join(QUANTIZE)}")
    if scheme != "8da4w":
        return
    check_group_size(group_size)
    for name, mod in model.named_modules():
        if group_size and isinstance(mod, torch.nn.Linear) and mod.in_features % group_size:
            raise ExportError(
                f"--group-size {group_size}: 8da4w needs groups that divide every layer's input size; "
                f"{name} has {mod.in_features}. Pick a divisor (a multiple of 32), or 0 for per-channel scales"
            )


def _linear_config(scheme: str, group_size: int):
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quant_api import Int8DynamicActivationIntxWeightConfig

    if scheme == "int8":
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))
    granularity = PerGroup(group_size) if group_size else PerAxis(0)
    return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=granularity)


def quantize_unit(model: torch.nn.Module, unit: str, scheme: str, group_size: int = DEFAULT_GROUP_SIZE) -> None:
    """Quantize the part of `model` named `unit` (`embed`, `layers.3`, `lm_head`, ...) in place.

    The embedding table (`embed`) is stored in 8 (int8) or 4 (8da4w, groups of 32) bits and read
    by ExecuTorch's quantized embedding kernels (`quant_embedding.py`); the Linear layers get
    8-bit dynamic per-token activations and 8-bit per-channel (int8) or 4-bit grouped (8da4w)
    weights; norms stay float.
    """
    if scheme == "none":
        return
    if unit == "embed":
        # At a 150k vocabulary the embedding is the largest single tensor, so it is quantized
        # in as many bits as the weights (docs/pte-contract.md, "Quantization and dtypes").
        from .quant_embedding import quantize_embedding

        quantize_embedding(model, 8 if scheme == "int8" else 4)
        return
    from torchao.quantization import quantize_

    # Through the root, so that a unit which is itself a Linear (lm_head) is replaced in place.
    prefix = unit + "."
    quantize_(
        model,
        _linear_config(scheme, group_size),
        filter_fn=lambda m, fqn: isinstance(m, torch.nn.Linear) and (fqn == unit or fqn.startswith(prefix)),
    )


def quantize_model(model: torch.nn.Module, scheme: str, group_size: int = DEFAULT_GROUP_SIZE) -> None:
    """Quantize the Linear layers and the embedding of a loaded model in place with torchao
    (XNNPACK-lowerable schemes), as `quantize_unit` does part by part.

    int8:  8-bit dynamic per-token activations, 8-bit per-channel weights.
    8da4w: 8-bit dynamic per-token activations, 4-bit weights in groups of `group_size`
           input features (a multiple of 32 that divides every in_features), or 0 for one
           scale per output channel. See DEFAULT_GROUP_SIZE for the trade-off.
    """
    check_quantizable(model, scheme, group_size)
    if getattr(model, "quantization", "none") != "none":
        raise ExportError(f"the model is already quantized ({model.quantization})")
    if scheme == "none":
        return
    from torchao.quantization import quantize_

    quantize_(model, _linear_config(scheme, group_size), filter_fn=lambda m, _fqn: isinstance(m, torch.nn.Linear))
    quantize_unit(model, "embed", scheme, group_size)
    model.quantization = scheme
