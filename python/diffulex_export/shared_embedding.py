"""One embedding table for a tied checkpoint: the engine reads it from the lm_head's weights.

Checkpoints that tie their embedding to their output layer (Qwen3-1.7B/4B under SDAR,
Qwen2.5-1.5B under Fast-dLLM v2) hold one `[V, D]` matrix for both. A quantized export used
to store it twice: once as the program's quantized embedding table (quant_embedding.py) and
once as the lm_head's weights inside the XNNPACK delegate. At a 152k vocabulary that copy is a
tenth of the file (BENCHMARKS.md, "Real-size models").

XNNPACK keeps a delegate's weights in the program's named data, keyed by the SHA-256 of their
bytes (`backends/xnnpack/operators/node_visitor.py`): the lm_head's int8 or packed int4 values
under that hash, their scales under `scale_` + the hash of the scale bytes. A program exported
with the shared table (contract 4, docs/pte-contract.md) has no embedding of its own: `forward`
takes the embeddings `[1, T, D]` (float32) as its first input, and the engine gathers each
token's row from those named-data bytes, which `get_embedding_layout`,
`get_embedding_weight_key` and `get_embedding_scale_key` locate. The lm_head's quantization is
the table's, so the embeddings are exactly the rows the output layer multiplies by.

The byte layout (what XNNPACK writes, and what `decode_rows` and the Rust engine read):
- 32 bits (a float32 export, `--shared-embedding`): float32 `[V, D]` row-major; no scales.
- 8 bits: int8 `[V, D]` row-major; one float32 scale per row (`[V]`).
- 4 bits: `[V, D / 2]` bytes, column `2j` in the low nibble and `2j + 1` in the high one, each
  stored as value + 8; scales `[V, D / group]` in bfloat16 (float32 `[V]` when one group spans
  the row, XNNPACK's per-channel case).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Iterator, Optional, Tuple

import torch

from .errors import ExportError

#: ExecuTorch `ScalarType` codes of the scale dtypes, as `get_embedding_layout` reports them;
#: a float32 table has no scales (code 0).
SCALE_NONE = 0
SCALE_FLOAT32 = 6
SCALE_BFLOAT16 = 15


@dataclasses.dataclass(frozen=True)
class TableLayout:
    """How the shared table's bytes are laid out (`get_embedding_layout`: bits, group, scale dtype).

    Example:
        >>> TableLayout(bits=4, group_size=32, scale_dtype=SCALE_BFLOAT16).row_bytes(64)
        32
    """

    #: 32 (float32, no scales), 8 (int8) or 4 (int4, two per byte).
    bits: int
    #: Input features per scale; the hidden size when each row has one scale.
    group_size: int
    #: `SCALE_FLOAT32` or `SCALE_BFLOAT16`.
    scale_dtype: int

    def row_bytes(self, hidden: int) -> int:
        """Bytes of one row of values."""
        return hidden * self.bits // 8

    def scale_bytes(self, hidden: int) -> int:
        """Bytes of one row of scales (0 for a float32 table)."""
        width = {SCALE_NONE: 0, SCALE_FLOAT32: 4, SCALE_BFLOAT16: 2}[self.scale_dtype]
        return (hidden // self.group_size) * width

    def as_ints(self) -> list:
        """The three Ints of `get_embedding_layout`."""
        return [self.bits, self.group_size, self.scale_dtype]


@dataclasses.dataclass
class SharedTable:
    """The lm_head's quantized weights read as the embedding table (eager runs and export).

    `weight` holds the int values `[V, D]` (int8 storage), `scales` the stored scales as float32
    `[V, D / group]` (bfloat16-rounded where the file stores bfloat16).
    """

    layout: TableLayout
    weight_key: str
    #: None for a float32 table (no scales).
    scale_key: Optional[str]
    weight: torch.Tensor
    scales: Optional[torch.Tensor]

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embeddings `[B, T, D]` (float32) of int64 `tokens` `[B, T]`, as the engine computes them."""
        rows = self.weight[tokens.reshape(-1)].float()
        if self.scales is None:
            return rows.reshape(*tokens.shape, -1)
        scales = self.scales[tokens.reshape(-1)]
        groups = scales.shape[1]
        out = (rows.reshape(rows.shape[0], groups, -1) * scales.unsqueeze(-1)).reshape(rows.shape[0], -1)
        return out.reshape(*tokens.shape, -1)


# Rows serialized per slice: the temporaries of a 152k x 2048 table stay a few MB.
_ROWS_PER_SLICE = 4096


def _slices(values: torch.Tensor, scales: torch.Tensor, bits: int) -> Iterator[Tuple[bytes, bytes]]:
    """The XNNPACK bytes of the weight and of its scales, a slice of rows at a time."""
    per_row = scales.shape[1] == 1
    for start in range(0, values.shape[0], _ROWS_PER_SLICE):
        part = values[start:start + _ROWS_PER_SLICE].contiguous()
        if bits == 8:
            weight = part.numpy().tobytes()
        else:
            shifted = (part.to(torch.int16) + 8).to(torch.uint8)
            weight = (shifted[:, 1::2] << 4 | shifted[:, 0::2]).contiguous().numpy().tobytes()
        rows = scales[start:start + _ROWS_PER_SLICE]
        if per_row:
            scale = rows.reshape(-1).float().contiguous().numpy().tobytes()
        else:
            scale = rows.to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
        yield weight, scale


def xnnpack_bytes(values: torch.Tensor, scales: torch.Tensor, bits: int, group_size: int) -> Tuple[bytes, bytes, int]:
    """The bytes XNNPACK stores for a symmetric quantized linear weight and its scales.

    `values`: int8 `[N, K]` (in [-8, 7] for 4 bits); `scales`: float32 `[N, K / group_size]`.
    Returns (weight bytes, scale bytes, scale dtype code).

    Example:
        >>> w, s, dt = xnnpack_bytes(torch.tensor([[1, -2]], dtype=torch.int8), torch.ones(1, 1), 4, 2)
        >>> w.hex(), dt == SCALE_FLOAT32
        ('69', True)
    """
    parts = list(_slices(values, scales, bits))
    dtype = SCALE_FLOAT32 if scales.shape[1] == 1 else SCALE_BFLOAT16
    return b"".join(w for w, _ in parts), b"".join(s for _, s in parts), dtype


def xnnpack_keys(values: torch.Tensor, scales: torch.Tensor, bits: int) -> Tuple[str, str, int]:
    """The named-data keys XNNPACK gives the weight and its scales (SHA-256 hex of the bytes
    `xnnpack_bytes` returns; the scales' with `scale_` before it), and the scale dtype code,
    hashed a slice at a time instead of serializing the whole table.

    Example:
        >>> w, s, _ = xnnpack_keys(torch.tensor([[1, -2]], dtype=torch.int8), torch.ones(1, 1), 4)
        >>> w == hashlib.sha256(bytes([0x69])).hexdigest(), s.startswith("scale_")
        (True, True)
    """
    weight, scale = hashlib.sha256(), hashlib.sha256()
    for w, s in _slices(values, scales, bits):
        weight.update(w)
        scale.update(s)
    dtype = SCALE_FLOAT32 if scales.shape[1] == 1 else SCALE_BFLOAT16
    return weight.hexdigest(), "scale_" + scale.hexdigest(), dtype


def share_embedding(model: torch.nn.Module) -> SharedTable:
    """Replace a tied model's embedding (float32 or quantized) by the lm_head's weights (contract 4).

    After this `model.embed` is None, `model.shared_embedding` is the table, and `forward`
    takes embeddings (`model.shared_embedding.embed(tokens)`) instead of token ids.

    Example:
        >>> share_embedding(load_model("tests/fixtures/ckpt/fast_dllm_v2", quantize="int8", ...))  # doctest: +SKIP
    """
    spec = model.spec
    if not spec.tie_embeddings:
        raise ExportError(
            f"--shared-embedding: the {spec.family} checkpoint does not tie its embedding to the "
            "output layer, so there is no second copy to drop"
        )
    quantization = getattr(model, "quantization", "none")
    if quantization == "none" and model.lm_head.weight.dtype != torch.float32:
        raise ExportError("--shared-embedding needs float32 weights or --quantize int8 or 8da4w (not --dtype fp16)")
    if not model.logits_rows:
        raise ExportError("--shared-embedding needs --logits rows (contract 4 builds on contract 2)")
    if getattr(model, "shared_embedding", None) is not None:
        raise ExportError("the model already reads its embeddings from the lm_head")
    weight = model.lm_head.weight
    if quantization == "none":
        table = _float_table(weight.detach().contiguous())
    else:
        table = _quantized_table(weight, quantization)
    model.embed = None
    model.shared_embedding = table
    return table


def _float_table(values: torch.Tensor) -> SharedTable:
    """A float32 lm_head's table: XNNPACK stores the weight as is, `[N, K]` row-major."""
    digest = hashlib.sha256()
    for start in range(0, values.shape[0], _ROWS_PER_SLICE):
        # Through a copy: `Tensor.numpy()` on the weight itself would mark its storage
        # non-resizable, and the CLI frees the model's weights once the program is emitted.
        digest.update(values[start:start + _ROWS_PER_SLICE].clone().numpy().tobytes())
    return SharedTable(
        layout=TableLayout(bits=32, group_size=values.shape[1], scale_dtype=SCALE_NONE),
        weight_key=digest.hexdigest(),
        scale_key=None,
        weight=values,
        scales=None,
    )


def _quantized_table(weight, quantization: str) -> SharedTable:
    """A torchao-quantized lm_head's table: its int values and scales as XNNPACK stores them."""
    qdata, scale = getattr(weight, "qdata", None), getattr(weight, "scale", None)
    if qdata is None or scale is None:
        raise ExportError(f"the lm_head's weight is a {type(weight).__name__}, not a torchao quantized tensor")
    zero = getattr(weight, "zero_point", None)
    if zero is not None and bool(zero.ne(0).any()):
        raise ExportError("the lm_head's quantization has zero points; the shared table needs symmetric weights")
    bits = 8 if quantization == "int8" else 4
    vocab, hidden = qdata.shape
    group = hidden // scale.shape[1]
    if bits == 4 and hidden % 2:
        raise ExportError(f"a 4-bit shared table needs an even hidden size, got {hidden}")
    weight_key, scale_key, scale_dtype = xnnpack_keys(qdata, scale, bits)
    stored = scale.float() if scale_dtype == SCALE_FLOAT32 else scale.to(torch.bfloat16).float()
    return SharedTable(
        layout=TableLayout(bits=bits, group_size=group, scale_dtype=scale_dtype),
        weight_key=weight_key,
        scale_key=scale_key,
        weight=qdata,
        scales=stored.reshape(vocab, -1),
    )


def check_stored(table: SharedTable, named_keys) -> None:
    """Fail the export unless XNNPACK stored the lm_head's bytes under the keys predicted."""
    missing = [k for k in (table.weight_key, table.scale_key) if k is not None and k not in named_keys]
    if missing:
        raise ExportError(
            "--shared-embedding: the lowered program has no named data "
            f"{', '.join(missing)} (the lm_head's weights as XNNPACK stores them), so this "
            "ExecuTorch release lays them out differently; export with --no-shared-embedding"
        )


def decode_rows(weight: bytes, scales: bytes, layout: TableLayout, hidden: int, ids) -> torch.Tensor:
    """Embeddings (float32 `[len(ids), D]`) of `ids`, decoded from the named-data bytes.

    Independent of the model code: the reference the engine's gather is tested against.

    Example:
        >>> import struct
        >>> decode_rows(bytes([0x69]), struct.pack("<f", 0.5), TableLayout(4, 2, SCALE_FLOAT32), 2, [0]).tolist()
        [[0.5, -1.0]]
    """
    import numpy as np

    row = layout.row_bytes(hidden)
    groups = hidden // layout.group_size
    scale_row = layout.scale_bytes(hidden)
    out = []
    for i in ids:
        raw = np.frombuffer(weight, dtype=np.uint8, count=row, offset=i * row)
        if layout.bits == 32:
            out.append(raw.view("<f4").astype(np.float32))
            continue
        if layout.bits == 8:
            values = raw.view(np.int8).astype(np.float32)
        else:
            low = (raw & 0x0F).astype(np.int16) - 8
            high = (raw >> 4).astype(np.int16) - 8
            values = np.stack([low, high], axis=-1).reshape(-1).astype(np.float32)
        s = np.frombuffer(scales, dtype=np.uint8, count=scale_row, offset=i * scale_row)
        if layout.scale_dtype == SCALE_FLOAT32:
            sv = s.view("<f4").astype(np.float32)
        else:
            sv = (s.view("<u2").astype(np.uint32) << 16).view(np.float32)
        out.append((values.reshape(groups, -1) * sv[:, None]).reshape(-1))
    return torch.from_numpy(np.stack(out)) if out else torch.zeros(0, hidden)


def words_to_hex(words) -> str:
    """The hex key of a SHA-256 stored as four signed big-endian int64 words."""
    return b"".join(int(w).to_bytes(8, "big", signed=True) for w in words).hex()


class PteTable:
    """A contract-4 `.pte`'s shared table, read from the file (for the reference decoders and tests).

    Example:
        >>> t = PteTable("tests/fixtures/pte/fast_dllm_v2_shared_int8.pte")  # doctest: +SKIP
        >>> t.embed(torch.tensor([[1, 2]])).shape  # doctest: +SKIP
        torch.Size([1, 2, 64])
    """

    def __init__(self, path):
        from executorch.exir._serialize._program import deserialize_pte_binary

        from .export import read_metadata

        meta = read_metadata(path)
        if "get_embedding_layout" not in meta:
            raise ExportError(f"{path} has no shared embedding table (no get_embedding_layout)")
        bits, group, scale_dtype = (int(v) for v in meta["get_embedding_layout"])
        self.layout = TableLayout(bits, group, scale_dtype)
        named = deserialize_pte_binary(open(path, "rb").read()).named_data
        def entry(key):
            return bytes(named.buffers[named.pte_data[key].buffer_index])

        self.weight = entry(words_to_hex(meta["get_embedding_weight_key"]))
        scale_words = meta.get("get_embedding_scale_key")
        self.scales = entry("scale_" + words_to_hex(scale_words)) if scale_words is not None else b""
        vocab = int(meta["get_vocab_size"])
        self.hidden = len(self.weight) * 8 // bits // vocab

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embeddings `[B, T, D]` of int64 `tokens` `[B, T]`."""
        flat = decode_rows(self.weight, self.scales, self.layout, self.hidden, tokens.reshape(-1).tolist())
        return flat.reshape(*tokens.shape, self.hidden)
