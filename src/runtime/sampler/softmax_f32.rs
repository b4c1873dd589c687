//! Softmax statistics of one float32 logits row, written so the compiler vectorizes them.
//!
//! The engine's hot loop at a 152k vocabulary is "max, argmax and Σ exp(x − max) over every
//! masked position's row". Calling libm's scalar `exp` per logit made that loop cost 6–19% of
//! the wall time of a decode (BENCHMARKS.md). Here the row is processed in chunks of
//! [`LANES`] float32 values with a branch-free exponential ([`exp_f32`]) and one float64
//! accumulator per lane, which the optimizer turns into SIMD code on any target.
//!
//! The result is still exactly reproducible: every step is a plain IEEE operation (no fused
//! multiply-add, no target-dependent reduction order), so SSE2, AVX2 and NEON builds agree bit
//! for bit, and the Python reference (`diffulex_export.reference.dist.row_stats_f32`) repeats
//! the same operations in numpy float32/float64. docs/decoding.md ("Exact arithmetic")
//! states the contract.

/// Accumulator lanes: element `i` of a row is summed into lane `i % LANES`.
pub(crate) const LANES: usize = 8;

// Constants are given by their float32 bit patterns so that the Python twin, which spells the
// same bits, cannot end up one rounding away (a decimal literal rounds differently when it goes
// through float64 first).

/// Below this argument the exponential is flushed to 0 (e^-87 ≈ 1.6e-38 keeps the power of
/// two scale a normal float32).
const EXP_FLUSH: f32 = f32::from_bits(0xc2ae_0000); // -87.0
/// 1.5 · 2^23: adding and subtracting it rounds a float32 of magnitude < 2^22 to the nearest
/// integer (ties to even), without a float-to-int conversion.
const ROUND_MAGIC: f32 = f32::from_bits(0x4b40_0000); // 12582912.0
const LOG2_E: f32 = f32::from_bits(0x3fb8_aa3b); // 1.44269502
/// ln 2 split in two (Cody–Waite): the high part has few significant bits, so `n · LN2_HI`
/// is exact for every exponent `n` this function meets.
const LN2_HI: f32 = f32::from_bits(0x3f31_8000); // 0.693359375
const LN2_LO: f32 = f32::from_bits(0xb95e_8083); // -2.12194442e-4
/// Minimax coefficients of (e^r − 1 − r) / r² on [−ln2/2, ln2/2], highest degree first.
const POLY: [f32; 6] = [
    f32::from_bits(0x3950_6967), // 1.98756912e-4
    f32::from_bits(0x3ab7_43ce), // 1.39819994e-3
    f32::from_bits(0x3c08_8908), // 8.33345205e-3
    f32::from_bits(0x3d2a_a9c1), // 4.16657962e-2
    f32::from_bits(0x3e2a_aaaa), // 1.66666657e-1
    f32::from_bits(0x3f00_0000), // 0.5
];

/// e^d for d ≤ 0 in float32, accurate to about 2 ulp; arguments below −87 (and −inf) give 0.
///
/// Branch-free and built from IEEE operations only, so it vectorizes and gives the same bits
/// on every target (and in the numpy twin).
#[inline(always)]
pub(crate) fn exp_f32(d: f32) -> f32 {
    let c = if d > EXP_FLUSH { d } else { EXP_FLUSH };
    let t = c * LOG2_E;
    let shifted = t + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = (c - n * LN2_HI) - n * LN2_LO;
    let mut p = POLY[0];
    for k in &POLY[1..] {
        p = p * r + k;
    }
    let p = (p * r) * r + r + 1.0;
    // `shifted`'s low mantissa bits hold n (in [−126, 0]) as a two's complement offset.
    let n_int = shifted.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    if d >= EXP_FLUSH {
        p * scale
    } else {
        0.0
    }
}

/// Softmax statistics of a row over its valid entries (finite and not excluded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RowStats {
    /// Largest valid value (−inf when no entry is valid).
    pub max: f32,
    /// First index holding `max`; `None` when no entry is valid.
    pub arg: Option<usize>,
    /// Second largest valid value as a multiset (equals `max` when the maximum is repeated;
    /// −inf with fewer than two valid entries).
    pub second: f32,
    /// Σ exp_f32(x − max) over valid entries, float64, lane sums combined pairwise.
    pub sum: f64,
}

/// The row split at its excluded ids: the maximal ranges `[a, b)` of indices that are not
/// excluded, in order. Excluded ids are few (the mask token, sometimes EOS), so the hot loops
/// below run over long ranges with no per-entry exclusion test.
fn valid_ranges(len: usize, excluded: &[usize]) -> impl Iterator<Item = (usize, usize)> {
    let mut cuts: Vec<usize> = excluded.iter().copied().filter(|&e| e < len).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let ends = cuts.clone().into_iter().chain(std::iter::once(len));
    let starts = std::iter::once(0).chain(cuts.into_iter().map(|e| e + 1));
    starts.zip(ends).filter(|(a, b)| a < b)
}

/// Entries exponentiated per pass of [`sum_exp`]'s vectorized loop (a 2 KiB stack buffer).
const BLOCK: usize = 512;

/// Lanes of the running maxima in [`top2`]. The largest and the multiset second largest do not
/// depend on which lane sees which entry, so any width is exact; 16 fills two AVX2 registers.
const TOP2_LANES: usize = 16;

/// One lane of [`top2`]: largest value, the index where it first appeared, runner-up.
#[derive(Clone, Copy)]
struct Top2Lane {
    m1: f32,
    i1: u32,
    m2: f32,
}

/// Folds entry `i` (value `x`, −inf when invalid) into a lane. Entries reach a lane in index
/// order and only a strictly larger value replaces `m1`, so `i1` is the lane's first argmax.
#[inline(always)]
fn top2_update(x: f32, i: u32, m1: &mut f32, i1: &mut u32, m2: &mut f32) {
    let gt = x > *m1;
    let lo = if x < *m1 { x } else { *m1 };
    *m2 = if lo > *m2 { lo } else { *m2 };
    *m1 = if gt { x } else { *m1 };
    *i1 = if gt { i } else { *i1 };
}

/// NaN and ±inf are not valid entries: they become −inf, which no statistic counts.
#[inline(always)]
fn finite_or_neg_inf(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        f32::NEG_INFINITY
    }
}

/// Largest, first argmax and multiset second largest over the valid entries of `row`.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx512dq+avx2",
    "x86_64+avx2",
    "x86_64+avx"
))]
pub(crate) fn top2(row: &[f32], excluded: &[usize]) -> (f32, Option<usize>, f32) {
    // Lane indices are u32 so they share the vector width of the values; no vocabulary
    // comes near 2^32 entries, but a longer row is still handled, by the scalar scan.
    let Ok(len) = u32::try_from(row.len()) else {
        return top2_scalar(row, excluded);
    };
    const HALF: usize = TOP2_LANES / 2;
    // Two groups of 8 lanes, each kept as separate value / index / runner-up arrays, so a
    // group maps onto AVX2 registers (a 16-wide array, or an array of lane structs, is split
    // and shuffled by the optimizer instead).
    let mut m1 = [[f32::NEG_INFINITY; HALF]; 2];
    let mut i1 = [[len; HALF]; 2];
    let mut m2 = [[f32::NEG_INFINITY; HALF]; 2];
    let offsets: [u32; HALF] = std::array::from_fn(|l| l as u32);
    for (a, b) in valid_ranges(row.len(), excluded) {
        let chunks = row[a..b].chunks_exact(TOP2_LANES);
        let tail = chunks.remainder();
        // `a..b` is inside the row, so every index fits in u32.
        let mut base = a as u32;
        for chunk in chunks {
            let (lo, hi) = chunk.split_at(HALF);
            for (g, half) in [lo, hi].into_iter().enumerate() {
                let start = base + (g * HALF) as u32;
                let lanes = m1[g].iter_mut().zip(&mut i1[g]).zip(&mut m2[g]);
                for ((&x, &o), ((m1, i1), m2)) in half.iter().zip(&offsets).zip(lanes) {
                    top2_update(finite_or_neg_inf(x), start + o, m1, i1, m2);
                }
            }
            base += TOP2_LANES as u32;
        }
        for (k, &x) in tail.iter().enumerate() {
            let i = base + k as u32;
            top2_update(
                finite_or_neg_inf(x),
                i,
                &mut m1[0][0],
                &mut i1[0][0],
                &mut m2[0][0],
            );
        }
    }
    let lanes: Vec<Top2Lane> = (0..TOP2_LANES)
        .map(|k| {
            let (g, l) = (k / HALF, k % HALF);
            Top2Lane {
                m1: m1[g][l],
                i1: i1[g][l],
                m2: m2[g][l],
            }
        })
        .collect();
    merge_lanes(lanes.iter())
}

/// [`top2`] without vectorization, for rows of 2^32 entries or more.
fn top2_scalar(row: &[f32], excluded: &[usize]) -> (f32, Option<usize>, f32) {
    let mut lane = (f32::NEG_INFINITY, None, f32::NEG_INFINITY);
    for (a, b) in valid_ranges(row.len(), excluded) {
        for (i, &x) in row.iter().enumerate().take(b).skip(a) {
            let x = finite_or_neg_inf(x);
            let lo = if x < lane.0 { x } else { lane.0 };
            lane.2 = if lo > lane.2 { lo } else { lane.2 };
            if x > lane.0 {
                lane.0 = x;
                lane.1 = Some(i);
            }
        }
    }
    lane
}

/// Combines the lanes: the largest maximum, the smallest index holding it, and as runner-up
/// the best of the owner lane's runner-up and of the other lanes' maxima (a repeated maximum
/// in two lanes is its own runner-up).
fn merge_lanes<'a>(lanes: impl Iterator<Item = &'a Top2Lane> + Clone) -> (f32, Option<usize>, f32) {
    let max = lanes
        .clone()
        .fold(f32::NEG_INFINITY, |m, l| if l.m1 > m { l.m1 } else { m });
    if max == f32::NEG_INFINITY {
        return (max, None, f32::NEG_INFINITY);
    }
    let (owner, arg) = lanes
        .clone()
        .enumerate()
        .filter(|(_, l)| l.m1 == max)
        .min_by_key(|(_, l)| l.i1)
        .map(|(k, l)| (k, l.i1))
        .unwrap_or((0, 0));
    let second = lanes
        .enumerate()
        .map(|(k, l)| if k == owner { l.m2 } else { l.m1 })
        .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    (max, Some(arg as usize), second)
}

/// Σ exp_f32(x − max) over the valid entries of `row`: entry `i` is added to float64 lane
/// `i % LANES` in index order, and the lanes are combined as
/// ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)). `max` must be finite (the row's
/// largest valid value).
///
/// Invalid and excluded entries add nothing; skipping them is the same as adding +0.0. Inside a
/// valid range, whole chunks of [`LANES`] entries are exponentiated in blocks of [`BLOCK`]
/// into a stack buffer (a plain element-wise loop the optimizer vectorizes) and then added
/// lane-wise; only the partial chunks at a range's ends take the scalar path.
///
/// Compiled for several instruction sets, picked at run time (AVX2 doubles the lanes of
/// the baseline SSE2). The results do not depend on the choice: no fused multiply-add is ever
/// formed and the lane structure is fixed by [`LANES`], not by the vector width.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx512dq+avx2",
    "x86_64+avx2",
    "x86_64+avx"
))]
pub(crate) fn sum_exp(row: &[f32], excluded: &[usize], max: f32) -> f64 {
    // d = x − max ≤ 0 for every valid entry; NaN and +inf entries fail `d <= 0`, −inf entries
    // give exp 0, so no separate validity test is needed.
    #[inline(always)]
    fn term(x: f32, max: f32) -> f32 {
        let d = x - max;
        if d <= 0.0 {
            exp_f32(d)
        } else {
            0.0
        }
    }
    let mut acc = [0.0f64; LANES];
    let mut buf = [0.0f32; BLOCK];
    for (a, b) in valid_ranges(row.len(), excluded) {
        let head_end = a.next_multiple_of(LANES).min(b);
        let body_end = head_end + (b - head_end) / LANES * LANES;
        for (i, &x) in row.iter().enumerate().take(head_end).skip(a) {
            acc[i % LANES] += term(x, max) as f64;
        }
        // Blocks start at multiples of LANES, so chunk lane l is index lane l.
        for block in row[head_end..body_end].chunks(BLOCK) {
            let buf = &mut buf[..block.len()];
            for (o, &x) in buf.iter_mut().zip(block) {
                *o = term(x, max);
            }
            for c in buf.chunks_exact(LANES) {
                for l in 0..LANES {
                    acc[l] += c[l] as f64;
                }
            }
        }
        for (i, &x) in row.iter().enumerate().take(b).skip(body_end) {
            acc[i % LANES] += term(x, max) as f64;
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// [`RowStats`] of `row` over entries that are finite and not in `excluded`.
pub(crate) fn row_stats(row: &[f32], excluded: &[usize]) -> RowStats {
    let (max, arg, second) = top2(row, excluded);
    let sum = if arg.is_some() {
        sum_exp(row, excluded, max)
    } else {
        0.0
    };
    RowStats {
        max,
        arg,
        second,
        sum,
    }
}

/// Calls `f(index, p)` for every valid entry in index order, p = exp_f32(x − max) / sum
/// (float64): the per-entry probabilities the entropy statistics need.
pub(crate) fn for_each_prob(
    row: &[f32],
    excluded: &[usize],
    stats: &RowStats,
    mut f: impl FnMut(usize, f64),
) {
    for (i, &x) in row.iter().enumerate() {
        if x.is_finite() && !excluded.contains(&i) {
            f(i, exp_f32(x - stats.max) as f64 / stats.sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (index, value) pairs a statistic may count: finite and not excluded.
    fn valid_entries(row: &[f32], excluded: &[usize]) -> Vec<(usize, f32)> {
        row.iter()
            .copied()
            .enumerate()
            .filter(|&(i, x)| x.is_finite() && !excluded.contains(&i))
            .collect()
    }

    #[test]
    fn exp_matches_libm_to_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut d = 0.0f32;
        while d > -87.0 {
            let got = exp_f32(d) as f64;
            let want = (d as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            d -= 0.000_731;
        }
        assert!(
            worst < 4.0 * f32::EPSILON as f64,
            "worst relative error {worst:e}"
        );
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-87.5), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn stats_agree_with_a_direct_computation() {
        let row: Vec<f32> = (0..37)
            .map(|i| ((i * 7919) % 23) as f32 * 0.37 - 3.0)
            .chain([f32::NAN, f32::INFINITY, 9.0, f32::NEG_INFINITY])
            .collect();
        let excluded = [39usize, 3];
        let valid = valid_entries(&row, &excluded);
        let st = row_stats(&row, &excluded);
        let max = valid.iter().map(|v| v.1).fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(st.max, max);
        assert_eq!(st.arg, valid.iter().find(|v| v.1 == max).map(|v| v.0));
        let mut sorted: Vec<f32> = valid.iter().map(|v| v.1).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(st.second, sorted[1]);
        let direct: f64 = valid.iter().map(|v| ((v.1 - max) as f64).exp()).sum();
        assert!((st.sum - direct).abs() < 1e-6 * direct);
    }

    #[test]
    fn repeated_maximum_is_its_own_runner_up_and_first_index_wins() {
        let row = [1.0f32, 5.0, 2.0, 5.0, 0.0, 0.0, 0.0, 0.0, 5.0];
        let st = row_stats(&row, &[]);
        assert_eq!((st.max, st.arg, st.second), (5.0, Some(1), 5.0));
        let st = row_stats(&row, &[1, 3]);
        assert_eq!((st.max, st.arg, st.second), (5.0, Some(8), 2.0));
    }

    /// tests/fixtures/goldens/softmax_f32.json is written by tools/make_softmax_goldens.py from
    /// the numpy twin (`diffulex_export.reference.dist`); every float is compared as bits.
    #[test]
    fn matches_the_python_twin_bit_for_bit() {
        #[derive(serde::Deserialize)]
        struct Row {
            row: Vec<u32>,
            excluded: Vec<usize>,
            max: u32,
            arg: Option<usize>,
            second: u32,
            sum: u64,
        }
        #[derive(serde::Deserialize)]
        struct Goldens {
            exp_f32: Vec<(u32, u32)>,
            rows: Vec<Row>,
        }
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/goldens/softmax_f32.json"
        );
        let text = std::fs::read_to_string(path).expect("softmax goldens present");
        let g: Goldens = serde_json::from_str(&text).expect("softmax goldens parse");
        for (arg, want) in g.exp_f32 {
            let got = exp_f32(f32::from_bits(arg)).to_bits();
            assert_eq!(got, want, "exp_f32({})", f32::from_bits(arg));
        }
        assert!(g.rows.len() > 20);
        for (k, c) in g.rows.iter().enumerate() {
            let row: Vec<f32> = c.row.iter().map(|&b| f32::from_bits(b)).collect();
            let st = row_stats(&row, &c.excluded);
            assert_eq!(st.max.to_bits(), c.max, "row {k}: max");
            assert_eq!(st.arg, c.arg, "row {k}: arg");
            assert_eq!(st.second.to_bits(), c.second, "row {k}: second");
            assert_eq!(
                st.sum.to_bits(),
                c.sum,
                "row {k}: sum {} vs {}",
                st.sum,
                f64::from_bits(c.sum)
            );
        }
    }

    #[test]
    fn ties_across_lanes_and_ranges_match_a_direct_scan() {
        // Few distinct values, so maxima repeat in many lanes; NaN and ±inf sprinkled in;
        // excluded ids cut the row into ranges of every alignment.
        let mut z = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            z = z.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (z >> 33) as usize
        };
        for len in [1usize, 15, 16, 17, 33, 100, 1000] {
            for _ in 0..20 {
                let row: Vec<f32> = (0..len)
                    .map(|_| match next() % 20 {
                        0 => f32::NAN,
                        1 => f32::INFINITY,
                        2 => f32::NEG_INFINITY,
                        v => (v % 5) as f32,
                    })
                    .collect();
                let excluded: Vec<usize> = (0..next() % 4).map(|_| next() % (len + 2)).collect();
                let valid = valid_entries(&row, &excluded);
                let mut sorted: Vec<f32> = valid.iter().map(|v| v.1).collect();
                sorted.sort_by(|a, b| b.total_cmp(a));
                let max = sorted.first().copied().unwrap_or(f32::NEG_INFINITY);
                let want = (
                    max,
                    valid.iter().find(|v| v.1 == max).map(|v| v.0),
                    sorted.get(1).copied().unwrap_or(f32::NEG_INFINITY),
                );
                assert_eq!(
                    top2(&row, &excluded),
                    want,
                    "{row:?} excluding {excluded:?}"
                );
            }
        }
    }

    #[test]
    fn no_valid_entry() {
        let st = row_stats(&[f32::NAN, 1.0], &[1]);
        assert_eq!((st.arg, st.sum), (None, 0.0));
        assert_eq!(row_stats(&[], &[]).arg, None);
    }
}
