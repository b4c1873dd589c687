"""The export's resource check refuses what cannot fit, with the numbers, before any weight is read."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from diffulex_export import preflight
from diffulex_export.errors import ExportError
from diffulex_export.models import model_shape

CKPT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "ckpt" / "sdar"


def test_estimates_grow_with_the_bytes_per_weight():
    shape = model_shape(CKPT)
    weights = sum(p.numel() for p in shape.parameters())
    (fp32, fp32_disk), (int8, int8_disk), (q4, q4_disk) = (preflight.estimate(shape, q) for q in ("none", "int8", "8da4w"))
    assert fp32_disk == 2 * 4.0 * weights and q4_disk < int8_disk < fp32_disk
    assert fp32 > 4 * weights and int8 > weights


def test_too_little_memory_is_refused_with_the_numbers_and_the_way_out(monkeypatch, tmp_path):
    monkeypatch.delenv("DIFFULEX_EXPORT_NO_PREFLIGHT", raising=False)
    monkeypatch.setattr(preflight, "_available_memory", lambda: 1e6)
    with pytest.raises(ExportError, match=r"needs about .* GB of memory and 0.0 GB is available. Quantize"):
        preflight.check_resources(model_shape(CKPT), "none", tmp_path)
    monkeypatch.setenv("DIFFULEX_EXPORT_NO_PREFLIGHT", "1")
    assert "not checked" in preflight.check_resources(model_shape(CKPT), "none", tmp_path)


def test_too_little_disk_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv("DIFFULEX_EXPORT_NO_PREFLIGHT", raising=False)
    monkeypatch.setattr(preflight, "_available_memory", lambda: 1e12)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10, 10, 0))
    with pytest.raises(ExportError, match=f"GB of disk in {tmp_path}"):
        preflight.check_resources(model_shape(CKPT), "int8", tmp_path)


def test_the_cli_reports_the_estimate(tmp_path, capsys):
    from diffulex_export.cli import main

    assert main(["export", "--checkpoint", str(CKPT), "--max-seq-len", "32", "--skip-tokenizer",
                 "-o", str(tmp_path / "m.pte")]) == 0
    captured = capsys.readouterr()
    assert "estimated peak memory" in captured.err
    assert ", peak memory " in captured.out.splitlines()[-1]
