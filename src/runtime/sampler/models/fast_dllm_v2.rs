//! Fast-dLLM v2 block diffusion (NVlabs/Fast-dLLM v2 `generate`).
//!
//! Blocks of 32 tokens split into sub-blocks of 8 decoded strictly left to right. Each forward
//! commits, within the current sub-block, every masked position whose confidence is strictly
//! above the threshold plus the single most confident one. Logits are shifted (row i predicts
//! i + 1). A finished block gets one commit forward that writes its K/V and whose last row gives
//! the next block's first token greedily. Deviations (the prompt of exactly one block is no
//! longer ignored, the mask token is never proposed) are in docs/decoding.md.
//!
//! With the sub-block cache (the official `use_block_cache`), the forwards that finish a
//! sub-block after its first run only the sub-block's tokens, against the K/V the block's last
//! full forward stored for the rest of the block.

use crate::runtime::diffusion::{Control, FamilyDecoder, Outcome, Pass, Request, Run};
use crate::runtime::error::{invalid, EngineError, Result};
use crate::runtime::model::ModelMetadata;
use crate::runtime::sampler::base::{DistSpec, Extra, FilterOrder, Proposal};
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
    /// The official `use_block_cache` (off by default, as there): a sub-block's forwards after
    /// its first recompute only its own tokens (8 instead of the block's 32), attending to the
    /// K/V its block's last full forward stored for the other positions. An approximation, like
    /// every dLLM cache: those K/V were computed when the sub-block still held masks. Needs a
    /// cached `.pte` of contract 3 ([`ModelMetadata::sub_block_cache`]).
    pub sub_block_cache: bool,
    /// Commit at least this many of the sub-block's masked positions per forward, the most
    /// confident first (ties: the earlier position), plus every one above the threshold. The
    /// official rule is 1; more trades quality for fewer forwards at a fixed parallelism.
    pub min_tokens_per_step: usize,
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
            sub_block_cache: false,
            min_tokens_per_step: 1,
        }
    }

    /// These settings with the sub-block cache on or off ([`FastdLLMV2Sampler::sub_block_cache`]).
    ///
    /// ```
    /// let s = diffulex_edge::runtime::sampler::FastdLLMV2Sampler::default().with_sub_block_cache(true);
    /// assert!(s.sub_block_cache);
    /// ```
    pub fn with_sub_block_cache(mut self, on: bool) -> Self {
        self.sub_block_cache = on;
        self
    }

    /// These settings committing at least `n` positions per forward
    /// ([`FastdLLMV2Sampler::min_tokens_per_step`]).
    ///
    /// ```
    /// let s = diffulex_edge::runtime::sampler::FastdLLMV2Sampler::new(1.0, 0.0).with_min_tokens_per_step(2);
    /// assert_eq!(s.min_tokens_per_step, 2);
    /// ```
    pub fn with_min_tokens_per_step(mut self, n: usize) -> Self {
        self.min_tokens_per_step = n;
        self
    }

    /// Checks the settings against the model for a generation of `max_new_tokens` tokens
    /// (the same checks [`DiffusionEngine::generate`](crate::runtime::DiffusionEngine::generate)
    /// runs first).
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::FastdLLMV2Sampler, Family, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::FastDllmV2, 256, 512, 3, vec![2], 32);
    /// assert!(FastdLLMV2Sampler::default().validate(&meta, 16).is_ok());
    /// assert!(FastdLLMV2Sampler::new(1.1, 0.0).validate(&meta, 16).is_err());
    /// ```
    pub fn validate(&self, meta: &ModelMetadata, max_new_tokens: usize) -> Result<()> {
        let request = Request {
            prompt_len: 1,
            max_new_tokens,
            bidirectional_cache: false,
            // ModelMetadata::validate ties the sub-block cache to the KV cache.
            sub_block_cache: meta.sub_block_cache,
        };
        self.plan(meta, request).map(drop)
    }
}

/// Fast-dLLM v2's block sizes, checked against the model, and whether the sub-block cache runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastDllmV2Plan {
    block_len: usize,
    sub_block_len: usize,
    sub_block_cache: bool,
}

impl FamilyDecoder for FastdLLMV2Sampler {
    type Plan = FastDllmV2Plan;

    fn plan(&self, meta: &ModelMetadata, request: Request) -> Result<FastDllmV2Plan> {
        check_temperature(self.temperature)?;
        check_top_p(self.top_p)?;
        check_threshold("threshold", self.threshold)?;
        if self.min_tokens_per_step == 0 {
            return Err(invalid(
                "min_tokens_per_step",
                0,
                "must be at least 1 (every forward commits a token)",
            ));
        }
        if self.sub_block_cache && !request.sub_block_cache {
            return Err(EngineError::CacheUnavailable {
                mode: "sub-block",
                family: meta.family,
            });
        }
        let (block_len, sub_block_len) = (meta.block_size, meta.sub_block_size);
        if let Some(requested) = self.block_length.filter(|&b| b != block_len) {
            return Err(invalid(
                "block_length",
                requested,
                format!("must equal the model's block size {block_len}"),
            ));
        }
        if let Some(requested) = self.sub_block_length.filter(|&b| b != sub_block_len) {
            return Err(invalid(
                "sub_block_length",
                requested,
                format!("must equal the model's sub-block size {sub_block_len}"),
            ));
        }
        Ok(FastDllmV2Plan {
            block_len,
            sub_block_len,
            sub_block_cache: self.sub_block_cache,
        })
    }

    fn most_logits_rows(&self, plan: &FastDllmV2Plan, _request: Request) -> (usize, &'static str) {
        (
            plan.block_len,
            "a step reads the masked rows of one block, and Fast-dLLM v2's block size is the \
             model's",
        )
    }

    fn decode(&self, plan: FastDllmV2Plan, run: &mut Run<'_>) -> Result<Outcome> {
        let FastDllmV2Plan {
            block_len,
            sub_block_len,
            sub_block_cache,
        } = plan;
        let spec = DistSpec {
            temperature: self.temperature,
            top_k: None,
            top_p: self.top_p,
            order: FilterOrder::TopPThenTopK,
            filter_greedy: false,
        };
        let greedy = DistSpec::greedy();
        let prompt_len = run.prompt_len();
        // An aligned prompt (including exactly one block, which the official code ignores) is
        // encoded whole; its last row gives the first generated token.
        if prompt_len.is_multiple_of(block_len) {
            // The last row is read, so at least the last block is fed even when reused.
            let prefill_from = run.prefill_start(prompt_len - block_len);
            let first = run
                .forward(Pass::Prefill, prefill_from..prompt_len, &[prompt_len])?
                .propose(prompt_len, &greedy, Extra::None)?;
            run.end_prefill();
            run.grow_canvas_to(prompt_len + 1);
            if run.finish_step(0, &[(prompt_len, first.token as i64)]) == Control::Stop {
                return Ok(Outcome::Cancelled);
            }
        } else if run.cached() && prompt_len > block_len {
            let whole_blocks = prompt_len / block_len * block_len;
            let prefill_from = run.prefill_start(whole_blocks);
            if prefill_from < whole_blocks {
                run.forward(Pass::Prefill, prefill_from..whole_blocks, &[])?;
            }
        }
        run.end_prefill();
        let first_block = prompt_len / block_len;
        let (mut masked, mut proposals, mut picks, mut order) =
            (Vec::new(), Vec::<Proposal>::new(), Vec::new(), Vec::new());
        loop {
            let canvas_len = run.canvas().len();
            if run.stop_reached() || canvas_len - prompt_len >= run.max_new_tokens() {
                return Ok(Outcome::Finished);
            }
            let block_start = canvas_len - canvas_len % block_len;
            let block_end = block_start + block_len;
            let block = block_start / block_len - first_block;
            let forward_start = if run.cached() { block_start } else { 0 };
            run.grow_canvas_to(block_end);
            // Whether a full forward has stored this block's K/V since it started (the official
            // `block_past_key_values`, reset per block).
            let mut block_stored = false;
            'sub_blocks: for sub_block in 0..block_len / sub_block_len {
                let sub_block_start = block_start + sub_block * sub_block_len;
                let sub_block_end = sub_block_start + sub_block_len;
                loop {
                    if run.stop_reached() {
                        break 'sub_blocks;
                    }
                    masked.clear();
                    masked.extend(run.canvas().masked_in(sub_block_start..sub_block_end));
                    if masked.is_empty() {
                        break;
                    }
                    // The official condition: the sub-block's first position is decoded, so
                    // every masked one reads its shifted row p - 1 inside the sub-block.
                    let sub_block_only =
                        sub_block_cache && block_stored && !run.canvas().is_masked(sub_block_start);
                    let mut forward = if sub_block_only {
                        run.forward_span(
                            Pass::Decode,
                            sub_block_start..sub_block_end,
                            block_end,
                            &masked,
                        )?
                    } else {
                        // Every masked position is after `block_start`: the block's first
                        // position holds the prompt tail or the carried token, so the shifted
                        // row p - 1 lies inside this forward.
                        block_stored = true;
                        run.forward(Pass::Decode, forward_start..block_end, &masked)?
                    };
                    forward.propose_all(&masked, &spec, Extra::None, &mut proposals)?;
                    most_confident_first(&proposals, &mut order);
                    let quota = &order[..self.min_tokens_per_step.min(order.len())];
                    picks.clear();
                    for (i, proposal) in proposals.iter().enumerate() {
                        if quota.contains(&i) || proposal.prob > self.threshold {
                            picks.push((masked[i], proposal.token as i64));
                        }
                    }
                    if run.finish_step(block, &picks) == Control::Stop {
                        return Ok(Outcome::Cancelled);
                    }
                }
            }
            if run.finish_block(block, block_start, block_end) == Control::Stop {
                return Ok(Outcome::Cancelled);
            }
            if run.stop_reached() || block_end - prompt_len >= run.max_new_tokens() {
                return Ok(Outcome::Finished);
            }
            // The commit forward writes the finished block's K/V; its last row proposes the
            // next block's first token.
            let carried = run
                .forward(Pass::Commit, forward_start..block_end, &[block_end])?
                .propose(block_end, &greedy, Extra::None)?;
            run.grow_canvas_to(block_end + 1);
            if run.finish_step(block + 1, &[(block_end, carried.token as i64)]) == Control::Stop {
                return Ok(Outcome::Cancelled);
            }
        }
    }
}

/// The indices of `proposals` by confidence, highest first; ties keep the earlier position (the
/// official `argmax` for the first).
fn most_confident_first(proposals: &[Proposal], order: &mut Vec<usize>) {
    order.clear();
    order.extend(0..proposals.len());
    // Stable: equal confidences stay in position order.
    order.sort_by(|&a, &b| proposals[b].prob.total_cmp(&proposals[a].prob));
}
