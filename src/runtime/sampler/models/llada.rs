//! LLaDA masked diffusion (ML-GSAI/LLaDA `generate.py`), plus Fast-dLLM v1's threshold
//! parallel decoding as an option.
//!
//! The canvas is the prompt plus `max_new_tokens` masks from the start; blocks of
//! `block_length` are decoded left to right with full bidirectional attention over the whole
//! canvas (future blocks still masked). Each block gets `steps / num_blocks` steps and a fixed
//! quota per step. Proposals are Gumbel-max in float64; confidence is the untempered softmax
//! probability (or uniform for `Random`). `logits_eos_inf` and `confidence_eos_eot_inf`
//! reproduce the official behaviour exactly, including the latter's surprising semantics
//! (docs/decoding.md).
//!
//! With a model exported with its KV cache, the block's later steps follow Fast-dLLM v1's
//! cached loops (NVlabs/Fast-dLLM `llada/generate.py`, `generate_with_prefix_cache` and
//! `generate_with_dual_cache`, see [`CacheMode`]): the first step of a block is the full
//! forward (which stores every position's K/V), the later ones run `[block start, canvas end)`
//! (prefix) or `[block start, block end)` (dual) against the stored K/V. The quota and
//! threshold rules are the same in every mode.

use crate::runtime::diffusion::{Control, FamilyDecoder, Outcome, Pass, Request, Run};
use crate::runtime::error::{invalid, EngineError, Result};
use crate::runtime::model::ModelMetadata;
use crate::runtime::parallel;
use crate::runtime::rng::Rng;
use crate::runtime::sampler::base::{sort_desc, split_quota, LogitRow};
use crate::runtime::sampler::softmax_f32::{self, exp_f32};
use crate::runtime::sampler::{check_temperature, check_threshold, CacheMode};

/// How a step ranks masked positions.
///
/// ```
/// use diffulex_edge::runtime::sampler::LLaDARemasking;
/// assert_eq!(LLaDARemasking::default(), LLaDARemasking::LowConfidence);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LLaDARemasking {
    /// By the softmax probability of the proposed token.
    #[default]
    LowConfidence,
    /// By a uniform random number ("random remasking").
    Random,
}

impl std::str::FromStr for LLaDARemasking {
    type Err = EngineError;
    /// Parses the official names (`low_confidence`, `random`).
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::LLaDARemasking;
    /// assert_eq!("random".parse::<LLaDARemasking>().unwrap(), LLaDARemasking::Random);
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "low_confidence" => Ok(LLaDARemasking::LowConfidence),
            "random" => Ok(LLaDARemasking::Random),
            o => Err(invalid("remasking", o, "expected low_confidence or random")),
        }
    }
}

/// LLaDA decoding settings.
///
/// ```
/// use diffulex_edge::runtime::sampler::LLaDASampler;
/// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType};
/// let s = LLaDASampler { steps: Some(16), block_length: Some(8), ..Default::default() };
/// assert_eq!(s.cfg_scale, 0.0);
///
/// # #[cfg(feature = "pte")] {
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/llada.pte");
/// let mut engine = DiffusionEngine::from_pte(path, ModelType::Auto, 256).unwrap();
/// let out = engine.generate(&[10, 11, 12], &DiffusionGenerationConfig::new(16).with_sampler(s)).unwrap();
/// assert_eq!(out.stats.decode_forwards, 16); // one token per step, no early EOS here
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LLaDASampler {
    /// Total denoising steps, 1..=max_new_tokens (default: max_new_tokens); must be a multiple
    /// of the block count.
    pub steps: Option<usize>,
    /// Block length (default: max_new_tokens, one block); must divide max_new_tokens.
    pub block_length: Option<usize>,
    /// Gumbel-max temperature (0 = argmax).
    pub temperature: f64,
    /// Classifier-free guidance scale; > 0 adds a forward with the prompt masked.
    pub cfg_scale: f64,
    /// Ranking of masked positions.
    pub remasking: LLaDARemasking,
    /// Forbid EOS entirely (official `logits_eos_inf`).
    pub logits_eos_inf: bool,
    /// Official `confidence_eos_eot_inf`, reproduced as written (see docs/decoding.md).
    pub confidence_eos_eot_inf: bool,
    /// Fast-dLLM v1 parallel decoding: commit every masked block position with confidence
    /// >= threshold plus the most confident one, until the block is done (steps unused).
    pub threshold: Option<f64>,
    /// EOS id (default: the model's first eos id).
    pub eos_id: Option<i64>,
    /// End-of-turn id (default: the model's second eos id, if any).
    pub eot_id: Option<i64>,
    /// Fast-dLLM v1's KV cache (default: [`CacheMode::Dual`] when the model has the cache,
    /// [`CacheMode::None`] otherwise; see [`CacheMode::resolve`]). The cached modes do not
    /// combine with `cfg_scale` (the official cached loops have no guidance).
    pub cache: Option<CacheMode>,
}

impl LLaDASampler {
    /// Checks the settings for a generation of `max_new_tokens` tokens after a non-empty
    /// prompt (the same checks
    /// [`DiffusionEngine::generate`](crate::runtime::DiffusionEngine::generate) runs first).
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::LLaDASampler, Family, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Llada, 256, 512, 3, vec![2], 0);
    /// let s = LLaDASampler { block_length: Some(8), steps: Some(16), ..Default::default() };
    /// assert!(s.validate(&meta, 32).is_ok());
    /// assert!(LLaDASampler { steps: Some(6), ..s }.validate(&meta, 32).is_err());
    /// let err = LLaDASampler { steps: Some(usize::MAX), ..s }.validate(&meta, 32).unwrap_err();
    /// assert!(err.to_string().contains("1..=32"), "{err}");
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

    /// (token, confidence) for one position. At temperature > 0 draws one uniform per vocabulary
    /// entry (index order) for the Gumbel noise; `Random` then draws one more.
    fn propose<R: LogitRow + Copy>(
        &self,
        row: R,
        never_proposed: &[usize],
        no_confidence: &[usize],
        rng: &mut Rng,
        position: usize,
    ) -> Result<(usize, f64)> {
        let vocab = row.len();
        let allowed =
            |i: usize, x: f64, excluded: &[usize]| x.is_finite() && !excluded.contains(&i);
        let want_conf = self.remasking == LLaDARemasking::LowConfidence;
        let sampling = self.temperature > 0.0;
        if let (false, Some(row)) = (sampling, row.as_f32()) {
            return Self::propose_greedy_f32(
                row,
                never_proposed,
                no_confidence,
                want_conf,
                rng,
                position,
            );
        }
        // One fused pass: the proposal (plain or Gumbel argmax over `never_proposed`) and the online
        // softmax normaliser of the confidence distribution (over `no_confidence`, a superset).
        let (mut best_score, mut arg) = (f64::NEG_INFINITY, None);
        let (mut max_logit, mut exp_sum) = (f64::NEG_INFINITY, 0.0f64);
        for i in 0..vocab {
            let u = if sampling { rng.next_f64() } else { 0.0 };
            let x = row.at(i);
            if !allowed(i, x, never_proposed) {
                continue;
            }
            let score = if sampling {
                x - self.temperature * (-(u.ln())).ln()
            } else {
                x
            };
            if score > best_score {
                best_score = score;
                arg = Some(i);
            }
            if want_conf && !no_confidence.contains(&i) {
                if x > max_logit {
                    exp_sum = exp_sum * (max_logit - x).exp() + 1.0;
                    max_logit = x;
                } else {
                    exp_sum += (x - max_logit).exp();
                }
            }
        }
        // Every Gumbel score was -inf (a draw of exactly 0): fall back to the plain argmax.
        let arg = arg.or_else(|| {
            let (mut best_logit, mut best) = (f64::NEG_INFINITY, None);
            for i in 0..vocab {
                let x = row.at(i);
                if allowed(i, x, never_proposed) && x > best_logit {
                    best_logit = x;
                    best = Some(i);
                }
            }
            best
        });
        let token = arg.ok_or(EngineError::NoValidToken { position })?;
        let conf = if !want_conf {
            rng.next_f64()
        } else if no_confidence.contains(&token) || exp_sum == 0.0 {
            0.0
        } else {
            (row.at(token) - max_logit).exp() / exp_sum
        };
        Ok((token, conf))
    }

    /// Greedy proposal for the model's float32 row through the vectorized statistics: the
    /// argmax over `never_proposed`, and its confidence (a fresh uniform for random remasking).
    fn propose_greedy_f32(
        row: &[f32],
        never_proposed: &[usize],
        no_confidence: &[usize],
        want_conf: bool,
        rng: &mut Rng,
        position: usize,
    ) -> Result<(usize, f64)> {
        if want_conf {
            return Self::greedy_with_confidence(row, never_proposed, no_confidence, position);
        }
        let token = softmax_f32::top2(row, never_proposed)
            .1
            .ok_or(EngineError::NoValidToken { position })?;
        Ok((token, rng.next_f64()))
    }

    /// Argmax over `never_proposed` and its probability under the softmax over `no_confidence`. Draws
    /// nothing, so the rows of a step can be scored on several threads.
    fn greedy_with_confidence(
        row: &[f32],
        never_proposed: &[usize],
        no_confidence: &[usize],
        position: usize,
    ) -> Result<(usize, f64)> {
        let stats = softmax_f32::row_stats(row, no_confidence);
        let token = if never_proposed == no_confidence {
            // Same exclusions: the confidence pass already found the argmax.
            stats.arg
        } else {
            softmax_f32::top2(row, never_proposed).1
        }
        .ok_or(EngineError::NoValidToken { position })?;
        let conf = if no_confidence.contains(&token) || stats.sum == 0.0 {
            0.0
        } else {
            exp_f32(row[token] - stats.max) as f64 / stats.sum
        };
        Ok((token, conf))
    }
}

/// LLaDA's block length and step count, checked against the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LladaPlan {
    block_len: usize,
    steps_per_block: usize,
    cache: CacheMode,
}

impl FamilyDecoder for LLaDASampler {
    type Plan = LladaPlan;

    fn plan(&self, meta: &ModelMetadata, request: Request) -> Result<LladaPlan> {
        let gen_len = request.max_new_tokens;
        let cache = CacheMode::resolve_for(self.cache, request.bidirectional_cache, meta.family)?;
        if cache != CacheMode::None && self.cfg_scale > 0.0 {
            return Err(invalid(
                "cfg_scale",
                self.cfg_scale,
                format!(
                    "classifier-free guidance runs the whole canvas twice per step, it does not \
                     combine with the {cache} cache: decode with cache none"
                ),
            ));
        }
        check_temperature(self.temperature)?;
        if !(self.cfg_scale.is_finite() && self.cfg_scale >= 0.0) {
            return Err(invalid(
                "cfg_scale",
                self.cfg_scale,
                "must be finite and >= 0",
            ));
        }
        if let Some(threshold) = self.threshold {
            check_threshold("threshold", threshold)?;
        }
        let block_len = self.block_length.unwrap_or(gen_len);
        if block_len == 0 || !gen_len.is_multiple_of(block_len) {
            return Err(invalid(
                "block_length",
                block_len,
                format!("must be > 0 and divide max_new_tokens {gen_len}"),
            ));
        }
        let block_count = gen_len / block_len;
        let steps = self.steps.unwrap_or(gen_len);
        // Checked even in threshold mode (where the steps are unused): the per-block quota is
        // still sized by them.
        if steps == 0 || steps > gen_len {
            return Err(invalid(
                "steps",
                steps,
                format!(
                    "must be in 1..={gen_len} (max_new_tokens): a step commits at least one token \
                     of its block, so more steps than tokens only add forwards that commit nothing"
                ),
            ));
        }
        if self.threshold.is_none() && !steps.is_multiple_of(block_count) {
            return Err(invalid(
                "steps",
                steps,
                format!("must be a positive multiple of the number of blocks {block_count}"),
            ));
        }
        if self.cfg_scale > 0.0 && request.prompt_len == 0 {
            return Err(invalid(
                "cfg_scale",
                self.cfg_scale,
                "classifier-free guidance needs a prompt",
            ));
        }
        Ok(LladaPlan {
            block_len,
            steps_per_block: (steps / block_count).max(1),
            cache,
        })
    }

    fn most_logits_rows(&self, plan: &LladaPlan, _request: Request) -> (usize, &'static str) {
        (
            plan.block_len,
            "a step reads the masked rows of one block: lower block_length (--block-size)",
        )
    }

    fn decode(&self, plan: LladaPlan, run: &mut Run<'_>) -> Result<Outcome> {
        let LladaPlan {
            block_len,
            steps_per_block,
            cache,
        } = plan;
        let gen_len = run.max_new_tokens();
        let prompt_len = run.prompt_len();
        let canvas_len = prompt_len + gen_len;
        run.grow_canvas_to(canvas_len);
        run.end_prefill();
        let meta = run.meta();
        let vocab = meta.vocab_size;
        let eos = self.eos_id.or(meta.eos_ids.first().copied());
        let eot = self.eot_id.or(meta.eos_ids.get(1).copied());
        let vocab_index = |token: Option<i64>| {
            token
                .filter(|&t| t >= 0 && (t as usize) < vocab)
                .map(|t| t as usize)
        };
        let (eos, eot) = (vocab_index(eos), vocab_index(eot));
        // Tokens never proposed, and tokens left out of the confidence softmax.
        let mut never_proposed = vec![meta.mask_token_id as usize];
        if self.logits_eos_inf {
            never_proposed.extend(eos);
        }
        let mut no_confidence = never_proposed.clone();
        if self.confidence_eos_eot_inf {
            if self.temperature == 0.0 {
                no_confidence.extend(eos);
            }
            no_confidence.extend(eot);
        }
        let parallel_greedy =
            self.temperature <= 0.0 && self.remasking == LLaDARemasking::LowConfidence;
        // CFG-combined logits of the step's masked positions, `vocab` per position.
        let mut guided: Vec<f64> = Vec::new();
        let (mut masked, mut candidates, mut chosen, mut picks) = (
            Vec::new(),
            Vec::<(usize, f64)>::new(),
            Vec::new(),
            Vec::new(),
        );
        for block in 0..gen_len / block_len {
            let block_start = prompt_len + block * block_len;
            let block_end = block_start + block_len;
            let quota_per_step = split_quota(
                run.canvas().masked_in(block_start..block_end).count(),
                steps_per_block,
            );
            let mut step = 0;
            loop {
                masked.clear();
                masked.extend(run.canvas().masked_in(block_start..block_end));
                if masked.is_empty() {
                    break;
                }
                candidates.clear();
                if self.cfg_scale > 0.0 {
                    let conditional = run.forward(Pass::Decode, 0..canvas_len, &masked)?;
                    guided.clear();
                    for &position in &masked {
                        guided.extend(conditional.logits_of(position).iter().map(|&x| x as f64));
                    }
                    let mut unconditional = run.forward_prompt_masked(Pass::Cfg, &masked)?;
                    let weight = self.cfg_scale + 1.0;
                    for (k, &position) in masked.iter().enumerate() {
                        let row = &mut guided[k * vocab..(k + 1) * vocab];
                        for (c, &u) in row.iter_mut().zip(unconditional.logits_of(position)) {
                            let u = u as f64;
                            *c = u + weight * (*c - u);
                        }
                        let row: &[f64] = row;
                        candidates.push(self.propose(
                            row,
                            &never_proposed,
                            &no_confidence,
                            unconditional.rng(),
                            position,
                        )?);
                    }
                } else {
                    let mut logits = match (step, cache) {
                        // A block's first step (and every uncached one) runs the whole canvas;
                        // on a cached model it also stores every position's K/V.
                        (0, _) | (_, CacheMode::None) => {
                            run.forward(Pass::Decode, 0..canvas_len, &masked)?
                        }
                        (_, CacheMode::Prefix) => run.forward_span(
                            Pass::Decode,
                            block_start..canvas_len,
                            canvas_len,
                            &masked,
                        )?,
                        (_, CacheMode::Dual) => run.forward_span(
                            Pass::Decode,
                            block_start..block_end,
                            canvas_len,
                            &masked,
                        )?,
                    };
                    if parallel_greedy {
                        let pool = logits.pool();
                        let logits = &logits;
                        let scored = parallel::map_rows(pool, masked.len(), vocab, |k| {
                            let position = masked[k];
                            Self::greedy_with_confidence(
                                logits.logits_of(position),
                                &never_proposed,
                                &no_confidence,
                                position,
                            )
                        });
                        for candidate in scored {
                            candidates.push(candidate?);
                        }
                    } else {
                        for &position in &masked {
                            let row = logits.logits_of(position);
                            candidates.push(self.propose(
                                row,
                                &never_proposed,
                                &no_confidence,
                                logits.rng(),
                                position,
                            )?);
                        }
                    }
                }
                chosen.clear();
                chosen.extend(0..masked.len());
                match self.threshold {
                    Some(threshold) => {
                        let mut most_confident = 0;
                        for (k, candidate) in candidates.iter().enumerate() {
                            if candidate.1 > candidates[most_confident].1 {
                                most_confident = k;
                            }
                        }
                        chosen.retain(|&k| k == most_confident || candidates[k].1 >= threshold);
                    }
                    None => {
                        let quota = quota_per_step
                            .get(step)
                            .copied()
                            .unwrap_or(masked.len())
                            .min(masked.len());
                        sort_desc(&mut chosen, |k| candidates[k].1);
                        chosen.truncate(quota);
                        chosen.sort_unstable();
                    }
                }
                picks.clear();
                picks.extend(chosen.iter().map(|&k| (masked[k], candidates[k].0 as i64)));
                if run.finish_step(block, &picks) == Control::Stop {
                    return Ok(Outcome::Cancelled);
                }
                step += 1;
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
