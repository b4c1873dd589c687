//! Dream masked diffusion (`DreamGenerationMixin._sample`).
//!
//! The canvas is the prompt plus `max_new_tokens` masks; every step runs the whole canvas
//! (bidirectional) and reads shifted logits (row j − 1 predicts position j). The time grid is
//! `linspace(1, eps, steps + 1)` in float32 exactly as torch computes it, and the per-step quota
//! is `int(#masked · (1 − s/t))` in float32 (everything left at the last step), so the flooring
//! matches the official code.

use crate::runtime::diffusion::{forward, Control, Decoder, Pass};
use crate::runtime::error::{invalid, Result};
use crate::runtime::sampler::base::{sort_desc, DistSpec, Extra, FilterOrder, Proposal};
use crate::runtime::sampler::shift::{logit_row, rows_for};
use crate::runtime::sampler::{check_temperature, check_top_k, check_top_p};

/// Which positions a step unmasks.
///
/// ```
/// use diffulex_edge::runtime::sampler::DreamAlg;
/// assert_eq!(DreamAlg::default(), DreamAlg::Entropy);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DreamAlg {
    /// Each masked position independently with probability 1 − s/t (MDM random order).
    Origin,
    /// Highest probability of the proposed token.
    MaskgitPlus,
    /// Largest top1 − top2 probability margin.
    TopkMargin,
    /// Lowest entropy (the README's recommended setting).
    #[default]
    Entropy,
}

impl std::str::FromStr for DreamAlg {
    type Err = crate::runtime::EngineError;
    /// Parses the official names (`origin`, `maskgit_plus`, `topk_margin`, `entropy`).
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::DreamAlg;
    /// assert_eq!("topk_margin".parse::<DreamAlg>().unwrap(), DreamAlg::TopkMargin);
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "origin" => Ok(DreamAlg::Origin),
            "maskgit_plus" => Ok(DreamAlg::MaskgitPlus),
            "topk_margin" => Ok(DreamAlg::TopkMargin),
            "entropy" => Ok(DreamAlg::Entropy),
            o => Err(invalid(
                "alg",
                o,
                "expected origin, maskgit_plus, topk_margin or entropy",
            )),
        }
    }
}

/// Dream decoding settings.
///
/// ```
/// use diffulex_edge::runtime::sampler::{DreamAlg, DreamSampler};
/// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType};
/// let s = DreamSampler { alg: DreamAlg::MaskgitPlus, temperature: 0.2, top_p: Some(0.95), ..Default::default() };
/// assert_eq!(s.eps, 1e-3);
///
/// # #[cfg(feature = "pte")] {
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/dream.pte");
/// let mut engine = DiffusionEngine::from_pte(path, ModelType::Auto, 256).unwrap();
/// let cfg = DiffusionGenerationConfig::new(10).with_seed(7).with_sampler(DreamSampler { steps: Some(5), ..s });
/// let out = engine.generate(&[10, 11, 12], &cfg).unwrap();
/// assert!(out.stats.decode_forwards <= 5);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DreamSampler {
    /// Total denoising steps, 1..=max_new_tokens (default: max_new_tokens).
    pub steps: Option<usize>,
    /// Final time of the schedule, in (0, 1).
    pub eps: f64,
    /// Position-selection algorithm.
    pub alg: DreamAlg,
    /// > 0 samples positions from softmax(confidence / alg_temp) instead of taking the top.
    pub alg_temp: Option<f64>,
    /// 0 = greedy; > 0 divides logits and samples.
    pub temperature: f64,
    /// Nucleus mass (applied before top-k, also when greedy, as in Dream).
    pub top_p: Option<f64>,
    /// Top-k (applied after top-p, also when greedy).
    pub top_k: Option<usize>,
}

impl Default for DreamSampler {
    fn default() -> Self {
        DreamSampler {
            steps: None,
            eps: 1e-3,
            alg: DreamAlg::Entropy,
            alg_temp: None,
            temperature: 0.0,
            top_p: None,
            top_k: None,
        }
    }
}

/// `torch.linspace(1, eps, steps + 1)` in float32 as torch's CPU kernel produces it: a float32
/// step, the first half counted up from the start and the second half down from the end, each
/// point rounded to float32 once (checked against torch for steps 1..300, 512, 1024, 2048).
pub(crate) fn timesteps(eps: f64, steps: usize) -> Vec<f32> {
    let n = steps + 1;
    let (start, end) = (1.0f32, eps as f32);
    let step = (end - start) / steps as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                (start as f64 + step as f64 * i as f64) as f32
            } else {
                (end as f64 - step as f64 * (n - i - 1) as f64) as f32
            }
        })
        .collect()
}

impl DreamSampler {
    /// Checks the settings for `n` new tokens; returns the step count.
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::DreamSampler;
    /// assert_eq!(DreamSampler::default().validate(64).unwrap(), 64);
    /// assert!(DreamSampler { eps: 1.0, ..Default::default() }.validate(64).is_err());
    /// // More steps than tokens is refused before anything is allocated or scheduled.
    /// let err = DreamSampler { steps: Some(usize::MAX), ..Default::default() }.validate(64).unwrap_err();
    /// assert!(err.to_string().contains("1..=64"), "{err}");
    /// ```
    pub fn validate(&self, n: usize) -> Result<usize> {
        check_temperature(self.temperature)?;
        check_top_p(self.top_p)?;
        check_top_k(self.top_k)?;
        if !(self.eps > 0.0 && self.eps < 1.0) {
            return Err(invalid("eps", self.eps, "must be in (0, 1)"));
        }
        if let Some(a) = self.alg_temp {
            if !(a.is_finite() && a >= 0.0) {
                return Err(invalid("alg_temp", a, "must be finite and >= 0"));
            }
        }
        let steps = self.steps.unwrap_or(n);
        if steps == 0 || steps > n {
            return Err(invalid(
                "steps",
                steps,
                format!(
                    "must be in 1..={n} (max_new_tokens): the steps commit {n} tokens in all, \
                     so more steps than tokens only add forwards that commit nothing"
                ),
            ));
        }
        Ok(steps)
    }

    /// Runs the algorithm; returns whether a callback cancelled.
    pub(crate) fn decode(&self, d: &mut Decoder<'_>) -> Result<bool> {
        let n = d.max_new;
        let steps = self.validate(n)?;
        let ts = timesteps(self.eps, steps);
        let lp = d.canvas.prompt_len();
        d.canvas.grow_to(lp + n);
        d.end_prefill();
        let spec = DistSpec {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            order: FilterOrder::TopPThenTopK,
            filter_greedy: true,
        };
        let extra = match self.alg {
            DreamAlg::TopkMargin => Extra::Margin,
            DreamAlg::Entropy => Extra::NegEntropyEps,
            _ => Extra::None,
        };
        let (mask, pos) = (d.mask_index(), d.full_pos());
        let (mut positions, mut props, mut order, mut picks, mut w, mut rows) = (
            Vec::new(),
            Vec::<Proposal>::new(),
            Vec::new(),
            Vec::new(),
            Vec::<f64>::new(),
            Vec::new(),
        );
        for i in 0..steps {
            positions.clear();
            positions.extend(d.canvas.masked_in(lp..lp + n));
            if positions.is_empty() {
                break;
            }
            let (t, s) = (ts[i], ts[i + 1]);
            let last = i + 1 == steps;
            rows_for(&positions, 0, true, &mut rows);
            let view = forward(
                &mut *d.model,
                &mut d.stats,
                Pass::Decode,
                d.canvas.tokens(),
                pos,
                &rows,
            )?;
            picks.clear();
            if self.alg == DreamAlg::Origin {
                let p_transfer = if last { 1.0f32 } else { 1.0f32 - s / t };
                order.clear();
                for (k, _) in positions.iter().enumerate() {
                    if d.rng.next_f64() < p_transfer as f64 {
                        order.push(k);
                    }
                }
                for &k in &order {
                    let p = positions[k];
                    let row = view.row(logit_row(p, 0, true).unwrap_or(0));
                    let pr = d
                        .scorer
                        .propose(row, mask, &spec, Extra::None, &mut d.rng, p)?;
                    picks.push((p, pr.token as i64));
                }
            } else {
                d.scorer.propose_rows(
                    &positions,
                    |p| view.row(logit_row(p, 0, true).unwrap_or(0)),
                    mask,
                    &spec,
                    extra,
                    &mut d.rng,
                    &mut props,
                    d.pool,
                )?;
                let conf = |k: usize| {
                    if extra == Extra::None {
                        props[k].prob
                    } else {
                        props[k].extra
                    }
                };
                let m = positions.len();
                let q = if last {
                    m
                } else {
                    (m as f32 * (1.0f32 - s / t)) as usize
                }
                .min(m);
                order.clear();
                match self.alg_temp.filter(|&a| a > 0.0) {
                    None => {
                        order.extend(0..m);
                        sort_desc(&mut order, conf);
                        order.truncate(q);
                    }
                    Some(a) => {
                        // Sequential draws without replacement from softmax(conf / alg_temp).
                        let mx = (0..m)
                            .map(|k| conf(k) / a)
                            .fold(f64::NEG_INFINITY, f64::max);
                        w.clear();
                        if (0..m).any(|k| (conf(k) / a).is_infinite()) {
                            // conf / alg_temp overflowed (alg_temp ~1e-310): `inf - inf` would
                            // make every weight NaN and no position would ever be drawn. Same
                            // softmax, max subtracted before dividing: weights in [0, 1], the
                            // most confident position(s) exactly 1, the rest 0 at such a
                            // temperature (the alg_temp -> 0 limit, i.e. the top-confidence
                            // order). Other alg_temps keep the arithmetic of the reference.
                            let cmax = (0..m).map(conf).fold(f64::NEG_INFINITY, f64::max);
                            w.extend((0..m).map(|k| ((conf(k) - cmax) / a).exp()));
                        } else {
                            w.extend((0..m).map(|k| (conf(k) / a - mx).exp()));
                        }
                        for _ in 0..q {
                            let total: f64 = w.iter().sum();
                            let r = d.rng.next_f64() * total;
                            let mut acc = 0.0f64;
                            let mut pick = None;
                            for (k, &x) in w.iter().enumerate() {
                                if x > 0.0 {
                                    acc += x;
                                    pick = Some(k);
                                    if acc > r {
                                        break;
                                    }
                                }
                            }
                            let Some(k) = pick else {
                                // Every remaining weight is 0 (underflowed at a tiny alg_temp)
                                // or NaN: nothing can be drawn, yet the step must commit q
                                // positions. The limit of the draws is the confidence order,
                                // so the most confident remaining positions fill the quota.
                                let mut rest: Vec<usize> =
                                    (0..m).filter(|k| !order.contains(k)).collect();
                                sort_desc(&mut rest, conf);
                                rest.truncate(q - order.len());
                                order.extend(rest);
                                break;
                            };
                            w[k] = 0.0;
                            order.push(k);
                        }
                    }
                }
                order.sort_unstable();
                for &k in &order {
                    picks.push((positions[k], props[k].token as i64));
                }
            }
            if d.finish_step(0, &picks) == Control::Stop {
                return Ok(true);
            }
            if d.stop_reached() {
                break;
            }
        }
        if d.finish_block(0, lp, lp + n) == Control::Stop {
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_endpoints_and_first_quota_floor() {
        let ts = timesteps(1e-3, 64);
        assert_eq!(ts[0], 1.0);
        assert_eq!(ts[64], 1e-3f32);
        // steps == masks: the first step transfers int(64 * (1 - s/t)) = 0 tokens (0.999 floors).
        assert_eq!((64f32 * (1.0f32 - ts[1] / ts[0])) as usize, 0);
    }
}
