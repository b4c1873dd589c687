"""Shared test setup: import path, repo paths, tiny checkpoints written per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PY_ROOT = Path(__file__).resolve().parents[1]
REPO = PY_ROOT.parent
if str(PY_ROOT) not in sys.path:
    sys.path.insert(0, str(PY_ROOT))

FIXTURES = REPO / "tests" / "fixtures"
FAMILIES = ("sdar", "fast_dllm_v2", "llada", "dream")


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory):
    """Freshly written tiny checkpoints, one per family (seed 1: not the committed fixtures)."""
    from diffulex_export.tiny import write_checkpoint

    root = tmp_path_factory.mktemp("ckpt")
    return {f: write_checkpoint(root / f, f, seed=1) for f in FAMILIES}
