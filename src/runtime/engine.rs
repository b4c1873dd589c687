//! The diffusion engine: validates a request, builds the canvas and runs the family decoder.

use super::block::Canvas;
use super::config::DiffusionGenerationConfig;
use super::diffusion::{Decoder, GenerationObserver, GenerationOutput, NoObserver, StopReason};
use super::error::{EngineError, Result};
use super::model::{DiffusionModel, Family, ModelMetadata, ModelType};
use super::parallel::RowPool;
#[cfg(feature = "pte")]
use super::pte_model::PteModel;
use super::rng::Rng;
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
    use_kv_cache: bool,
    scorer: Scorer,
    /// Scores the rows of a greedy step; the model's [`DiffusionModel::row_pool`] unless
    /// replaced with [`DiffusionEngine::with_row_pool`].
    pool: Arc<dyn RowPool>,
}

impl std::fmt::Debug for DiffusionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiffusionEngine")
            .field("meta", &self.meta)
            .field("use_kv_cache", &self.use_kv_cache)
            .finish()
    }
}

impl DiffusionEngine {
    /// Wraps a model. `use_kv_cache = false` on a cached model recomputes the whole sequence
    /// each forward (position 0); `true` needs a cached model. LLaDA and Dream always recompute
    /// (bidirectional attention makes a prefix cache inexact).
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
            meta,
            use_kv_cache,
            scorer: Scorer::default(),
        })
    }

    /// Scores the rows of greedy steps on `pool` instead of the model's own
    /// ([`DiffusionModel::row_pool`]): e.g. [`SequentialPool`](super::parallel::SequentialPool)
    /// to keep a `.pte` model's scoring on the calling thread, or a pool of your own for a model
    /// that brings none. The tokens do not depend on it.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, Family, HashModel, ModelMetadata};
    /// use diffulex_edge::runtime::parallel::SequentialPool;
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

    /// Loads a `.pte` with the KV cache it was exported with. `model_type` may be
    /// [`ModelType::Auto`] (read `get_family_id`); `max_seq_len` must equal the exported
    /// `get_max_seq_len` (it is the size of the cache buffers, so it cannot be changed here).
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionEngine, ModelType};
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pte/sdar_cached.pte");
    /// let engine = DiffusionEngine::from_pte(path, ModelType::Auto, 256).unwrap();
    /// assert!(engine.uses_kv_cache());
    /// assert!(DiffusionEngine::from_pte(path, ModelType::Auto, 512).is_err());
    /// ```
    #[cfg(feature = "pte")]
    pub fn from_pte(
        path: impl AsRef<Path>,
        model_type: impl Into<ModelType>,
        max_seq_len: usize,
    ) -> Result<Self> {
        let model = PteModel::load(path)?;
        let meta = model.metadata();
        if meta.max_seq_len != max_seq_len {
            return Err(EngineError::MaxSeqLenMismatch {
                requested: max_seq_len,
                model: meta.max_seq_len,
            });
        }
        let cached = meta.use_kv_cache;
        Self::from_model(model, model_type, cached)
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
        let max_new = self.fit(prompt.len(), config)?;
        let decoder_stats = GenerationStats::default();
        if max_new == 0 {
            return Ok(GenerationOutput {
                tokens: vec![],
                prompt_len: prompt.len(),
                stop_reason: StopReason::MaxNewTokens,
                stats: decoder_stats,
            });
        }
        let mut d = Decoder {
            meta: self.meta.clone(),
            cached: self.uses_kv_cache(),
            model: &mut *self.model,
            scorer: &mut self.scorer,
            pool: &*self.pool,
            rng: Rng::new(config.seed),
            stats: decoder_stats,
            observer,
            stop_ids: config
                .stop_ids
                .clone()
                .unwrap_or_else(|| self.meta.eos_ids.clone()),
            canvas: Canvas::new(prompt, 0, self.meta.mask_token_id),
            max_new,
            step: 0,
            committed: Vec::new(),
            prefill_end: None,
            start,
        };
        let cancelled = match &sampler {
            BlockSampler::Sdar(s) => s.decode(&mut d)?,
            BlockSampler::FastdLLMV2(s) => s.decode(&mut d)?,
            BlockSampler::LLaDA(s) => s.decode(&mut d)?,
            BlockSampler::Dream(s) => s.decode(&mut d)?,
        };
        Ok(d.into_output(cancelled))
    }

    /// Positions the canvas needs for `n` new tokens, and `n` shortened to fit when clamping.
    /// The sums use checked arithmetic: `max_new_tokens` comes from the caller (and the CLI's
    /// user), so `prompt + max_new_tokens` may not fit a `usize`; such a request is
    /// [`EngineError::SequenceTooLong`] with `needed` saturated at `usize::MAX`, never a wrapped sum.
    fn fit(&self, lp: usize, config: &DiffusionGenerationConfig) -> Result<usize> {
        let (max, bs) = (self.meta.max_seq_len, self.meta.block_size);
        let block = self.meta.family.block_causal();
        let need = |n: usize| -> Option<usize> {
            let end = lp.checked_add(n)?;
            if block {
                end.div_ceil(bs).checked_mul(bs)
            } else {
                Some(end)
            }
        };
        let n = config.max_new_tokens;
        let needed = need(n);
        if needed.is_some_and(|p| p <= max) {
            return Ok(n);
        }
        let cap = if block { max / bs * bs } else { max };
        if config.clamp_to_max_seq_len && cap > lp {
            return Ok(n.min(cap - lp));
        }
        Err(EngineError::SequenceTooLong {
            prompt_len: lp,
            max_new_tokens: n,
            needed: needed.unwrap_or(usize::MAX),
            max_seq_len: max,
        })
    }
}
