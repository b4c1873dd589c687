#!/usr/bin/env python3
"""Goldens for the bundled default model (models/default/model.pte) on its 500 held-out problems.

For every problem in training/default_eval.jsonl and each decoding mode below, runs the Python
SDAR reference decoder (python/diffulex_export/reference) over the .pte through ExecuTorch's
Python runtime, and writes tests/fixtures/goldens/default_model.json with the prompt ids, the
expected tokens, and the exact-match accuracy against the answer key. tests/default_model.rs
checks that the Rust engine reproduces every problem's tokens and the accuracy targets.

Modes:
  greedy_static  -- low_confidence_static, one token per step, temperature 0 (plain greedy);
  dynamic_0.9    -- low_confidence_dynamic, threshold 0.9, temperature 0 (parallel decoding).

Usage: python tools/make_default_goldens.py [--check]
"""

import argparse
import importlib.util
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from diffulex_export import reference  # noqa: E402

MODEL = os.path.join(ROOT, "models", "default", "model.pte")
EVAL = os.path.join(ROOT, "training", "default_eval.jsonl")
OUT = os.path.join(ROOT, "tests", "fixtures", "goldens", "default_model.json")
MAX_NEW_TOKENS = 8
MODES = {
    "greedy_static": {"strategy": "low_confidence_static"},
    "dynamic_0.9": {"strategy": "low_confidence_dynamic", "threshold": 0.9},
}


def _make_goldens_module():
    spec = importlib.util.spec_from_file_location("make_goldens", os.path.join(ROOT, "tools", "make_goldens.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed golden differs")
    a = ap.parse_args()

    from tokenizers import Tokenizer

    mg = _make_goldens_module()
    meta = mg.pte_meta(MODEL)
    tok = Tokenizer.from_file(os.path.join(ROOT, "models", "default", "tokenizer.json"))
    forward = mg.PteForward(MODEL, meta["use_kv_cache"])
    with open(EVAL) as fh:
        problems = [json.loads(line) for line in fh if line.strip()]

    doc = {"model": "models/default/model.pte", "max_new_tokens": MAX_NEW_TOKENS, "meta": meta,
           "modes": MODES, "problems": [], "summary": {}}
    for mode in MODES:
        doc["summary"][mode] = {"correct": 0, "forwards": 0}
    for p in problems:
        prompt = tok.encode(p["prompt"], add_special_tokens=False).ids
        entry = {"prompt": p["prompt"], "answer": p["answer"], "prompt_ids": prompt, "expected": {}}
        for mode, sampler in MODES.items():
            res = reference.generate(forward, meta, prompt, MAX_NEW_TOKENS, sampler, 0, None, True)
            text = tok.decode(res["tokens"], skip_special_tokens=True)
            entry["expected"][mode] = res["tokens"]
            s = doc["summary"][mode]
            s["correct"] += int(text == p["answer"])
            s["forwards"] += int(res["forwards"])
        doc["problems"].append(entry)
    for mode, s in doc["summary"].items():
        s["accuracy"] = s["correct"] / len(problems)
        print(f"{mode}: {s['correct']}/{len(problems)} exact match, {s['forwards']} forwards")

    if a.check:
        with open(OUT) as fh:
            if json.load(fh) != json.loads(json.dumps(doc)):
                print(f"STALE {os.path.relpath(OUT, ROOT)}")
                sys.exit(1)
        print(f"up to date {os.path.relpath(OUT, ROOT)}")
        return
    with open(OUT, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
