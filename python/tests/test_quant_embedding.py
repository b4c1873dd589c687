"""The quantized embedding table (issue 16): the op ExecuTorch runs reads back what was stored,
within half a quantization step of the float table, in the kernels' packing."""

import pytest
import torch

from diffulex_export.quant_embedding import GROUP_SIZE_4BIT, QuantizedEmbedding


@pytest.mark.parametrize("bits", [8, 4])
def test_lookup_is_the_dequantized_table_within_half_a_step(bits):
    table = torch.randn(50, 64, generator=torch.Generator().manual_seed(bits))
    table[7] = 0.0  # an all-zero row must not divide by zero
    emb = QuantizedEmbedding(table, bits)
    idx = torch.tensor([[0, 7, 49, 3]])
    got = emb(idx)
    assert got.dtype == torch.float32 and got.shape == (1, 4, 64)
    # The eager op computes in the scales' dtype (float16 for 4 bits): equal up to its rounding.
    assert torch.allclose(got, emb.dequantized()[idx], atol=2e-3, rtol=0)
    group = 64 if bits == 8 else GROUP_SIZE_4BIT
    step = emb.scales.float().reshape(50, -1).repeat_interleave(group, dim=1)
    assert torch.all((emb.dequantized() - table).abs() <= step / 2 + 1e-5)
    assert torch.equal(got[0, 1], torch.zeros(64))


def test_4bit_packing_is_the_kernels():
    # Column 0 -> high nibble, column 1 -> low nibble, each value + 8.
    table = torch.zeros(1, 32)
    table[0, 0], table[0, 1] = 7.0, -8.0
    emb = QuantizedEmbedding(table, 4)
    scale = float(emb.scales[0, 0].float())
    q0 = round(7.0 / scale)
    q1 = max(round(-8.0 / scale), -8)
    assert int(emb.weight[0, 0]) == (q0 + 8) * 16 + (q1 + 8)


def test_widths_the_kernels_cannot_read_are_refused():
    with pytest.raises(ValueError, match="divisible by 32"):
        QuantizedEmbedding(torch.randn(4, 48), 4)
    with pytest.raises(ValueError, match="8 or 4"):
        QuantizedEmbedding(torch.randn(4, 64), 2)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantizing_by_row_slices_gives_the_whole_table(bits, monkeypatch):
    """The table is quantized a slice of rows at a time (bounded memory at a 150k vocabulary);
    slices of 3 rows, uneven at the end, give the table quantized in one piece."""
    from diffulex_export import quant_embedding

    table = torch.randn(10, 64, generator=torch.Generator().manual_seed(3))
    whole = quant_embedding.QuantizedEmbedding(table, bits)
    monkeypatch.setattr(quant_embedding, "_ROWS_PER_SLICE", 3)
    sliced = quant_embedding.QuantizedEmbedding(table, bits)
    assert torch.equal(sliced.weight, whole.weight) and torch.equal(sliced.scales, whole.scales)
