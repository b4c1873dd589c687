"""SDAR reference decoder (twin of src/runtime/sampler/models/sdar.rs; algorithm in docs/decoding.md)."""

from .common import Decoder
from .dist import ENTROPY, NONE, propose, sort_desc, split_quota

DEFAULTS = dict(strategy="low_confidence_dynamic", threshold=0.9, eb_threshold=0.35, denoising_steps=None,
                block_length=None, temperature=0.0, top_k=None, top_p=None)


def generate(f, meta, prompt, max_new_tokens, sampler=None, seed=0, stop_ids=None, use_kv_cache=None):
    cfg = dict(DEFAULTS, **(sampler or {}))
    d = Decoder(f, meta, prompt, max_new_tokens, seed, stop_ids, use_kv_cache)
    bl = int(meta["block_size"])
    assert cfg["block_length"] in (None, bl)
    steps = cfg["denoising_steps"] or bl
    assert 1 <= steps <= bl
    quota = split_quota(bl, steps)
    lp = d.lp
    end = -(-(lp + max_new_tokens) // bl) * bl
    d.grow_to(end)
    nb = end // bl
    pf = lp // bl * bl
    if d.cached and pf > 0:
        d.fwd(d.canvas[:pf], 0)
    extra = ENTROPY if cfg["strategy"] == "entropy_bounded" else NONE
    first_block = pf // bl
    # Start of a finished block whose final K/V are not written yet: the next block's first
    # denoising forward starts there and writes them (the official code spends a separate commit
    # forward; same K/V, since the finished block's queries see none of the next block's keys).
    pending = None
    for b in range(first_block, nb):
        s, e = b * bl, b * bl + bl
        step = 0
        while True:
            positions = d.masked_in(s, e)
            if not positions:
                break
            if d.cached:
                start = s if pending is None else pending
                pending, pos = None, start
            else:
                start, pos = 0, d.full_pos
            rows = d.fwd(d.canvas[start:e], pos)
            props = [propose(rows.row(p - start), d.mask, d.rng, cfg["temperature"], cfg["top_k"], cfg["top_p"],
                             "k_then_p", False, extra) for p in positions]
            q = min(quota[min(step, steps - 1)], len(positions))
            order = _select(cfg, q, props)
            d.commit([(positions[i], props[i][0]) for i in order])
            step += 1
        if d.stop_reached():
            return d.output()
        if d.cached and b + 1 < nb:
            if pending is None:
                pending = s
            else:  # this block had no denoising forward to carry the commit (cannot happen today)
                d.fwd(d.canvas[pending:e], pending)
                pending = None
    return d.output()


def _select(cfg, q, props):
    idx = list(range(len(props)))
    st = cfg["strategy"]
    if st == "sequential":
        out = idx[:q]
    elif st == "low_confidence_static":
        out = sort_desc(idx, lambda i: props[i][1])[:q]
    elif st == "low_confidence_dynamic":
        thr = cfg["threshold"]
        high = [i for i in idx if props[i][1] > thr]
        out = high if len(high) >= q else sort_desc(idx, lambda i: props[i][1])[:q]
    elif st == "entropy_bounded":
        order = sort_desc(idx, lambda i: -props[i][2])
        cum, k = 0.0, 0
        for i in order:
            cum += props[i][2]
            if cum < cfg["eb_threshold"]:
                k += 1
            else:
                break
        out = order[:max(k, 1)]
    else:
        raise ValueError(f"unknown SDAR strategy {st}")
    return sorted(out)
