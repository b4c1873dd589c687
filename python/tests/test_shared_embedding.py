"""The shared embedding table (contract 4, issue 16): a tied checkpoint's one matrix is stored
once, as the lm_head's quantized weights in XNNPACK's named data, and the engine gathers the
embedding rows from those bytes."""

import json

import pytest
import torch

from conftest import FIXTURES
from diffulex_export.errors import ExportError
from diffulex_export.shared_embedding import (
    SCALE_BFLOAT16,
    SCALE_FLOAT32,
    PteTable,
    TableLayout,
    check_stored,
    decode_rows,
    share_embedding,
    xnnpack_bytes,
)

SHARED = ("fast_dllm_v2_shared_int8", "fast_dllm_v2_shared_8da4w", "fast_dllm_v2_shared_fp32")
CKPT = FIXTURES / "ckpt" / "fast_dllm_v2"


def _values(bits, rows, cols, seed):
    lo, hi = (-128, 127) if bits == 8 else (-8, 7)
    return torch.randint(lo, hi + 1, (rows, cols), dtype=torch.int8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bits,groups", [(8, 1), (4, 1), (4, 2)])
def test_the_bytes_are_the_ones_xnnpack_serializes(bits, groups):
    """Against ExecuTorch's own serializer: `convert_to_qc4w` for the 4-bit packing, and the
    bfloat16 cast `get_quant_params` applies to group scales."""
    from executorch.backends.xnnpack.operators.node_visitor import NodeVisitor

    values = _values(bits, 6, 64, seed=bits + groups)
    scales = torch.rand(6, groups) + 0.01
    weight, scale_bytes, dtype = xnnpack_bytes(values, scales, bits, 64 // groups)
    want = values if bits == 8 else NodeVisitor.convert_to_qc4w(values.clone())
    assert weight == want.contiguous().numpy().tobytes()
    if groups == 1:
        assert dtype == SCALE_FLOAT32 and scale_bytes == scales.reshape(-1).numpy().tobytes()
    else:
        assert dtype == SCALE_BFLOAT16
        assert scale_bytes == scales.to(torch.bfloat16).view(torch.int16).numpy().tobytes()


@pytest.mark.parametrize("bits,groups", [(8, 1), (4, 1), (4, 2)])
def test_decode_rows_dequantizes_the_serialized_rows(bits, groups):
    values = _values(bits, 5, 64, seed=7)
    scales = torch.rand(5, groups) + 0.01
    weight, scale_bytes, dtype = xnnpack_bytes(values, scales, bits, 64 // groups)
    layout = TableLayout(bits, 64 // groups, dtype)
    stored = scales if dtype == SCALE_FLOAT32 else scales.to(torch.bfloat16).float()
    want = (values.float().reshape(5, groups, -1) * stored.unsqueeze(-1)).reshape(5, 64)
    ids = [4, 0, 4, 2]
    assert torch.equal(decode_rows(weight, scale_bytes, layout, 64, ids), want[ids])


@pytest.mark.parametrize("bits,groups", [(8, 1), (4, 2)])
def test_keys_hashed_by_slices_are_the_hashes_of_the_whole_bytes(bits, groups, monkeypatch):
    """The export hashes the table a slice of rows at a time (bounded memory at a 152k
    vocabulary); slices of 3 rows, uneven at the end, give the hashes of the whole bytes."""
    import hashlib

    from diffulex_export import shared_embedding

    values = _values(bits, 10, 64, seed=5)
    scales = torch.rand(10, groups) + 0.01
    weight, scale_bytes, dtype = xnnpack_bytes(values, scales, bits, 64 // groups)
    monkeypatch.setattr(shared_embedding, "_ROWS_PER_SLICE", 3)
    assert shared_embedding.xnnpack_keys(values, scales, bits) == (
        hashlib.sha256(weight).hexdigest(),
        "scale_" + hashlib.sha256(scale_bytes).hexdigest(),
        dtype,
    )


def test_a_float32_table_is_its_rows():
    table = torch.randn(5, 8)
    layout = TableLayout(bits=32, group_size=8, scale_dtype=0)
    got = decode_rows(table.numpy().tobytes(), b"", layout, 8, [3, 0, 3])
    assert torch.equal(got, table[[3, 0, 3]])


def _shared_model(quantize):
    from diffulex_export.models import load_model
    from diffulex_export.quantize import quantize_model

    model = load_model(CKPT, max_seq_len=256, kv_cache=True, logits_rows=True)
    quantize_model(model, "none" if quantize == "fp32" else quantize)
    share_embedding(model)
    return model.eval()


@pytest.mark.parametrize("name", SHARED)
def test_the_fixture_has_no_table_of_its_own_and_takes_embeddings(name):
    from diffulex_export.export import read_metadata, runtime

    path = FIXTURES / "pte" / f"{name}.pte"
    entry = json.loads((FIXTURES / "pte" / "manifest.json").read_text())[name]
    assert not [op for op in entry["operators"] if "embedding" in op], entry["operators"]
    meta = read_metadata(path)
    assert meta["get_contract_version"] == 4
    inputs = runtime().load_program(str(path)).metadata("forward")
    first = inputs.input_tensor_meta(0)
    assert first.dtype() == 6 and list(first.sizes()) == [1, 256, 64]
    # The rows gathered from the file are the lm_head's weights as the module holds them.
    quantize = name.rsplit("_", 1)[1]
    tokens = torch.tensor([[0, 1, 5, 300, 511]])
    assert torch.equal(PteTable(path).embed(tokens), _shared_model(quantize).input_for(tokens))


def test_int8_logits_match_the_module_quantized_the_same_way():
    from diffulex_export.export import runtime

    path = FIXTURES / "pte" / "fast_dllm_v2_shared_int8.pte"
    model = _shared_model("int8")
    tokens = torch.tensor([[3, 9, 27, 81, 243, 217]])
    args = (torch.zeros(1, dtype=torch.long), torch.arange(6), torch.tensor([6]))
    forward = runtime().load_program(str(path)).load_method("forward")
    got = forward.execute([PteTable(path).embed(tokens), *args])[0]
    with torch.no_grad():
        want = model(model.input_for(tokens), *args)
    assert torch.allclose(got, want, atol=1e-4, rtol=0), (got - want).abs().max()


def test_models_it_cannot_apply_to_are_refused():
    from diffulex_export.models import load_model
    from diffulex_export.quantize import quantize_model

    untied = load_model(FIXTURES / "ckpt" / "sdar", max_seq_len=64, kv_cache=True, logits_rows=True)
    quantize_model(untied, "int8")
    with pytest.raises(ExportError, match="does not tie"):
        share_embedding(untied)
    half_model = load_model(CKPT, max_seq_len=64, kv_cache=True, logits_rows=True, dtype=torch.float16)
    with pytest.raises(ExportError, match="not --dtype fp16"):
        share_embedding(half_model)
    all_rows = load_model(CKPT, max_seq_len=64, kv_cache=True, logits_rows=False)
    quantize_model(all_rows, "int8")
    with pytest.raises(ExportError, match="--logits rows"):
        share_embedding(all_rows)


def test_a_lowering_that_stored_other_bytes_fails_the_export():
    model = _shared_model("int8")
    table = model.shared_embedding
    check_stored(table, {table.weight_key, table.scale_key, "other"})
    with pytest.raises(ExportError, match=table.scale_key):
        check_stored(table, {table.weight_key})


def test_the_cli_shares_by_default_and_the_file_shrinks(tmp_path, tiny_ckpts):
    """The default export of a tied quantized checkpoint is contract 4 and smaller by the
    table; --no-shared-embedding writes contract 3 with the table in the program."""
    from diffulex_export.cli import main
    from diffulex_export.export import read_metadata

    ckpt = tiny_ckpts["fast_dllm_v2"]
    common = ["export", "--checkpoint", str(ckpt), "--max-seq-len", "64", "--quantize", "8da4w"]
    assert main(common + ["-o", str(tmp_path / "shared.pte")]) == 0
    assert main(common + ["--no-shared-embedding", "-o", str(tmp_path / "own.pte")]) == 0
    shared, own = read_metadata(tmp_path / "shared.pte"), read_metadata(tmp_path / "own.pte")
    assert shared["get_contract_version"] == 4 and own["get_contract_version"] == 3
    assert "get_embedding_layout" not in own
    assert shared["get_embedding_layout"] == [4, 32, SCALE_BFLOAT16]
    # The 4-bit table is 512 x 32 bytes of values plus 512 x 4 of float16 scales; the shared
    # file's extra methods and alignment take back about a kilobyte.
    saved = (tmp_path / "own.pte").stat().st_size - (tmp_path / "shared.pte").stat().st_size
    assert saved >= 512 * 32, saved
    assert main(["export", "--checkpoint", str(tiny_ckpts["sdar"]), "--max-seq-len", "64", "--quantize", "int8",
                 "--shared-embedding", "-o", str(tmp_path / "sdar.pte")]) == 1
    assert not (tmp_path / "sdar.pte").exists()


def test_the_cli_shares_a_float32_table_and_frees_the_weights(tmp_path, tiny_ckpts):
    """`--shared-embedding` on a float32 export through the CLI, which frees the model's
    weights once the program is emitted: hashing the table must leave them freeable (it once
    left the lm_head's storage non-resizable, and the real-size export failed at the end)."""
    from diffulex_export.cli import main
    from diffulex_export.export import read_metadata

    out = tmp_path / "fp32.pte"
    args = ["export", "--checkpoint", str(tiny_ckpts["fast_dllm_v2"]), "--max-seq-len", "64",
            "--shared-embedding", "--skip-tokenizer", "-o", str(out)]
    assert main(args) == 0
    meta = read_metadata(out)
    assert meta["get_contract_version"] == 4
    assert meta["get_embedding_layout"][0] == 32
