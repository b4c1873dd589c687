#!/usr/bin/env python3
"""Write decoding goldens for tests/engine_parity.rs.

For every fixture, runs the reference decoders (python/diffulex_export/reference) for every
mode the engine offers, greedy and seeded sampling, on fixed prompts, and writes
tests/fixtures/goldens/<fixture>.json with the prompt, config, expected tokens and stop reason.

Fixtures:
  * hash_<family>: the synthetic HashModel (twin of src/runtime/hash_model.rs), always written;
    it needs no weights and covers stop tokens, ties and the KV-cache contract.
  * every tests/fixtures/pte/*.pte: the forward is the .pte itself run by ExecuTorch's Python
    runtime (same kernels as the Rust engine). For greedy cases the tokens are also recomputed
    with the PyTorch module (diffulex_export.models.load_model on tests/fixtures/ckpt/<family>)
    and mismatches are reported (and fail the run unless --allow-torch-mismatch).

Usage: python tools/make_goldens.py [--only NAME] [--skip-hash] [--skip-pte] [--allow-torch-mismatch]
                                    [--check] [--pte-dir DIR] [--ckpt-dir DIR] [--out DIR]
--check recomputes everything and fails if a committed golden differs (nothing is written).
--out writes the goldens to another directory (e.g. a temp dir, to compare a v2 "logits rows"
fixture's goldens with its v1 twin's without touching the committed ones).
Contract v2 programs are run with rows = arange(T), i.e. they see the v1 logits.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from diffulex_export import reference  # noqa: E402
from diffulex_export.reference import HashModel  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "goldens")
FAMILY_NAMES = {0: "sdar", 1: "fast_dllm_v2", 2: "llada", 3: "dream"}


def prompts_for(meta):
    """Fixed prompts: short, block-aligned and non-aligned lengths (ids avoid mask/eos)."""
    v, mask, eos = int(meta["vocab_size"]), int(meta["mask_token_id"]), set(meta["eos_ids"])
    bs = int(meta["block_size"]) or 8

    def mk(n, salt):
        out, x = [], salt
        while len(out) < n:
            x = (x * 1103515245 + 12345) % (1 << 31)
            t = 4 + x % (v - 8)
            if t != mask and t not in eos:
                out.append(t)
        return out

    lens = sorted({1, 3, bs, bs + 3, 2 * bs})
    return {n: mk(n, 17 + n) for n in lens}


def cases_for(meta):
    fam = meta["family"]
    bs = int(meta["block_size"])
    cached = bool(meta["use_kv_cache"])
    P = prompts_for(meta)
    lens = sorted(P)
    out = []

    def add(name, prompt_len, n, sampler, seed=0, kv=(True, False), stop_ids=None):
        for use_kv in kv:
            if use_kv and not cached:
                continue
            out.append(dict(name=f"{name}/p{prompt_len}" + ("/kv" if use_kv else "/nokv"),
                            prompt=P[prompt_len], max_new_tokens=n, seed=seed, stop_ids=stop_ids,
                            use_kv_cache=use_kv, sampler=dict(sampler)))

    if fam == "sdar":
        n = 4 * bs + 2
        for st in ("low_confidence_dynamic", "low_confidence_static", "sequential", "entropy_bounded"):
            for pl in (lens[1], lens[3]):
                add(f"{st}/greedy", pl, n, dict(strategy=st))
                add(f"{st}/t1", pl, n, dict(strategy=st, temperature=1.0), seed=11)
            add(f"{st}/t0.8k20p0.9", lens[2], n, dict(strategy=st, temperature=0.8, top_k=20, top_p=0.9), seed=5)
        add("dynamic/thr0.3/steps_half", lens[0], n, dict(threshold=0.3, denoising_steps=max(bs // 2, 1)))
        add("dynamic/thr0.3/steps_half/t1", lens[4], n, dict(threshold=0.3, denoising_steps=max(bs // 2, 1),
                                                             temperature=1.0), seed=3)
        add("static/steps1", lens[1], n, dict(strategy="low_confidence_static", denoising_steps=1))
        add("entropy/eb2", lens[1], n, dict(strategy="entropy_bounded", eb_threshold=2.0), seed=2)
        add("no_stop", lens[1], n, dict(), stop_ids=[])
    elif fam == "fast_dllm_v2":
        n = 3 * bs + 5
        for pl in lens:
            add("thr0.95/greedy", pl, n, dict())
        for pl in (lens[1], lens[2]):
            add("thr0.5/greedy", pl, n, dict(threshold=0.5))
            add("thr1/greedy", pl, n, dict(threshold=1.0))
            add("thr0.9/t1p0.95", pl, n, dict(threshold=0.9, temperature=1.0), seed=7)
            add("thr0.5/t0.7nop", pl, n, dict(threshold=0.5, temperature=0.7, top_p=None), seed=8)
        add("no_stop", lens[1], n, dict(threshold=0.5), stop_ids=[])
        for pl in (lens[1], lens[2]):
            for quota in (1, 2, 4):
                add(f"quota{quota}/greedy", pl, n, dict(threshold=1.0, min_tokens_per_step=quota))
        add("quota3/thr0.5/t1", lens[2], n, dict(threshold=0.5, temperature=1.0, min_tokens_per_step=3), seed=7)
        if "cache_modes" in meta:
            # The sub-block cache (contract v3, official `use_block_cache`), next to the same
            # settings without it above.
            for pl in lens:
                add("sub_block_cache/thr0.95/greedy", pl, n, dict(sub_block_cache=True), kv=(True,))
            for pl in (lens[1], lens[2]):
                for quota in (1, 2, 4):
                    add(f"sub_block_cache/quota{quota}/greedy", pl, n,
                        dict(sub_block_cache=True, threshold=1.0, min_tokens_per_step=quota), kv=(True,))
                add("sub_block_cache/thr0.9/t1p0.95", pl, n, dict(sub_block_cache=True, threshold=0.9,
                                                                  temperature=1.0), seed=7, kv=(True,))
            add("sub_block_cache/no_stop", lens[1], n, dict(sub_block_cache=True, threshold=0.5), stop_ids=[],
                kv=(True,))
    elif fam == "llada":
        n = 24
        for pl in (lens[0], lens[2]):
            add("lowconf/greedy/steps24", pl, n, dict())
            add("lowconf/greedy/bl8/steps12", pl, n, dict(block_length=8, steps=12))
            add("lowconf/t1/bl8", pl, n, dict(block_length=8, steps=24, temperature=1.0), seed=4)
            add("random/greedy/bl8", pl, n, dict(block_length=8, steps=12, remasking="random"), seed=6)
            add("random/t0.5", pl, n, dict(steps=12, remasking="random", temperature=0.5), seed=6)
            add("cfg1/greedy/bl8", pl, n, dict(block_length=8, steps=12, cfg_scale=1.0))
            add("logits_eos_inf", pl, n, dict(block_length=12, steps=12, logits_eos_inf=True))
            add("conf_eos_eot_inf/greedy", pl, n, dict(block_length=8, steps=24, confidence_eos_eot_inf=True))
            add("conf_eos_eot_inf/t1", pl, n, dict(block_length=8, steps=24, confidence_eos_eot_inf=True,
                                                    temperature=1.0), seed=9)
            add("threshold0.9/bl8", pl, n, dict(block_length=8, threshold=0.9))
            add("threshold0.3/t1/bl8", pl, n, dict(block_length=8, threshold=0.3, temperature=1.0), seed=10)
        add("no_stop", lens[1], n, dict(block_length=8, steps=12), stop_ids=[])
        if "cache_modes" in meta:
            # Fast-dLLM v1's cached loops (contract v3), next to the same settings uncached.
            for pl in (lens[0], lens[2]):
                for cache in ("none", "prefix", "dual"):
                    c = dict(cache=cache, block_length=8)
                    add(f"{cache}/greedy/bl8/steps24", pl, n, dict(c, steps=24), kv=(True,))
                    add(f"{cache}/greedy/bl8/steps12", pl, n, dict(c, steps=12), kv=(True,))
                    add(f"{cache}/threshold0.9/bl8", pl, n, dict(c, threshold=0.9), kv=(True,))
                    add(f"{cache}/threshold0.3/t1/bl8", pl, n, dict(c, threshold=0.3, temperature=1.0), seed=10,
                        kv=(True,))
                    add(f"{cache}/random/bl8/steps12", pl, n, dict(c, steps=12, remasking="random"), seed=6,
                        kv=(True,))
                add("dual/greedy/one_block", pl, n, dict(cache="dual", steps=24), kv=(True,))
            add("prefix/no_stop", lens[1], n, dict(cache="prefix", block_length=8, steps=12), stop_ids=[],
                kv=(True,))
    elif fam == "dream":
        n = 20
        for pl in (lens[0], lens[2]):
            for alg in ("origin", "maskgit_plus", "topk_margin", "entropy"):
                add(f"{alg}/greedy", pl, n, dict(alg=alg), seed=1)
                add(f"{alg}/t0.2p0.95", pl, n, dict(alg=alg, temperature=0.2, top_p=0.95), seed=12)
            add("entropy/t1k10/steps10", pl, n, dict(alg="entropy", temperature=1.0, top_k=10, steps=10), seed=13)
            add("maskgit/algtemp0.5", pl, n, dict(alg="maskgit_plus", alg_temp=0.5), seed=14)
            add("margin/greedy/p0.5/steps7/eps0.05", pl, n, dict(alg="topk_margin", top_p=0.5, steps=7, eps=0.05))
        add("no_stop", lens[1], n, dict(alg="entropy"), stop_ids=[])
        if "cache_modes" in meta:
            # Fast-dLLM v1's Dream block loop, cache none / prefix / dual (contract v3).
            n = 24
            for pl in (lens[0], lens[2]):
                for cache in ("none", "prefix", "dual"):
                    c = dict(cache=cache, block_length=8)
                    add(f"{cache}/entropy/greedy/bl8/steps24", pl, n, dict(c, steps=24), kv=(True,))
                    add(f"{cache}/threshold0.9/bl8", pl, n, dict(c, threshold=0.9), kv=(True,))
                    add(f"{cache}/threshold0.5/t0.5p0.95/bl8", pl, n,
                        dict(c, threshold=0.5, temperature=0.5, top_p=0.95), seed=15, kv=(True,))
                    add(f"{cache}/maskgit/bl8/steps12", pl, n, dict(c, alg="maskgit_plus", steps=12), kv=(True,))
                    add(f"{cache}/margin/algtemp0.5/bl8", pl, n, dict(c, alg="topk_margin", alg_temp=0.5, steps=24),
                        seed=16, kv=(True,))
                    add(f"{cache}/entropy/steps_per_block1/bl8", pl, n, dict(c, steps=3), kv=(True,))
            add("dual/default_block", lens[1], 64, dict(cache="dual"), kv=(True,))
            add("prefix/no_stop", lens[1], n, dict(cache="prefix", block_length=8), stop_ids=[], kv=(True,))
    return out


def run_cases(f_factory, meta, cases, label):
    t0 = time.time()
    for c in cases:
        f = f_factory()
        res = reference.generate(f, meta, c["prompt"], c["max_new_tokens"], c["sampler"], c["seed"],
                                 c["stop_ids"], c["use_kv_cache"])
        c["expected"] = dict(tokens=res["tokens"], stop_reason=res["stop_reason"], stop_token=res["stop_token"])
    print(f"{label}: {len(cases)} cases in {time.time() - t0:.1f}s", flush=True)


def check_cache_consistency(cases, label):
    """Greedy block-causal cases: the KV-cache path must give the uncached path's tokens."""
    by = {}
    for c in cases:
        base = c["name"].rsplit("/", 1)[0]
        by.setdefault(base, {})[c["use_kv_cache"]] = c
    bad = [b for b, d in by.items() if len(d) == 2 and d[True]["expected"] != d[False]["expected"]
           and d[True]["sampler"].get("temperature", 0.0) == 0.0]
    if bad:
        print(f"WARNING {label}: cached != uncached for greedy cases: {bad}", flush=True)
    return bad


HASH_METAS = {
    "sdar": dict(family="sdar", max_seq_len=96, vocab_size=48, mask_token_id=47, eos_ids=[2], block_size=4,
                 sub_block_size=0, use_kv_cache=True, shift_logits=False, pad_id=0),
    "fast_dllm_v2": dict(family="fast_dllm_v2", max_seq_len=128, vocab_size=48, mask_token_id=47, eos_ids=[2],
                         block_size=16, sub_block_size=4, use_kv_cache=True, shift_logits=True, pad_id=0),
    "llada": dict(family="llada", max_seq_len=64, vocab_size=48, mask_token_id=47, eos_ids=[2, 3], block_size=0,
                  sub_block_size=0, use_kv_cache=False, shift_logits=False, pad_id=0),
    "dream": dict(family="dream", max_seq_len=64, vocab_size=48, mask_token_id=47, eos_ids=[2], block_size=0,
                  sub_block_size=0, use_kv_cache=False, shift_logits=True, pad_id=0),
}


CHECK = {"enabled": False, "stale": []}
# Where write() puts goldens (--out): tests/fixtures/goldens unless told otherwise.
OUT_DIR = {"path": OUT}


def write(name, doc):
    path = os.path.join(OUT_DIR["path"], f"{name}.json")
    if CHECK["enabled"]:
        with open(path) as fh:
            old = json.load(fh)
        if old != json.loads(json.dumps(doc)):
            CHECK["stale"].append(name)
            print(f"STALE {os.path.relpath(path, ROOT)}", flush=True)
        else:
            print(f"up to date {os.path.relpath(path, ROOT)}", flush=True)
        return
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)}", flush=True)


def make_hash(only):
    for fam, meta in HASH_METAS.items():
        name = f"hash_{fam}"
        if only and only != name:
            continue
        seed = 1234
        cases = cases_for(meta)
        run_cases(lambda: HashModel(meta, seed), meta, cases, name)
        check_cache_consistency(cases, name)
        write(name, dict(fixture=name, source="hash_model", hash_seed=seed, meta=meta, cases=cases))


class PteForward:
    """The .pte's `forward` through ExecuTorch's Python runtime (fresh program = fresh KV cache).

    Handles both contracts: a v2 ("logits rows") program gets `rows` as its last input,
    by default every row (arange(T)), so the result is the v1 [1, T, V] either way.
    `f(tokens, input_pos, rows=r)` asks a v2 program for rows r only ([1, R, V]).

    Example:
        >>> f = PteForward("tests/fixtures/pte/llada_rows.pte", cached=False)  # doctest: +SKIP
        >>> f(torch.zeros(1, 5, dtype=torch.long)).shape, f.contract_version  # doctest: +SKIP
        (torch.Size([1, 5, 512]), 2)
    """

    def __init__(self, path, cached):
        from diffulex_export.export import runtime

        self.program = runtime().load_program(path)
        self.method = self.program.load_method("forward")
        self.cached = cached
        self.contract_version = int(self.program.load_method("get_contract_version").execute([])[0])
        self.takes_kv_end = prog_has(self.program, "get_cache_modes")
        # The upper bound of `rows` (contract 2 and later: input 1 + cached), the most rows of
        # logits one call returns.
        meta = self.program.metadata("forward")
        self.max_rows = meta.input_tensor_meta(1 + int(cached)).sizes()[0] if self.contract_version >= 2 else None
        # Contract 4: the program takes embeddings, gathered here from the lm_head's bytes in
        # the file's named data (shared_embedding.PteTable, independent of the Rust gather).
        self.table = None
        if prog_has(self.program, "get_embedding_layout"):
            from diffulex_export.shared_embedding import PteTable

            self.table = PteTable(path)

    def __call__(self, tokens, input_pos=None, rows=None, kv_end=None):
        import torch

        if self.contract_version >= 2:
            if rows is None:
                rows = torch.arange(tokens.shape[1], dtype=torch.long)
            if rows.numel() > self.max_rows:
                # More rows than the program returns (--max-logits-rows): the same call once per
                # slice of rows. A cached call rewrites the same K/V each time, so the slices see
                # the state one call would.
                parts = [self(tokens, input_pos, rows[i : i + self.max_rows], kv_end)
                         for i in range(0, rows.numel(), self.max_rows)]
                return torch.cat(parts, dim=1)
        args = [tokens if self.table is None else self.table.embed(tokens)]
        if self.cached:
            args.append(input_pos if input_pos is not None else torch.zeros(1, dtype=torch.long))
        if self.contract_version >= 2:
            args.append(rows)
        elif rows is not None:
            raise ValueError("rows given to a contract v1 program (it always returns every row)")
        if self.takes_kv_end:
            # v3 (cached llada/dream/fast_dllm_v2): without kv_end, a full pass over [0, pos + T).
            args.append(kv_end if kv_end is not None else args[1] + tokens.shape[1])
        elif kv_end is not None:
            raise ValueError("kv_end given to a program without a bidirectional cache (contract < 3)")
        return self.method.execute(args)[0]


def prog_has(prog, name):
    return name in prog.method_names


def pte_meta(path):
    from diffulex_export.export import runtime

    prog = runtime().load_program(path)

    def const(name):
        out = prog.load_method(name).execute([])
        vals = [o.item() if hasattr(o, "item") else o for o in out]
        return vals

    meta = dict(
        family=FAMILY_NAMES[int(const("get_family_id")[0])],
        max_seq_len=int(const("get_max_seq_len")[0]),
        vocab_size=int(const("get_vocab_size")[0]),
        mask_token_id=int(const("get_mask_token_id")[0]),
        eos_ids=[int(x) for x in const("get_eos_ids")],
        block_size=int(const("get_block_size")[0]),
        sub_block_size=int(const("get_sub_block_size")[0]),
        use_kv_cache=bool(const("use_kv_cache")[0]),
        # Which caches the forward supports (contract v3): bit 0 prefix, bit 1 dual.
        **({"cache_modes": int(const("get_cache_modes")[0])} if prog_has(prog, "get_cache_modes") else {}),
        shift_logits=bool(const("shift_logits")[0]),
        pad_id=int(const("get_pad_id")[0]),
        # Contract 4 only: [bits, group, scale dtype] of the table the engine gathers.
        **({"embedding_layout": [int(v) for v in const("get_embedding_layout")]}
           if prog_has(prog, "get_embedding_layout") else {}),
    )
    return meta


def torch_forward_factory(family, meta, ckpt_root, quantize="none"):
    """PyTorch module with the same weights, or None when unavailable.

    `quantize` (int8 only: 8da4w's XNNPACK kernels round the scales to bfloat16, the eager
    module does not) quantizes it as the fixture was; a contract-4 fixture's module then reads
    its embeddings from the lm_head (shared_embedding.py), gathered in PyTorch."""
    ckpt = os.path.join(ckpt_root, family)
    if not os.path.isdir(ckpt):
        return None
    try:
        from diffulex_export.models import load_model
    except Exception as e:  # export package not present
        print(f"  (no torch cross-check: {e})")
        return None

    import torch

    # One module per fixture: a cached module's stale KV entries are never read (contract), so
    # reusing it across cases is exact and avoids reloading the checkpoint for every case.
    if "cache_modes" in meta:
        # The contract-v3 module (rows + kv_end), as the fixture was exported.
        m = load_model(ckpt, family=family, max_seq_len=meta["max_seq_len"], kv_cache=True, logits_rows=True)
    else:
        m = load_model(ckpt, family=family, max_seq_len=meta["max_seq_len"], kv_cache=meta["use_kv_cache"])
    if quantize != "none":
        from diffulex_export.quantize import quantize_model

        quantize_model(m, quantize)
    if "embedding_layout" in meta:
        from diffulex_export.shared_embedding import share_embedding

        share_embedding(m)
    m.eval()

    def make():
        def f(tokens, input_pos=None, kv_end=None):
            with torch.no_grad():
                if meta["use_kv_cache"] and input_pos is None:
                    input_pos = torch.zeros(1, dtype=torch.long)
                if "cache_modes" in meta:
                    end = kv_end if kv_end is not None else input_pos + tokens.shape[1]
                    return m(m.input_for(tokens), input_pos, torch.arange(tokens.shape[1]), end)
                return m(tokens, input_pos)

        return f

    return make


def make_pte(only, allow_mismatch, pdir, ckpt_root):
    if not os.path.isdir(pdir):
        print("no tests/fixtures/pte; only hash goldens written")
        return 0
    mismatches = 0
    manifest = {}
    if os.path.exists(os.path.join(pdir, "manifest.json")):
        with open(os.path.join(pdir, "manifest.json")) as fh:
            manifest = json.load(fh)
    for fn in sorted(os.listdir(pdir)):
        if not fn.endswith(".pte"):
            continue
        name = fn[:-4]
        if only and only != name:
            continue
        path = os.path.join(pdir, fn)
        meta = pte_meta(path)
        cases = cases_for(meta)
        run_cases(lambda: PteForward(path, meta["use_kv_cache"]), meta, cases, name)
        bad = check_cache_consistency(cases, name)
        mismatches += len(bad)
        quant = manifest.get(name, {}).get("quantize", "none")
        # A quantized .pte legitimately differs from the float PyTorch module; a contract-4
        # int8 one is checked against the module quantized the same way (its logits agree to
        # about 1e-6, python/tests/test_shared_embedding.py).
        checked = quant == "none" or (quant == "int8" and "embedding_layout" in meta)
        tf = torch_forward_factory(meta["family"], meta, ckpt_root, quant) if checked else None
        torch_report = [] if checked else [f"skipped: quantized ({quant})"]
        if tf is not None:
            for c in cases:
                greedy = c["sampler"].get("temperature", 0.0) == 0.0 and c["sampler"].get("remasking") != "random"
                if not greedy or c["sampler"].get("alg") == "origin" or c["sampler"].get("alg_temp"):
                    continue
                res = reference.generate(tf(), meta, c["prompt"], c["max_new_tokens"], c["sampler"], c["seed"],
                                         c["stop_ids"], c["use_kv_cache"])
                if res["tokens"] != c["expected"]["tokens"]:
                    torch_report.append(c["name"])
            print(f"  torch cross-check: {len(torch_report)} greedy mismatches {torch_report[:8]}", flush=True)
            mismatches += 0 if allow_mismatch else len(torch_report)
        twin = name[: -len("_rows")] if name.endswith("_rows") else None
        if twin and os.path.exists(os.path.join(pdir, f"{twin}.pte")):
            # A contract-2 twin has no golden of its own: it must decode exactly its contract-1
            # twin's cases (the Rust test engine_parity.rs::pte_*_rows_matches_reference reads
            # the twin's golden too).
            bad = twin_differences(twin, cases)
            print(f"  same cases as {twin}: {'yes' if not bad else bad[:8]}", flush=True)
            mismatches += len(bad)
            if not set(c["name"] for c in cases) - twin_case_names(twin):
                continue
            # A contract-3 twin (fast_dllm_v2_cached_rows) also has cases its twin cannot run
            # (the sub-block cache): it gets a golden of its own with every case.
        write(name, dict(fixture=name, source="pte", pte=f"tests/fixtures/pte/{fn}", meta=meta, cases=cases,
                         torch_greedy_mismatches=torch_report))
    return mismatches


def twin_expected(twin):
    """Expected output by case name in the twin's golden (as written by this run, or committed)."""
    with open(os.path.join(OUT_DIR["path"], f"{twin}.json")) as fh:
        return {c["name"]: c["expected"] for c in json.load(fh)["cases"]}


def twin_case_names(twin):
    """The case names of the twin's golden."""
    return set(twin_expected(twin))


def twin_differences(twin, cases):
    """Names of the cases the twin's golden also has whose expected output differs from it."""
    want = twin_expected(twin)
    return [c["name"] for c in cases if c["name"] in want and want[c["name"]] != json.loads(json.dumps(c["expected"]))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only")
    ap.add_argument("--skip-hash", action="store_true")
    ap.add_argument("--skip-pte", action="store_true")
    ap.add_argument("--allow-torch-mismatch", action="store_true")
    ap.add_argument("--check", action="store_true", help="compare with the committed goldens, write nothing")
    ap.add_argument("--pte-dir", default=os.path.join(ROOT, "tests", "fixtures", "pte"))
    ap.add_argument("--ckpt-dir", default=os.path.join(ROOT, "tests", "fixtures", "ckpt"))
    ap.add_argument("--out", default=OUT, help="directory the goldens are written to (default: %(default)s)")
    a = ap.parse_args()
    OUT_DIR["path"] = a.out
    os.makedirs(a.out, exist_ok=True)
    CHECK["enabled"] = a.check
    if not a.skip_hash:
        make_hash(a.only)
    bad = 0 if a.skip_pte else make_pte(a.only, a.allow_torch_mismatch, a.pte_dir, a.ckpt_dir)
    if bad or CHECK["stale"]:
        print(f"FAILED: {bad} mismatches, stale goldens: {CHECK['stale']}")
        sys.exit(1)


if __name__ == "__main__":
    main()
