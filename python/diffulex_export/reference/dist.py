"""Per-position scoring, operation-for-operation twin of src/runtime/sampler/base.rs.

All math is float64 (Python floats) on float32 logits, with sums in index order and
`math.exp`/`math.log` (the same libm the Rust code calls), so results are bit-identical.
"""

import math

NEG_INF = float("-inf")

NONE, MARGIN, ENTROPY, NEG_ENTROPY_EPS = "none", "margin", "entropy", "neg_entropy_eps"


def _max2(pairs):
    m, arg, m2 = NEG_INF, None, NEG_INF
    for x, i in pairs:
        if x > m:
            m2, m, arg = m, x, i
        elif x > m2:
            m2 = x
    return m, arg, m2


def propose(row, excluded, rng, temperature=0.0, top_k=None, top_p=None, order="k_then_p",
            filter_greedy=False, extra=NONE):
    """Returns (token, prob, extra). Draws one uniform iff temperature > 0.

    `row` is a list of floats; entries that are NaN/inf or equal to `excluded` are never chosen.
    """
    sampling = temperature > 0.0
    filtering = (sampling or filter_greedy) and (top_k is not None or (top_p is not None and top_p < 1.0))
    if not sampling and not filtering:
        return _greedy_fast(row, excluded, extra)
    z = {}
    kept = []
    for i, x in enumerate(row):
        if math.isfinite(x) and i != excluded:
            z[i] = x / temperature if sampling else x
            kept.append(i)
    if not kept:
        raise ValueError("no valid token")
    if filtering:
        steps = [("k", top_k), ("p", top_p)] if order == "k_then_p" else [("p", top_p), ("k", top_k)]
        for kind, val in steps:
            if kind == "k":
                kept = _top_k(z, kept, val)
            else:
                kept = _top_p(z, kept, val)
    m, arg, m2 = _max2((z[i], i) for i in kept)
    e = {}
    s = 0.0
    for i in kept:
        ei = math.exp(z[i] - m)
        e[i] = ei
        s += ei
    if sampling:
        r = rng.next_f64() * s
        acc = 0.0
        token = kept[-1]
        for i in kept:
            acc += e[i]
            if acc > r:
                token = i
                break
    else:
        token = arg
    prob = e[token] / s
    if extra == MARGIN:
        x = 1.0 / s - math.exp(m2 - m) / s
    elif extra == ENTROPY:
        acc = 0.0
        for i in kept:
            p = e[i] / s
            if p > 0.0:
                acc += p * math.log(p)
        x = -acc
    elif extra == NEG_ENTROPY_EPS:
        acc = 0.0
        for i in kept:
            p = e[i] / s
            acc += p * math.log(p + 1e-10)
        x = acc
    else:
        x = 0.0
    return token, prob, x


def online_softmax(row, excluded):
    """One fused pass: (max, first argmax, second largest, sum of exp(x - max)), rescaling the sum
    when the maximum grows; twin of `online_softmax` in base.rs."""
    m, arg, m2, s = NEG_INF, None, NEG_INF, 0.0
    for i, x in enumerate(row):
        if not math.isfinite(x) or i == excluded:
            continue
        if x > m:
            s = s * math.exp(m - x) + 1.0
            m2, m, arg = m, x, i
        else:
            s += math.exp(x - m)
            if x > m2:
                m2 = x
    return m, arg, m2, s


def _greedy_fast(row, excluded, extra):
    m, arg, m2, s = online_softmax(row, excluded)
    if arg is None:
        raise ValueError("no valid token")
    prob = 1.0 / s
    if extra == MARGIN:
        x = 1.0 / s - math.exp(m2 - m) / s
    elif extra in (ENTROPY, NEG_ENTROPY_EPS):
        acc = 0.0
        for i, v in enumerate(row):
            if math.isfinite(v) and i != excluded:
                p = math.exp(v - m) / s
                if extra == NEG_ENTROPY_EPS:
                    acc += p * math.log(p + 1e-10)
                elif p > 0.0:
                    acc += p * math.log(p)
        x = -acc if extra == ENTROPY else acc
    else:
        x = 0.0
    return arg, prob, x


def _top_k(z, kept, k):
    if k is None or k == 0 or k >= len(kept):
        return kept
    thr = z[sorted(kept, key=lambda i: (-z[i], i))[k - 1]]
    return [i for i in kept if z[i] >= thr]


def _top_p(z, kept, p):
    if p is None or p >= 1.0:
        return kept
    m = max(z[i] for i in kept)
    s = 0.0
    for i in kept:
        s += math.exp(z[i] - m)
    keep = set()
    cum = 0.0
    for i in sorted(kept, key=lambda i: (-z[i], i)):
        if cum > p:
            break
        keep.add(i)
        cum += math.exp(z[i] - m) / s
    return [i for i in kept if i in keep]


def sort_desc(idx, score):
    """Sorts indices by (score desc, index asc); NaN scores last."""
    def key(i):
        v = score(i)
        if v != v:
            v = NEG_INF
        return (-v, i)
    return sorted(idx, key=key)


def split_quota(total, parts):
    base, rem = divmod(total, parts)
    return [base + (1 if i < rem else 0) for i in range(parts)]
