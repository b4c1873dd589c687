"""LLaDA reference decoder (twin of src/runtime/sampler/models/llada.rs).

`cache` ("none", "prefix", "dual") follows Fast-dLLM v1 (NVlabs/Fast-dLLM `llada/generate.py`:
`generate`, `generate_with_prefix_cache`, `generate_with_dual_cache`) operation for operation:
each block's first step is a full forward that also writes every position's K/V; the block's
later steps run `x[:, start:]` against the cached prefix (prefix) or only `x[:, start:end]`
against the cached prefix and suffix (dual). The quota and threshold rules are the uncached
loop's. Deviation: the prefix loop's unused `add_gumbel_noise(logits)` draw is not made (it
only advanced torch's RNG; this decoder's stream is its own, docs/decoding.md).
"""

import math

from .common import Decoder
from .dist import F32Row, exp_f32, row_stats_f32, sort_desc, split_quota, top2_f32

DEFAULTS = dict(steps=None, block_length=None, temperature=0.0, cfg_scale=0.0, remasking="low_confidence",
                logits_eos_inf=False, confidence_eos_eot_inf=False, threshold=None, eos_id=None, eot_id=None,
                cache="none")

NEG_INF = float("-inf")


def generate(f, meta, prompt, max_new_tokens, sampler=None, seed=0, stop_ids=None, use_kv_cache=None):
    cfg = dict(DEFAULTS, **(sampler or {}))
    d = Decoder(f, meta, prompt, max_new_tokens, seed, stop_ids, use_kv_cache)
    n = max_new_tokens
    bl = cfg["block_length"] or n
    assert n % bl == 0
    nb = n // bl
    steps = cfg["steps"] or n
    if cfg["threshold"] is None:
        assert steps % nb == 0
    spb = max(steps // nb, 1)
    lp = d.lp
    d.grow_to(lp + n)
    vocab = int(meta["vocab_size"])
    eos_ids = list(meta["eos_ids"])
    eos = cfg["eos_id"] if cfg["eos_id"] is not None else (eos_ids[0] if eos_ids else None)
    eot = cfg["eot_id"] if cfg["eot_id"] is not None else (eos_ids[1] if len(eos_ids) > 1 else None)

    def idx(t):
        return t if t is not None and 0 <= t < vocab else None

    eos, eot = idx(eos), idx(eot)
    excl = [d.mask]
    if cfg["logits_eos_inf"] and eos is not None:
        excl.append(eos)
    conf_excl = list(excl)
    if cfg["confidence_eos_eot_inf"]:
        if cfg["temperature"] == 0.0 and eos is not None:
            conf_excl.append(eos)
        if eot is not None:
            conf_excl.append(eot)
    T, w = cfg["temperature"], cfg["cfg_scale"] + 1.0
    cache = cfg["cache"]
    assert cache in ("none", "prefix", "dual")
    assert cache == "none" or cfg["cfg_scale"] == 0.0, "Fast-dLLM's cached loops have no guidance"
    canvas_end = lp + n
    for b in range(nb):
        s, e = lp + b * bl, lp + b * bl + bl
        quota = split_quota(len(d.masked_in(s, e)), spb)
        i = 0
        while True:
            positions = d.masked_in(s, e)
            if not positions:
                break
            if i == 0 or cache == "none":
                rows = d.fwd(d.canvas, d.full_pos)
            elif cache == "prefix":
                rows = d.fwd.span(d.canvas[s:], s, canvas_end)
            else:
                rows = d.fwd.span(d.canvas[s:e], s, canvas_end)
            if cfg["cfg_scale"] > 0.0:
                cond = [rows.row(p) for p in positions]
                un_tokens = [d.mask] * lp + d.canvas[lp:]
                un_rows = d.fwd(un_tokens, d.full_pos)
                data = []
                for k, p in enumerate(positions):
                    un = un_rows.row(p)
                    data.append([u + w * (c - u) for c, u in zip(cond[k], un)])
            else:
                data = [rows.row(p) for p in positions]
            cands = [_propose(cfg, row, excl, conf_excl, d.rng) for row in data]
            order = list(range(len(positions)))
            if cfg["threshold"] is not None:
                best = 0
                for k, c in enumerate(cands):
                    if c[1] > cands[best][1]:
                        best = k
                order = [k for k in order if k == best or cands[k][1] >= cfg["threshold"]]
            else:
                q = min(quota[i] if i < len(quota) else len(positions), len(positions))
                order = sorted(sort_desc(order, lambda k: cands[k][1])[:q])
            d.commit([(positions[k], cands[k][0]) for k in order])
            i += 1
        if d.stop_reached():
            return d.output()
    return d.output()


def _propose(cfg, row, excl, conf_excl, rng):
    """One fused pass (twin of LLaDASampler::propose): proposal + online softmax normaliser."""
    T = cfg["temperature"]
    sampling = T > 0.0
    want_conf = cfg["remasking"] != "random"

    def ok(i, x, ex):
        return math.isfinite(x) and i not in ex

    if not sampling and isinstance(row, F32Row):
        return _propose_greedy_f32(row.np, excl, conf_excl, want_conf, rng)

    best, arg = NEG_INF, None
    m, s = NEG_INF, 0.0
    for i, x in enumerate(row):
        u = rng.next_f64() if sampling else 0.0
        if not ok(i, x, excl):
            continue
        if sampling:
            gn = math.inf if u == 0.0 else math.log(-math.log(u))
            score = x - T * gn
        else:
            score = x
        if score > best:
            best, arg = score, i
        if want_conf and i not in conf_excl:
            if x > m:
                s = s * math.exp(m - x) + 1.0
                m = x
            else:
                s += math.exp(x - m)
    if arg is None:
        b = NEG_INF
        for i, x in enumerate(row):
            if ok(i, x, excl) and x > b:
                b, arg = x, i
    if arg is None:
        raise ValueError("no valid token")
    token = arg
    if not want_conf:
        conf = rng.next_f64()
    elif token in conf_excl or s == 0.0:
        conf = 0.0
    else:
        conf = math.exp(row[token] - m) / s
    return token, conf


def _propose_greedy_f32(x, excl, conf_excl, want_conf, rng):
    """Twin of LLaDASampler::propose_greedy_f32: argmax over `excl`, the token's probability
    under the float32-statistics softmax over `conf_excl`."""
    st = row_stats_f32(x, conf_excl) if want_conf else None
    if st is not None and list(excl) == list(conf_excl):
        token = st[1]
    else:
        token = top2_f32(x, excl)[1]
    if token is None:
        raise ValueError("no valid token")
    if st is None:
        conf = rng.next_f64()
    elif token in conf_excl or st[3] == 0.0:
        conf = 0.0
    else:
        conf = float(exp_f32(x[token] - st[0])) / st[3]
    return token, conf
