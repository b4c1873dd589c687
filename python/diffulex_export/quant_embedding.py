"""The embedding table in 8 or 4 bits, read by ExecuTorch's quantized embedding kernels.

`--quantize int8` stores the table as int8 with one float32 scale per row
(`quantized_decomposed::embedding_byte`), `--quantize 8da4w` as int4 packed two per byte with
one float16 scale per group of 32 (`quantized_decomposed::embedding_4bit`): 4.5 bits per
weight, as llama.cpp's Q4_0 (a float32 scale would make it 5). Both are symmetric (no zero
point) and dequantize only the rows a forward looks up, so the table costs a quarter (int8) or
an eighth (int4) of its float32 bytes in the file and in memory. The kernels are ExecuTorch's
`libexecutorch_kernels_quantized`, which the runtime registers; the operators' Python
definitions (for tracing and eager runs) are in executorch's `_quant_patterns_and_replacements`.
"""

from __future__ import annotations

import torch
from torch import nn

#: Group size of the 4-bit table (the linear layers' 8da4w group size).
GROUP_SIZE_4BIT = 32


def _register_ops() -> None:
    """Defines `torch.ops.quantized_decomposed.embedding_{byte,4bit}` (import side effect)."""
    import executorch.exir.passes._quant_patterns_and_replacements  # noqa: F401


# Rows quantized per slice (4096 x 4096 fp32 = 64 MiB of temporaries at most).
_ROWS_PER_SLICE = 4096


class QuantizedEmbedding(nn.Module):
    """An `nn.Embedding` replacement holding the table in `bits` (8 or 4) bits.

    Example:
        >>> e = QuantizedEmbedding(torch.randn(16, 64), bits=4)
        >>> e(torch.tensor([[1, 2]])).shape, e.weight.dtype
        (torch.Size([1, 2, 64]), torch.uint8)
    """

    def __init__(self, table: torch.Tensor, bits: int, out_dtype: torch.dtype = torch.float32):
        super().__init__()
        _register_ops()
        if bits not in (8, 4):
            raise ValueError(f"bits must be 8 or 4, got {bits}")
        rows, dim = table.shape
        group = dim if bits == 8 else GROUP_SIZE_4BIT
        if dim % group or dim % 2:
            raise ValueError(f"a {bits}-bit table needs a width divisible by {group}, got {dim}")
        self.bits = bits
        self.out_dtype = out_dtype
        self.quant_min, self.quant_max = (-128, 127) if bits == 8 else (-8, 7)
        # Rows are quantized independently, so a slice at a time gives the same table while
        # the float temporaries stay a few MB instead of several copies of a 1.2 GB table.
        parts = [self._quantize_rows(table[start:start + _ROWS_PER_SLICE], group)
                 for start in range(0, rows, _ROWS_PER_SLICE)]
        self.register_buffer("weight", torch.cat([w for w, _ in parts]).contiguous())
        self.register_buffer("scales", torch.cat([sc for _, sc in parts]).contiguous())

    def _quantize_rows(self, table: torch.Tensor, group: int) -> tuple:
        rows, dim = table.shape
        grouped = table.detach().float().reshape(rows, dim // group, group)
        # Symmetric: the largest magnitude of a group maps to quant_max.
        scales = (grouped.abs().amax(dim=-1) / self.quant_max).clamp(min=torch.finfo(torch.float32).tiny)
        q = torch.round(grouped / scales.unsqueeze(-1)).clamp(self.quant_min, self.quant_max)
        q = q.to(torch.int8).reshape(rows, dim)
        if self.bits == 8:
            return q, scales.reshape(rows)
        # Rounded to the stored precision first, so the values are quantized with the
        # scales the kernel will read.
        scales = scales.to(torch.float16).clamp(min=torch.finfo(torch.float16).tiny)
        q = torch.round(grouped / scales.float().unsqueeze(-1)).clamp(self.quant_min, self.quant_max)
        q = q.to(torch.int8).reshape(rows, dim)
        # Two values per byte, the even one in the high nibble, each shifted by +8 (the
        # kernel's layout: `embedding_4bit` unpacks `byte // 16 - 8, byte % 16 - 8`).
        shifted = (q.to(torch.int16) + 8).to(torch.uint8)
        return shifted[:, 0::2] * 16 + shifted[:, 1::2], scales

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        op = (
            torch.ops.quantized_decomposed.embedding_byte.dtype
            if self.bits == 8
            else torch.ops.quantized_decomposed.embedding_4bit.dtype
        )
        return op(self.weight, self.scales, None, self.quant_min, self.quant_max, tokens, dtype=self.out_dtype)

    def dequantized(self) -> torch.Tensor:
        """The table as float32, as the kernels read it (for tests)."""
        rows = self.weight.shape[0]
        if self.bits == 8:
            return self.weight.float() * self.scales.unsqueeze(-1)
        high = (self.weight // 16).to(torch.int16) - 8
        low = (self.weight % 16).to(torch.int16) - 8
        q = torch.stack((high, low), dim=-1).reshape(rows, -1).float()
        groups = self.scales.shape[1]
        return (q.reshape(rows, groups, -1) * self.scales.float().unsqueeze(-1)).reshape(rows, -1)


def quantize_embedding(model: nn.Module, bits: int) -> None:
    """Replaces `model.embed` (an `nn.Embedding`) by its `bits`-bit `QuantizedEmbedding`."""
    embed = model.embed
    if not isinstance(embed, nn.Embedding):
        raise ValueError(f"model.embed is {type(embed).__name__}, not an nn.Embedding (quantized twice?)")
    model.embed = QuantizedEmbedding(embed.weight, bits, out_dtype=embed.weight.dtype)
