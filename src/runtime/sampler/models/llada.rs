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

use crate::runtime::diffusion::{forward, Control, Decoder, Pass};
use crate::runtime::error::{invalid, EngineError, Result};
use crate::runtime::parallel;
use crate::runtime::rng::Rng;
use crate::runtime::sampler::base::{sort_desc, split_quota, LogitRow};
use crate::runtime::sampler::softmax_f32::{self, exp_f32};
use crate::runtime::sampler::{check_temperature, check_threshold};

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
}

impl LLaDASampler {
    /// Checks the settings for `n` new tokens; returns (block length, steps per block).
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::LLaDASampler;
    /// let s = LLaDASampler { block_length: Some(8), steps: Some(16), ..Default::default() };
    /// assert_eq!(s.validate(32).unwrap(), (8, 4));
    /// assert!(LLaDASampler { steps: Some(6), ..s }.validate(32).is_err());
    /// let err = LLaDASampler { steps: Some(usize::MAX), ..s }.validate(32).unwrap_err();
    /// assert!(err.to_string().contains("1..=32"), "{err}");
    /// ```
    pub fn validate(&self, n: usize) -> Result<(usize, usize)> {
        check_temperature(self.temperature)?;
        if !(self.cfg_scale.is_finite() && self.cfg_scale >= 0.0) {
            return Err(invalid(
                "cfg_scale",
                self.cfg_scale,
                "must be finite and >= 0",
            ));
        }
        if let Some(t) = self.threshold {
            check_threshold("threshold", t)?;
        }
        let bl = self.block_length.unwrap_or(n);
        if bl == 0 || !n.is_multiple_of(bl) {
            return Err(invalid(
                "block_length",
                bl,
                format!("must be > 0 and divide max_new_tokens {n}"),
            ));
        }
        let nb = n / bl;
        let steps = self.steps.unwrap_or(n);
        // Checked even in threshold mode (where the steps are unused): the per-block quota is
        // still sized by them.
        if steps == 0 || steps > n {
            return Err(invalid(
                "steps",
                steps,
                format!(
                    "must be in 1..={n} (max_new_tokens): a step commits at least one token \
                     of its block, so more steps than tokens only add forwards that commit nothing"
                ),
            ));
        }
        if self.threshold.is_none() && !steps.is_multiple_of(nb) {
            return Err(invalid(
                "steps",
                steps,
                format!("must be a positive multiple of the number of blocks {nb}"),
            ));
        }
        Ok((bl, (steps / nb).max(1)))
    }

    /// Runs the algorithm; returns whether a callback cancelled.
    pub(crate) fn decode(&self, d: &mut Decoder<'_>) -> Result<bool> {
        let n = d.max_new;
        let (bl, spb) = self.validate(n)?;
        let lp = d.canvas.prompt_len();
        if self.cfg_scale > 0.0 && lp == 0 {
            return Err(invalid(
                "cfg_scale",
                self.cfg_scale,
                "classifier-free guidance needs a prompt",
            ));
        }
        d.canvas.grow_to(lp + n);
        d.end_prefill();
        let eos = self.eos_id.or(d.meta.eos_ids.first().copied());
        let eot = self.eot_id.or(d.meta.eos_ids.get(1).copied());
        let mask = d.meta.mask_token_id as usize;
        let vocab = d.meta.vocab_size;
        let idx = |t: Option<i64>| {
            t.filter(|&t| t >= 0 && (t as usize) < vocab)
                .map(|t| t as usize)
        };
        let (eos, eot) = (idx(eos), idx(eot));
        let mut excl = vec![mask];
        if self.logits_eos_inf {
            excl.extend(eos);
        }
        let mut conf_excl = excl.clone();
        if self.confidence_eos_eot_inf {
            if self.temperature == 0.0 {
                conf_excl.extend(eos);
            }
            conf_excl.extend(eot);
        }
        let pos = d.full_pos();
        let mut uncond: Vec<i64> = Vec::new();
        let mut rows: Vec<f64> = Vec::new();
        let (mut positions, mut cands, mut order, mut picks) = (
            Vec::new(),
            Vec::<(usize, f64)>::new(),
            Vec::new(),
            Vec::new(),
        );
        for b in 0..n / bl {
            let (s, e) = (lp + b * bl, lp + b * bl + bl);
            let quota = split_quota(d.canvas.masked_in(s..e).count(), spb);
            let mut i = 0;
            loop {
                positions.clear();
                positions.extend(d.canvas.masked_in(s..e));
                if positions.is_empty() {
                    break;
                }
                cands.clear();
                if self.cfg_scale > 0.0 {
                    let view = forward(
                        &mut *d.model,
                        &mut d.stats,
                        Pass::Decode,
                        d.canvas.tokens(),
                        pos,
                        &positions,
                    )?;
                    rows.clear();
                    for &p in &positions {
                        rows.extend(view.row(p).iter().map(|&x| x as f64));
                    }
                    uncond.clear();
                    uncond.extend_from_slice(d.canvas.tokens());
                    uncond[..lp].fill(d.meta.mask_token_id);
                    let view = forward(
                        &mut *d.model,
                        &mut d.stats,
                        Pass::Cfg,
                        &uncond,
                        pos,
                        &positions,
                    )?;
                    let w = self.cfg_scale + 1.0;
                    for (k, &p) in positions.iter().enumerate() {
                        let row = &mut rows[k * vocab..(k + 1) * vocab];
                        for (c, &u) in row.iter_mut().zip(view.row(p)) {
                            let u = u as f64;
                            *c = u + w * (*c - u);
                        }
                        let r: &[f64] = row;
                        cands.push(self.propose(r, &excl, &conf_excl, &mut d.rng, p)?);
                    }
                } else {
                    let view = forward(
                        &mut *d.model,
                        &mut d.stats,
                        Pass::Decode,
                        d.canvas.tokens(),
                        pos,
                        &positions,
                    )?;
                    if self.temperature <= 0.0 && self.remasking == LLaDARemasking::LowConfidence {
                        let vocab = d.meta.vocab_size;
                        let scored = parallel::map_rows(d.pool, positions.len(), vocab, |k| {
                            let p = positions[k];
                            Self::greedy_with_confidence(view.row(p), &excl, &conf_excl, p)
                        });
                        for c in scored {
                            cands.push(c?);
                        }
                    } else {
                        for &p in &positions {
                            cands.push(self.propose(
                                view.row(p),
                                &excl,
                                &conf_excl,
                                &mut d.rng,
                                p,
                            )?);
                        }
                    }
                }
                order.clear();
                order.extend(0..positions.len());
                match self.threshold {
                    Some(thr) => {
                        let mut best = 0;
                        for (k, c) in cands.iter().enumerate() {
                            if c.1 > cands[best].1 {
                                best = k;
                            }
                        }
                        order.retain(|&k| k == best || cands[k].1 >= thr);
                    }
                    None => {
                        let q = quota
                            .get(i)
                            .copied()
                            .unwrap_or(positions.len())
                            .min(positions.len());
                        sort_desc(&mut order, |k| cands[k].1);
                        order.truncate(q);
                        order.sort_unstable();
                    }
                }
                picks.clear();
                picks.extend(order.iter().map(|&k| (positions[k], cands[k].0 as i64)));
                if d.finish_step(b, &picks) == Control::Stop {
                    return Ok(true);
                }
                i += 1;
            }
            if d.finish_block(b, s, e) == Control::Stop {
                return Ok(true);
            }
            if d.stop_reached() {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// (token, confidence) for one position. At temperature > 0 draws one uniform per vocabulary
    /// entry (index order) for the Gumbel noise; `Random` then draws one more.
    fn propose<R: LogitRow + Copy>(
        &self,
        row: R,
        excl: &[usize],
        conf_excl: &[usize],
        rng: &mut Rng,
        position: usize,
    ) -> Result<(usize, f64)> {
        let v = row.len();
        let ok = |i: usize, x: f64, ex: &[usize]| x.is_finite() && !ex.contains(&i);
        let want_conf = self.remasking == LLaDARemasking::LowConfidence;
        let sampling = self.temperature > 0.0;
        if let (false, Some(r)) = (sampling, row.as_f32()) {
            return Self::propose_greedy_f32(r, excl, conf_excl, want_conf, rng, position);
        }
        // One fused pass: the proposal (plain or Gumbel argmax over `excl`) and the online
        // softmax normaliser of the confidence distribution (over `conf_excl`, a superset).
        let (mut best, mut arg) = (f64::NEG_INFINITY, None);
        let (mut m, mut s) = (f64::NEG_INFINITY, 0.0f64);
        for i in 0..v {
            let u = if sampling { rng.next_f64() } else { 0.0 };
            let x = row.at(i);
            if !ok(i, x, excl) {
                continue;
            }
            let score = if sampling {
                x - self.temperature * (-(u.ln())).ln()
            } else {
                x
            };
            if score > best {
                best = score;
                arg = Some(i);
            }
            if want_conf && !conf_excl.contains(&i) {
                if x > m {
                    s = s * (m - x).exp() + 1.0;
                    m = x;
                } else {
                    s += (x - m).exp();
                }
            }
        }
        // Every Gumbel score was -inf (a draw of exactly 0): fall back to the plain argmax.
        let arg = arg.or_else(|| {
            let (mut b, mut a) = (f64::NEG_INFINITY, None);
            for i in 0..v {
                let x = row.at(i);
                if ok(i, x, excl) && x > b {
                    b = x;
                    a = Some(i);
                }
            }
            a
        });
        let token = arg.ok_or(EngineError::NoValidToken { position })?;
        let conf = if !want_conf {
            rng.next_f64()
        } else if conf_excl.contains(&token) || s == 0.0 {
            0.0
        } else {
            (row.at(token) - m).exp() / s
        };
        Ok((token, conf))
    }

    /// Greedy proposal for the model's float32 row through the vectorized statistics: the
    /// argmax over `excl`, and its confidence (a fresh uniform for random remasking).
    fn propose_greedy_f32(
        row: &[f32],
        excl: &[usize],
        conf_excl: &[usize],
        want_conf: bool,
        rng: &mut Rng,
        position: usize,
    ) -> Result<(usize, f64)> {
        if want_conf {
            return Self::greedy_with_confidence(row, excl, conf_excl, position);
        }
        let token = softmax_f32::top2(row, excl)
            .1
            .ok_or(EngineError::NoValidToken { position })?;
        Ok((token, rng.next_f64()))
    }

    /// Argmax over `excl` and its probability under the softmax over `conf_excl`. Draws
    /// nothing, so the rows of a step can be scored on several threads.
    fn greedy_with_confidence(
        row: &[f32],
        excl: &[usize],
        conf_excl: &[usize],
        position: usize,
    ) -> Result<(usize, f64)> {
        let st = softmax_f32::row_stats(row, conf_excl);
        let token = if excl == conf_excl {
            // Same exclusions: the confidence pass already found the argmax.
            st.arg
        } else {
            softmax_f32::top2(row, excl).1
        }
        .ok_or(EngineError::NoValidToken { position })?;
        let conf = if conf_excl.contains(&token) || st.sum == 0.0 {
            0.0
        } else {
            exp_f32(row[token] - st.max) as f64 / st.sum
        };
        Ok((token, conf))
    }
}
