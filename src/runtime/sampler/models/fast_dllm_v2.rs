//! Fast-dLLM v2 block diffusion (NVlabs/Fast-dLLM v2 `generate`).
//!
//! Blocks of 32 tokens split into sub-blocks of 8 decoded strictly left to right. Each forward
//! commits, within the current sub-block, every masked position whose confidence is strictly
//! above the threshold plus the single most confident one. Logits are shifted (row i predicts
//! i + 1). A finished block gets one commit forward that writes its K/V and whose last row gives
//! the next block's first token greedily. Deviations (the prompt of exactly one block is no
//! longer ignored, the mask token is never proposed) are in docs/decoding.md.

use crate::runtime::diffusion::{forward, Control, Decoder, Pass};
use crate::runtime::error::{invalid, Result};
use crate::runtime::model::ModelMetadata;
use crate::runtime::sampler::base::{DistSpec, Extra, FilterOrder, Proposal};
use crate::runtime::sampler::shift::{logit_row, rows_for};
use crate::runtime::sampler::{check_temperature, check_threshold, check_top_p};

/// Fast-dLLM v2 decoding settings.
///
/// ```
/// use diffulex_edge::runtime::sampler::FastdLLMV2Sampler;
/// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, Family};
/// let s = FastdLLMV2Sampler::new(0.95, 1.0);
/// assert_eq!(s.top_p, Some(0.95));
///
/// # #[cfg(feature = "pte")] {
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/fast_dllm_v2_cached.pte");
/// let mut engine = DiffusionEngine::from_pte(path, Family::FastDllmV2, 256).unwrap();
/// let cfg = DiffusionGenerationConfig::new(40).with_seed(1).with_sampler(s);
/// let out = engine.generate(&[10, 11, 12], &cfg).unwrap();
/// assert!(out.stats.decode_forwards >= 1 && out.tokens.len() <= 40);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FastdLLMV2Sampler {
    /// Commit every masked sub-block position with confidence strictly above this, in [0, 1].
    pub threshold: f64,
    /// 0 = greedy; > 0 samples from softmax(logits / T) restricted to top-p.
    pub temperature: f64,
    /// Nucleus mass (official default 0.95; only used when temperature > 0).
    pub top_p: Option<f64>,
    /// Block length; must equal the model's (32).
    pub block_length: Option<usize>,
    /// Sub-block length; must equal the model's (8).
    pub sub_block_length: Option<usize>,
}

impl Default for FastdLLMV2Sampler {
    fn default() -> Self {
        FastdLLMV2Sampler::new(0.95, 0.0)
    }
}

impl FastdLLMV2Sampler {
    /// Settings with this threshold and temperature (top-p 0.95, the model's block sizes).
    ///
    /// ```
    /// let s = diffulex_edge::runtime::sampler::FastdLLMV2Sampler::new(0.9, 0.0);
    /// assert_eq!(s.threshold, 0.9);
    /// ```
    pub fn new(threshold: f64, temperature: f64) -> Self {
        FastdLLMV2Sampler {
            threshold,
            temperature,
            top_p: Some(0.95),
            block_length: None,
            sub_block_length: None,
        }
    }

    /// Checks the settings against the model; returns (block, sub-block) sizes.
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::FastdLLMV2Sampler, Family, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::FastDllmV2, 256, 512, 3, vec![2], 32);
    /// assert_eq!(FastdLLMV2Sampler::default().validate(&meta).unwrap(), (32, 8));
    /// assert!(FastdLLMV2Sampler::new(1.1, 0.0).validate(&meta).is_err());
    /// ```
    pub fn validate(&self, meta: &ModelMetadata) -> Result<(usize, usize)> {
        check_temperature(self.temperature)?;
        check_top_p(self.top_p)?;
        check_threshold("threshold", self.threshold)?;
        let (bs, sbs) = (meta.block_size, meta.sub_block_size);
        if let Some(b) = self.block_length.filter(|&b| b != bs) {
            return Err(invalid(
                "block_length",
                b,
                format!("must equal the model's block size {bs}"),
            ));
        }
        if let Some(b) = self.sub_block_length.filter(|&b| b != sbs) {
            return Err(invalid(
                "sub_block_length",
                b,
                format!("must equal the model's sub-block size {sbs}"),
            ));
        }
        Ok((bs, sbs))
    }

    /// Runs the algorithm on `d`'s canvas (prompt only); returns whether a callback cancelled.
    pub(crate) fn decode(&self, d: &mut Decoder<'_>) -> Result<bool> {
        let (bs, sbs) = self.validate(&d.meta)?;
        let spec = DistSpec {
            temperature: self.temperature,
            top_k: None,
            top_p: self.top_p,
            order: FilterOrder::TopPThenTopK,
            filter_greedy: false,
        };
        let greedy = DistSpec::greedy();
        let mask = d.mask_index();
        let lp = d.canvas.prompt_len();
        let full = d.full_pos();
        // An aligned prompt (including exactly one block, which the official code ignores) is
        // encoded whole; its last row gives the first generated token.
        if lp.is_multiple_of(bs) {
            let last = [lp - 1];
            let view = forward(
                &mut *d.model,
                &mut d.stats,
                Pass::Prefill,
                d.canvas.tokens(),
                full,
                &last,
            )?;
            let p =
                d.scorer
                    .propose(view.row(lp - 1), mask, &greedy, Extra::None, &mut d.rng, lp)?;
            d.end_prefill();
            d.canvas.grow_to(lp + 1);
            if d.finish_step(0, &[(lp, p.token as i64)]) == Control::Stop {
                return Ok(true);
            }
        } else if d.cached && lp > bs {
            let pf = lp / bs * bs;
            forward(
                &mut *d.model,
                &mut d.stats,
                Pass::Prefill,
                &d.canvas.tokens()[..pf],
                Some(0),
                &[],
            )?;
        }
        d.end_prefill();
        let first_block = lp / bs;
        let (mut positions, mut props, mut picks, mut rows) =
            (Vec::new(), Vec::<Proposal>::new(), Vec::new(), Vec::new());
        loop {
            let len = d.canvas.len();
            if d.stop_reached() || len - lp >= d.max_new {
                return Ok(false);
            }
            let (s, e) = (len - len % bs, len - len % bs + bs);
            let block = s / bs - first_block;
            d.canvas.grow_to(e);
            'sub: for sb in 0..bs / sbs {
                let (ss, se) = (s + sb * sbs, s + sb * sbs + sbs);
                loop {
                    if d.stop_reached() {
                        break 'sub;
                    }
                    positions.clear();
                    positions.extend(d.canvas.masked_in(ss..se));
                    if positions.is_empty() {
                        break;
                    }
                    let (start, pos) = if d.cached { (s, Some(s)) } else { (0, full) };
                    rows_for(&positions, start, true, &mut rows);
                    let view = forward(
                        &mut *d.model,
                        &mut d.stats,
                        Pass::Decode,
                        &d.canvas.tokens()[start..e],
                        pos,
                        &rows,
                    )?;
                    // p > s always: the block's first position holds the prompt tail or the
                    // carried token, so the shifted row p - 1 lies inside this forward.
                    d.scorer.propose_rows(
                        &positions,
                        |p| view.row(logit_row(p, start, true).unwrap_or(0)),
                        mask,
                        &spec,
                        Extra::None,
                        &mut d.rng,
                        &mut props,
                        d.pool,
                    )?;
                    let mut best = 0;
                    for (i, pr) in props.iter().enumerate() {
                        if pr.prob > props[best].prob {
                            best = i;
                        }
                    }
                    picks.clear();
                    for (i, pr) in props.iter().enumerate() {
                        if i == best || pr.prob > self.threshold {
                            picks.push((positions[i], pr.token as i64));
                        }
                    }
                    if d.finish_step(block, &picks) == Control::Stop {
                        return Ok(true);
                    }
                }
            }
            if d.finish_block(block, s, e) == Control::Stop {
                return Ok(true);
            }
            if d.stop_reached() || e - lp >= d.max_new {
                return Ok(false);
            }
            let (start, pos) = if d.cached { (s, Some(s)) } else { (0, full) };
            let last = [e - 1 - start];
            let view = forward(
                &mut *d.model,
                &mut d.stats,
                Pass::Commit,
                &d.canvas.tokens()[start..e],
                pos,
                &last,
            )?;
            let p = d.scorer.propose(
                view.row(e - 1 - start),
                mask,
                &greedy,
                Extra::None,
                &mut d.rng,
                e,
            )?;
            d.canvas.grow_to(e + 1);
            if d.finish_step(block + 1, &[(e, p.token as i64)]) == Control::Stop {
                return Ok(true);
            }
        }
    }
}
