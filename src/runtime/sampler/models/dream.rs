//! Dream masked diffusion (`DreamGenerationMixin._sample`).
//!
//! The canvas is the prompt plus `max_new_tokens` masks; every step runs the whole canvas
//! (bidirectional) and reads shifted logits (row j − 1 predicts position j). The time grid is
//! `linspace(1, eps, steps + 1)` in float32 exactly as torch computes it, and the per-step quota
//! is `int(#masked · (1 − s/t))` in float32 (everything left at the last step), so the flooring
//! matches the official code.
//!
//! With `block_length`, `threshold` or a KV cache, decoding follows Fast-dLLM v1's Dream loop
//! instead (NVlabs/Fast-dLLM `dream/model/generation_utils_block.py`, `_sample`): blocks left to
//! right; each starts with a full forward that stores every position's K/V and commits the
//! block's first position unconditionally; the block's later steps run the whole canvas
//! ([`CacheMode::None`]), the block and what follows it ([`CacheMode::Prefix`]) or the block
//! alone ([`CacheMode::Dual`]). A step commits by `threshold` (the most confident position plus
//! every one at or above it) or by Dream's time schedule over the block's steps. Deviations
//! from the official loop, each on purpose (docs/decoding.md): the confidence follows `alg`
//! (the official loop ranks by entropy whatever `alg` says), `origin` is refused (it ranks
//! nothing), one step per block commits the block in one in-block step (the official loop
//! leaves it masked), and a block finished by its first commit runs no further forward.

use crate::runtime::diffusion::{Control, FamilyDecoder, Outcome, Pass, Request, Run};
use crate::runtime::error::{invalid, Result};
use crate::runtime::model::ModelMetadata;
use crate::runtime::rng::Rng;
use crate::runtime::sampler::base::{sort_desc, DistSpec, Extra, FilterOrder, Proposal};
use crate::runtime::sampler::{
    check_temperature, check_threshold, check_top_k, check_top_p, CacheMode,
};

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
    /// Fast-dLLM's block length. Setting it (or `threshold`, or a cache) selects Fast-dLLM v1's
    /// block loop; there it defaults to 32 when 32 divides `max_new_tokens`, else one block.
    pub block_length: Option<usize>,
    /// Fast-dLLM's `confidence_threshold`: each in-block step commits the most probable masked
    /// position plus every one whose probability is >= threshold (steps unused). Block loop.
    pub threshold: Option<f64>,
    /// Fast-dLLM v1's KV cache (default: [`CacheMode::Dual`] when the model has the cache,
    /// [`CacheMode::None`] otherwise). Anything but `None` selects the block loop.
    pub cache: Option<CacheMode>,
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
            block_length: None,
            threshold: None,
            cache: None,
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
            bidirectional_cache: meta.has_bidirectional_cache(),
            sub_block_cache: false,
        };
        self.plan(meta, request).map(drop)
    }
}

/// Dream's schedule, checked against the request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DreamPlan {
    /// Dream's own loop: the whole generation, `steps` steps.
    Whole { steps: usize },
    /// Fast-dLLM v1's block loop.
    Blocks {
        block_len: usize,
        steps_per_block: usize,
        threshold: Option<f64>,
        cache: CacheMode,
    },
}

/// Fast-dLLM's default Dream block length.
const FAST_DLLM_BLOCK_LENGTH: usize = 32;

impl FamilyDecoder for DreamSampler {
    type Plan = DreamPlan;

    fn plan(&self, meta: &ModelMetadata, request: Request) -> Result<DreamPlan> {
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
        let cache = CacheMode::resolve_for(self.cache, request.bidirectional_cache, meta.family)?;
        if self.block_length.is_none() && self.threshold.is_none() && cache == CacheMode::None {
            return Ok(DreamPlan::Whole { steps });
        }
        if let Some(threshold) = self.threshold {
            check_threshold("threshold", threshold)?;
        }
        if self.alg == DreamAlg::Origin && self.threshold.is_none() {
            return Err(invalid(
                "alg",
                "origin",
                "Fast-dLLM's block loop (block_length, threshold or a KV cache) ranks positions \
                 by confidence, which origin has none of: use entropy, maskgit_plus or \
                 topk_margin, or decode without blocks and with cache none",
            ));
        }
        let block_len =
            self.block_length
                .unwrap_or(if gen_len.is_multiple_of(FAST_DLLM_BLOCK_LENGTH) {
                    FAST_DLLM_BLOCK_LENGTH
                } else {
                    gen_len
                });
        if block_len == 0 || !gen_len.is_multiple_of(block_len) {
            return Err(invalid(
                "block_length",
                block_len,
                format!("must be > 0 and divide max_new_tokens {gen_len}"),
            ));
        }
        let block_count = gen_len / block_len;
        if !steps.is_multiple_of(block_count) {
            return Err(invalid(
                "steps",
                steps,
                format!("must be a positive multiple of the number of blocks {block_count}"),
            ));
        }
        Ok(DreamPlan::Blocks {
            block_len,
            steps_per_block: steps / block_count,
            threshold: self.threshold,
            cache,
        })
    }

    fn most_logits_rows(&self, plan: &DreamPlan, request: Request) -> (usize, &'static str) {
        match plan {
            DreamPlan::Whole { .. } => (
                request.max_new_tokens,
                "decoding without blocks reads every new token: set block_length \
                 (--block-size) or lower max_new_tokens",
            ),
            DreamPlan::Blocks { block_len, .. } => (
                *block_len,
                "a step reads the masked rows of one block: lower block_length (--block-size)",
            ),
        }
    }

    fn decode(&self, plan: DreamPlan, run: &mut Run<'_>) -> Result<Outcome> {
        match plan {
            DreamPlan::Whole { steps } => self.decode_whole(steps, run),
            DreamPlan::Blocks {
                block_len,
                steps_per_block,
                threshold,
                cache,
            } => self.decode_blocks(block_len, steps_per_block, threshold, cache, run),
        }
    }
}

impl DreamSampler {
    /// How proposals are drawn (Dream's `sample_tokens`).
    fn dist_spec(&self) -> DistSpec {
        DistSpec {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            order: FilterOrder::TopPThenTopK,
            filter_greedy: true,
        }
    }

    /// The confidence `alg` ranks by, as a proposal's extra score.
    fn extra(&self) -> Extra {
        match self.alg {
            DreamAlg::TopkMargin => Extra::Margin,
            DreamAlg::Entropy => Extra::NegEntropyEps,
            _ => Extra::None,
        }
    }

    /// Dream's own loop over the whole generation.
    fn decode_whole(&self, steps: usize, run: &mut Run<'_>) -> Result<Outcome> {
        let gen_len = run.max_new_tokens();
        let times = timesteps(self.eps, steps);
        let prompt_len = run.prompt_len();
        let canvas_len = prompt_len + gen_len;
        run.grow_canvas_to(canvas_len);
        run.end_prefill();
        let spec = self.dist_spec();
        let extra = self.extra();
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
                select_scheduled(
                    &proposals,
                    extra,
                    (time, next_time),
                    last_step,
                    self.alg_temp,
                    logits.rng(),
                    &mut chosen,
                    &mut weights,
                );
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

impl DreamSampler {
    /// Fast-dLLM v1's block loop (see the module docs).
    fn decode_blocks(
        &self,
        block_len: usize,
        steps_per_block: usize,
        threshold: Option<f64>,
        cache: CacheMode,
        run: &mut Run<'_>,
    ) -> Result<Outcome> {
        let gen_len = run.max_new_tokens();
        let prompt_len = run.prompt_len();
        let canvas_len = prompt_len + gen_len;
        run.grow_canvas_to(canvas_len);
        run.end_prefill();
        let spec = self.dist_spec();
        let extra = if threshold.is_some() {
            Extra::None
        } else {
            self.extra()
        };
        let times = timesteps(self.eps, steps_per_block);
        // The official loop stops at step `steps_per_block` (its step 0 is the block-start
        // commit); with one step per block that would leave the block masked, so it gets one.
        let step_limit = steps_per_block.max(2);
        let (mut masked, mut proposals, mut chosen, mut picks, mut weights) = (
            Vec::new(),
            Vec::<Proposal>::new(),
            Vec::new(),
            Vec::new(),
            Vec::<f64>::new(),
        );
        for block in 0..gen_len / block_len {
            let block_start = prompt_len + block * block_len;
            let block_end = block_start + block_len;
            // The full forward stores every position's K/V; its shifted logits commit the
            // block's first position whatever its confidence.
            let first = [block_start];
            let mut logits = run.forward(Pass::Decode, 0..canvas_len, &first)?;
            let proposal = logits.propose(block_start, &spec, Extra::None)?;
            if run.finish_step(block, &[(block_start, proposal.token as i64)]) == Control::Stop {
                return Ok(Outcome::Cancelled);
            }
            let mut step = 1;
            loop {
                masked.clear();
                masked.extend(run.canvas().masked_in(block_start..block_end));
                if masked.is_empty() || (threshold.is_none() && step == step_limit) {
                    break;
                }
                let mut logits = match cache {
                    CacheMode::None => run.forward(Pass::Decode, 0..canvas_len, &masked)?,
                    CacheMode::Prefix => run.forward_span(
                        Pass::Decode,
                        block_start..canvas_len,
                        canvas_len,
                        &masked,
                    )?,
                    CacheMode::Dual => {
                        run.forward_span(Pass::Decode, block_start..block_end, canvas_len, &masked)?
                    }
                };
                logits.propose_all(&masked, &spec, extra, &mut proposals)?;
                let masked_count = masked.len();
                chosen.clear();
                match threshold {
                    Some(threshold) => {
                        let mut most_probable = 0;
                        for (k, proposal) in proposals.iter().enumerate() {
                            if proposal.prob > proposals[most_probable].prob {
                                most_probable = k;
                            }
                        }
                        chosen.extend(
                            (0..masked_count)
                                .filter(|&k| k == most_probable || proposals[k].prob >= threshold),
                        );
                    }
                    None => {
                        let at = step.min(steps_per_block - 1);
                        select_scheduled(
                            &proposals,
                            extra,
                            (times[at], times[at + 1]),
                            step + 1 >= steps_per_block,
                            self.alg_temp,
                            logits.rng(),
                            &mut chosen,
                            &mut weights,
                        );
                        step += 1;
                    }
                }
                picks.clear();
                picks.extend(
                    chosen
                        .iter()
                        .map(|&k| (masked[k], proposals[k].token as i64)),
                );
                if run.finish_step(block, &picks) == Control::Stop {
                    return Ok(Outcome::Cancelled);
                }
            }
            if run.finish_block(block, block_start, block_end) == Control::Stop {
                return Ok(Outcome::Cancelled);
            }
            if run.stop_reached() {
                return Ok(Outcome::Finished);
            }
        }
        Ok(Outcome::Finished)
    }
}

/// Dream's scheduled commit: `int(#masked · (1 − s/t))` in float32 of the step's masked
/// positions (all of them at the `last` step), ranked by the confidence `extra` names (the
/// probability for [`Extra::None`]), into `chosen` in position order. `proposals` holds one
/// proposal per masked position.
#[allow(clippy::too_many_arguments)]
fn select_scheduled(
    proposals: &[Proposal],
    extra: Extra,
    (time, next_time): (f32, f32),
    last: bool,
    alg_temp: Option<f64>,
    rng: &mut Rng,
    chosen: &mut Vec<usize>,
    weights: &mut Vec<f64>,
) {
    let masked_count = proposals.len();
    let confidence = |k: usize| {
        if extra == Extra::None {
            proposals[k].prob
        } else {
            proposals[k].extra
        }
    };
    let quota = if last {
        masked_count
    } else {
        (masked_count as f32 * (1.0f32 - next_time / time)) as usize
    }
    .min(masked_count);
    select(
        confidence,
        masked_count,
        quota,
        alg_temp,
        rng,
        chosen,
        weights,
    );
    chosen.sort_unstable();
}

/// Picks `quota` of the step's `masked_count` positions into `chosen` (unsorted): the most
/// confident, or with `alg_temp > 0` sequential draws without replacement from
/// softmax(confidence / alg_temp). `weights` is a reused buffer.
#[allow(clippy::too_many_arguments)]
fn select(
    confidence: impl Fn(usize) -> f64,
    masked_count: usize,
    quota: usize,
    alg_temp: Option<f64>,
    rng: &mut Rng,
    chosen: &mut Vec<usize>,
    weights: &mut Vec<f64>,
) {
    chosen.clear();
    match alg_temp.filter(|&t| t > 0.0) {
        None => {
            chosen.extend(0..masked_count);
            sort_desc(chosen, &confidence);
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
                    .map(&confidence)
                    .fold(f64::NEG_INFINITY, f64::max);
                weights.extend(
                    (0..masked_count).map(|k| ((confidence(k) - max_confidence) / alg_temp).exp()),
                );
            } else {
                weights.extend(
                    (0..masked_count).map(|k| (confidence(k) / alg_temp - max_scaled).exp()),
                );
            }
            for _ in 0..quota {
                let total: f64 = weights.iter().sum();
                let target = rng.next_f64() * total;
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
                    sort_desc(&mut rest, &confidence);
                    rest.truncate(quota - chosen.len());
                    chosen.extend(rest);
                    break;
                };
                weights[k] = 0.0;
                chosen.push(k);
            }
        }
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
