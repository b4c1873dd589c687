#!/usr/bin/env python3
"""Regenerate the tiny seeded test fixtures: checkpoints and .pte files.

    .venv/bin/python tools/make_fixtures.py            # everything
    .venv/bin/python tools/make_fixtures.py --only sdar_cached llada
    .venv/bin/python tools/make_fixtures.py --check    # rebuild in a temp dir, compare bytes

Writes tests/fixtures/ckpt/<family>/ (HF layout: config.json, generation_config.json,
model.safetensors, tokenizer.json, tokenizer_config.json) and
tests/fixtures/pte/<name>.pte plus tests/fixtures/pte/manifest.json, which records
for every .pte its checkpoint, export options, metadata and the operators left
outside the delegate (the kernels a runtime must provide); the Vulkan twins of five of
them in tests/fixtures/pte/vulkan/ (see VULKAN); and the LLM-custom-operator twins of
seven in tests/fixtures/pte/llm_ops/ (see LLM_OPS).
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

SEED = 0
MAX_SEQ_LEN = 256
FAMILIES = ("sdar", "fast_dllm_v2", "llada", "dream")
# name: (family, kv_cache, backend, quantize, logits)
# logits "all" = contract v1 (forward -> [1, T, V]); "rows" = contract v2 (a last input `rows`,
# forward -> [1, R, V]). Each *_rows fixture has a v1 twin with the same checkpoint and options.
PTES = {
    "sdar_cached": ("sdar", True, "xnnpack", "none", "all"),
    "sdar_uncached": ("sdar", False, "xnnpack", "none", "all"),
    "fast_dllm_v2_cached": ("fast_dllm_v2", True, "xnnpack", "none", "all"),
    "fast_dllm_v2_uncached": ("fast_dllm_v2", False, "xnnpack", "none", "all"),
    "llada": ("llada", False, "xnnpack", "none", "all"),
    "dream": ("dream", False, "xnnpack", "none", "all"),
    "sdar_cached_portable": ("sdar", True, "portable", "none", "all"),
    "sdar_cached_int8": ("sdar", True, "xnnpack", "int8", "all"),
    "sdar_cached_rows": ("sdar", True, "xnnpack", "none", "rows"),
    "fast_dllm_v2_cached_rows": ("fast_dllm_v2", True, "xnnpack", "none", "rows"),
    "llada_rows": ("llada", False, "xnnpack", "none", "rows"),
    "dream_rows": ("dream", False, "xnnpack", "none", "rows"),
    # sdar_cached_rows with the checkpoint's tokenizer files embedded (--embed-tokenizer): the
    # same program and weights plus named data, so it must decode as its twin does.
    "sdar_embedded": ("sdar", True, "xnnpack", "none", "rows"),
    # Contract v3: llada/dream with the K/V buffers of Fast-dLLM's prefix and dual caches
    # (forward takes kv_end last).
    "llada_cached": ("llada", True, "xnnpack", "none", "rows"),
    "dream_cached": ("dream", True, "xnnpack", "none", "rows"),
    # Contract 4: the tied fast_dllm_v2 checkpoint quantized, with no embedding table of its
    # own; the engine gathers each token's row from the lm_head's weights in the named data.
    "fast_dllm_v2_shared_int8": ("fast_dllm_v2", True, "xnnpack", "int8", "rows"),
    "fast_dllm_v2_shared_8da4w": ("fast_dllm_v2", True, "xnnpack", "8da4w", "rows"),
    # ... and in float32 (--shared-embedding): the rows are the lm_head's float32 weights.
    "fast_dllm_v2_shared_fp32": ("fast_dllm_v2", True, "xnnpack", "none", "rows"),
    # sdar_cached_rows with --max-logits-rows 4, SDAR's block: the leanest program, whose logits
    # output holds one block's rows. It must decode every case as its twin does.
    "sdar_rows_bounded": ("sdar", True, "xnnpack", "none", "rows"),
}
EMBED = {"sdar_embedded"}
# --max-logits-rows of the fixtures that set it (the others: min(MAX_SEQ_LEN, 256)).
MAX_LOGITS_ROWS = {"sdar_rows_bounded": 4}
SHARED = {"fast_dllm_v2_shared_int8", "fast_dllm_v2_shared_8da4w", "fast_dllm_v2_shared_fp32"}
# Vulkan twins (--backend vulkan, otherwise the options of the fixture of the same name), in
# tests/fixtures/pte/vulkan/ with a manifest of their own: ExecuTorch's Python runtime has no
# Vulkan delegate, so they are run only by the Rust tests on a runtime built with feature
# `vulkan` (tests/vulkan.rs), against their XNNPACK twins' goldens and logits.
VULKAN = ("llada", "dream", "llada_rows", "dream_rows", "fast_dllm_v2_uncached")
# --llm-ops twins (attention through llama::custom_sdpa / llama::update_cache, otherwise the
# options of the fixture of the same name), in tests/fixtures/pte/llm_ops/ with a manifest of
# their own. No prebuilt runtime has these operators: the Rust tests run them only on a runtime
# built with feature `llm-ops` (tests/llm_ops.rs), against their twins' goldens; the Python
# tests run them on the wheel's runtime with the operators' AOT library loaded.
LLM_OPS = (
    "sdar_cached",
    "sdar_cached_rows",
    "sdar_cached_int8",
    "fast_dllm_v2_cached_rows",
    "llada_rows",
    "dream_rows",
    "llada_cached",
)
TWIN_SETS = {"vulkan": VULKAN, "llm_ops": LLM_OPS}


def _operators(program) -> list:
    """Non-delegated operator names of the forward plan of an ExecuTorch program manager."""
    for plan in program.executorch_program.execution_plan:
        if plan.name == "forward":
            return sorted({op.name + (f".{op.overload}" if op.overload else "") for op in plan.operators})
    return []


def _delegates(program) -> list:
    for plan in program.executorch_program.execution_plan:
        if plan.name == "forward":
            return sorted({d.id for d in plan.delegates})
    return []


def _manifest_entry(
    name: str, model, program, out: Path, ckpt_root: Path, backend: str = "", llm_ops: bool = False
) -> dict:
    """The manifest record of one fixture.

    "logits" is written only for v2 ("rows") fixtures: an absent key means "all" (v1), which
    keeps the entries of the v1 fixtures exactly as they were before v2 existed.

    Example:
        >>> _manifest_entry("llada_rows", model, program, path, ckpt_root)["logits"]  # doctest: +SKIP
        'rows'
    """
    from diffulex_export.export import tokenizer_digest

    family, kv, own_backend, quant, logits = PTES[name]
    backend = backend or own_backend
    entry = {
        "checkpoint": f"tests/fixtures/ckpt/{family}",
        "family": family,
        "kv_cache": kv,
        "backend": backend,
        "quantize": quant,
    }
    if logits != "all":
        entry["logits"] = logits
    if llm_ops:
        entry["llm_ops"] = True
    if name in MAX_LOGITS_ROWS:
        entry["max_logits_rows"] = MAX_LOGITS_ROWS[name]
    entry.update({
        "max_seq_len": MAX_SEQ_LEN,
        "meta": model.meta,
        "delegates": _delegates(program),
        "operators": _operators(program),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        # What get_tokenizer_digest returns, as hex: the checkpoint's tokenizer.json vocabulary
        # (tests/tokenizer_identity.rs compares it with the Rust computation).
        "tokenizer_digest": tokenizer_digest(ckpt_root / family / "tokenizer.json").hex(),
    })
    return entry


def build(root: Path, only: list) -> None:
    from diffulex_export.tiny import write_checkpoint

    ckpt_root = root / "ckpt"
    pte_root = root / "pte"
    for family in FAMILIES:
        write_checkpoint(ckpt_root / family, family, seed=SEED)
    _export_all(pte_root, ckpt_root, [n for n in PTES if not only or n in only], "")
    _export_all(pte_root / "vulkan", ckpt_root, [n for n in VULKAN if not only or f"vulkan/{n}" in only], "vulkan")
    _export_all(
        pte_root / "llm_ops", ckpt_root, [n for n in LLM_OPS if not only or f"llm_ops/{n}" in only], "", llm_ops=True
    )


def _export_all(pte_root: Path, ckpt_root: Path, names: list, backend: str, llm_ops: bool = False) -> None:
    """Export `names` into pte_root and update pte_root/manifest.json; `backend` overrides PTES's,
    `llm_ops` exports with the LLM custom operators (`--llm-ops`)."""
    import torch

    import tempfile

    from diffulex_export.export import embedded_files, quantize_model, serialize_with_digest, to_program, write_atomic
    from diffulex_export.models import load_model
    from diffulex_export.models.llm_ops import use_llm_ops
    from diffulex_export.shared_embedding import check_stored, share_embedding

    if not names:
        return
    pte_root.mkdir(parents=True, exist_ok=True)
    manifest_path = pte_root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for name in names:
        family, kv, own_backend, quant, logits = PTES[name]
        print(f"exporting {name} ({backend or own_backend}) ...", flush=True)
        torch.manual_seed(SEED)
        model = load_model(
            ckpt_root / family,
            max_seq_len=MAX_SEQ_LEN,
            kv_cache=kv,
            logits_rows=logits == "rows",
            max_logits_rows=MAX_LOGITS_ROWS.get(name),
        )
        if llm_ops:
            use_llm_ops(model)
        quantize_model(model, quant)
        table = share_embedding(model) if name in SHARED else None
        # The digest of the checkpoint's tokenizer is recorded (get_tokenizer_digest), as
        # `diffulex-export export` does.
        # Through the CLI's lean lowering (weight payloads spilled to files and streamed back):
        # `--check` then shows it writes the same bytes as the stock pipeline did.
        with tempfile.TemporaryDirectory() as spill:
            program = to_program(
                model, backend or own_backend, tokenizer=ckpt_root / family / "tokenizer.json", spill_dir=Path(spill)
            )
            if table is not None:
                check_stored(table, set(program._named_data.pte_data))
            # ... and the digest of its weight segments (get_weights_digest), as the CLI does.
            embedded = embedded_files(ckpt_root / family) if name in EMBED else None
            out = write_atomic(serialize_with_digest(program, embedded), pte_root / f"{name}.pte")
        manifest[name] = _manifest_entry(name, model, program, out, ckpt_root, backend, llm_ops)
        if embedded:
            manifest[name]["embedded"] = sorted(embedded)
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only",
        nargs="*",
        default=[],
        help=f"subset of .pte names: {', '.join(PTES)}; vulkan/<name> for {', '.join(VULKAN)}; "
        f"llm_ops/<name> for {', '.join(LLM_OPS)}",
    )
    ap.add_argument("--check", action="store_true", help="rebuild into a temp dir and compare with the committed files")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures", help="fixtures root")
    args = ap.parse_args()

    def known(n: str) -> bool:
        kind, _, twin = n.partition("/")
        return n in PTES or twin in TWIN_SETS.get(kind, ())

    unknown = [n for n in args.only if not known(n)]
    if unknown:
        ap.error(f"unknown fixture(s) {unknown}; known: {', '.join(PTES)}")
    if not args.check:
        build(args.out, args.only)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), args.only)
        bad = []
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                rel = path.relative_to(tmp)
                if rel.name == "manifest.json" and args.only:
                    continue
                ref = args.out / rel
                if not ref.is_file() or not filecmp.cmp(path, ref, shallow=False):
                    bad.append(str(rel))
        if bad:
            print("differs from the committed fixtures: " + ", ".join(bad))
            return 1
        print("fixtures reproduce byte for byte")
    return 0


if __name__ == "__main__":
    sys.exit(main())
