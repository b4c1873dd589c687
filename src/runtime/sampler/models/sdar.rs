//! SDAR block diffusion (JetAstra/SDAR `generate.py`, with JetEngine's entropy-bounded rule).
//!
//! Blocks of the model's training block size grow left to right. Each denoising step proposes a
//! token for every still-masked position of the current block, then a strategy picks which
//! to commit. With a KV cache, the prompt's whole blocks are prefilled once, and each denoising
//! forward feeds only the current block at its absolute position. A finished block's final K/V
//! are written by the next block's first forward, which starts one block earlier; the official
//! code runs a separate "commit" forward (see `commit_later`). Deviations from the official
//! code are listed in docs/decoding.md (true greedy at temperature 0, no prompt/committed
//! overwrite, working entropy_bounded).

use crate::runtime::diffusion::{Control, FamilyDecoder, Outcome, Pass, Request, Run};
use crate::runtime::error::{invalid, Result};
use crate::runtime::model::ModelMetadata;
use crate::runtime::sampler::base::{
    sort_desc, split_quota, DistSpec, Extra, FilterOrder, Proposal,
};
use crate::runtime::sampler::{check_temperature, check_threshold, check_top_k, check_top_p};

/// Which masked positions a step commits.
///
/// ```
/// use diffulex_edge::runtime::sampler::SdarStrategy;
/// assert_eq!(SdarStrategy::default(), SdarStrategy::LowConfidenceDynamic);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SdarStrategy {
    /// Every position with confidence > threshold if there are at least the step's quota of
    /// them, otherwise the quota most confident.
    #[default]
    LowConfidenceDynamic,
    /// The step's quota most confident positions.
    LowConfidenceStatic,
    /// The step's quota leftmost masked positions.
    Sequential,
    /// The lowest-entropy positions whose cumulative entropy stays below `eb_threshold` (at least one).
    EntropyBounded,
}

impl std::str::FromStr for SdarStrategy {
    type Err = crate::runtime::EngineError;
    /// Parses the official names (`low_confidence_dynamic`, `low_confidence_static`,
    /// `sequential`, `entropy_bounded`).
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::SdarStrategy;
    /// assert_eq!("sequential".parse::<SdarStrategy>().unwrap(), SdarStrategy::Sequential);
    /// assert!("greedy".parse::<SdarStrategy>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "low_confidence_dynamic" | "dynamic" => Ok(SdarStrategy::LowConfidenceDynamic),
            "low_confidence_static" | "static" => Ok(SdarStrategy::LowConfidenceStatic),
            "sequential" => Ok(SdarStrategy::Sequential),
            "entropy_bounded" => Ok(SdarStrategy::EntropyBounded),
            o => Err(invalid(
                "strategy",
                o,
                "expected low_confidence_dynamic, low_confidence_static, sequential or entropy_bounded",
            )),
        }
    }
}

/// SDAR decoding settings.
///
/// ```
/// use diffulex_edge::runtime::sampler::{SDARSampler, SdarStrategy};
/// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType};
/// let s = SDARSampler::new(0.9, 1.0);
/// assert_eq!((s.threshold, s.temperature, s.strategy), (0.9, 1.0, SdarStrategy::LowConfidenceDynamic));
///
/// # #[cfg(feature = "pte")] {
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/sdar_cached.pte");
/// let mut engine = DiffusionEngine::from_pte(path, ModelType::Auto, 256).unwrap();
/// let greedy = SDARSampler { strategy: SdarStrategy::LowConfidenceStatic, ..SDARSampler::new(0.9, 0.0) };
/// let cfg = DiffusionGenerationConfig::new(12).with_sampler(greedy);
/// let out = engine.generate(&[10, 11, 12, 13, 14], &cfg).unwrap();
/// assert!(!out.tokens.is_empty() && out.tokens.len() <= 12);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SDARSampler {
    /// Commit rule.
    pub strategy: SdarStrategy,
    /// Confidence threshold of `LowConfidenceDynamic` (strictly greater), in [0, 1].
    pub threshold: f64,
    /// Cumulative entropy bound of `EntropyBounded` (JetEngine default 0.35).
    pub eb_threshold: f64,
    /// Denoising steps per block, 1..=block size (default: the block size, one token per step).
    pub denoising_steps: Option<usize>,
    /// Block length; must equal the model's training block size (default: the model's).
    pub block_length: Option<usize>,
    /// 0 = greedy argmax; > 0 samples from softmax(logits / T).
    pub temperature: f64,
    /// Keep the k most likely tokens before sampling (ignored when greedy).
    pub top_k: Option<usize>,
    /// Nucleus mass kept before sampling (applied after top-k; ignored when greedy).
    pub top_p: Option<f64>,
}

impl Default for SDARSampler {
    fn default() -> Self {
        SDARSampler::new(0.9, 0.0)
    }
}

impl SDARSampler {
    /// Dynamic low-confidence decoding with this threshold and temperature.
    ///
    /// ```
    /// let s = diffulex_edge::runtime::sampler::SDARSampler::new(0.8, 0.0);
    /// assert_eq!(s.eb_threshold, 0.35);
    /// ```
    pub fn new(threshold: f64, temperature: f64) -> Self {
        SDARSampler {
            strategy: SdarStrategy::LowConfidenceDynamic,
            threshold,
            eb_threshold: 0.35,
            denoising_steps: None,
            block_length: None,
            temperature,
            top_k: None,
            top_p: None,
        }
    }

    /// Checks the settings against the model for a generation of `max_new_tokens` tokens
    /// (the same checks [`DiffusionEngine::generate`](crate::runtime::DiffusionEngine::generate)
    /// runs first).
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::SDARSampler, Family, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Sdar, 256, 512, 3, vec![2], 4);
    /// assert!(SDARSampler::default().validate(&meta, 16).is_ok());
    /// assert!(SDARSampler { denoising_steps: Some(8), ..Default::default() }.validate(&meta, 16).is_err());
    /// ```
    pub fn validate(&self, meta: &ModelMetadata, max_new_tokens: usize) -> Result<()> {
        let request = Request {
            prompt_len: 1,
            max_new_tokens,
            bidirectional_cache: false,
            sub_block_cache: false,
        };
        self.plan(meta, request).map(drop)
    }

    fn spec(&self) -> DistSpec {
        DistSpec {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            order: FilterOrder::TopKThenTopP,
            filter_greedy: false,
        }
    }

    /// Fills `chosen` with the indices (into `proposals`, ascending) to commit this step;
    /// `quota` is the step's share of the block.
    fn select(&self, quota: usize, proposals: &[Proposal], chosen: &mut Vec<usize>) {
        chosen.clear();
        chosen.extend(0..proposals.len());
        match self.strategy {
            SdarStrategy::Sequential => chosen.truncate(quota),
            SdarStrategy::LowConfidenceStatic => {
                sort_desc(chosen, |i| proposals[i].prob);
                chosen.truncate(quota);
            }
            SdarStrategy::LowConfidenceDynamic => {
                let confident = proposals.iter().filter(|p| p.prob > self.threshold).count();
                if confident >= quota {
                    chosen.retain(|&i| proposals[i].prob > self.threshold);
                } else {
                    sort_desc(chosen, |i| proposals[i].prob);
                    chosen.truncate(quota);
                }
            }
            SdarStrategy::EntropyBounded => {
                sort_desc(chosen, |i| -proposals[i].extra);
                let mut cumulative_entropy = 0.0f64;
                let mut within_bound = 0;
                for &i in chosen.iter() {
                    cumulative_entropy += proposals[i].extra;
                    if cumulative_entropy < self.eb_threshold {
                        within_bound += 1;
                    } else {
                        break;
                    }
                }
                chosen.truncate(within_bound.max(1));
            }
        }
        chosen.sort_unstable();
    }
}

/// SDAR's settings resolved against the model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SdarPlan {
    /// The model's training block size.
    block_len: usize,
    /// Denoising steps per block.
    steps_per_block: usize,
}

impl FamilyDecoder for SDARSampler {
    type Plan = SdarPlan;

    fn plan(&self, meta: &ModelMetadata, _request: Request) -> Result<SdarPlan> {
        check_temperature(self.temperature)?;
        check_top_k(self.top_k)?;
        check_top_p(self.top_p)?;
        check_threshold("threshold", self.threshold)?;
        if !(self.eb_threshold.is_finite() && self.eb_threshold > 0.0) {
            return Err(invalid(
                "eb_threshold",
                self.eb_threshold,
                "must be finite and > 0",
            ));
        }
        let block_len = meta.block_size;
        if let Some(requested) = self.block_length {
            if requested != block_len {
                return Err(invalid(
                    "block_length",
                    requested,
                    format!("must equal the model's training block size {block_len}"),
                ));
            }
        }
        let steps_per_block = self.denoising_steps.unwrap_or(block_len);
        if steps_per_block == 0 || steps_per_block > block_len {
            return Err(invalid(
                "denoising_steps",
                steps_per_block,
                format!("must be in 1..={block_len} (the block size)"),
            ));
        }
        Ok(SdarPlan {
            block_len,
            steps_per_block,
        })
    }

    fn most_logits_rows(&self, plan: &SdarPlan, _request: Request) -> (usize, &'static str) {
        (
            plan.block_len,
            "a step reads the masked rows of one block, and SDAR's block size is the model's",
        )
    }

    fn decode(&self, plan: SdarPlan, run: &mut Run<'_>) -> Result<Outcome> {
        let SdarPlan {
            block_len,
            steps_per_block,
        } = plan;
        let quota_per_step = split_quota(block_len, steps_per_block);
        let prompt_len = run.prompt_len();
        let canvas_end = (prompt_len + run.max_new_tokens()).div_ceil(block_len) * block_len;
        run.grow_canvas_to(canvas_end);
        let block_count = canvas_end / block_len;
        // The prompt's whole blocks are final: with the cache they are written once here (from
        // where an earlier generation's K/V of the same ids end, when reused).
        let prefilled = prompt_len / block_len * block_len;
        if run.cached() {
            let prefill_from = run.prefill_start(prefilled);
            if prefill_from < prefilled {
                run.forward(Pass::Prefill, prefill_from..prefilled, &[])?;
            }
        }
        run.end_prefill();
        let spec = self.spec();
        let extra = if self.strategy == SdarStrategy::EntropyBounded {
            Extra::Entropy
        } else {
            Extra::None
        };
        let (mut masked, mut proposals, mut chosen, mut picks) =
            (Vec::new(), Vec::<Proposal>::new(), Vec::new(), Vec::new());
        let first_block = prefilled / block_len;
        // Start of a finished block whose final K/V are not written yet. Its commit rides on the
        // next block's first denoising forward, which feeds both blocks (see `commit_later`).
        let mut uncommitted: Option<usize> = None;
        for block in first_block..block_count {
            let (block_start, block_end) = (block * block_len, block * block_len + block_len);
            let reported_block = block - first_block;
            let mut step = 0;
            loop {
                masked.clear();
                masked.extend(run.canvas().masked_in(block_start..block_end));
                if masked.is_empty() {
                    break;
                }
                let forward_start = if run.cached() {
                    uncommitted.take().unwrap_or(block_start)
                } else {
                    0
                };
                run.forward(Pass::Decode, forward_start..block_end, &masked)?
                    .propose_all(&masked, &spec, extra, &mut proposals)?;
                let quota = quota_per_step[step.min(steps_per_block - 1)].min(masked.len());
                self.select(quota, &proposals, &mut chosen);
                picks.clear();
                picks.extend(
                    chosen
                        .iter()
                        .map(|&i| (masked[i], proposals[i].token as i64)),
                );
                if run.finish_step(reported_block, &picks) == Control::Stop {
                    return Ok(Outcome::Cancelled);
                }
                step += 1;
            }
            if run.finish_block(reported_block, block_start, block_end) == Control::Stop {
                return Ok(Outcome::Cancelled);
            }
            if run.stop_reached() {
                return Ok(Outcome::Finished);
            }
            if run.cached() && block + 1 < block_count {
                uncommitted = commit_later(run, uncommitted, block_start, block_end)?;
            }
        }
        Ok(Outcome::Finished)
    }
}

/// Defers the K/V write of the finished block `[block_start, block_end)`: the next block's first
/// denoising forward starts at `block_start` and feeds both blocks, so a block costs no forward of its own. That
/// forward writes the same K/V as a separate commit would: under the block-causal mask the
/// finished block's queries see none of the next block's keys. Its logits rows are offset by one
/// block and only the next block's masked rows are computed.
///
/// If a commit is still pending here, the block just finished had no denoising forward to
/// carry it. Both blocks are then committed now, in one forward. This cannot happen today,
/// because every block after the prompt's starts fully masked. The guard is there so that a
/// later change cannot silently leave a block's K/V stale.
fn commit_later(
    run: &mut Run<'_>,
    uncommitted: Option<usize>,
    block_start: usize,
    block_end: usize,
) -> Result<Option<usize>> {
    match uncommitted {
        None => Ok(Some(block_start)),
        Some(from) => {
            run.forward(Pass::Commit, from..block_end, &[])?;
            Ok(None)
        }
    }
}
