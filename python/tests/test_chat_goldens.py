"""The committed chat-template goldens are what transformers' `apply_chat_template` renders today.

tests/fixtures/goldens/chat_templates.json is written by tools/make_chat_goldens.py from the published family
templates in tests/fixtures/chat_templates/. This re-runs the generator in memory (no files written) and fails if the
committed JSON is stale, e.g. after a template, a case or the pinned transformers version changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json

import pytest

from conftest import FAMILIES, FIXTURES, REPO

GOLDENS = FIXTURES / "goldens" / "chat_templates.json"
TEMPLATES = FIXTURES / "chat_templates"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("make_chat_goldens", REPO / "tools" / "make_chat_goldens.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fresh(gen):
    return gen.build()


def test_goldens_are_not_stale(gen, fresh):
    committed = GOLDENS.read_text(encoding="utf-8")
    assert committed == gen.dumps(fresh), "stale: rerun `.venv/bin/python tools/make_chat_goldens.py`"


def test_every_family_is_covered(fresh):
    import transformers

    assert fresh["transformers"] == transformers.__version__
    by_family = {f: [c for c in fresh["cases"] if c["family"] == f] for f in FAMILIES}
    for family, cases in by_family.items():
        assert (TEMPLATES / f"{family}.jinja").is_file()
        names = {c["name"] for c in cases}
        assert {"single_user", "system_user", "multi_turn_gen_prompt", "multi_turn_ends_assistant", "non_ascii",
                "special_token_lookalikes", "whitespace"} <= names, family
    sdar = {c["name"]: c for c in by_family["sdar"]}
    assert sdar["thinking_disabled"]["rendered"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "reasoning" not in sdar["think_inline_history_stripped"]["rendered"]
    # case names are unique per family, so the Rust side can address them
    assert len({(c["family"], c["name"]) for c in fresh["cases"]}) == len(fresh["cases"])


def test_templates_match_sources_md():
    """SOURCES.md records the sha256 of each template; the .jinja files are byte-exact copies."""
    sources = (TEMPLATES / "SOURCES.md").read_text(encoding="utf-8")
    for family in FAMILIES:
        digest = hashlib.sha256((TEMPLATES / f"{family}.jinja").read_bytes()).hexdigest()
        assert digest in sources, family


def test_json_is_valid_and_deterministic(gen, fresh):
    assert json.loads(gen.dumps(fresh)) == fresh
    assert gen.dumps(gen.build()) == gen.dumps(fresh)
