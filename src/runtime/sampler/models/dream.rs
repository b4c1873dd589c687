//! Dream masked diffusion (`DreamGenerationMixin._sample`).
//!
//! The canvas is the prompt plus `max_new_tokens` masks; every step runs the whole canvas
//! (bidirectional) and reads shifted logits (row j − 1 predicts position j). The time grid is
//! `linspace(1, eps, steps + 1)` in float32 exactly as torch computes it, and the per-step quota
//! is `int(#masked · (1 − s/t))` in float32 (everything left at the last step), so the flooring
//! matches the official code.

use crate::runtime::diffusion::{Control, FamilyDecoder, Outcome, Pass, Request, Run};
use crate::runtime::error::{invalid, Result};
use crate::runtime::model::ModelMetadata;
use crate::runtime::sampler::base::{sort_desc, DistSpec, Extra, FilterOrder, Proposal};
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
    /// Checks the settings for a generation of `max_new_tokens` tokens (the same checks
    /// [`DiffusionEngine::generate`](crate::runtime::DiffusionEngine::generate) runs first).
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::DreamSampler, Family, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Dream, 256, 512, 3, vec![2], 0);
    /// assert!(DreamSampler::default().validate(&meta, 64).is_ok());
    /// assert!(DreamSampler { eps: 1.0, ..Default::default() }.validate(&meta, 64).is_err());
    /// // More steps than tokens is refused before anything is allocated or scheduled.
    /// let err = DreamSampler { steps: Some(usize::MAX), ..Default::default() }.validate(&meta, 64).unwrap_err();
    /// assert!(err.to_string().contains("1..=64"), "{err}");
    /// ```
    pub fn validate(&self, meta: &ModelMetadata, max_new_tokens: usize) -> Result<()> {
        let request = Request {
            prompt_len: 1,
            max_new_tokens,
        };
        self.plan(meta, request).map(drop)
    }
}

/// Dream's step count, checked against the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DreamPlan {
    steps: usize,
}

impl FamilyDecoder for DreamSampler {
    type Plan = DreamPlan;

    fn plan(&self, _meta: &ModelMetadata, request: Request) -> Result<DreamPlan> {
        let gen_len = request.max_new_tokens;
        check_temperature(self.temperature)?;
        check_top_p(self.top_p)?;
        check_top_k(self.top_k)?;
        if !(self.eps > 0.0 && self.eps < 1.0) {
            return Err(invalid("eps", self.eps, "must be in (0, 1)"));
        }
        if let Some(alg_temp) = self.alg_temp {
            if !(alg_temp.is_finite() && alg_temp >= 0.0) {
                return Err(invalid("alg_temp", alg_temp, "must be finite and >= 0"));
            }
        }
        let steps = self.steps.unwrap_or(gen_len);
        if steps == 0 || steps > gen_len {
            return Err(invalid(
                "steps",
                steps,
                format!(
                    "must be in 1..={gen_len} (max_new_tokens): the steps commit {gen_len} tokens \
                     in all, so more steps than tokens only add forwards that commit nothing"
                ),
            ));
        }
        Ok(DreamPlan { steps })
    }

    fn decode(&self, plan: DreamPlan, run: &mut Run<'_>) -> Result<Outcome> {
        let steps = plan.steps;
        let gen_len = run.max_new_tokens();
        let times = timesteps(self.eps, steps);
        let prompt_len = run.prompt_len();
        let canvas_len = prompt_len + gen_len;
        run.grow_canvas_to(canvas_len);
        run.end_prefill();
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
        let (mut masked, mut proposals, mut chosen, mut picks, mut weights) = (
            Vec::new(),
            Vec::<Proposal>::new(),
            Vec::new(),
            Vec::new(),
            Vec::<f64>::new(),
        );
        for step in 0..steps {
            masked.clear();
            masked.extend(run.canvas().masked_in(prompt_len..canvas_len));
            if masked.is_empty() {
                break;
            }
            let (time, next_time) = (times[step], times[step + 1]);
            let last_step = step + 1 == steps;
            let mut logits = run.forward(Pass::Decode, 0..canvas_len, &masked)?;
            picks.clear();
            if self.alg == DreamAlg::Origin {
                let p_transfer = if last_step {
                    1.0f32
                } else {
                    1.0f32 - next_time / time
                };
                chosen.clear();
                for k in 0..masked.len() {
                    if logits.rng().next_f64() < p_transfer as f64 {
                        chosen.push(k);
                    }
                }
                for &k in &chosen {
                    let position = masked[k];
                    let proposal = logits.propose(position, &spec, Extra::None)?;
                    picks.push((position, proposal.token as i64));
                }
            } else {
                logits.propose_all(&masked, &spec, extra, &mut proposals)?;
                let confidence = |k: usize| {
                    if extra == Extra::None {
                        proposals[k].prob
                    } else {
                        proposals[k].extra
                    }
                };
                let masked_count = masked.len();
                let quota = if last_step {
                    masked_count
                } else {
                    (masked_count as f32 * (1.0f32 - next_time / time)) as usize
                }
                .min(masked_count);
                chosen.clear();
                match self.alg_temp.filter(|&t| t > 0.0) {
                    None => {
                        chosen.extend(0..masked_count);
                        sort_desc(&mut chosen, confidence);
                        chosen.truncate(quota);
                    }
                    Some(alg_temp) => {
                        // Sequential draws without replacement from softmax(confidence / alg_temp).
                        let max_scaled = (0..masked_count)
                            .map(|k| confidence(k) / alg_temp)
                            .fold(f64::NEG_INFINITY, f64::max);
                        weights.clear();
                        if (0..masked_count).any(|k| (confidence(k) / alg_temp).is_infinite()) {
                            // confidence / alg_temp overflowed (alg_temp ~1e-310): `inf - inf`
                            // would make every weight NaN and no position would ever be drawn.
                            // Same softmax, max subtracted before dividing: weights in [0, 1],
                            // the most confident position(s) exactly 1, the rest 0 at such a
                            // temperature (the alg_temp -> 0 limit, i.e. the top-confidence
                            // order). Other alg_temps keep the arithmetic of the reference.
                            let max_confidence = (0..masked_count)
                                .map(confidence)
                                .fold(f64::NEG_INFINITY, f64::max);
                            weights.extend(
                                (0..masked_count)
                                    .map(|k| ((confidence(k) - max_confidence) / alg_temp).exp()),
                            );
                        } else {
                            weights.extend(
                                (0..masked_count)
                                    .map(|k| (confidence(k) / alg_temp - max_scaled).exp()),
                            );
                        }
                        for _ in 0..quota {
                            let total: f64 = weights.iter().sum();
                            let target = logits.rng().next_f64() * total;
                            let mut cumulative = 0.0f64;
                            let mut drawn = None;
                            for (k, &weight) in weights.iter().enumerate() {
                                if weight > 0.0 {
                                    cumulative += weight;
                                    drawn = Some(k);
                                    if cumulative > target {
                                        break;
                                    }
                                }
                            }
                            let Some(k) = drawn else {
                                // Every remaining weight is 0 (underflowed at a tiny alg_temp)
                                // or NaN: nothing can be drawn, yet the step must commit `quota`
                                // positions. The limit of the draws is the confidence order,
                                // so the most confident remaining positions fill the quota.
                                let mut rest: Vec<usize> =
                                    (0..masked_count).filter(|k| !chosen.contains(k)).collect();
                                sort_desc(&mut rest, confidence);
                                rest.truncate(quota - chosen.len());
                                chosen.extend(rest);
                                break;
                            };
                            weights[k] = 0.0;
                            chosen.push(k);
                        }
                    }
                }
                chosen.sort_unstable();
                for &k in &chosen {
                    picks.push((masked[k], proposals[k].token as i64));
                }
            }
            if run.finish_step(0, &picks) == Control::Stop {
                return Ok(Outcome::Cancelled);
            }
            if run.stop_reached() {
                break;
            }
        }
        if run.finish_block(0, prompt_len, canvas_len) == Control::Stop {
            return Ok(Outcome::Cancelled);
        }
        Ok(Outcome::Finished)
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
