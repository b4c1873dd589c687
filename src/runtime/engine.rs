//! The diffusion engine: validates a request, fits it to the context, and runs the family
//! decoder on a [`Run`].

use super::config::DiffusionGenerationConfig;
use super::diffusion::{
    EngineParts, FamilyDecoder, GenerationObserver, GenerationOutput, NoObserver, Request, Run,
    StopReason,
};
use super::error::{invalid, EngineError, Result};
use super::kv_prefix::KvPrefix;
use super::model::{DiffusionModel, Family, ModelMetadata, ModelType};
use super::parallel::RowPool;
#[cfg(feature = "pte")]
use super::pte_model::PteModel;
use super::sampler::base::Scorer;
use super::sampler::BlockSampler;
use super::stats::GenerationStats;
#[cfg(feature = "pte")]
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Decodes with one model; reusable across generations (also after a cancelled one).
///
/// ```
/// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, Family, HashModel, ModelMetadata, ModelType};
/// let mut meta = ModelMetadata::for_family(Family::Sdar, 128, 64, 63, vec![1], 4);
/// meta.use_kv_cache = true;
/// let mut engine = DiffusionEngine::from_model(HashModel::new(meta, 1), ModelType::Auto, true).unwrap();
/// let out = engine.generate(&[5, 6, 7], &DiffusionGenerationConfig::new(8)).unwrap();
/// assert!(out.tokens.len() <= 8 && !out.tokens.contains(&63));
/// ```
pub struct DiffusionEngine {
    model: Box<dyn DiffusionModel + Send>,
    meta: ModelMetadata,
    /// Positions a generation may use, prompt included: 1..=`meta.max_seq_len`.
    context_limit: usize,
    use_kv_cache: bool,
    scorer: Scorer,
    /// Scores the rows of a greedy step; the model's [`DiffusionModel::row_pool`] unless
    /// replaced with [`DiffusionEngine::with_row_pool`].
    pool: Arc<dyn RowPool>,
    /// The token ids whose final K/V the model's cache holds at `[0, n)` (whole blocks; kept
    /// only with reuse on an engine that [uses its cache](DiffusionEngine::uses_kv_cache)).
    /// See `kv_prefix.rs` for the rules.
    kv: KvPrefix,
    /// Whether a prompt's prefill skips the prefix `kv` holds
    /// ([`DiffusionEngine::with_kv_reuse`]).
    kv_reuse: bool,
}

impl std::fmt::Debug for DiffusionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiffusionEngine")
            .field("meta", &self.meta)
            .field("context_limit", &self.context_limit)
            .field("use_kv_cache", &self.use_kv_cache)
            .field("kv_cached_tokens", &self.kv.ids().len())
            .finish()
    }
}

impl DiffusionEngine {
    /// Wraps a model. `use_kv_cache = false` on a cached model recomputes the whole sequence
    /// each forward (position 0); `true` needs a cached model. For LLaDA and Dream the cache is
    /// that of Fast-dLLM's prefix and dual modes ([`CacheMode`](super::sampler::CacheMode)),
    /// which their samplers pick (an approximation of the uncached loop, as in Fast-dLLM);
    /// `false` leaves them [`CacheMode::None`](super::sampler::CacheMode::None) only. The context limit is the model's
    /// own `max_seq_len`; [`DiffusionEngine::with_max_seq_len`] lowers it.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Dream, 64, 32, 31, vec![1], 0);
    /// assert!(DiffusionEngine::from_model(HashModel::new(meta.clone(), 0), Family::Dream, false).is_ok());
    /// assert!(DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Dream, true).is_err()); // no cache
    /// ```
    pub fn from_model<M: DiffusionModel + Send + 'static>(
        model: M,
        model_type: impl Into<ModelType>,
        use_kv_cache: bool,
    ) -> Result<Self> {
        let meta = model.metadata().clone();
        meta.validate()?;
        model_type.into().resolve(meta.family)?;
        if use_kv_cache && !meta.use_kv_cache {
            return Err(EngineError::NoKvCache);
        }
        Ok(DiffusionEngine {
            pool: model.row_pool(),
            model: Box::new(model),
            context_limit: meta.max_seq_len,
            meta,
            use_kv_cache,
            scorer: Scorer::default(),
            kv: KvPrefix::default(),
            kv_reuse: false,
        })
    }

    /// Scores the rows of greedy steps on `pool` instead of the model's own
    /// ([`DiffusionModel::row_pool`]): e.g. [`SequentialPool`](super::parallel::SequentialPool)
    /// to keep a `.pte` model's scoring on the calling thread, or a pool of your own for a model
    /// that brings none. The tokens do not depend on it.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, Family, HashModel, ModelMetadata};
    /// use diffulex_edge::runtime::SequentialPool;
    /// use std::sync::Arc;
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let mut e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Llada, false)
    ///     .unwrap()
    ///     .with_row_pool(Arc::new(SequentialPool));
    /// assert!(e.generate(&[4, 5], &DiffusionGenerationConfig::new(4)).is_ok());
    /// ```
    pub fn with_row_pool(mut self, pool: Arc<dyn RowPool>) -> Self {
        self.pool = pool;
        self
    }

    /// Lets a generation whose prompt starts with tokens an earlier generation on this engine
    /// left in the KV cache ([`DiffusionEngine::kv_cached_tokens`]) skip their prefill: for
    /// multi-turn chat, where each turn's prompt is the whole transcript so far and only the
    /// new tokens are prefilled. [`GenerationStats::reused_prompt_tokens`] counts the skipped
    /// tokens. Only SDAR and Fast-dLLM v2 engines that [use their
    /// cache](DiffusionEngine::uses_kv_cache) reuse; for the others this changes nothing.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, Family, HashModel, ModelMetadata};
    /// let mut meta = ModelMetadata::for_family(Family::Sdar, 64, 32, 31, vec![1], 4);
    /// meta.use_kv_cache = true;
    /// let mut chat = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Sdar, true)
    ///     .unwrap()
    ///     .with_kv_reuse(true);
    /// let cfg = DiffusionGenerationConfig::new(6).with_stop_ids(vec![]);
    /// let mut transcript = vec![5, 6, 7, 8, 9];
    /// let answer = chat.generate(&transcript, &cfg).unwrap();
    /// transcript.extend(&answer.tokens);
    /// transcript.extend([10, 11]);
    /// // The prompt block and the first answer block are final in the cache; the block with
    /// // the answer's last token was last written while it still held masks.
    /// assert_eq!(chat.generate(&transcript, &cfg).unwrap().stats.reused_prompt_tokens, 8);
    /// ```
    pub fn with_kv_reuse(mut self, reuse: bool) -> Self {
        self.kv_reuse = reuse;
        self
    }

    /// Sets the context limit: the positions a generation may use, prompt included (what
    /// `from_pte`'s `max_seq_len` sets). Any value in 1..= the model's own `max_seq_len` is
    /// accepted; a larger one is [`EngineError::MaxSeqLenTooLarge`] (the model's bound is fixed
    /// at export), 0 is [`EngineError::InvalidConfig`].
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, EngineError, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let engine = DiffusionEngine::from_model(HashModel::new(meta.clone(), 0), Family::Llada, false).unwrap();
    /// let mut engine = engine.with_max_seq_len(16).unwrap();
    /// assert_eq!(engine.context_limit(), 16);
    /// assert!(engine.generate(&[4, 5], &DiffusionGenerationConfig::new(15)).is_err());
    /// let too_large = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Llada, false)
    ///     .unwrap()
    ///     .with_max_seq_len(65);
    /// assert!(matches!(too_large, Err(EngineError::MaxSeqLenTooLarge { requested: 65, bound: 64 })));
    /// ```
    pub fn with_max_seq_len(mut self, max_seq_len: usize) -> Result<Self> {
        let bound = self.meta.max_seq_len;
        if max_seq_len == 0 {
            return Err(invalid("max_seq_len", 0, "must be at least 1"));
        }
        if max_seq_len > bound {
            return Err(EngineError::MaxSeqLenTooLarge {
                requested: max_seq_len,
                bound,
            });
        }
        self.context_limit = max_seq_len;
        Ok(self)
    }

    /// Loads a `.pte` with the KV cache it was exported with. `model_type` may be
    /// [`ModelType::Auto`] (read `get_family_id`). `max_seq_len` is this engine's context limit
    /// (see [`DiffusionEngine::with_max_seq_len`]): at most the exported `get_max_seq_len`, the
    /// size of the model's cache buffers.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, ModelType};
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/sdar_cached.pte");
    /// let engine = DiffusionEngine::from_pte(path, ModelType::Auto, 256).unwrap();
    /// assert!(engine.uses_kv_cache());
    /// assert_eq!(DiffusionEngine::from_pte(path, ModelType::Auto, 128).unwrap().context_limit(), 128);
    /// assert!(DiffusionEngine::from_pte(path, ModelType::Auto, 512).is_err());
    /// ```
    #[cfg(feature = "pte")]
    pub fn from_pte(
        path: impl AsRef<Path>,
        model_type: impl Into<ModelType>,
        max_seq_len: usize,
    ) -> Result<Self> {
        let model = PteModel::load(path)?;
        let cached = model.metadata().use_kv_cache;
        Self::from_model(model, model_type, cached)?.with_max_seq_len(max_seq_len)
    }

    /// The model's constants.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Llada, false).unwrap();
    /// assert_eq!(e.metadata().vocab_size, 32);
    /// ```
    pub fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    /// The context limit: positions a generation may use, prompt included.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Llada, false).unwrap();
    /// assert_eq!(e.context_limit(), 64); // the model's own bound unless lowered
    /// ```
    pub fn context_limit(&self) -> usize {
        self.context_limit
    }

    /// Positions the canvas can fill: the context limit, rounded down to whole blocks for the
    /// block families (SDAR and Fast-dLLM v2 grow their canvas a block at a time).
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Sdar, 64, 32, 31, vec![1], 4);
    /// let e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Sdar, false).unwrap();
    /// assert_eq!(e.with_max_seq_len(30).unwrap().capacity(), 28);
    /// ```
    pub fn capacity(&self) -> usize {
        self.meta.capacity(self.context_limit)
    }

    /// The most tokens a generation after a prompt of `prompt_len` tokens can produce
    /// (0 when the prompt fills the [`capacity`](DiffusionEngine::capacity)).
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Llada, false).unwrap();
    /// assert_eq!((e.room_after(60), e.room_after(64), e.room_after(100)), (4, 0, 0));
    /// ```
    pub fn room_after(&self, prompt_len: usize) -> usize {
        self.capacity().saturating_sub(prompt_len)
    }

    /// `max_new_tokens` if a generation of that many tokens after a prompt of `prompt_len`
    /// tokens fits the context limit, else [`EngineError::SequenceTooLong`]. This is the check
    /// [`DiffusionEngine::generate`] runs (before `clamp_to_max_seq_len` shortens a request).
    /// The sums are checked: a sum that does not fit a `usize` is refused with `needed`
    /// saturated at `usize::MAX`, never wrapped.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, EngineError, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Sdar, 64, 32, 31, vec![1], 4);
    /// let e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Sdar, false).unwrap();
    /// assert_eq!(e.max_new_tokens_for(10, 54).unwrap(), 54);
    /// let err = e.max_new_tokens_for(10, 55).unwrap_err();
    /// assert!(matches!(err, EngineError::SequenceTooLong { needed: 68, max_seq_len: 64, .. }));
    /// ```
    pub fn max_new_tokens_for(&self, prompt_len: usize, max_new_tokens: usize) -> Result<usize> {
        let fits = prompt_len
            .checked_add(max_new_tokens)
            .is_some_and(|end| end <= self.capacity());
        if fits {
            return Ok(max_new_tokens);
        }
        let block_size = self.meta.block_size;
        let needed = prompt_len.checked_add(max_new_tokens).and_then(|end| {
            if self.meta.family.block_causal() && block_size > 0 {
                end.div_ceil(block_size).checked_mul(block_size)
            } else {
                Some(end)
            }
        });
        Err(EngineError::SequenceTooLong {
            prompt_len,
            max_new_tokens,
            needed: needed.unwrap_or(usize::MAX),
            max_seq_len: self.context_limit,
        })
    }

    /// The model family.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, Family, HashModel, ModelMetadata, ModelType};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let e = DiffusionEngine::from_model(HashModel::new(meta, 0), ModelType::Auto, false).unwrap();
    /// assert_eq!(e.family(), Family::Llada);
    /// ```
    pub fn family(&self) -> Family {
        self.meta.family
    }

    /// Whether block-causal decoding uses the KV cache.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, Family, HashModel, ModelMetadata};
    /// let mut meta = ModelMetadata::for_family(Family::Sdar, 64, 32, 31, vec![1], 4);
    /// meta.use_kv_cache = true;
    /// let e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Sdar, false).unwrap();
    /// assert!(!e.uses_kv_cache()); // a cached model driven without its cache
    /// ```
    pub fn uses_kv_cache(&self) -> bool {
        self.use_kv_cache && self.meta.family.block_causal()
    }

    /// The token ids whose final K/V the model's KV cache holds at positions `[0, n)`, whole
    /// blocks only: what a later generation with
    /// [reuse](DiffusionEngine::with_kv_reuse) may skip when its prompt
    /// starts with them. Empty unless the engine [uses the cache](DiffusionEngine::uses_kv_cache)
    /// and reuses it (a generation without reuse does not track what it writes).
    ///
    /// A forward writing from position `p` cuts this at the block containing `p`; a block is
    /// remembered with the ids it was fed, so a block last written while it still held masks
    /// (the last block of a generation) never matches a prompt.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, Family, HashModel, ModelMetadata};
    /// let mut meta = ModelMetadata::for_family(Family::Sdar, 64, 32, 31, vec![1], 4);
    /// meta.use_kv_cache = true;
    /// let mut e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Sdar, true)
    ///     .unwrap()
    ///     .with_kv_reuse(true);
    /// let prompt = [5, 6, 7, 8, 9, 10];
    /// e.generate(&prompt, &DiffusionGenerationConfig::new(4)).unwrap();
    /// assert_eq!(&e.kv_cached_tokens()[..4], &prompt[..4]); // the prompt's whole block
    /// ```
    pub fn kv_cached_tokens(&self) -> &[i64] {
        self.kv.ids()
    }

    /// Forgets what the KV cache holds: the next generation prefills its prompt from position 0
    /// (a chat's `/reset`). The cache itself is not touched; a prefill from 0 overwrites it.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, Family, HashModel, ModelMetadata};
    /// let mut meta = ModelMetadata::for_family(Family::Sdar, 64, 32, 31, vec![1], 4);
    /// meta.use_kv_cache = true;
    /// let mut e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Sdar, true)
    ///     .unwrap()
    ///     .with_kv_reuse(true);
    /// let cfg = DiffusionGenerationConfig::new(4);
    /// e.generate(&[5, 6, 7, 8, 9], &cfg).unwrap();
    /// assert_eq!(e.generate(&[5, 6, 7, 8, 9], &cfg).unwrap().stats.reused_prompt_tokens, 4);
    /// e.reset_kv_cache();
    /// assert_eq!(e.generate(&[5, 6, 7, 8, 9], &cfg).unwrap().stats.reused_prompt_tokens, 0);
    /// ```
    pub fn reset_kv_cache(&mut self) {
        self.kv.clear();
    }

    /// Generates after `prompt` (token ids).
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, Family, HashModel, ModelMetadata, StopReason};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let mut e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Llada, false).unwrap();
    /// let out = e.generate(&[4, 5], &DiffusionGenerationConfig::new(8).with_stop_ids(vec![])).unwrap();
    /// assert_eq!((out.tokens.len(), out.stop_reason), (8, StopReason::MaxNewTokens));
    /// ```
    pub fn generate(
        &mut self,
        prompt: &[i64],
        config: &DiffusionGenerationConfig,
    ) -> Result<GenerationOutput> {
        self.generate_with(prompt, config, &mut NoObserver)
    }

    /// Like [`DiffusionEngine::generate`], reporting every step and finished block to `observer`,
    /// which may stop the generation.
    ///
    /// ```
    /// use diffulex_edge::runtime::*;
    /// let meta = ModelMetadata::for_family(Family::Dream, 64, 32, 31, vec![1], 0);
    /// let mut e = DiffusionEngine::from_model(HashModel::new(meta, 0), Family::Dream, false).unwrap();
    /// let mut obs = StepFn(|_e: &StepEvent<'_>| Control::Stop);
    /// let out = e.generate_with(&[4, 5], &DiffusionGenerationConfig::new(8), &mut obs).unwrap();
    /// assert_eq!(out.stop_reason, StopReason::Cancelled);
    /// ```
    pub fn generate_with(
        &mut self,
        prompt: &[i64],
        config: &DiffusionGenerationConfig,
        observer: &mut dyn GenerationObserver,
    ) -> Result<GenerationOutput> {
        let start = Instant::now();
        let meta = &self.meta;
        for (index, &token) in prompt.iter().enumerate() {
            let reason = if token < 0 || token as u64 >= meta.vocab_size as u64 {
                format!("outside the vocabulary of {}", meta.vocab_size)
            } else if token == meta.mask_token_id {
                "is the mask token".to_string()
            } else {
                continue;
            };
            return Err(EngineError::InvalidPromptToken {
                index,
                token,
                reason,
            });
        }
        let sampler = config
            .sampler
            .clone()
            .unwrap_or_else(|| BlockSampler::default_for(meta.family));
        if sampler.family() != meta.family {
            return Err(EngineError::FamilyMismatch {
                what: "sampler",
                expected: sampler.family(),
                got: meta.family,
            });
        }
        if prompt.is_empty() && meta.family != Family::Llada {
            return Err(EngineError::EmptyPrompt {
                family: meta.family,
            });
        }
        let max_new_tokens = match self.max_new_tokens_for(prompt.len(), config.max_new_tokens) {
            Ok(n) => n,
            Err(_) if config.clamp_to_max_seq_len && self.room_after(prompt.len()) > 0 => {
                config.max_new_tokens.min(self.room_after(prompt.len()))
            }
            Err(e) => return Err(e),
        };
        if max_new_tokens == 0 {
            return Ok(GenerationOutput {
                tokens: vec![],
                prompt_len: prompt.len(),
                stop_reason: StopReason::MaxNewTokens,
                stats: GenerationStats::default(),
            });
        }
        let cached = self.uses_kv_cache();
        let stop_ids = config
            .stop_ids
            .clone()
            .unwrap_or_else(|| self.meta.eos_ids.clone());
        // Without reuse nothing is tracked (no work per forward), and what was remembered
        // before is dropped: this generation's forwards overwrite the cache untracked.
        let track_kv = cached && self.kv_reuse;
        if !track_kv {
            self.kv.clear();
        }
        let parts = EngineParts {
            model: &mut *self.model,
            meta: &self.meta,
            cached,
            kv: track_kv.then_some(&mut self.kv),
            scorer: &mut self.scorer,
            pool: &*self.pool,
            observer,
        };
        let caches = CacheAvailability {
            bidirectional: self.use_kv_cache && self.meta.has_bidirectional_cache(),
            sub_block: cached && self.meta.sub_block_cache,
        };
        let run = Run::new(parts, prompt, max_new_tokens, stop_ids, config.seed, start);
        // The one place the engine picks a family: everything after goes through the trait.
        match &sampler {
            BlockSampler::Sdar(decoder) => plan_and_decode(decoder, run, caches),
            BlockSampler::FastdLLMV2(decoder) => plan_and_decode(decoder, run, caches),
            BlockSampler::LLaDA(decoder) => plan_and_decode(decoder, run, caches),
            BlockSampler::Dream(decoder) => plan_and_decode(decoder, run, caches),
        }
    }
}

/// The caches that read past a forward's own tokens which a generation may use.
#[derive(Debug, Clone, Copy)]
struct CacheAvailability {
    /// Fast-dLLM v1's prefix and dual caches (LLaDA, Dream).
    bidirectional: bool,
    /// Fast-dLLM v2's sub-block cache.
    sub_block: bool,
}

/// Checks `decoder`'s settings against the request, then decodes on `run`.
fn plan_and_decode<F: FamilyDecoder>(
    decoder: &F,
    mut run: Run<'_>,
    caches: CacheAvailability,
) -> Result<GenerationOutput> {
    let request = Request {
        prompt_len: run.prompt_len(),
        max_new_tokens: run.max_new_tokens(),
        bidirectional_cache: caches.bidirectional,
        sub_block_cache: caches.sub_block,
    };
    let plan = decoder.plan(run.meta(), request)?;
    // Before the prefill: a program planned for fewer rows of logits would fail only at the
    // first denoising forward, after the prompt's work.
    let (needed, set_by) = decoder.most_logits_rows(&plan, request);
    let max = run.max_logits_rows();
    if needed > max {
        return Err(EngineError::TooManyLogitsRows {
            requested: needed,
            max,
            remedy: format!(
                "{set_by}; or re-export the model with `diffulex-export export \
                 --max-logits-rows {needed}`"
            ),
        });
    }
    let outcome = decoder.decode(plan, &mut run)?;
    Ok(run.into_output(outcome))
}
