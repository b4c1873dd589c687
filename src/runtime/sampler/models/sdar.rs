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

use crate::runtime::diffusion::{forward, Control, Decoder, Pass};
use crate::runtime::error::{invalid, Result};
use crate::runtime::model::ModelMetadata;
use crate::runtime::sampler::base::{
    sort_desc, split_quota, DistSpec, Extra, FilterOrder, Proposal,
};
use crate::runtime::sampler::shift::{logit_row, rows_for};
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

    /// Checks the settings against the model; returns (block length, steps per block).
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::SDARSampler, Family, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Sdar, 256, 512, 3, vec![2], 4);
    /// assert_eq!(SDARSampler::default().validate(&meta).unwrap(), (4, 4));
    /// assert!(SDARSampler { denoising_steps: Some(8), ..Default::default() }.validate(&meta).is_err());
    /// ```
    pub fn validate(&self, meta: &ModelMetadata) -> Result<(usize, usize)> {
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
        let bl = meta.block_size;
        if let Some(b) = self.block_length {
            if b != bl {
                return Err(invalid(
                    "block_length",
                    b,
                    format!("must equal the model's training block size {bl}"),
                ));
            }
        }
        let steps = self.denoising_steps.unwrap_or(bl);
        if steps == 0 || steps > bl {
            return Err(invalid(
                "denoising_steps",
                steps,
                format!("must be in 1..={bl} (the block size)"),
            ));
        }
        Ok((bl, steps))
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

    /// Runs the algorithm on `d`'s canvas (prompt only); returns whether a callback cancelled.
    pub(crate) fn decode(&self, d: &mut Decoder<'_>) -> Result<bool> {
        let (bl, steps) = self.validate(&d.meta)?;
        let quota = split_quota(bl, steps);
        let lp = d.canvas.prompt_len();
        let end = (lp + d.max_new).div_ceil(bl) * bl;
        d.canvas.grow_to(end);
        let nb = end / bl;
        let pf = lp / bl * bl;
        if d.cached && pf > 0 {
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
        let (spec, mask) = (self.spec(), d.mask_index());
        let extra = if self.strategy == SdarStrategy::EntropyBounded {
            Extra::Entropy
        } else {
            Extra::None
        };
        let (mut positions, mut props, mut order, mut picks, mut rows) = (
            Vec::new(),
            Vec::<Proposal>::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let first_block = pf / bl;
        // Start of a finished block whose final K/V are not written yet. Its commit rides on the
        // next block's first denoising forward, which feeds both blocks (see `commit_later`).
        let mut pending: Option<usize> = None;
        for b in first_block..nb {
            let (s, e) = (b * bl, b * bl + bl);
            let mut step = 0;
            loop {
                positions.clear();
                positions.extend(d.canvas.masked_in(s..e));
                if positions.is_empty() {
                    break;
                }
                let (start, pos) = if d.cached {
                    let from = pending.take().unwrap_or(s);
                    (from, Some(from))
                } else {
                    (0, d.full_pos())
                };
                rows_for(&positions, start, false, &mut rows);
                let view = forward(
                    &mut *d.model,
                    &mut d.stats,
                    Pass::Decode,
                    &d.canvas.tokens()[start..e],
                    pos,
                    &rows,
                )?;
                d.scorer.propose_rows(
                    &positions,
                    |p| view.row(logit_row(p, start, false).unwrap_or(0)),
                    mask,
                    &spec,
                    extra,
                    &mut d.rng,
                    &mut props,
                    d.pool,
                )?;
                let q = quota[step.min(steps - 1)].min(positions.len());
                self.select(q, &props, &mut order);
                picks.clear();
                picks.extend(order.iter().map(|&i| (positions[i], props[i].token as i64)));
                if d.finish_step(b - first_block, &picks) == Control::Stop {
                    return Ok(true);
                }
                step += 1;
            }
            if d.finish_block(b - first_block, s, e) == Control::Stop {
                return Ok(true);
            }
            if d.stop_reached() {
                return Ok(false);
            }
            if d.cached && b + 1 < nb {
                pending = commit_later(d, pending, s, e)?;
            }
        }
        Ok(false)
    }

    /// Fills `order` with indices (into `props`) to commit.
    fn select(&self, q: usize, props: &[Proposal], order: &mut Vec<usize>) {
        order.clear();
        order.extend(0..props.len());
        match self.strategy {
            SdarStrategy::Sequential => order.truncate(q),
            SdarStrategy::LowConfidenceStatic => {
                sort_desc(order, |i| props[i].prob);
                order.truncate(q);
            }
            SdarStrategy::LowConfidenceDynamic => {
                let high = props.iter().filter(|p| p.prob > self.threshold).count();
                if high >= q {
                    order.retain(|&i| props[i].prob > self.threshold);
                } else {
                    sort_desc(order, |i| props[i].prob);
                    order.truncate(q);
                }
            }
            SdarStrategy::EntropyBounded => {
                sort_desc(order, |i| -props[i].extra);
                let mut cum = 0.0f64;
                let mut k = 0;
                for &i in order.iter() {
                    cum += props[i].extra;
                    if cum < self.eb_threshold {
                        k += 1;
                    } else {
                        break;
                    }
                }
                order.truncate(k.max(1));
            }
        }
        order.sort_unstable();
    }
}

/// Defers the K/V write of the finished block `[s, e)`: the next block's first denoising
/// forward starts at `s` and feeds both blocks, so a block costs no forward of its own. That
/// forward writes the same K/V as a separate commit would: under the block-causal mask the
/// finished block's queries see none of the next block's keys. Its logits rows are offset by one
/// block and only the next block's masked rows are computed.
///
/// If a commit is still pending here, the block just finished had no denoising forward to
/// carry it. Both blocks are then committed now, in one forward. This cannot happen today,
/// because every block after the prompt's starts fully masked. The guard is there so that a
/// later change cannot silently leave a block's K/V stale.
fn commit_later(
    d: &mut Decoder<'_>,
    pending: Option<usize>,
    s: usize,
    e: usize,
) -> Result<Option<usize>> {
    match pending {
        None => Ok(Some(s)),
        Some(from) => {
            forward(
                &mut *d.model,
                &mut d.stats,
                Pass::Commit,
                &d.canvas.tokens()[from..e],
                Some(from),
                &[],
            )?;
            Ok(None)
        }
    }
}
