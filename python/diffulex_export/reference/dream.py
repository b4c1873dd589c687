"""Dream reference decoder (twin of src/runtime/sampler/models/dream.rs)."""

import math

import numpy as np

from .common import Decoder
from .dist import MARGIN, NEG_ENTROPY_EPS, NONE, propose, sort_desc

DEFAULTS = dict(steps=None, eps=1e-3, alg="entropy", alg_temp=None, temperature=0.0, top_p=None, top_k=None,
                block_length=None, threshold=None, cache="none")

f32 = np.float32


def timesteps(eps, steps):
    """torch.linspace(1, eps, steps + 1) in float32 as torch's CPU kernel computes it: float32
    step, each point evaluated exactly and rounded to float32 once (verified in make_goldens)."""
    n = steps + 1
    start, end = f32(1.0), f32(eps)
    step = (end - start) / f32(steps)
    half = n // 2
    return [f32(float(start) + float(step) * i) if i < half else f32(float(end) - float(step) * (n - i - 1))
            for i in range(n)]


def generate(f, meta, prompt, max_new_tokens, sampler=None, seed=0, stop_ids=None, use_kv_cache=None):
    cfg = dict(DEFAULTS, **(sampler or {}))
    d = Decoder(f, meta, prompt, max_new_tokens, seed, stop_ids, use_kv_cache)
    if cfg["block_length"] is not None or cfg["threshold"] is not None or cfg["cache"] != "none":
        return _generate_blocks(cfg, d)
    n = max_new_tokens
    steps = cfg["steps"] or n
    ts = timesteps(cfg["eps"], steps)
    lp = d.lp
    assert lp >= 1
    d.grow_to(lp + n)
    alg = cfg["alg"]
    extra = {"topk_margin": MARGIN, "entropy": NEG_ENTROPY_EPS}.get(alg, NONE)
    alg_temp = cfg["alg_temp"] if cfg["alg_temp"] and cfg["alg_temp"] > 0 else None

    def prop(row, ex):
        return propose(row, d.mask, d.rng, cfg["temperature"], cfg["top_k"], cfg["top_p"], "p_then_k", True, ex)

    for i in range(steps):
        positions = d.masked_in(lp, lp + n)
        if not positions:
            break
        t, s = ts[i], ts[i + 1]
        last = i + 1 == steps
        rows = d.fwd(d.canvas, d.full_pos)
        picks = []
        if alg == "origin":
            p_transfer = f32(1.0) if last else f32(1.0) - s / t
            chosen = [k for k in range(len(positions)) if d.rng.next_f64() < float(p_transfer)]
            for k in chosen:
                p = positions[k]
                picks.append((p, prop(rows.row(p - 1), NONE)[0]))
        else:
            props = [prop(rows.row(p - 1), extra) for p in positions]

            def conf(k):
                return props[k][1] if extra == NONE else props[k][2]

            m = len(positions)
            q = m if last else int(f32(m) * (f32(1.0) - s / t))
            q = min(q, m)
            order = _select(d, conf, m, q, alg_temp)
            picks = [(positions[k], props[k][0]) for k in sorted(order)]
        d.commit(picks)
        if d.stop_reached():
            break
    return d.output()


def _select(d, conf, m, q, alg_temp):
    """Indices (into the step's m masked positions) of the q to commit: the q most confident,
    or with alg_temp > 0 q draws without replacement from softmax(conf / alg_temp)."""
    if alg_temp is None:
        return sort_desc(range(m), conf)[:q]
    else:
        mx = max(conf(k) / alg_temp for k in range(m))
        if any(math.isinf(conf(k) / alg_temp) for k in range(m)):
            # conf / alg_temp overflowed: max subtracted before dividing (twin of dream.rs).
            cmax = max(conf(k) for k in range(m))
            w = [math.exp((conf(k) - cmax) / alg_temp) for k in range(m)]
        else:
            w = [math.exp(conf(k) / alg_temp - mx) for k in range(m)]
        order = []
        for _ in range(q):
            total = 0.0
            for x in w:
                total += x
            r = d.rng.next_f64() * total
            acc, pick = 0.0, None
            for k, x in enumerate(w):
                if x > 0.0:
                    acc += x
                    pick = k
                    if acc > r:
                        break
            if pick is None:
                # Every remaining weight underflowed to 0: the most confident of the rest.
                rest = sort_desc([k for k in range(m) if k not in order], conf)
                order.extend(rest[: q - len(order)])
                break
            w[pick] = 0.0
            order.append(pick)
    return order


def _generate_blocks(cfg, d):
    """Fast-dLLM v1's Dream loop (NVlabs/Fast-dLLM `dream/model/generation_utils_block.py`,
    `_sample`), cache "none" / "prefix" / "dual" (twin of dream.rs `decode_blocks`).

    Per block [s, e): a full forward (writing every position's K/V) whose shifted logits commit
    position s unconditionally; then steps over the block, each a forward of the whole canvas
    (none), of [s, canvas end) against the cached prefix (prefix) or of [s, e) against the
    cached prefix and suffix (dual). With `threshold`: the most confident masked position plus
    every one whose probability is >= threshold, until the block is done. Otherwise the block
    runs Dream's timestep schedule over `steps / blocks` steps, the first of which was the
    block-start commit. Deviations (docs/decoding.md): the confidence follows `alg` (the
    official loop hard-codes entropy); "origin" is refused (no confidence to rank by); with
    one step per block the official loop leaves the block's other positions masked, here the
    one in-block step commits them all; a block already finished by its start commit runs no
    further forward.
    """
    n, lp = d.max_new, d.lp
    assert lp >= 1
    d.grow_to(lp + n)
    bl = cfg["block_length"] or (32 if n % 32 == 0 else n)
    assert n % bl == 0
    nb = n // bl
    steps = cfg["steps"] or n
    assert steps % nb == 0
    spb = steps // nb
    ts = timesteps(cfg["eps"], spb)
    alg, threshold, cache = cfg["alg"], cfg["threshold"], cfg["cache"]
    assert alg != "origin" and cache in ("none", "prefix", "dual")
    extra = {"topk_margin": MARGIN, "entropy": NEG_ENTROPY_EPS}.get(alg, NONE)
    alg_temp = cfg["alg_temp"] if cfg["alg_temp"] and cfg["alg_temp"] > 0 else None
    canvas_end = lp + n

    def prop(row, ex):
        return propose(row, d.mask, d.rng, cfg["temperature"], cfg["top_k"], cfg["top_p"], "p_then_k", True, ex)

    for b in range(nb):
        s, e = lp + b * bl, lp + (b + 1) * bl
        rows = d.fwd(d.canvas, d.full_pos)
        d.commit([(s, prop(rows.row(s - 1), NONE)[0])])
        i = 1
        while d.masked_in(s, e):
            if threshold is None and i == max(spb, 2):
                break
            if cache == "none":
                rows = d.fwd(d.canvas, d.full_pos)
            elif cache == "prefix":
                rows = d.fwd.span(d.canvas[s:], s, canvas_end)
            else:
                rows = d.fwd.span(d.canvas[s:e], s, canvas_end)
            positions = d.masked_in(s, e)
            m = len(positions)
            if threshold is not None:
                props = [prop(rows.row(p - 1), NONE) for p in positions]
                best = 0
                for k in range(m):
                    if props[k][1] > props[best][1]:
                        best = k
                order = [k for k in range(m) if k == best or props[k][1] >= threshold]
            else:
                props = [prop(rows.row(p - 1), extra) for p in positions]

                def conf(k):
                    return props[k][1] if extra == NONE else props[k][2]

                t, s_next = ts[min(i, spb - 1)], ts[min(i, spb - 1) + 1]
                last = i >= spb - 1
                q = m if last else min(int(f32(m) * (f32(1.0) - s_next / t)), m)
                order = _select(d, conf, m, q, alg_temp)
                i += 1
            d.commit([(positions[k], props[k][0]) for k in sorted(order)])
        if d.stop_reached():
            break
    return d.output()
