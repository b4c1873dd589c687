"""Contract v2 ("logits rows"): forward(tokens[, input_pos], rows) -> logits [1, R, V].

(a) The PyTorch module with logits_rows=True against the full (v1) module, cached and
    uncached, every family: the hidden states fed to the final norm are exactly the full
    module's rows (torch.equal), the KV cache is written identically, rows = arange(T)
    gives bit-identical logits, and random row subsets agree to float rounding. (Eager
    torch's MKL sgemm rounds differently for small M, measured max 6e-6 on logits of
    std ~1, so a subset's logits are not bit-identical in eager mode; that is BLAS
    blocking, not the gather.)
(b) Each committed *_rows.pte fixture against its v1 twin over the same call sequence:
    the logits at the requested rows are bit-identical (XNNPACK's fp32 GEMM computes each
    row independently of M).
(c) The CLI: default export writes contract 2, `--logits all` writes contract 1.
(d) Metadata of the rows fixtures reports contract version 2.
"""

from __future__ import annotations

import json
import zlib

import pytest
import torch

from conftest import FAMILIES, FIXTURES, REPO
from diffulex_export import cli
from diffulex_export.export import load_pte_method, read_metadata
from diffulex_export.models import CONTRACT_VERSION, CONTRACT_VERSION_ROWS, load_model

# rows fixture -> its v1 twin (same checkpoint, same export options).
TWINS = {
    "sdar_cached_rows": "sdar_cached",
    "fast_dllm_v2_cached_rows": "fast_dllm_v2_cached",
    "llada_rows": "llada",
    "dream_rows": "dream",
}
EAGER_TOL = 2e-5
MAX_LEN = 64


def random_rows(t: int, gen: torch.Generator) -> torch.Tensor:
    """A random non-empty ascending subset of [0, t), as the engine sends it.

    Example:
        >>> random_rows(5, torch.Generator().manual_seed(0)).tolist()  # doctest: +SKIP
        [0, 3, 4]
    """
    r = int(torch.randint(1, t + 1, (1,), generator=gen))
    return torch.randperm(t, generator=gen)[:r].sort().values


def call_plan(cached: bool, block: int, max_len: int):
    """(pos, T) calls: cached ones carry state (prefill mid-block, rewrite, 1 token, full); uncached ones are independent."""
    if not cached:
        return [(None, t) for t in (1, 2, 7, 19, max_len)]
    b = max(block, 1)
    calls = [(0, 2 * b + 2), (2 * b, b), (3 * b, b), (3 * b, 1), (3 * b, b + 3), (0, max_len)]
    return [c for c in calls if c[0] + c[1] <= max_len]


def _norm_input(model):
    """Forward hook that records the input of the final norm (the hidden states after the last layer)."""
    seen = {}

    def hook(_mod, args):
        seen["x"] = args[0].detach().clone()

    model.norm.register_forward_pre_hook(hook)
    return seen


MODULE_CASES = [(f, True) for f in ("sdar", "fast_dllm_v2")] + [(f, False) for f in FAMILIES]


@pytest.mark.parametrize("family,cached", MODULE_CASES)
def test_module_rows_are_the_full_modules_rows(family, cached, tiny_ckpts):
    full = load_model(tiny_ckpts[family], max_seq_len=MAX_LEN, kv_cache=cached)
    rows_m = load_model(tiny_ckpts[family], max_seq_len=MAX_LEN, kv_cache=cached, logits_rows=True)
    assert full.meta["contract_version"] == CONTRACT_VERSION == 1
    # A cached Fast-dLLM v2 with rows is contract 3 (its sub-block cache: kv_end last), which
    # with kv_end = pos + T is contract 2 exactly.
    sub_block = family == "fast_dllm_v2" and cached
    assert rows_m.meta["contract_version"] == (3 if sub_block else CONTRACT_VERSION_ROWS)
    assert rows_m.meta.get("cache_modes") == (4 if sub_block else None)
    versioned = ("contract_version", "cache_modes")
    assert {k: v for k, v in rows_m.meta.items() if k not in versioned} == {
        k: v for k, v in full.meta.items() if k not in versioned
    }
    h_full, h_rows = _norm_input(full), _norm_input(rows_m)
    gen = torch.Generator().manual_seed(zlib.crc32(f"{family}{cached}".encode()))
    for i, (pos, t) in enumerate(call_plan(cached, full.spec.block_size, MAX_LEN)):
        tokens = torch.randint(0, 512, (1, t), generator=gen)
        args = [tokens, torch.tensor([pos])] if cached else [tokens]
        rows = random_rows(t, gen) if i % 2 == 0 else torch.arange(t)
        with torch.no_grad():
            want = full(*args)
            got = rows_m(*args, rows, torch.tensor([pos + t])) if sub_block else rows_m(*args, rows=rows)
        assert got.dtype == torch.float32 and got.shape == (1, rows.numel(), 512)
        # The gather is exact: the norm sees exactly the full module's hidden rows.
        assert h_rows["x"].shape[1] == rows.numel()
        assert torch.equal(h_rows["x"], h_full["x"][:, rows]), f"call {i}"
        if rows.numel() == t:
            assert torch.equal(got, want), f"call {i}: all rows must be bit-identical"
        torch.testing.assert_close(got, want[:, rows], atol=EAGER_TOL, rtol=0)
        for la, lb in zip(full.layers, rows_m.layers):
            if cached:
                assert torch.equal(la.attn.cache.k, lb.attn.cache.k) and torch.equal(la.attn.cache.v, lb.attn.cache.v)


def test_module_rows_argument_checked(tiny_ckpts):
    m = load_model(tiny_ckpts["llada"], max_seq_len=MAX_LEN, logits_rows=True)
    tokens = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="needs rows"):
        m(tokens)
    with pytest.raises(ValueError, match="pass rows by keyword"):
        m(tokens, torch.tensor([1]))
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 4\)"):
        m(tokens, rows=torch.tensor([1, 4]))
    v1 = load_model(tiny_ckpts["llada"], max_seq_len=MAX_LEN)
    with pytest.raises(ValueError, match="only accepted by a logits_rows"):
        v1(tokens, rows=torch.tensor([0]))


def _manifest():
    path = FIXTURES / "pte" / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _sub_block(name):
    """Whether the fixture is a cached Fast-dLLM v2 with rows: contract 3, for its sub-block
    cache (forward takes kv_end last)."""
    return name == "fast_dllm_v2_cached_rows"


@pytest.mark.parametrize("name", sorted(TWINS))
def test_rows_pte_bit_identical_to_v1_twin(name):
    manifest = _manifest()
    if name not in manifest:
        pytest.skip("fixtures not generated")
    entry, twin = manifest[name], manifest[TWINS[name]]
    assert entry["logits"] == "rows" and "logits" not in twin
    for key in ("checkpoint", "family", "kv_cache", "backend", "quantize", "max_seq_len"):
        assert entry[key] == twin[key], key
    v2 = load_pte_method(FIXTURES / "pte" / f"{name}.pte")
    v1 = load_pte_method(FIXTURES / "pte" / f"{TWINS[name]}.pte")
    cached = entry["kv_cache"]
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    worst = 0.0
    for i, (pos, t) in enumerate(call_plan(cached, entry["meta"]["block_size"], entry["max_seq_len"])):
        tokens = torch.randint(0, 512, (1, t), generator=gen)
        args = [tokens, torch.tensor([pos])] if cached else [tokens]
        rows = random_rows(t, gen) if i % 2 == 0 else torch.arange(t)
        want = v1.execute(args)[0]
        # A cached Fast-dLLM v2 with rows is contract 3: kv_end = pos + T is contract 2's call.
        kv_end = [torch.tensor([pos + t])] if _sub_block(name) else []
        got = v2.execute(args + [rows] + kv_end)[0]
        assert got.dtype == torch.float32 and got.shape == (1, rows.numel(), 512)
        worst = max(worst, (got - want[:, rows]).abs().max().item())
        assert torch.equal(got, want[:, rows]), f"{name} call {i} (pos {pos}, T {t}, R {rows.numel()}): max {worst}"


@pytest.mark.parametrize("name", sorted(TWINS))
def test_rows_pte_metadata_reports_v2(name):
    if name not in _manifest():
        pytest.skip("fixtures not generated")
    got = read_metadata(FIXTURES / "pte" / f"{name}.pte")
    twin = read_metadata(FIXTURES / "pte" / f"{TWINS[name]}.pte")
    assert got["get_contract_version"] == (3 if _sub_block(name) else 2) and twin["get_contract_version"] == 1
    assert got.get("get_cache_modes") == (4 if _sub_block(name) else None)
    # The weight segments differ (the v2 graph gathers rows), so do their digests.
    differ = ("get_contract_version", "get_weights_digest", "get_cache_modes")
    assert len(got["get_weights_digest"]) == len(twin["get_weights_digest"]) == 4
    assert {k: v for k, v in got.items() if k not in differ} == {
        k: v for k, v in twin.items() if k not in differ
    }


# The default is `rows`; `--logits rows` itself goes through the same code path as the default.
@pytest.mark.parametrize("logits,version", [(None, 2), ("all", 1)])
def test_cli_logits_flag(logits, version, tiny_ckpts, tmp_path, capsys):
    out = tmp_path / "m.pte"
    extra = [] if logits is None else ["--logits", logits]
    argv = ["export", "--checkpoint", tiny_ckpts["dream"], "--max-seq-len", 16, *extra, "-o", out]
    assert cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert f"(contract v{version})" in capsys.readouterr().out
    assert read_metadata(out)["get_contract_version"] == version
    tokens = torch.randint(0, 512, (1, 9), generator=torch.Generator().manual_seed(3))
    ref = load_model(tiny_ckpts["dream"], max_seq_len=16)
    with torch.no_grad():
        want = ref(tokens)
    method = load_pte_method(out)
    if version == 1:
        got = method.execute([tokens])[0]
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    else:
        rows = torch.tensor([0, 4, 8])
        got = method.execute([tokens, rows])[0]
        assert got.shape == (1, 3, 512)
        torch.testing.assert_close(got, want[:, rows], atol=1e-4, rtol=0)


def test_rows_fixtures_have_twins_in_make_fixtures():
    """tools/make_fixtures.py builds every rows fixture from its twin's checkpoint and options."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", REPO / "tools" / "make_fixtures.py")
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    for name, twin in TWINS.items():
        assert mf.PTES[name][:4] == mf.PTES[twin][:4] and mf.PTES[name][4] == "rows" and mf.PTES[twin][4] == "all"


def _rows_bound(path) -> int:
    """The upper bound of a program's `rows` input (what ExecuTorch sized the logits for)."""
    from executorch.runtime import Runtime

    meta = Runtime.get().load_program(str(path)).metadata("forward")
    rows = [meta.input_tensor_meta(i).sizes() for i in range(meta.num_inputs())][-1]
    logits = meta.output_tensor_meta(0).sizes()
    assert logits[1] == rows[0], (rows, logits)
    return rows[0]


def test_cli_max_logits_rows_bounds_the_program(tiny_ckpts, tmp_path, capsys):
    """`--max-logits-rows N` is the `rows` bound and the logits output's planned rows; the
    default is min(max_seq_len, 256); a call past the bound is refused by the runtime, and
    the rows within it are the module's."""
    common = ["export", "--checkpoint", tiny_ckpts["dream"], "--max-seq-len", 16]
    assert cli.main([str(a) for a in common + ["-o", tmp_path / "default.pte"]]) == 0
    assert _rows_bound(tmp_path / "default.pte") == 16
    out = tmp_path / "m.pte"
    assert cli.main([str(a) for a in common + ["--max-logits-rows", 3, "-o", out]]) == 0
    assert _rows_bound(out) == 3
    tokens = torch.randint(0, 512, (1, 9), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = load_model(tiny_ckpts["dream"], max_seq_len=16)(tokens)
    method = load_pte_method(out)
    rows = torch.tensor([2, 5, 8])
    torch.testing.assert_close(method.execute([tokens, rows])[0], want[:, rows], atol=1e-4, rtol=0)
    with pytest.raises(RuntimeError):
        method.execute([tokens, torch.tensor([1, 2, 5, 8])])
    capsys.readouterr()


@pytest.mark.parametrize("value", ["1", "17", "0", "-3"])
def test_cli_max_logits_rows_out_of_range_is_one_error_line(value, tiny_ckpts, tmp_path, capsys):
    out = tmp_path / "m.pte"
    argv = ["export", "--checkpoint", str(tiny_ckpts["dream"]), "--max-seq-len", "16", "--max-logits-rows", value,
            "-o", str(out)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "max_logits_rows must be in [2, max_seq_len 16]" in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_max_logits_rows_needs_logits_rows(tiny_ckpts):
    from diffulex_export.errors import ExportError

    with pytest.raises(ExportError, match="--logits all"):
        load_model(tiny_ckpts["dream"], max_seq_len=16, max_logits_rows=4)
    m = load_model(tiny_ckpts["dream"], max_seq_len=16, logits_rows=True, max_logits_rows=4)
    with pytest.raises(ValueError, match="at most 4"):
        m(torch.zeros(1, 6, dtype=torch.int64), rows=torch.arange(5))
