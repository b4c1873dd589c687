"""The `diffulex-export` CLI on tiny checkpoints written by the tests, and its error cases.

Every error must come out as one clear line, exit code 1 (2 for argparse usage
errors), and leave nothing at -o (no .pte, no tokenizer copies, no temp files).
"""

from __future__ import annotations

import filecmp
import os
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import FIXTURES, PY_ROOT
from diffulex_export import cli
from diffulex_export.export import (constant_methods, digest_words, load_pte_method, quantize_model, read_metadata,
                                    tokenizer_digest, weights_digest)
from diffulex_export.models import load_model


def _run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _tokens(n, seed=0):
    return torch.randint(0, 512, (1, n), generator=torch.Generator().manual_seed(seed))


# family -> (extra CLI args, kv_cache of the .pte, dtype, quantize, max and mean |logit diff| allowed)
# vs the PyTorch module (quantized the same way when the .pte is).
CASES = {
    # 4-bit weights: XNNPACK's blockwise kernels differ from torchao's eager math (measured
    # max 0.09, mean 0.015), while 4-bit quantization itself moves logits by mean 0.2 vs fp32:
    # the bounds catch a program that was not quantized as well as a wrong one.
    "sdar": (["--quantize", "8da4w"], True, torch.float32, "8da4w", 0.3, 0.05),
    "fast_dllm_v2": (["--backend", "portable", "--no-kv-cache"], False, torch.float32, "none", 1e-4, 1e-4),
    "llada": (["--backend", "portable"], False, torch.float32, "none", 1e-4, 1e-4),
    # fp16 weights and activations, compared with the fp32 module at an fp16-sized tolerance.
    "dream": (["--family", "dream", "--dtype", "fp16"], False, torch.float16, "none", 5e-2, 1e-2),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_export_each_family(family, tiny_ckpts, tmp_path, capsys):
    extra, kv, dtype, quant, max_diff, mean_diff = CASES[family]
    out = tmp_path / "model.pte"
    code, stdout, stderr = _run(
        ["export", "--checkpoint", tiny_ckpts[family], "--max-seq-len", 64, *extra, "-o", out], capsys
    )
    assert code == 0, stderr
    assert f"wrote {out}" in stdout
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert filecmp.cmp(out.parent / name, tiny_ckpts[family] / name, shallow=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pte", "tokenizer.json", "tokenizer_config.json"]

    # The default export is contract v2 (logits rows): forward takes `rows` last. It records the
    # digests of its tokenizer's vocabulary and of its weight segments (issue 13).
    meta = read_metadata(out)
    want = constant_methods(load_model(tiny_ckpts[family], max_seq_len=64, kv_cache=kv, logits_rows=True),
                            tiny_ckpts[family] / "tokenizer.json")
    want["get_weights_digest"] = digest_words(weights_digest(out.read_bytes()))
    assert meta == want
    assert meta["get_tokenizer_digest"] == digest_words(tokenizer_digest(out.parent / "tokenizer.json"))
    bundled = FIXTURES.parent.parent / "models" / "default" / "tokenizer.json"
    assert meta["get_tokenizer_digest"] != digest_words(tokenizer_digest(bundled))
    ref = load_model(tiny_ckpts[family], max_seq_len=64, kv_cache=kv)
    quantize_model(ref, quant)
    tokens = _tokens(21, seed=7)
    rows = torch.tensor([0, 3, 4, 11, 20])
    args = [tokens, torch.tensor([0])] if kv else [tokens]
    got = load_pte_method(out).execute(args + [rows])[0]
    with torch.no_grad():
        want = ref(*args)[:, rows]
    assert got.dtype == torch.float32 and got.shape == (1, 5, 512)
    diff = (got - want).abs()
    assert diff.max().item() <= max_diff and diff.mean().item() <= mean_diff, (diff.max(), diff.mean())


def test_python_m_entry_point():
    pte = FIXTURES / "pte" / "llada.pte"
    if not pte.is_file():
        pytest.skip("fixtures not generated")
    proc = subprocess.run(
        [sys.executable, "-m", "diffulex_export", "info", str(pte)],
        cwd=PY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)
    assert meta["get_family_id"] == 2 and meta["get_eos_ids"] == [0] and meta["use_kv_cache"] is False


def _assert_nothing_written(out_dir):
    assert list(out_dir.iterdir()) == [], list(out_dir.iterdir())


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--quantize", "int8", "--group-size", "64"], "--group-size applies to --quantize 8da4w only"),
        (["--quantize", "8da4w", "--group-size", "48"], "a positive multiple of 32"),
        (["--quantize", "8da4w", "--group-size", "-32"], "a positive multiple of 32"),
        # 96 is a multiple of 32 but does not divide the tiny model's 64 input features.
        (["--quantize", "8da4w", "--group-size", "96"], "needs groups that divide every layer's input size"),
    ],
)
def test_group_size_refusals(tiny_ckpts, out_dir, capsys, extra, message):
    code, _, err = _run(
        ["export", "--checkpoint", tiny_ckpts["sdar"], "--max-seq-len", 64, *extra, "-o", out_dir / "m.pte"], capsys
    )
    assert code == 1 and message in err, err
    _assert_nothing_written(out_dir)


@pytest.mark.parametrize("group_size", [64, 0])
def test_group_size_is_what_the_program_computes(group_size, tiny_ckpts, tmp_path, capsys):
    """--group-size 64 and 0 (per channel): the .pte matches the module quantized the same way
    (bounds as for the default 8da4w case above), and not the default grouping's module."""
    out = tmp_path / "m.pte"
    code, _, err = _run(["export", "--checkpoint", tiny_ckpts["sdar"], "--max-seq-len", 64, "--quantize", "8da4w",
                         "--group-size", group_size, "--skip-tokenizer", "-o", out], capsys)
    assert code == 0, err
    tokens = _tokens(21, seed=7)
    rows = torch.arange(21)
    got = load_pte_method(out).execute([tokens, torch.tensor([0]), rows])[0]
    diffs = {}
    for g in (group_size, 32):
        ref = load_model(tiny_ckpts["sdar"], max_seq_len=64, kv_cache=True)
        quantize_model(ref, "8da4w", g)
        with torch.no_grad():
            diffs[g] = (got - ref(tokens, torch.tensor([0]))).abs()
    assert diffs[group_size].max().item() <= 0.3 and diffs[group_size].mean().item() <= 0.05
    assert diffs[group_size].mean().item() < diffs[32].mean().item()


def test_wrong_family(tiny_ckpts, out_dir, capsys):
    code, _, err = _run(
        ["export", "--checkpoint", tiny_ckpts["sdar"], "--family", "llada", "--max-seq-len", 64, "-o", out_dir / "m.pte"],
        capsys,
    )
    assert code == 1
    assert "--family llada does not match the checkpoint, whose config.json says sdar" in err
    _assert_nothing_written(out_dir)


def test_missing_weights_named(tiny_ckpts, tmp_path, out_dir, capsys):
    ckpt = tmp_path / "broken"
    ckpt.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (ckpt / name).write_bytes((tiny_ckpts["llada"] / name).read_bytes())
    sd = load_file(str(tiny_ckpts["llada"] / "model.safetensors"))
    del sd["model.transformer.blocks.0.up_proj.weight"]
    del sd["model.transformer.ff_out.weight"]
    save_file(sd, str(ckpt / "model.safetensors"))
    code, _, err = _run(["export", "--checkpoint", ckpt, "--max-seq-len", 64, "-o", out_dir / "m.pte"], capsys)
    assert code == 1
    assert "missing weights (2)" in err
    assert "model.transformer.blocks.0.up_proj.weight" in err and "model.transformer.ff_out.weight" in err
    _assert_nothing_written(out_dir)


def test_no_weights_at_all(tiny_ckpts, tmp_path, out_dir, capsys):
    ckpt = tmp_path / "empty"
    ckpt.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (ckpt / name).write_bytes((tiny_ckpts["dream"] / name).read_bytes())
    code, _, err = _run(["export", "--checkpoint", ckpt, "--max-seq-len", 64, "-o", out_dir / "m.pte"], capsys)
    assert code == 1 and "no weights in" in err
    _assert_nothing_written(out_dir)


def test_max_seq_len_too_long(tiny_ckpts, out_dir, capsys):
    code, _, err = _run(
        ["export", "--checkpoint", tiny_ckpts["dream"], "--max-seq-len", 4096, "-o", out_dir / "m.pte"], capsys
    )
    assert code == 1
    assert "max_seq_len 4096 exceeds the checkpoint's max_position_embeddings 1024" in err
    _assert_nothing_written(out_dir)


def test_unknown_option(tiny_ckpts, out_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["export", "--checkpoint", str(tiny_ckpts["sdar"]), "--max-seq-len", "64",
                  "--turbo", "-o", str(out_dir / "m.pte")])
    assert exc.value.code == 2
    assert "unrecognized arguments: --turbo" in capsys.readouterr().err
    _assert_nothing_written(out_dir)


def test_unknown_backend_value(tiny_ckpts, out_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["export", "--checkpoint", str(tiny_ckpts["sdar"]), "--max-seq-len", "64",
                  "--backend", "coreml", "-o", str(out_dir / "m.pte")])
    assert exc.value.code == 2
    assert "invalid choice: 'coreml'" in capsys.readouterr().err
    _assert_nothing_written(out_dir)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_cached_bidirectional_needs_logits_rows(family, tiny_ckpts, out_dir, capsys):
    # Contract 3 (Fast-dLLM's prefix/dual caches) selects logits rows: --logits all is refused.
    code, _, err = _run(
        ["export", "--checkpoint", tiny_ckpts[family], "--kv-cache", "--logits", "all", "--max-seq-len", 64,
         "-o", out_dir / "m.pte"],
        capsys,
    )
    assert code == 1
    assert f"a cached {family} program" in err and "--logits all" in err
    _assert_nothing_written(out_dir)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_cached_bidirectional_module_matches_uncached(family, tiny_ckpts):
    # Contract 3: a full pass equals the uncached module; a dual step over an unchanged canvas
    # equals the full pass's rows (every cached K/V is then current), and kv_end is checked.
    import torch

    from diffulex_export.models import load_model

    cached = load_model(tiny_ckpts[family], max_seq_len=64, kv_cache=True, logits_rows=True)
    plain = load_model(tiny_ckpts[family], max_seq_len=64)
    assert cached.meta["contract_version"] == 3 and cached.meta["cache_modes"] == 3
    tokens = torch.randint(4, 100, (1, 20), generator=torch.Generator().manual_seed(0))
    full = plain(tokens)
    got = cached(tokens, torch.tensor([0]), torch.arange(20), torch.tensor([20]))
    assert torch.equal(got, full)
    span = cached(tokens[:, 8:12], torch.tensor([8]), torch.arange(4), torch.tensor([20]))
    assert torch.allclose(span, full[:, 8:12], atol=1e-5)
    with pytest.raises(ValueError, match="kv_end"):
        cached(tokens[:, 8:12], torch.tensor([8]), torch.arange(4), torch.tensor([11]))


def test_quantize_needs_xnnpack(tiny_ckpts, out_dir, capsys):
    code, _, err = _run(
        ["export", "--checkpoint", tiny_ckpts["sdar"], "--max-seq-len", 64, "--backend", "portable",
         "--quantize", "int8", "-o", out_dir / "m.pte"],
        capsys,
    )
    assert code == 1 and "needs --backend xnnpack" in err
    _assert_nothing_written(out_dir)


def test_missing_tokenizer(tiny_ckpts, tmp_path, out_dir, capsys):
    ckpt = tmp_path / "notok"
    ckpt.mkdir()
    for name in ("config.json", "model.safetensors"):
        (ckpt / name).write_bytes((tiny_ckpts["sdar"] / name).read_bytes())
    code, _, err = _run(["export", "--checkpoint", ckpt, "--max-seq-len", 64, "-o", out_dir / "m.pte"], capsys)
    assert code == 1 and "has no tokenizer.json" in err and "--skip-tokenizer" in err
    _assert_nothing_written(out_dir)


def test_missing_output_directory(tiny_ckpts, tmp_path, capsys):
    code, _, err = _run(
        ["export", "--checkpoint", tiny_ckpts["sdar"], "--max-seq-len", 64, "-o", tmp_path / "nope" / "m.pte"], capsys
    )
    assert code == 1 and "output directory" in err and "does not exist" in err


def test_failure_mid_export_leaves_nothing(tiny_ckpts, out_dir, capsys, monkeypatch):
    import diffulex_export.export as ex

    def boom(model, backend="xnnpack", tokenizer=None, progress=None, spill_dir=None):
        # A payload already spilled when lowering fails: its directory goes too.
        (spill_dir / "payload-0.bin").write_bytes(b"weights")
        raise RuntimeError("lowering failed")

    monkeypatch.setattr(ex, "to_program", boom)
    with pytest.raises(RuntimeError, match="lowering failed"):
        cli.main(["export", "--checkpoint", str(tiny_ckpts["sdar"]), "--max-seq-len", "64", "-o", str(out_dir / "m.pte")])
    _assert_nothing_written(out_dir)


def test_failed_export_keeps_previous_file(tiny_ckpts, out_dir, capsys):
    previous = out_dir / "m.pte"
    previous.write_bytes(b"previous model")
    code, _, _ = _run(
        ["export", "--checkpoint", tiny_ckpts["sdar"], "--family", "dream", "--max-seq-len", 64, "-o", previous], capsys
    )
    assert code == 1
    assert previous.read_bytes() == b"previous model"
    assert [p.name for p in out_dir.iterdir()] == ["m.pte"]


def test_missing_checkpoint_directory(tmp_path, out_dir, capsys):
    code, _, err = _run(["export", "--checkpoint", tmp_path / "nothing", "--max-seq-len", 8, "-o", out_dir / "m.pte"], capsys)
    assert code == 1 and "checkpoint directory" in err and "does not exist" in err
    _assert_nothing_written(out_dir)


def test_embed_tokenizer_makes_one_file(tiny_ckpts, tmp_path, capsys):
    """--embed-tokenizer --skip-tokenizer: the .pte alone, holding the tokenizer files byte for byte
    as named data, still digest-checked (the named data is segment data, so inside the digest)."""
    from diffulex_export.export import read_embedded

    (tiny_ckpts["llada"] / "chat_template.jinja").write_text("{{ messages[0].content }}")
    out = tmp_path / "model.pte"
    code, stdout, stderr = _run(
        ["export", "--checkpoint", tiny_ckpts["llada"], "--max-seq-len", 64, "--backend", "portable",
         "--embed-tokenizer", "--skip-tokenizer", "-o", out], capsys
    )
    assert code == 0, stderr
    assert "tokenizer embedded" in stdout
    assert [p.name for p in tmp_path.iterdir()] == ["model.pte"]
    embedded = read_embedded(out)
    assert sorted(embedded) == ["diffulex/chat_template.jinja", "diffulex/tokenizer.json",
                                "diffulex/tokenizer_config.json"]
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert embedded[f"diffulex/{name}"] == (tiny_ckpts["llada"] / name).read_bytes()
    meta = read_metadata(out)
    assert meta["get_weights_digest"] == digest_words(weights_digest(out.read_bytes()))
    assert meta["get_tokenizer_digest"] == digest_words(tokenizer_digest(tiny_ckpts["llada"] / "tokenizer.json"))
    # A model without its tokenizer cannot embed it.
    (tiny_ckpts["llada"] / "chat_template.jinja").unlink()
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((tiny_ckpts["llada"] / "config.json").read_text())
    code, _, stderr = _run(["export", "--checkpoint", bare, "--max-seq-len", 64, "--embed-tokenizer",
                            "--skip-tokenizer", "-o", tmp_path / "x.pte"], capsys)
    assert code == 1 and "no tokenizer.json to embed" in stderr


def test_copied_tokenizer_files_get_normal_permissions(tiny_ckpts, out_dir, capsys):
    # Issue 16: the staged copies came from mkstemp (0600); the output must get open()'s mode.
    old = os.umask(0o022)
    try:
        code, _, err = _run(
            ["export", "--checkpoint", tiny_ckpts["llada"], "--max-seq-len", 16, "--backend", "portable",
             "-o", out_dir / "m.pte"],
            capsys,
        )
    finally:
        os.umask(old)
    assert code == 0, err
    for name in ("m.pte", "tokenizer.json"):
        assert (out_dir / name).stat().st_mode & 0o777 == 0o644, name
    # Issue 16: the stages are reported on stderr with their start times.
    for stage in ("loading", "tracing forward", "delegating to portable", "0 delegate blob(s) lowered", "writing"):
        assert stage in err, err


def test_sigterm_mid_export_leaves_nothing_behind(tiny_ckpts, out_dir):
    # Issue 16: an export ended by a signal removes its temporary files. The signal is sent once
    # a temporary file exists, i.e. while the export is under way.
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "diffulex_export", "export", "--checkpoint", str(tiny_ckpts["sdar"]),
         "--max-seq-len", "64", "-o", str(out_dir / "m.pte")],
        cwd=PY_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".tmp") for p in out_dir.iterdir()):
        assert proc.poll() is None, "export ended before it staged anything"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by signal" in err
    assert list(out_dir.iterdir()) == []
