"""Dream reference decoder (twin of src/runtime/sampler/models/dream.rs)."""

import math

import numpy as np

from .common import Decoder
from .dist import MARGIN, NEG_ENTROPY_EPS, NONE, propose, sort_desc

DEFAULTS = dict(steps=None, eps=1e-3, alg="entropy", alg_temp=None, temperature=0.0, top_p=None, top_k=None)

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
            if alg_temp is None:
                order = sort_desc(range(m), conf)[:q]
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
            picks = [(positions[k], props[k][0]) for k in sorted(order)]
        d.commit(picks)
        if d.stop_reached():
            break
    return d.output()
