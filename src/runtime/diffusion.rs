//! Shared decoding machinery: outputs, streaming events, and the per-generation context that
//! runs (and times) forwards for the family decoders in `sampler::models`.

use super::block::Canvas;
use super::error::{EngineError, Result};
use super::model::{DiffusionModel, LogitsView, ModelMetadata};
use super::parallel::RowPool;
use super::rng::Rng;
use super::sampler::base::Scorer;
use super::stats::GenerationStats;
use std::time::{Duration, Instant};

/// Why a generation ended.
///
/// ```
/// use diffulex_edge::runtime::StopReason;
/// assert_ne!(StopReason::MaxNewTokens, StopReason::Cancelled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop id was generated; it is the last returned token.
    Eos(i64),
    /// `max_new_tokens` tokens were generated.
    MaxNewTokens,
    /// A callback returned [`Control::Stop`]; the committed prefix is returned.
    Cancelled,
}

/// Result of [`crate::runtime::DiffusionEngine::generate`].
///
/// ```
/// use diffulex_edge::runtime::{GenerationOutput, GenerationStats, StopReason};
/// let o = GenerationOutput { tokens: vec![4, 2], prompt_len: 3, stop_reason: StopReason::Eos(2), stats: GenerationStats::default() };
/// assert_eq!(o.tokens.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOutput {
    /// Generated tokens only (the prompt is not repeated); never contains the mask token.
    pub tokens: Vec<i64>,
    /// Length of the prompt that was decoded from.
    pub prompt_len: usize,
    /// Why decoding ended.
    pub stop_reason: StopReason,
    /// Counters and timings.
    pub stats: GenerationStats,
}

/// What a callback wants next.
///
/// ```
/// use diffulex_edge::runtime::Control;
/// assert_eq!(Control::default(), Control::Continue);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    /// Keep decoding.
    #[default]
    Continue,
    /// Stop now; the engine returns what is committed and stays usable.
    Stop,
}

/// One denoising step (one forward and its commits).
///
/// ```
/// use diffulex_edge::runtime::StepEvent;
/// let e = StepEvent { step: 0, block: 0, canvas: &[7, 99], committed: &[(0, 7)], mask_token_id: 99 };
/// assert_eq!(e.committed[0].1, 7);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StepEvent<'a> {
    /// Step index within this generation (0-based, over all blocks).
    pub step: usize,
    /// Block index (0 for families without blocks); counted from the first generated position.
    pub block: usize,
    /// The generation region so far (positions after the prompt), masks included.
    pub canvas: &'a [i64],
    /// `(offset in the generation, token)` committed by this step.
    pub committed: &'a [(usize, i64)],
    /// The mask id, to render `canvas`.
    pub mask_token_id: i64,
}

/// A block became final.
///
/// ```
/// use diffulex_edge::runtime::BlockEvent;
/// let e = BlockEvent { block: 1, start: 4, tokens: &[5, 6, 7, 8] };
/// assert_eq!(e.tokens.len(), 4);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BlockEvent<'a> {
    /// Block index.
    pub block: usize,
    /// Offset of `tokens[0]` in the generation.
    pub start: usize,
    /// The block's generated tokens (prompt tail excluded).
    pub tokens: &'a [i64],
}

/// Streaming hooks; both default to [`Control::Continue`].
///
/// ```
/// use diffulex_edge::runtime::{Control, GenerationObserver, StepEvent};
/// struct Count(usize);
/// impl GenerationObserver for Count {
///     fn on_step(&mut self, _: &StepEvent<'_>) -> Control { self.0 += 1; Control::Continue }
/// }
/// ```
pub trait GenerationObserver {
    /// Called after every denoising step.
    fn on_step(&mut self, _event: &StepEvent<'_>) -> Control {
        Control::Continue
    }
    /// Called when a block is final.
    fn on_block(&mut self, _event: &BlockEvent<'_>) -> Control {
        Control::Continue
    }
}

/// Observer that ignores everything.
///
/// ```
/// use diffulex_edge::runtime::NoObserver;
/// let _ = NoObserver;
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;
impl GenerationObserver for NoObserver {}

/// Adapts a step closure into an observer.
///
/// ```
/// use diffulex_edge::runtime::{Control, StepFn};
/// let mut steps = 0;
/// let _obs = StepFn(|_e: &diffulex_edge::runtime::StepEvent<'_>| { steps += 1; Control::Continue });
/// ```
pub struct StepFn<F>(pub F);
impl<F: FnMut(&StepEvent<'_>) -> Control> GenerationObserver for StepFn<F> {
    fn on_step(&mut self, event: &StepEvent<'_>) -> Control {
        (self.0)(event)
    }
}

/// Kind of forward, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    Prefill,
    Decode,
    Commit,
    Cfg,
}

/// Runs a forward of which only the logits of input rows `rows` are read (see
/// [`DiffusionModel::forward_rows`]), checks the logits shape and books its time.
pub(crate) fn forward<'m>(
    model: &'m mut dyn DiffusionModel,
    stats: &mut GenerationStats,
    pass: Pass,
    tokens: &[i64],
    pos: Option<usize>,
    rows: &'m [usize],
) -> Result<LogitsView<'m>> {
    let vocab = model.metadata().vocab_size;
    let t0 = Instant::now();
    let view = model.forward_rows(tokens, pos, rows)?;
    stats.execute_time += t0.elapsed();
    stats.forwards += 1;
    match pass {
        Pass::Prefill => stats.prefill_forwards += 1,
        Pass::Decode => stats.decode_forwards += 1,
        Pass::Commit => stats.commit_forwards += 1,
        Pass::Cfg => stats.cfg_forwards += 1,
    }
    if view.rows() != tokens.len()
        || view.vocab() != vocab
        || !rows.iter().all(|&r| view.has_row(r))
    {
        return Err(EngineError::LogitsShape {
            got: vec![1, view.computed_rows(), view.vocab()],
            tokens: tokens.len(),
            vocab,
        });
    }
    stats.logit_rows += view.computed_rows();
    Ok(view)
}

/// Everything one generation needs; the family decoders drive it.
pub(crate) struct Decoder<'a> {
    pub model: &'a mut dyn DiffusionModel,
    pub meta: ModelMetadata,
    /// Feed only the current block at its absolute position (block-causal families with a cache).
    pub cached: bool,
    pub scorer: &'a mut Scorer,
    /// Scores the rows of a greedy step (the engine's pool).
    pub pool: &'a dyn RowPool,
    pub rng: Rng,
    pub stats: GenerationStats,
    pub observer: &'a mut dyn GenerationObserver,
    pub stop_ids: Vec<i64>,
    pub canvas: Canvas,
    /// Number of tokens the caller wants (the canvas may extend further to whole blocks).
    pub max_new: usize,
    pub step: usize,
    pub committed: Vec<(usize, i64)>,
    pub prefill_end: Option<Instant>,
    pub start: Instant,
}

impl Decoder<'_> {
    /// Position argument for a forward over the whole sequence from 0.
    pub(crate) fn full_pos(&self) -> Option<usize> {
        self.meta.use_kv_cache.then_some(0)
    }

    pub(crate) fn mask_index(&self) -> Option<usize> {
        Some(self.meta.mask_token_id as usize)
    }

    /// End (exclusive) of the region whose tokens are returned.
    pub(crate) fn gen_end(&self) -> usize {
        self.canvas.prompt_len() + self.max_new
    }

    /// Marks the prefill as done (decode time starts here).
    pub(crate) fn end_prefill(&mut self) {
        if self.prefill_end.is_none() {
            let now = Instant::now();
            self.stats.prefill_time = now - self.start;
            self.prefill_end = Some(now);
        }
    }

    /// Commits the pending `(position, token)` list, reports the step; returns the callback's wish.
    pub(crate) fn finish_step(&mut self, block: usize, picks: &[(usize, i64)]) -> Control {
        let lp = self.canvas.prompt_len();
        self.committed.clear();
        for &(pos, tok) in picks {
            if self.canvas.commit(pos, tok) {
                self.committed.push((pos - lp, tok));
            }
        }
        self.stats.tokens_committed += self.committed.len();
        let ev = StepEvent {
            step: self.step,
            block,
            canvas: &self.canvas.tokens()[lp..],
            committed: &self.committed,
            mask_token_id: self.meta.mask_token_id,
        };
        self.step += 1;
        self.observer.on_step(&ev)
    }

    /// Reports a final block `[start, end)` (absolute); prompt positions are left out.
    pub(crate) fn finish_block(&mut self, block: usize, start: usize, end: usize) -> Control {
        let lp = self.canvas.prompt_len();
        let s = start.max(lp);
        let end = end.min(self.gen_end()).max(s);
        let ev = BlockEvent {
            block,
            start: s - lp,
            tokens: &self.canvas.tokens()[s..end],
        };
        self.observer.on_block(&ev)
    }

    /// Whether the output is complete through a stop token.
    pub(crate) fn stop_reached(&self) -> bool {
        self.canvas
            .finished_through_stop(self.gen_end(), &self.stop_ids)
            .is_some()
    }

    /// Builds the output.
    pub(crate) fn into_output(mut self, cancelled: bool) -> GenerationOutput {
        let (tokens, stop) = self.canvas.output(self.gen_end(), &self.stop_ids);
        let stop_reason = match (stop, cancelled) {
            (Some(t), _) => StopReason::Eos(t),
            (None, true) => StopReason::Cancelled,
            (None, false) => StopReason::MaxNewTokens,
        };
        self.end_prefill();
        let now = Instant::now();
        self.stats.decode_time = self.prefill_end.map_or(Duration::ZERO, |p| now - p);
        self.stats.total_time = now - self.start;
        self.stats.tokens_generated = tokens.len();
        GenerationOutput {
            tokens,
            prompt_len: self.canvas.prompt_len(),
            stop_reason,
            stats: self.stats,
        }
    }
}
