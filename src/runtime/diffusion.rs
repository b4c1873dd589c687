//! Shared decoding machinery: outputs and streaming events (public), and the one interface the
//! family decoders in `sampler::models` implement ([`FamilyDecoder`]) together with the
//! generation they drive ([`Run`]): it owns the model borrow, the canvas, the statistics and the
//! scoring tools, and is the only place a forward is run.

use super::block::Canvas;
use super::error::{EngineError, Result};
use super::kv_prefix::KvPrefix;
use super::model::{DiffusionModel, LogitsView, ModelMetadata};
use super::parallel::RowPool;
use super::rng::Rng;
use super::sampler::base::{DistSpec, Extra, Proposal, Scorer};
use super::sampler::shift::{logit_row, rows_for};
use super::stats::GenerationStats;
use std::ops::Range;
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
    /// Writes the K/V of the prompt's whole blocks (block families with a cache).
    Prefill,
    /// A denoising step: its logits propose tokens.
    Decode,
    /// Writes the final K/V of a finished block.
    Commit,
    /// The unconditional forward of classifier-free guidance (LLaDA).
    Cfg,
}

/// How a family's decoding loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The loop ran to its end: the budget is filled or a stop token was committed.
    Finished,
    /// The observer returned [`Control::Stop`].
    Cancelled,
}

/// What a generation asks for, as far as a family's plan depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    /// Tokens of the prompt.
    pub prompt_len: usize,
    /// Tokens to generate, already fitted to the context by the engine (> 0).
    pub max_new_tokens: usize,
    /// Whether the bidirectional families may use Fast-dLLM's prefix and dual caches: the
    /// model has them and the engine was not told to recompute everything.
    pub bidirectional_cache: bool,
    /// Whether Fast-dLLM v2 may use its sub-block cache: the model has it
    /// ([`ModelMetadata::sub_block_cache`]) and the engine uses the KV cache.
    pub sub_block_cache: bool,
}

/// The one interface of a family's decoding rules (SDAR, Fast-dLLM v2, LLaDA, Dream).
///
/// The engine calls [`FamilyDecoder::plan`] once per generation, before anything is allocated,
/// then [`FamilyDecoder::decode`] with a [`Run`] whose canvas holds the prompt only. `decode`
/// grows the canvas, runs forwards through [`Run::forward`] and commits through
/// [`Run::finish_step`]; it never touches the model or the statistics directly.
///
/// The block families with a cache start their prompt prefill at [`Run::prefill_start`]: after
/// the prefix whose K/V an earlier generation left in the cache (multi-turn chat), 0 otherwise.
/// [`Run::forward`] keeps the record of what the cache holds; a decoder does nothing else for it.
pub(crate) trait FamilyDecoder {
    /// Settings resolved against the model and the request (block sizes, step counts).
    type Plan;
    /// Checks the settings against the model's constants and the request.
    fn plan(&self, meta: &ModelMetadata, request: Request) -> Result<Self::Plan>;
    /// The most rows of logits one forward of `plan` asks for (a block's masked positions, or
    /// every new token where the family decodes without blocks), and what sets that number,
    /// for the message when the model returns fewer.
    fn most_logits_rows(&self, plan: &Self::Plan, request: Request) -> (usize, &'static str);
    /// Runs the family's algorithm to the end of the budget, a stop token or a cancel.
    fn decode(&self, plan: Self::Plan, run: &mut Run<'_>) -> Result<Outcome>;
}

/// The borrowed parts of the engine a generation runs on.
pub(crate) struct EngineParts<'a> {
    /// The model, driven only through [`Run::forward`].
    pub model: &'a mut dyn DiffusionModel,
    /// The model's constants.
    pub meta: &'a ModelMetadata,
    /// Feed only the current block at its absolute position (see [`Run::cached`]).
    pub cached: bool,
    /// What the model's KV cache holds, when the engine reuses it between generations (only
    /// with `cached`): the prompt's prefill may skip its prefix, and every forward updates it.
    pub kv: Option<&'a mut KvPrefix>,
    /// The engine's reusable scoring buffers.
    pub scorer: &'a mut Scorer,
    /// Scores the rows of a greedy step (the engine's pool).
    pub pool: &'a dyn RowPool,
    /// Receives every step and finished block.
    pub observer: &'a mut dyn GenerationObserver,
}

/// One generation in progress: the model borrow, the canvas, the statistics and the scoring
/// tools. The family decoders drive it through its methods only.
pub(crate) struct Run<'a> {
    model: &'a mut dyn DiffusionModel,
    meta: &'a ModelMetadata,
    /// Feed only the current block at its absolute position (block-causal families with a cache).
    cached: bool,
    /// What the model's KV cache holds; `Some` when the engine reuses it (always `cached`).
    kv: Option<&'a mut KvPrefix>,
    /// Prompt tokens whose K/V are already in the cache (whole blocks; 0 without reuse).
    reusable: usize,
    scorer: &'a mut Scorer,
    pool: &'a dyn RowPool,
    rng: Rng,
    stats: GenerationStats,
    observer: &'a mut dyn GenerationObserver,
    stop_ids: Vec<i64>,
    canvas: Canvas,
    /// Number of tokens the caller wants (the canvas may extend further to whole blocks).
    max_new_tokens: usize,
    /// Steps reported so far.
    steps_done: usize,
    /// `(offset in the generation, token)` committed by the current step (reused buffer).
    committed: Vec<(usize, i64)>,
    /// Logits rows of the current forward (reused buffer).
    logit_rows: Vec<usize>,
    /// The canvas with the prompt masked, for classifier-free guidance (reused buffer).
    unconditional: Vec<i64>,
    prefill_end: Option<Instant>,
    start: Instant,
}

/// The logits of one forward with the tools to score them: the engine's [`Scorer`], the
/// sampling stream and the row pool. Positions are absolute canvas positions; the row each one
/// reads (shifted families read the row before) is resolved here.
pub(crate) struct Forward<'r> {
    logits: LogitsView<'r>,
    /// Absolute position of the forward's first input token.
    start: usize,
    shifted: bool,
    mask: Option<usize>,
    scorer: &'r mut Scorer,
    rng: &'r mut Rng,
    pool: &'r dyn RowPool,
}

impl<'r> Forward<'r> {
    /// Logits that score absolute position `position` (a position without a row of its own in
    /// this forward reads row 0; the decoders never ask for one).
    pub(crate) fn logits_of(&self, position: usize) -> &'r [f32] {
        self.logits
            .row(logit_row(position, self.start, self.shifted).unwrap_or(0))
    }

    /// Proposes a token for `position` (never the mask). Draws one uniform when sampling.
    pub(crate) fn propose(
        &mut self,
        position: usize,
        spec: &DistSpec,
        extra: Extra,
    ) -> Result<Proposal> {
        let row = self.logits_of(position);
        self.scorer
            .propose(row, self.mask, spec, extra, self.rng, position)
    }

    /// Proposals for `positions`, in their order, into `proposals` (plain greedy rows are
    /// scored on the row pool).
    pub(crate) fn propose_all(
        &mut self,
        positions: &[usize],
        spec: &DistSpec,
        extra: Extra,
        proposals: &mut Vec<Proposal>,
    ) -> Result<()> {
        let (logits, start, shifted) = (self.logits, self.start, self.shifted);
        self.scorer.propose_rows(
            positions,
            |p| logits.row(logit_row(p, start, shifted).unwrap_or(0)),
            self.mask,
            spec,
            extra,
            self.rng,
            proposals,
            self.pool,
        )
    }

    /// The generation's sampling stream.
    pub(crate) fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    /// The pool that scores the rows of a greedy step.
    pub(crate) fn pool(&self) -> &'r dyn RowPool {
        self.pool
    }
}

impl<'a> Run<'a> {
    /// A generation after `prompt` of `max_new_tokens` tokens (> 0, fitted to the context).
    pub(crate) fn new(
        parts: EngineParts<'a>,
        prompt: &[i64],
        max_new_tokens: usize,
        stop_ids: Vec<i64>,
        seed: u64,
        start: Instant,
    ) -> Self {
        let meta = parts.meta;
        let reusable = parts
            .kv
            .as_ref()
            .map_or(0, |kv| kv.reusable(prompt, meta.block_size));
        Run {
            model: parts.model,
            meta,
            cached: parts.cached,
            kv: parts.kv,
            reusable,
            scorer: parts.scorer,
            pool: parts.pool,
            rng: Rng::new(seed),
            stats: GenerationStats::default(),
            observer: parts.observer,
            stop_ids,
            canvas: Canvas::new(prompt, 0, meta.mask_token_id),
            max_new_tokens,
            steps_done: 0,
            committed: Vec::new(),
            logit_rows: Vec::new(),
            unconditional: Vec::new(),
            prefill_end: None,
            start,
        }
    }

    /// The model's constants.
    pub(crate) fn meta(&self) -> &'a ModelMetadata {
        self.meta
    }

    /// The most rows of logits one forward of the model returns.
    pub(crate) fn max_logits_rows(&self) -> usize {
        self.model.max_logits_rows()
    }

    /// Whether forwards feed only the current block at its absolute position (the KV cache
    /// holds everything before it); otherwise every forward recomputes from position 0.
    pub(crate) fn cached(&self) -> bool {
        self.cached
    }

    /// The prompt and what is generated so far, masks included.
    pub(crate) fn canvas(&self) -> &Canvas {
        &self.canvas
    }

    /// Length of the prompt.
    pub(crate) fn prompt_len(&self) -> usize {
        self.canvas.prompt_len()
    }

    /// Tokens the caller wants.
    pub(crate) fn max_new_tokens(&self) -> usize {
        self.max_new_tokens
    }

    /// End (exclusive) of the region whose tokens are returned.
    pub(crate) fn output_end(&self) -> usize {
        self.canvas.prompt_len() + self.max_new_tokens
    }

    /// Where the prefill of the prompt's whole blocks starts, given that it must start at or
    /// before `limit` (a block boundary, e.g. one block before an aligned prompt's end when the
    /// prefill's last row is read): after the prefix whose K/V an earlier generation left in
    /// the cache, capped at `limit`; 0 without a cache or without reuse. Books the skipped
    /// tokens as [`GenerationStats::reused_prompt_tokens`].
    pub(crate) fn prefill_start(&mut self, limit: usize) -> usize {
        debug_assert!(limit.is_multiple_of(self.meta.block_size.max(1)));
        let start = self.reusable.min(limit);
        self.stats.reused_prompt_tokens = start;
        start
    }

    /// Extends the canvas with masks up to `len` positions.
    pub(crate) fn grow_canvas_to(&mut self, len: usize) {
        self.canvas.grow_to(len);
    }

    /// Runs a forward over the canvas positions `tokens` and books it as `pass`. Only the
    /// logits of `scored` (absolute positions) are computed, see
    /// [`DiffusionModel::forward_rows`]. With the cache, the tokens are fed at their absolute
    /// position; without it, `tokens` must start at 0 (the whole sequence is recomputed).
    pub(crate) fn forward(
        &mut self,
        pass: Pass,
        tokens: Range<usize>,
        scored: &[usize],
    ) -> Result<Forward<'_>> {
        let input_pos = if self.cached {
            Some(tokens.start)
        } else {
            debug_assert_eq!(tokens.start, 0, "an uncached forward starts at 0");
            self.meta.use_kv_cache.then_some(0)
        };
        let start = tokens.start;
        self.forward_tokens(pass, Input::Canvas(tokens), start, input_pos, None, scored)
    }

    /// A forward of the canvas positions `tokens` at their absolute position that attends to
    /// the cache slots below `kv_end` (see [`DiffusionModel::forward_span`]): the in-block step
    /// of Fast-dLLM v1's prefix and dual caches (LLaDA, Dream) and of Fast-dLLM v2's sub-block
    /// cache. The slots outside `tokens` hold what the block's last full forward stored.
    pub(crate) fn forward_span(
        &mut self,
        pass: Pass,
        tokens: Range<usize>,
        kv_end: usize,
        scored: &[usize],
    ) -> Result<Forward<'_>> {
        debug_assert!(self.meta.takes_kv_end());
        let start = tokens.start;
        self.forward_tokens(
            pass,
            Input::Canvas(tokens),
            start,
            Some(start),
            Some(kv_end),
            scored,
        )
    }

    /// Like [`Run::forward`] over the whole canvas from 0, with the prompt replaced by masks:
    /// the unconditional half of classifier-free guidance.
    pub(crate) fn forward_prompt_masked(
        &mut self,
        pass: Pass,
        scored: &[usize],
    ) -> Result<Forward<'_>> {
        debug_assert!(!self.cached, "guidance recomputes the whole sequence");
        self.unconditional.clear();
        self.unconditional.extend_from_slice(self.canvas.tokens());
        let prompt_len = self.canvas.prompt_len();
        self.unconditional[..prompt_len].fill(self.meta.mask_token_id);
        let input_pos = self.meta.use_kv_cache.then_some(0);
        self.forward_tokens(pass, Input::Unconditional, 0, input_pos, None, scored)
    }

    /// Runs one forward, checks the logits shape and books its time.
    fn forward_tokens(
        &mut self,
        pass: Pass,
        input: Input,
        start: usize,
        input_pos: Option<usize>,
        kv_end: Option<usize>,
        scored: &[usize],
    ) -> Result<Forward<'_>> {
        let shifted = self.meta.family.shifted();
        rows_for(scored, start, shifted, &mut self.logit_rows);
        let block_size = self.meta.block_size;
        // The record of what the cache holds is cut before the call, so a failed forward
        // leaves nothing it may have overwritten remembered.
        let remember = match (&mut self.kv, &input) {
            (Some(kv), Input::Canvas(range)) => kv.before_forward(range.start, block_size),
            _ => false,
        };
        let tokens = match input {
            Input::Canvas(range) => &self.canvas.tokens()[range],
            Input::Unconditional => &self.unconditional[..],
        };
        let vocab = self.meta.vocab_size;
        let started = Instant::now();
        let result = match (kv_end, input_pos) {
            (Some(kv_end), Some(pos)) => {
                self.model
                    .forward_span(tokens, pos, kv_end, &self.logit_rows)
            }
            _ => self.model.forward_rows(tokens, input_pos, &self.logit_rows),
        };
        let logits = match result {
            Ok(logits) => logits,
            Err(e) => {
                // A backend that failed mid-call may have reset its state (the runtime reloads
                // a method that threw, which empties its KV buffers): trust no cached prefix.
                if let Some(kv) = self.kv.as_mut() {
                    kv.clear();
                }
                return Err(e);
            }
        };
        let stats = &mut self.stats;
        stats.execute_time += started.elapsed();
        stats.forwards += 1;
        match pass {
            Pass::Prefill => stats.prefill_forwards += 1,
            Pass::Decode => stats.decode_forwards += 1,
            Pass::Commit => stats.commit_forwards += 1,
            Pass::Cfg => stats.cfg_forwards += 1,
        }
        if logits.rows() != tokens.len()
            || logits.vocab() != vocab
            || !self.logit_rows.iter().all(|&row| logits.has_row(row))
        {
            return Err(EngineError::LogitsShape {
                got: vec![1, logits.computed_rows(), logits.vocab()],
                tokens: tokens.len(),
                vocab,
            });
        }
        stats.logit_rows += logits.computed_rows();
        stats.tokens_fed += tokens.len();
        if let (true, Some(kv)) = (remember, &mut self.kv) {
            kv.after_forward(tokens, block_size);
        }
        Ok(Forward {
            logits,
            start,
            shifted,
            mask: Some(self.meta.mask_token_id as usize),
            scorer: &mut *self.scorer,
            rng: &mut self.rng,
            pool: self.pool,
        })
    }

    /// Marks the prefill as done (decode time starts here).
    pub(crate) fn end_prefill(&mut self) {
        if self.prefill_end.is_none() {
            let now = Instant::now();
            self.stats.prefill_time = now - self.start;
            self.prefill_end = Some(now);
        }
    }

    /// Commits the `(position, token)` picks of one step of `block` and reports the step;
    /// returns the observer's wish.
    pub(crate) fn finish_step(&mut self, block: usize, picks: &[(usize, i64)]) -> Control {
        let prompt_len = self.canvas.prompt_len();
        self.committed.clear();
        for &(position, token) in picks {
            if self.canvas.commit(position, token) {
                self.committed.push((position - prompt_len, token));
            }
        }
        self.stats.tokens_committed += self.committed.len();
        let event = StepEvent {
            step: self.steps_done,
            block,
            canvas: &self.canvas.tokens()[prompt_len..],
            committed: &self.committed,
            mask_token_id: self.meta.mask_token_id,
        };
        self.steps_done += 1;
        self.observer.on_step(&event)
    }

    /// Reports a final block `[start, end)` (absolute); prompt positions are left out.
    pub(crate) fn finish_block(&mut self, block: usize, start: usize, end: usize) -> Control {
        let prompt_len = self.canvas.prompt_len();
        let first = start.max(prompt_len);
        let end = end.min(self.output_end()).max(first);
        let event = BlockEvent {
            block,
            start: first - prompt_len,
            tokens: &self.canvas.tokens()[first..end],
        };
        self.observer.on_block(&event)
    }

    /// Whether the output is complete through a stop token.
    pub(crate) fn stop_reached(&self) -> bool {
        self.canvas
            .finished_through_stop(self.output_end(), &self.stop_ids)
            .is_some()
    }

    /// Builds the output.
    pub(crate) fn into_output(mut self, outcome: Outcome) -> GenerationOutput {
        let (tokens, stop) = self.canvas.output(self.output_end(), &self.stop_ids);
        let stop_reason = match (stop, outcome) {
            (Some(token), _) => StopReason::Eos(token),
            (None, Outcome::Cancelled) => StopReason::Cancelled,
            (None, Outcome::Finished) => StopReason::MaxNewTokens,
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

/// Where a forward's input tokens come from.
enum Input {
    /// These positions of the canvas.
    Canvas(Range<usize>),
    /// The whole canvas with the prompt masked ([`Run::forward_prompt_masked`]).
    Unconditional,
}
