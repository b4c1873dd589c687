#!/usr/bin/env python3
"""Goldens for the vectorized float32 softmax statistics (src/runtime/sampler/softmax_f32.rs).

Computes, with the numpy twin in diffulex_export.reference.dist, exp_f32 on a sweep of
arguments and (max, argmax, second, sum) on rows with NaN, ±inf, ties, excluded ids, huge and
tiny spreads and lengths that are not multiples of the lane count, and writes
tests/fixtures/goldens/softmax_f32.json with every float as its exact bit pattern.
the unit test `matches_the_python_twin_bit_for_bit` in that file requires the Rust code to give the same bits.

Usage: python tools/make_softmax_goldens.py [--check]
"""

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from diffulex_export.reference.dist import exp_f32, row_stats_f32  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "goldens", "softmax_f32.json")


def f32_bits(x):
    return int(np.array([x], dtype=np.float32).view(np.uint32)[0])


def f64_bits(x):
    return int(np.array([x], dtype=np.float64).view(np.uint64)[0])


def rows():
    rng = np.random.default_rng(20261125)
    out = []
    for n in (1, 7, 8, 9, 511, 512, 513, 1031, 4099):
        for scale in (0.01, 4.0, 40.0):
            x = (rng.standard_normal(n) * scale).astype(np.float32)
            out.append((x, []))
    x = rng.standard_normal(1000).astype(np.float32)
    x[[3, 50, 999]] = [np.nan, np.inf, -np.inf]
    x[[10, 700]] = x.max() + 1.0  # a tie for the maximum
    out.append((x, [2, 700, 5000]))  # excluded: one tie, one out of range
    y = x.copy()
    out.append((y, [10]))
    out.append((np.array([np.nan, np.inf, 1.5], dtype=np.float32), [2]))  # nothing valid
    out.append((np.array([3.0] * 20, dtype=np.float32), [0, 1]))  # all equal
    z = np.full(600, -200.0, dtype=np.float32)
    z[599] = 0.0  # everything else far below the flush point
    out.append((z, []))
    return out


def build():
    args = np.concatenate([
        -np.linspace(0.0, 90.0, 2001, dtype=np.float32),
        np.array([0.0, -0.0, -1e-30, -86.99, -87.0, -87.0001, -np.inf], dtype=np.float32),
    ]).astype(np.float32)
    exp_cases = [[f32_bits(a), f32_bits(e)] for a, e in zip(args, exp_f32(args))]
    row_cases = []
    for x, excluded in rows():
        m, arg, m2, s = row_stats_f32(x, excluded)
        row_cases.append({
            "row": [f32_bits(v) for v in x],
            "excluded": excluded,
            "max": f32_bits(m),
            "arg": arg,
            "second": f32_bits(m2),
            "sum": f64_bits(s),
        })
    return {"exp_f32": exp_cases, "rows": row_cases}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed file differs")
    a = ap.parse_args()
    text = json.dumps(build(), separators=(",", ":")) + "\n"
    if a.check:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit(f"{OUT} is stale: rerun tools/make_softmax_goldens.py")
        print("softmax goldens up to date")
        return
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
