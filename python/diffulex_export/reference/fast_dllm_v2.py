"""Fast-dLLM v2 reference decoder (twin of src/runtime/sampler/models/fast_dllm_v2.rs)."""

from .common import Decoder
from .dist import NONE, propose

DEFAULTS = dict(threshold=0.95, temperature=0.0, top_p=0.95, block_length=None, sub_block_length=None)


def generate(f, meta, prompt, max_new_tokens, sampler=None, seed=0, stop_ids=None, use_kv_cache=None):
    cfg = dict(DEFAULTS, **(sampler or {}))
    d = Decoder(f, meta, prompt, max_new_tokens, seed, stop_ids, use_kv_cache)
    bs, sbs = int(meta["block_size"]), int(meta["sub_block_size"])
    assert cfg["block_length"] in (None, bs) and cfg["sub_block_length"] in (None, sbs)
    lp = d.lp
    assert lp >= 1
    T, top_p, thr = cfg["temperature"], cfg["top_p"], cfg["threshold"]

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
        for sb in range(bs // sbs):
            ss, se = s + sb * sbs, s + sb * sbs + sbs
            while True:
                if d.stop_reached():
                    stopped = True
                    break
                positions = d.masked_in(ss, se)
                if not positions:
                    break
                start, pos = (s, s) if d.cached else (0, d.full_pos)
                rows = d.fwd(d.canvas[start:e], pos)
                props = [sample(rows.row(p - 1 - start), p) for p in positions]
                best = 0
                for i, pr in enumerate(props):
                    if pr[1] > props[best][1]:
                        best = i
                d.commit([(positions[i], pr[0]) for i, pr in enumerate(props) if i == best or pr[1] > thr])
            if stopped:
                break
        if d.stop_reached() or e - lp >= d.max_new:
            return d.output()
        start, pos = (s, s) if d.cached else (0, d.full_pos)
        rows = d.fwd(d.canvas[start:e], pos)
        tok = greedy(rows.row(e - 1 - start))
        d.grow_to(e + 1)
        d.commit([(e, tok)])
