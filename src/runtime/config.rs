//! Generation settings shared by all families.

use super::sampler::BlockSampler;

/// What to generate and how.
///
/// ```
/// use diffulex_edge::runtime::{DiffusionGenerationConfig, sampler::SDARSampler};
/// let cfg = DiffusionGenerationConfig::new(50).with_seed(3).with_sampler(SDARSampler::new(0.9, 0.0));
/// assert_eq!(cfg.max_new_tokens, 50);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DiffusionGenerationConfig {
    /// Tokens to generate (the output may be shorter when a stop id is produced).
    pub max_new_tokens: usize,
    /// Seed of the sampling stream (unused when every choice is greedy).
    pub seed: u64,
    /// Stop ids; `None` uses the model's eos ids, `Some(vec![])` never stops early.
    pub stop_ids: Option<Vec<i64>>,
    /// Shorten `max_new_tokens` to fit the engine's context limit
    /// ([`DiffusionEngine::room_after`](super::DiffusionEngine::room_after)) instead of failing
    /// with [`EngineError::SequenceTooLong`](super::EngineError::SequenceTooLong).
    pub clamp_to_max_seq_len: bool,
    /// Family settings; `None` uses the model family's defaults.
    pub sampler: Option<BlockSampler>,
}

impl Default for DiffusionGenerationConfig {
    fn default() -> Self {
        DiffusionGenerationConfig {
            max_new_tokens: 128,
            seed: 0,
            stop_ids: None,
            clamp_to_max_seq_len: false,
            sampler: None,
        }
    }
}

impl DiffusionGenerationConfig {
    /// Defaults with `max_new_tokens` set.
    ///
    /// ```
    /// assert_eq!(diffulex_edge::runtime::DiffusionGenerationConfig::new(7).max_new_tokens, 7);
    /// ```
    pub fn new(max_new_tokens: usize) -> Self {
        DiffusionGenerationConfig {
            max_new_tokens,
            ..Default::default()
        }
    }

    /// Sets the seed.
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::{TokenSampler, TopKSampler};
    /// let l = [0.0f32, 0.1, 0.2, 0.3];
    /// let a = TopKSampler::new(4, 1.0).unwrap().with_seed(5).sample(&l).unwrap();
    /// assert_eq!(a, TopKSampler::new(4, 1.0).unwrap().with_seed(5).sample(&l).unwrap());
    /// ```
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the family settings.
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::DreamSampler, DiffusionGenerationConfig};
    /// assert!(DiffusionGenerationConfig::new(7).with_sampler(DreamSampler::default()).sampler.is_some());
    /// ```
    pub fn with_sampler(mut self, sampler: impl Into<BlockSampler>) -> Self {
        self.sampler = Some(sampler.into());
        self
    }

    /// Sets the stop ids.
    ///
    /// ```
    /// let c = diffulex_edge::runtime::DiffusionGenerationConfig::new(7).with_stop_ids(vec![]);
    /// assert_eq!(c.stop_ids, Some(vec![]));
    /// ```
    pub fn with_stop_ids(mut self, ids: Vec<i64>) -> Self {
        self.stop_ids = Some(ids);
        self
    }
}
