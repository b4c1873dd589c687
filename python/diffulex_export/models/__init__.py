"""Compact PyTorch models of the four diffusion-LM families, loaded from HF-layout checkpoints.

Example:
    >>> from diffulex_export.models import load_model
    >>> m = load_model("tests/fixtures/ckpt/sdar", max_seq_len=256, kv_cache=True)  # doctest: +SKIP
    >>> m.meta["block_size"]  # doctest: +SKIP
    4
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Optional, Union

import torch

from ..checkpoint import WeightStore, load_config, resolve_family
from ..errors import ExportError
from ..quantize import DEFAULT_GROUP_SIZE, check_quantizable, quantize_unit
from . import dream, fast_dllm_v2, llada, sdar
from .base import (
    BIDIRECTIONAL,
    CONTRACT_VERSION,
    CONTRACT_VERSION_ROWS,
    FAMILY_IDS,
    DiffusionLM,
    ModelSpec,
    resolve_max_logits_rows,
)

FAMILY_MODULES: Dict[str, ModuleType] = {
    "sdar": sdar,
    "fast_dllm_v2": fast_dllm_v2,
    "llada": llada,
    "dream": dream,
}

__all__ = [
    "BIDIRECTIONAL",
    "CONTRACT_VERSION",
    "CONTRACT_VERSION_ROWS",
    "FAMILY_IDS",
    "DiffusionLM",
    "ModelSpec",
    "load_model",
    "load_spec",
    "model_shape",
]

DEFAULT_MAX_SEQ_LEN = 2048


def load_spec(ckpt_dir: Union[str, Path], family: Optional[str] = None) -> ModelSpec:
    """Parse a checkpoint's config (and tokenizer/generation config) into a ModelSpec.

    Example:
        >>> load_spec("tests/fixtures/ckpt/llada").family  # doctest: +SKIP
        'llada'
    """
    ckpt_dir = Path(ckpt_dir)
    config = load_config(ckpt_dir)
    family = resolve_family(config, family, ckpt_dir)
    spec = FAMILY_MODULES[family].spec_from_config(config, ckpt_dir)
    for name, value in (("mask token", spec.mask_token_id), ("pad", spec.pad_id)):
        if not 0 <= value < spec.vocab_size:
            raise ExportError(f"{ckpt_dir}: {name} id {value} is outside the vocabulary (size {spec.vocab_size})")
    for value in spec.eos_ids:
        if not 0 <= value < spec.vocab_size:
            raise ExportError(f"{ckpt_dir}: eos id {value} is outside the vocabulary (size {spec.vocab_size})")
        if value == spec.mask_token_id:
            raise ExportError(f"{ckpt_dir}: eos id {value} is the mask token id {spec.mask_token_id}")
    if spec.pad_id == spec.mask_token_id:
        raise ExportError(f"{ckpt_dir}: pad id {spec.pad_id} is the mask token id {spec.mask_token_id}")
    return spec


def _unit_names(model: DiffusionLM) -> List[str]:
    """The parts weights are loaded (and quantized) by: the model's other children (embedding,
    final norm, output layer) first, then each decoder layer on its own. The two vocabulary-
    sized tables go first because quantizing one needs a few times its fp32 size in
    temporaries: done while the quantized layers are not yet resident, that peak does not add
    to theirs. Names, not modules: quantizing the embedding replaces its module, and a list
    holding the old one would keep its fp32 table alive."""
    tables, layers = [], []
    for name, child in model.named_children():
        if isinstance(child, torch.nn.ModuleList):
            layers.extend(f"{name}.{i}" for i in range(len(child)))
        else:
            tables.append(name)
    return tables + layers


def _load_weights(
    model: DiffusionLM,
    store: WeightStore,
    family: str,
    loaded: Optional[Callable[[str], None]] = None,
) -> None:
    """Copy every weight from the checkpoint, unit by unit; `loaded(unit)` runs after each unit
    is complete (the streamed quantization: the unit's fp32 weights are then dropped before the
    next one is read)."""
    name_of = FAMILY_MODULES[family].checkpoint_name
    spec = model.spec
    embed_name = name_of("embed.weight")
    missing: List[str] = []
    with torch.no_grad():
        for unit_name in _unit_names(model):
            unit = model.get_submodule(unit_name)
            for key, target in unit.state_dict(prefix=unit_name + ".").items():
                if ".cache." in key:
                    continue
                name = name_of(key)
                if key == "lm_head.weight" and not store.has(name):
                    if spec.tie_embeddings:
                        name = embed_name
                if not store.has(name):
                    missing.append(name)
                    continue
                tensor = store.get(name)
                if tuple(tensor.shape) != tuple(target.shape):
                    raise ExportError(
                        f"{store.ckpt_dir}: weight {name} has shape {tuple(tensor.shape)}, "
                        f"the config implies {tuple(target.shape)}"
                    )
                # copy_ converts the dtype on the way (bf16 -> fp32) without a converted copy.
                target.copy_(tensor)
                del tensor, target
            del unit
            if loaded is not None and not missing:
                loaded(unit_name)
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ExportError(f"{store.ckpt_dir}: missing weights ({len(missing)}): {shown}")


def model_shape(ckpt_dir: Union[str, Path], family: Optional[str] = None) -> DiffusionLM:
    """The checkpoint's module on the meta device: its layers and parameter shapes without any
    weight data (for estimates before a load).

    Example:
        >>> sum(p.numel() for p in model_shape("tests/fixtures/ckpt/sdar").parameters()) > 0  # doctest: +SKIP
        True
    """
    spec = load_spec(ckpt_dir, family)
    with torch.device("meta"):
        return DiffusionLM(spec, max_seq_len=1, kv_cache=False)


def load_model(
    ckpt_dir: Union[str, Path],
    family: Optional[str] = None,
    max_seq_len: Optional[int] = None,
    kv_cache: Optional[bool] = None,
    dtype: torch.dtype = torch.float32,
    logits_rows: bool = False,
    quantize: str = "none",
    group_size: int = DEFAULT_GROUP_SIZE,
    max_logits_rows: Optional[int] = None,
) -> DiffusionLM:
    """Build the family's module from config.json + *.safetensors, in eval mode.

    With `quantize` ("int8", "8da4w"; see `quantize.quantize_model`) each decoder layer is
    quantized as soon as it is read, so the whole model is never held in fp32; the result is
    the same as quantizing the loaded model, and `model.quantization` records the scheme.

    max_seq_len defaults to min(max_position_embeddings, 2048); kv_cache defaults to
    True for the block-causal families (sdar, fast_dllm_v2) and False otherwise.
    A cached llada/dream model is the contract-v3 module for Fast-dLLM's prefix and dual
    caches (forward takes `kv_end` last); it needs logits_rows=True.
    logits_rows=True builds the contract-v2 module: forward takes `rows` last and
    returns only those rows of the logits (see docs/pte-contract.md), at most
    `max_logits_rows` of them (default min(max_seq_len, 256); the exported program plans
    memory for that many rows of logits).

    Example:
        >>> m = load_model("tests/fixtures/ckpt/dream", max_seq_len=256)  # doctest: +SKIP
        >>> m.meta["shift_logits"], m.meta["use_kv_cache"]  # doctest: +SKIP
        (True, False)
        >>> load_model("tests/fixtures/ckpt/dream", logits_rows=True).meta["contract_version"]  # doctest: +SKIP
        2
    """
    ckpt_dir = Path(ckpt_dir)
    spec = load_spec(ckpt_dir, family)
    if max_seq_len is None:
        max_seq_len = min(spec.max_position_embeddings, DEFAULT_MAX_SEQ_LEN)
    if max_seq_len < 1:
        raise ExportError(f"max_seq_len must be at least 1, got {max_seq_len}")
    if max_seq_len > spec.max_position_embeddings:
        raise ExportError(
            f"max_seq_len {max_seq_len} exceeds the checkpoint's max_position_embeddings "
            f"{spec.max_position_embeddings}"
        )
    if kv_cache is None:
        kv_cache = spec.family not in BIDIRECTIONAL
    if kv_cache and spec.family in BIDIRECTIONAL and not logits_rows:
        raise ExportError(
            f"a cached {spec.family} program (Fast-dLLM's prefix and dual caches, contract v3) "
            f"selects its logits rows: drop --logits all"
        )
    try:
        resolve_max_logits_rows(max_logits_rows, max_seq_len, logits_rows)
    except ValueError as e:
        raise ExportError(str(e)) from None
    store = WeightStore(ckpt_dir)
    # Built on the meta device and materialised empty: every parameter is then
    # overwritten from the checkpoint (a missing one is an error), so random
    # initialisation of billions of weights would be wasted time.
    with torch.device("meta"):
        model = DiffusionLM(
            spec,
            max_seq_len=max_seq_len,
            kv_cache=kv_cache,
            dtype=dtype,
            logits_rows=logits_rows,
            max_logits_rows=max_logits_rows,
        )
    check_quantizable(model, quantize, group_size)
    if quantize != "none" and dtype != torch.float32:
        raise ExportError("quantization works on fp32 models; drop --dtype fp16")
    # Untouched pages of the empty tensors cost no memory: each unit's fp32 weights become
    # resident as they are read, and with `quantize` are released again right after.
    model = model.to_empty(device="cpu")
    model.init_buffers()
    loaded = None
    if quantize != "none":
        def loaded(unit: str) -> None:
            quantize_unit(model, unit, quantize, group_size)
    _load_weights(model, store, spec.family, loaded)
    model.quantization = quantize
    model.eval()
    model.requires_grad_(False)
    return model
