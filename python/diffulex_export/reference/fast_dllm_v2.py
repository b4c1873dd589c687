"""Fast-dLLM v2 reference decoder (twin of src/runtime/sampler/models/fast_dllm_v2.rs).

`sub_block_cache` is the official `use_block_cache` (NVlabs/Fast-dLLM v2 `generate`): a block's
first forward, and the first forward of a sub-block whose first position is still masked, run
the whole block and store its K/V; the other forwards of that sub-block run only its tokens
against the block's stored K/V (a contract-3 call with kv_end = the block's end).
`min_tokens_per_step` (an extension; 1 is the official rule) commits at least that many of the
sub-block's masked positions per forward, the most confident first.
"""

from .common import Decoder
from .dist import NONE, propose

DEFAULTS = dict(threshold=0.95, temperature=0.0, top_p=0.95, block_length=None, sub_block_length=None,
                sub_block_cache=False, min_tokens_per_step=1)


def generate(f, meta, prompt, max_new_tokens, sampler=None, seed=0, stop_ids=None, use_kv_cache=None):
    cfg = dict(DEFAULTS, **(sampler or {}))
    d = Decoder(f, meta, prompt, max_new_tokens, seed, stop_ids, use_kv_cache)
    bs, sbs = int(meta["block_size"]), int(meta["sub_block_size"])
    assert cfg["block_length"] in (None, bs) and cfg["sub_block_length"] in (None, sbs)
    lp = d.lp
    assert lp >= 1
    T, top_p, thr = cfg["temperature"], cfg["top_p"], cfg["threshold"]
    quota = int(cfg["min_tokens_per_step"])
    assert quota >= 1
    sub_block_cache = bool(cfg["sub_block_cache"])
    assert not sub_block_cache or (d.cached and "cache_modes" in meta), "the sub-block cache needs a v3 program"

    def sample(row, p):
        return propose(row, d.mask, d.rng, T, None, top_p, "p_then_k", False, NONE)

    def greedy(row):
        return propose(row, d.mask, d.rng)[0]

    if lp % bs == 0:
        rows = d.fwd(d.canvas, d.full_pos)
        tok = greedy(rows.row(lp - 1))
        d.grow_to(lp + 1)
        d.commit([(lp, tok)])
    elif d.cached and lp > bs:
        d.fwd(d.canvas[: lp // bs * bs], 0)
    while True:
        n = len(d.canvas)
        if d.stop_reached() or n - lp >= d.max_new:
            return d.output()
        s = n - n % bs
        e = s + bs
        d.grow_to(e)
        stopped = False
        # Whether this block's K/V were stored by a full forward since it started (the official
        # `block_past_key_values`, reset per block).
        block_stored = False
        for sb in range(bs // sbs):
            ss, se = s + sb * sbs, s + sb * sbs + sbs
            while True:
                if d.stop_reached():
                    stopped = True
                    break
                positions = d.masked_in(ss, se)
                if not positions:
                    break
                if sub_block_cache and block_stored and d.canvas[ss] != d.mask:
                    # Rows are absolute; the sub-block's first position (decoded) is never read.
                    rows = d.fwd.span(d.canvas[ss:se], ss, e)
                    props = [sample(rows.row(p - 1), p) for p in positions]
                else:
                    start, pos = (s, s) if d.cached else (0, d.full_pos)
                    rows = d.fwd(d.canvas[start:e], pos)
                    block_stored = True
                    props = [sample(rows.row(p - 1 - start), p) for p in positions]
                # The `quota` most confident (ties: the earlier position), plus every one above
                # the threshold.
                order = sorted(range(len(props)), key=lambda i: (-props[i][1], i))
                best = set(order[:quota])
                d.commit([(positions[i], pr[0]) for i, pr in enumerate(props) if i in best or pr[1] > thr])
            if stopped:
                break
        if d.stop_reached() or e - lp >= d.max_new:
            return d.output()
        start, pos = (s, s) if d.cached else (0, d.full_pos)
        rows = d.fwd(d.canvas[start:e], pos)
        tok = greedy(rows.row(e - 1 - start))
        d.grow_to(e + 1)
        d.commit([(e, tok)])
