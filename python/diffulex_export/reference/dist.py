"""Per-position scoring, operation-for-operation twin of src/runtime/sampler/base.rs and
src/runtime/sampler/softmax_f32.rs.

Greedy scoring of a model's float32 row (an `F32Row`) uses the vectorized float32 statistics
(`row_stats_f32`), repeated here with numpy float32/float64 operations in the same order. All
other math is float64 (Python floats) with sums in index order and `math.exp`/`math.log` (the
same libm the Rust code calls). Either way the results are bit-identical.
"""

import math

import numpy as np

NEG_INF = float("-inf")


class F32Row(list):
    """A model output row: the float32 values (`.np`) and, as a list, the same values as floats."""

    def __init__(self, values):
        arr = np.ascontiguousarray(values, dtype=np.float32)
        super().__init__(arr.tolist())
        self.np = arr


LANES = 8


def _f32(bits):
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


# Same bit patterns as the constants of softmax_f32.rs.
_EXP_FLUSH = _f32(0xC2AE0000)  # -87.0
_ROUND_MAGIC = _f32(0x4B400000)  # 1.5 * 2**23
_LOG2_E = _f32(0x3FB8AA3B)
_LN2_HI = _f32(0x3F318000)
_LN2_LO = _f32(0xB95E8083)
_POLY = [_f32(b) for b in (0x39506967, 0x3AB743CE, 0x3C088908, 0x3D2AA9C1, 0x3E2AAAAA, 0x3F000000)]
_ONE = np.float32(1.0)


def exp_f32(d):
    """e**d for float32 d <= 0 (array), twin of `exp_f32`; below -87 the result is 0."""
    d = np.asarray(d, dtype=np.float32)
    c = np.where(d > _EXP_FLUSH, d, _EXP_FLUSH).astype(np.float32)
    t = c * _LOG2_E
    shifted = t + _ROUND_MAGIC
    n = shifted - _ROUND_MAGIC
    r = (c - n * _LN2_HI) - n * _LN2_LO
    p = np.full_like(r, _POLY[0])
    for k in _POLY[1:]:
        p = p * r + k
    p = (p * r) * r + r + _ONE
    # The integer n (in [-126, 0]) from the low mantissa bits; int64 avoids unsigned wrap-around
    # (the Rust code's wrapping u32 arithmetic gives the same bits for these n).
    n_int = shifted.view(np.uint32).astype(np.int64) - int(_ROUND_MAGIC.view(np.uint32))
    scale = ((n_int + 127) << 23).astype(np.uint32).view(np.float32)
    return np.where(d >= _EXP_FLUSH, p * scale, np.float32(0.0)).astype(np.float32)


def _clean_f32(x, excluded):
    xc = np.where(np.isfinite(x), x, np.float32(NEG_INF)).astype(np.float32)
    for e in excluded:
        if e is not None and 0 <= e < len(xc):
            xc[e] = NEG_INF
    return xc


def top2_f32(x, excluded):
    """(max, first argmax or None, multiset second largest) over the valid entries of a float32
    array; twin of `softmax_f32::top2`."""
    xc = _clean_f32(x, excluded)
    if len(xc) == 0 or xc.max() == NEG_INF:
        return np.float32(NEG_INF), None, np.float32(NEG_INF)
    m = xc.max()
    arg = int(np.argmax(xc))
    rest = xc.copy()
    rest[arg] = NEG_INF
    m2 = rest.max() if len(rest) > 1 else np.float32(NEG_INF)
    return m, arg, m2


def sum_exp_f32(x, excluded, m):
    """Sum of exp_f32(x - m) over valid entries, one float64 accumulator per lane (element i in
    lane i % 8), lanes combined pairwise; twin of `softmax_f32::sum_exp`."""
    e = exp_f32(_clean_f32(x, excluded) - m).astype(np.float64)
    pad = (-len(e)) % LANES
    e = np.concatenate([e, np.zeros(pad)]).reshape(-1, LANES)
    a = np.cumsum(e, axis=0)[-1].tolist()  # sequential per lane
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))


def row_stats_f32(x, excluded):
    """(max, arg, second, sum) of a float32 row; twin of `softmax_f32::row_stats`."""
    m, arg, m2 = top2_f32(x, excluded)
    s = sum_exp_f32(x, excluded, m) if arg is not None else 0.0
    return m, arg, m2, s


def _greedy_f32(row, excluded, extra):
    x = row.np
    ex = [excluded]
    m, arg, m2, s = row_stats_f32(x, ex)
    if arg is None:
        raise ValueError("no valid token")
    prob = 1.0 / s
    if extra == MARGIN:
        v = 1.0 / s - float(exp_f32(np.float32(m2) - m)) / s
    elif extra in (ENTROPY, NEG_ENTROPY_EPS):
        valid = np.isfinite(x)
        if excluded is not None and 0 <= excluded < len(x):
            valid[excluded] = False
        probs = (exp_f32(np.where(valid, x, m) - m).astype(np.float64) / s)[valid].tolist()
        acc = 0.0
        for p in probs:
            if extra == NEG_ENTROPY_EPS:
                acc += p * math.log(p + 1e-10)
            elif p > 0.0:
                acc += p * math.log(p)
        v = -acc if extra == ENTROPY else acc
    else:
        v = 0.0
    return arg, prob, v

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
        if isinstance(row, F32Row):
            return _greedy_f32(row, excluded, extra)
        return _greedy_fast(row, excluded, extra)
    z = {}
    kept = []
    for i, x in enumerate(row):
        if math.isfinite(x) and i != excluded:
            z[i] = x / temperature if sampling else x
            kept.append(i)
    if not kept:
        raise ValueError("no valid token")
    if any(math.isinf(z[i]) for i in kept):
        # x / T overflowed (T ~ 1e-310): same softmax with the max subtracted before dividing,
        # values in [-inf, 0], never inf - inf = NaN (twin of base.rs).
        x_max = max(float(row[i]) for i in kept)
        for i in kept:
            z[i] = (float(row[i]) - x_max) / temperature
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
        token = arg
        for i in kept:
            if e[i] > 0.0:
                acc += e[i]
                token = i
                if acc > r:
                    break
    else:
        token = arg
    if token is None or not (math.isfinite(s) and s > 0.0):
        raise ValueError("no valid token")
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
