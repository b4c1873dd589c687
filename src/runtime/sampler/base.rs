//! Per-position scoring: the one place where logits become a proposed token and a confidence.
//!
//! Greedy scoring of a model's float32 row goes through the vectorized statistics of
//! `softmax_f32`; sampling and float64 rows (CFG-combined) use float64 math with
//! libm. Either way the order of operations is fixed and the Python reference
//! (`diffulex_export.reference.dist`) repeats it operation by operation, so both give
//! bit-identical results (docs/decoding.md, "Exact arithmetic"). Invalid entries (NaN, ±inf,
//! the mask token) are never proposed.

use crate::runtime::error::{EngineError, Result};
use crate::runtime::parallel::{self, RowPool};
use crate::runtime::rng::Rng;
use crate::runtime::sampler::softmax_f32::{self, exp_f32};
use std::cmp::Ordering;

/// A row of logits, float32 (model output) or float64 (CFG-combined).
pub(crate) trait LogitRow: Copy {
    fn len(&self) -> usize;
    fn at(&self, i: usize) -> f64;
    /// The row itself when it is the model's float32 output (the vectorized greedy path).
    fn as_f32(&self) -> Option<&[f32]>;
}

impl LogitRow for &[f32] {
    fn len(&self) -> usize {
        <[f32]>::len(self)
    }
    fn at(&self, i: usize) -> f64 {
        self[i] as f64
    }
    fn as_f32(&self) -> Option<&[f32]> {
        Some(self)
    }
}

impl LogitRow for &[f64] {
    fn len(&self) -> usize {
        <[f64]>::len(self)
    }
    fn at(&self, i: usize) -> f64 {
        self[i]
    }
    fn as_f32(&self) -> Option<&[f32]> {
        None
    }
}

/// Order in which top-k and top-p are applied (families differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterOrder {
    TopKThenTopP,
    TopPThenTopK,
}

/// How a position's distribution is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DistSpec {
    /// 0 = greedy argmax; > 0 divides logits and samples.
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub order: FilterOrder,
    /// Apply top-k/top-p also at temperature 0 (Dream does; SDAR/Fast-dLLM v2 ignore them).
    pub filter_greedy: bool,
}

impl DistSpec {
    /// Whether top-k / top-p apply under this spec.
    fn filters(&self) -> bool {
        (self.temperature > 0.0 || self.filter_greedy)
            && (self.top_k.is_some() || self.top_p.is_some_and(|p| p < 1.0))
    }

    /// Plain argmax: no draw, no filter, so rows can be scored in any order (and in parallel).
    pub(crate) fn is_plain_greedy(&self) -> bool {
        self.temperature <= 0.0 && !self.filters()
    }

    pub(crate) fn greedy() -> Self {
        DistSpec {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            order: FilterOrder::TopKThenTopP,
            filter_greedy: false,
        }
    }
}

/// Extra statistic a selection rule needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extra {
    None,
    /// top1 − top2 probability.
    Margin,
    /// Shannon entropy −Σ p ln p (p > 0).
    Entropy,
    /// Dream's Σ p ln(p + 1e-10) (= −H, larger is more certain).
    NegEntropyEps,
}

/// Result for one position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Proposal {
    pub token: usize,
    /// Probability of `token` under the (tempered, filtered) distribution.
    pub prob: f64,
    /// Value of the requested [`Extra`] (0 for `Extra::None`).
    pub extra: f64,
}

/// Reusable buffers sized to the vocabulary; one per engine, never reallocated per step.
#[derive(Debug, Default)]
pub(crate) struct Scorer {
    /// Tempered logits (`-inf` where invalid).
    scaled: Vec<f64>,
    /// Unnormalised softmax weights of the kept tokens.
    weights: Vec<f64>,
    kept: Vec<u32>,
    order: Vec<u32>,
    keep: Vec<bool>,
}

fn valid(x: f64, i: usize, excluded: Option<usize>) -> bool {
    x.is_finite() && Some(i) != excluded
}

/// Descending by value, ties to the lower index: the one total order used for all sorting.
pub(crate) fn desc(a: (f64, usize), b: (f64, usize)) -> Ordering {
    b.0.partial_cmp(&a.0)
        .unwrap_or(Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

impl Scorer {
    /// Proposes a token for one position. Draws exactly one uniform when `temperature > 0`.
    pub(crate) fn propose<R: LogitRow>(
        &mut self,
        row: R,
        excluded: Option<usize>,
        spec: &DistSpec,
        extra: Extra,
        rng: &mut Rng,
        position: usize,
    ) -> Result<Proposal> {
        let sampling = spec.temperature > 0.0;
        let filtering = spec.filters();
        if !sampling && !filtering {
            return greedy_fast(row, excluded, extra, position);
        }
        let vocab = row.len();
        self.scaled.clear();
        self.scaled.resize(vocab, f64::NEG_INFINITY);
        self.kept.clear();
        let (mut x_max, mut overflow) = (f64::NEG_INFINITY, false);
        for i in 0..vocab {
            let x = row.at(i);
            if valid(x, i, excluded) {
                let scaled = if sampling { x / spec.temperature } else { x };
                overflow |= scaled.is_infinite();
                x_max = x_max.max(x);
                self.scaled[i] = scaled;
                self.kept.push(i as u32);
            }
        }
        if self.kept.is_empty() {
            return Err(EngineError::NoValidToken { position });
        }
        if overflow {
            // `x / T` left the f64 range (T below about max|x| / f64::MAX, e.g. 1e-310), and
            // `inf - inf` would turn every weight into NaN. softmax(x / T) equals
            // softmax((x - max) / T), whose values lie in [-inf, 0] with the maximum exactly 0,
            // so it cannot overflow. At such a T every non-maximal weight underflows to 0: the
            // distribution is the T -> 0 limit, all mass on the argmax (shared by exact ties).
            // Temperatures that do not overflow keep the division above unchanged, so their
            // results stay bit-identical to the Python reference and the goldens.
            for &i in &self.kept {
                self.scaled[i as usize] = (row.at(i as usize) - x_max) / spec.temperature;
            }
        }
        match spec.order {
            FilterOrder::TopKThenTopP => {
                self.top_k(spec.top_k);
                self.top_p(spec.top_p);
            }
            FilterOrder::TopPThenTopK => {
                self.top_p(spec.top_p);
                self.top_k(spec.top_k);
            }
        }
        let (max, arg, second_max) = max2(
            self.kept
                .iter()
                .map(|&i| (self.scaled[i as usize], i as usize)),
        );
        self.weights.clear();
        self.weights.resize(vocab, 0.0);
        let mut exp_sum = 0.0f64;
        for &i in &self.kept {
            let weight = (self.scaled[i as usize] - max).exp();
            self.weights[i as usize] = weight;
            exp_sum += weight;
        }
        let token = if sampling {
            let target = rng.next_f64() * exp_sum;
            let mut acc = 0.0f64;
            // Falls back to the last token with positive weight (never one of weight 0, nor a
            // NaN weight: `x > 0.0` is false for NaN), then to the argmax.
            let mut pick = arg;
            for &i in &self.kept {
                let weight = self.weights[i as usize];
                if weight > 0.0 {
                    acc += weight;
                    pick = i as usize;
                    if acc > target {
                        break;
                    }
                }
            }
            pick
        } else {
            arg
        };
        // Unreachable with the weights above (the maximum has weight exactly 1), but a NaN must
        // never decide a token: without a finite argmax there is no token.
        if token >= vocab || !(exp_sum.is_finite() && exp_sum > 0.0) {
            return Err(EngineError::NoValidToken { position });
        }
        let prob = self.weights[token] / exp_sum;
        let extra = match extra {
            Extra::None => 0.0,
            Extra::Margin => 1.0 / exp_sum - (second_max - max).exp() / exp_sum,
            Extra::Entropy => {
                let mut acc = 0.0f64;
                for &i in &self.kept {
                    let p = self.weights[i as usize] / exp_sum;
                    if p > 0.0 {
                        acc += p * p.ln();
                    }
                }
                -acc
            }
            Extra::NegEntropyEps => {
                let mut acc = 0.0f64;
                for &i in &self.kept {
                    let p = self.weights[i as usize] / exp_sum;
                    acc += p * (p + 1e-10).ln();
                }
                acc
            }
        };
        Ok(Proposal { token, prob, extra })
    }

    /// Proposals for the rows of one step, in `positions` order, into `out`. Plain greedy
    /// rows draw nothing, so they are scored on `pool` ([`parallel::map_rows`]); otherwise
    /// rows go one by one (the draws must follow position order). Returns the error of the
    /// first failing position.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn propose_rows<'r>(
        &mut self,
        positions: &[usize],
        row_of: impl Fn(usize) -> &'r [f32] + Sync,
        excluded: Option<usize>,
        spec: &DistSpec,
        extra: Extra,
        rng: &mut Rng,
        out: &mut Vec<Proposal>,
        pool: &dyn RowPool,
    ) -> Result<()> {
        out.clear();
        if spec.is_plain_greedy() {
            let vocab = positions.first().map_or(0, |&p| row_of(p).len());
            let scored = parallel::map_rows(pool, positions.len(), vocab, |k| {
                greedy_f32(row_of(positions[k]), excluded, extra, positions[k])
            });
            for proposal in scored {
                out.push(proposal?);
            }
        } else {
            for &p in positions {
                out.push(self.propose(row_of(p), excluded, spec, extra, rng, p)?);
            }
        }
        Ok(())
    }

    /// Keeps tokens whose value is >= the k-th largest (ties at the boundary all kept).
    fn top_k(&mut self, k: Option<usize>) {
        let Some(k) = k else { return };
        if k == 0 || k >= self.kept.len() {
            return;
        }
        self.order.clear();
        self.order.extend_from_slice(&self.kept);
        let scaled = &self.scaled;
        self.order.select_nth_unstable_by(k - 1, |&a, &b| {
            desc(
                (scaled[a as usize], a as usize),
                (scaled[b as usize], b as usize),
            )
        });
        let kth_value = scaled[self.order[k - 1] as usize];
        self.kept.retain(|&i| scaled[i as usize] >= kth_value);
    }

    /// Keeps the most probable tokens until the probability mass before a token exceeds p
    /// (the token that crosses p is kept).
    fn top_p(&mut self, top_p: Option<f64>) {
        let Some(top_p) = top_p else { return };
        if top_p >= 1.0 {
            return;
        }
        let scaled = &self.scaled;
        let max = self
            .kept
            .iter()
            .map(|&i| scaled[i as usize])
            .fold(f64::NEG_INFINITY, f64::max);
        let mut exp_sum = 0.0f64;
        for &i in &self.kept {
            exp_sum += (scaled[i as usize] - max).exp();
        }
        self.order.clear();
        self.order.extend_from_slice(&self.kept);
        self.keep.clear();
        self.keep.resize(scaled.len(), false);
        let cmp = |a: &u32, b: &u32| {
            desc(
                (scaled[*a as usize], *a as usize),
                (scaled[*b as usize], *b as usize),
            )
        };
        // The nucleus is usually tiny: sort growing chunks of the best remaining tokens
        // (select, then sort the chunk) instead of the whole vocabulary. The visiting order is
        // exactly the full sort'exp_sum, because (scaled desc, index asc) is a total order.
        let candidates = self.order.len();
        let (mut lo, mut chunk, mut mass_before) = (0usize, 64usize, 0.0f64);
        'scan: while lo < candidates {
            let hi = (lo + chunk).min(candidates);
            if hi < candidates {
                self.order[lo..].select_nth_unstable_by(hi - lo - 1, cmp);
            }
            self.order[lo..hi].sort_unstable_by(cmp);
            for &i in &self.order[lo..hi] {
                if mass_before > top_p {
                    break 'scan;
                }
                self.keep[i as usize] = true;
                mass_before += (scaled[i as usize] - max).exp() / exp_sum;
            }
            lo = hi;
            chunk = chunk.saturating_mul(4);
        }
        let keep = &self.keep;
        self.kept.retain(|&i| keep[i as usize]);
    }
}

/// (max, first argmax, second largest value) over (value, index) pairs in index order.
fn max2(pairs: impl Iterator<Item = (f64, usize)>) -> (f64, usize, f64) {
    let (mut max, mut arg, mut second_max) = (f64::NEG_INFINITY, usize::MAX, f64::NEG_INFINITY);
    for (x, i) in pairs {
        if x > max {
            second_max = max;
            max = x;
            arg = i;
        } else if x > second_max {
            second_max = x;
        }
    }
    (max, arg, second_max)
}

/// One fused pass over a row: (max, first argmax, second largest, Σ exp(x − max)) over valid
/// entries in index order, with the sum rescaled whenever the maximum grows ("online softmax").
/// The Python reference repeats exactly these operations.
pub(crate) fn online_softmax<R: LogitRow>(
    row: R,
    excluded: Option<usize>,
) -> (f64, usize, f64, f64) {
    let (mut max, mut arg, mut second_max, mut exp_sum) =
        (f64::NEG_INFINITY, usize::MAX, f64::NEG_INFINITY, 0.0f64);
    for i in 0..row.len() {
        let x = row.at(i);
        if !valid(x, i, excluded) {
            continue;
        }
        if x > max {
            exp_sum = exp_sum * (max - x).exp() + 1.0;
            second_max = max;
            max = x;
            arg = i;
        } else {
            exp_sum += (x - max).exp();
            if x > second_max {
                second_max = x;
            }
        }
    }
    (max, arg, second_max, exp_sum)
}

/// Greedy proposal without buffers: one fused pass (max, argmax, second max, softmax
/// normaliser); entropy modes add a second pass over the row.
fn greedy_fast<R: LogitRow>(
    row: R,
    excluded: Option<usize>,
    extra: Extra,
    position: usize,
) -> Result<Proposal> {
    if let Some(row_f32) = row.as_f32() {
        return greedy_f32(row_f32, excluded, extra, position);
    }
    let vocab = row.len();
    let (max, arg, second_max, exp_sum) = online_softmax(row, excluded);
    if arg == usize::MAX {
        return Err(EngineError::NoValidToken { position });
    }
    // The argmax contributes e^(max - max) = 1 to the sum.
    let prob = 1.0 / exp_sum;
    let extra = match extra {
        Extra::None => 0.0,
        Extra::Margin => 1.0 / exp_sum - (second_max - max).exp() / exp_sum,
        Extra::Entropy | Extra::NegEntropyEps => {
            let mut acc = 0.0f64;
            for i in 0..vocab {
                let x = row.at(i);
                if valid(x, i, excluded) {
                    let p = (x - max).exp() / exp_sum;
                    if extra == Extra::NegEntropyEps {
                        acc += p * (p + 1e-10).ln();
                    } else if p > 0.0 {
                        acc += p * p.ln();
                    }
                }
            }
            if extra == Extra::Entropy {
                -acc
            } else {
                acc
            }
        }
    };
    Ok(Proposal {
        token: arg,
        prob,
        extra,
    })
}

/// Greedy proposal for a float32 row: the vectorized max / argmax / Σ exp pass, then a
/// second pass only for the entropy statistics.
fn greedy_f32(
    row: &[f32],
    excluded: Option<usize>,
    extra: Extra,
    position: usize,
) -> Result<Proposal> {
    let excluded = excluded.as_slice();
    let stats = softmax_f32::row_stats(row, excluded);
    let token = stats.arg.ok_or(EngineError::NoValidToken { position })?;
    let exp_sum = stats.sum;
    // The argmax contributes exp_f32(0) = 1 exactly.
    let prob = 1.0 / exp_sum;
    let extra = match extra {
        Extra::None => 0.0,
        Extra::Margin => 1.0 / exp_sum - exp_f32(stats.second - stats.max) as f64 / exp_sum,
        Extra::Entropy => {
            let mut acc = 0.0f64;
            softmax_f32::for_each_prob(row, excluded, &stats, |_, p| {
                if p > 0.0 {
                    acc += p * p.ln();
                }
            });
            -acc
        }
        Extra::NegEntropyEps => {
            let mut acc = 0.0f64;
            softmax_f32::for_each_prob(row, excluded, &stats, |_, p| {
                acc += p * (p + 1e-10).ln();
            });
            acc
        }
    };
    Ok(Proposal { token, prob, extra })
}

/// Sorts `idx` by (score desc, position asc); NaN scores sort last.
pub(crate) fn sort_desc(idx: &mut [usize], score: impl Fn(usize) -> f64) {
    idx.sort_by(|&a, &b| {
        let (sa, sb) = (score(a), score(b));
        let (sa, sb) = (
            if sa.is_nan() { f64::NEG_INFINITY } else { sa },
            if sb.is_nan() { f64::NEG_INFINITY } else { sb },
        );
        desc((sa, a), (sb, b))
    });
}

/// Splits `total` into `parts` (base = total / parts, the first total % parts parts get one more).
pub(crate) fn split_quota(total: usize, parts: usize) -> Vec<usize> {
    let (base, rem) = (total / parts, total % parts);
    (0..parts).map(|i| base + usize::from(i < rem)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(t: f64, k: Option<usize>, p: Option<f64>) -> DistSpec {
        DistSpec {
            temperature: t,
            top_k: k,
            top_p: p,
            order: FilterOrder::TopKThenTopP,
            filter_greedy: false,
        }
    }

    #[test]
    fn greedy_ties_lowest_and_skips_nan_and_mask() {
        let mut s = Scorer::default();
        let mut r = Rng::new(0);
        let row: &[f32] = &[1.0, f32::NAN, 3.0, 3.0, 5.0];
        let p = s
            .propose(row, Some(4), &spec(0.0, None, None), Extra::None, &mut r, 0)
            .unwrap();
        assert_eq!(p.token, 2);
        // softmax over [1, 3, 3] (NaN and the excluded mask are out); float32 rows use the
        // float32 exponential, accurate to a few ulp.
        let want = 1.0 / ((1.0f64 - 3.0).exp() + 2.0);
        assert!((p.prob - want).abs() < 1e-6 * want);
    }

    #[test]
    fn all_invalid_is_an_error() {
        let mut s = Scorer::default();
        let row: &[f32] = &[f32::NAN, f32::NEG_INFINITY];
        assert!(s
            .propose(
                row,
                None,
                &spec(1.0, None, None),
                Extra::None,
                &mut Rng::new(0),
                7
            )
            .is_err());
        assert!(s
            .propose(
                row,
                None,
                &spec(0.0, None, None),
                Extra::None,
                &mut Rng::new(0),
                7
            )
            .is_err());
    }

    #[test]
    fn sampling_frequencies_follow_softmax() {
        let mut s = Scorer::default();
        let mut r = Rng::new(3);
        let row: &[f32] = &[0.0, (2.0f32).ln(), f32::NAN];
        let n = 20000;
        let ones = (0..n)
            .filter(|_| {
                s.propose(row, None, &spec(1.0, None, None), Extra::None, &mut r, 0)
                    .unwrap()
                    .token
                    == 1
            })
            .count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 2.0 / 3.0).abs() < 0.02, "{frac}");
    }

    #[test]
    fn top_k_and_top_p_restrict_support() {
        let mut s = Scorer::default();
        let mut r = Rng::new(5);
        let row: &[f32] = &[4.0, 3.0, 2.0, 1.0];
        for _ in 0..200 {
            let p = s
                .propose(row, None, &spec(1.0, Some(2), None), Extra::None, &mut r, 0)
                .unwrap();
            assert!(p.token < 2);
            // p(0) = 0.64: mass before token 1 is 0.64 > 0.5 so only token 0 survives top-p 0.5
            let q = s
                .propose(
                    row,
                    None,
                    &spec(1.0, None, Some(0.5)),
                    Extra::None,
                    &mut r,
                    0,
                )
                .unwrap();
            assert_eq!((q.token, q.prob), (0, 1.0));
        }
    }

    #[test]
    fn chunked_top_p_equals_full_sort() {
        let mut r = Rng::new(11);
        let mut s = Scorer::default();
        for trial in 0..50 {
            let v = 50 + trial * 37;
            let row: Vec<f32> = (0..v)
                .map(|_| ((r.next_f64() * 8.0) as f32).round() / 2.0)
                .collect();
            for &p in &[0.05, 0.5, 0.9, 0.999] {
                // Naive nucleus: full sort by (z desc, index asc).
                let z: Vec<f64> = row.iter().map(|&x| x as f64).collect();
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let tot: f64 = z.iter().map(|x| (x - m).exp()).sum();
                let mut idx: Vec<usize> = (0..v).collect();
                idx.sort_by(|&a, &b| desc((z[a], a), (z[b], b)));
                let mut want = vec![false; v];
                let mut cum = 0.0;
                for &i in &idx {
                    if cum > p {
                        break;
                    }
                    want[i] = true;
                    cum += (z[i] - m).exp() / tot;
                }
                s.scaled = z.clone();
                s.kept = (0..v as u32).collect();
                s.top_p(Some(p));
                let got: Vec<usize> = s.kept.iter().map(|&i| i as usize).collect();
                let want: Vec<usize> = (0..v).filter(|&i| want[i]).collect();
                assert_eq!(got, want, "v={v} p={p}");
            }
        }
    }

    #[test]
    fn margin_and_entropy() {
        let mut s = Scorer::default();
        let row: &[f32] = &[0.0, 0.0];
        let p = s
            .propose(
                row,
                None,
                &spec(0.0, None, None),
                Extra::Margin,
                &mut Rng::new(0),
                0,
            )
            .unwrap();
        assert_eq!(p.extra, 0.0);
        let p = s
            .propose(
                row,
                None,
                &spec(0.0, None, None),
                Extra::Entropy,
                &mut Rng::new(0),
                0,
            )
            .unwrap();
        assert!((p.extra - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn quota_front_loads_remainder() {
        assert_eq!(split_quota(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split_quota(4, 4), vec![1, 1, 1, 1]);
    }
}
