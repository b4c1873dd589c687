//! Fast-dLLM v1's KV caches for the bidirectional families (LLaDA, Dream): which one a
//! generation uses, and the default.

use crate::runtime::error::{invalid, EngineError, Result};
use crate::runtime::model::{Family, ModelMetadata};

/// Which of Fast-dLLM v1's KV caches a LLaDA or Dream generation uses (NVlabs/Fast-dLLM,
/// `llada/generate.py`, `dream/model/generation_utils_block.py`).
///
/// Each block starts with one forward over the whole canvas that also stores every position's
/// keys and values. The block's later steps then run:
/// - [`CacheMode::None`]: the whole canvas again (the uncached loop);
/// - [`CacheMode::Prefix`]: the block and everything after it, attending to the stored prefix;
/// - [`CacheMode::Dual`]: the block only, attending to the stored prefix and suffix.
///
/// The cached modes are approximations (a bidirectional model's prefix K/V depend on later
/// tokens), so their tokens are those of the official cached loops, not of the uncached one.
/// They need a `.pte` exported with `diffulex-export export --kv-cache` (contract 3).
///
/// ```
/// use diffulex_edge::runtime::sampler::CacheMode;
/// assert_eq!("dual".parse::<CacheMode>().unwrap(), CacheMode::Dual);
/// assert_eq!(CacheMode::Prefix.to_string(), "prefix");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheMode {
    /// Every step recomputes the whole canvas.
    None,
    /// Steps after a block's first recompute the block and the suffix against the cached prefix.
    Prefix,
    /// Steps after a block's first recompute the block only, against the cached prefix and
    /// suffix.
    Dual,
}

impl CacheMode {
    /// Every mode, in the order of the CLI's `--cache` values.
    ///
    /// ```
    /// assert_eq!(diffulex_edge::runtime::sampler::CacheMode::ALL.len(), 3);
    /// ```
    pub const ALL: [CacheMode; 3] = [CacheMode::None, CacheMode::Prefix, CacheMode::Dual];

    /// The mode's name (`none`, `prefix`, `dual`).
    ///
    /// ```
    /// assert_eq!(diffulex_edge::runtime::sampler::CacheMode::None.name(), "none");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::None => "none",
            CacheMode::Prefix => "prefix",
            CacheMode::Dual => "dual",
        }
    }

    /// The mode a generation runs with: `requested`, checked against the model, or when `None`
    /// the default, which is [`CacheMode::Dual`] for a model with the cache (the fastest, and
    /// Fast-dLLM's recommended setting) and [`CacheMode::None`] otherwise.
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::CacheMode, Family, ModelMetadata};
    /// let mut meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// assert_eq!(CacheMode::resolve(None, &meta).unwrap(), CacheMode::None);
    /// assert!(CacheMode::resolve(Some(CacheMode::Dual), &meta).is_err());
    /// meta.use_kv_cache = true;
    /// assert_eq!(CacheMode::resolve(None, &meta).unwrap(), CacheMode::Dual);
    /// ```
    pub fn resolve(requested: Option<CacheMode>, meta: &ModelMetadata) -> Result<CacheMode> {
        Self::resolve_for(requested, meta.has_bidirectional_cache(), meta.family)
    }

    /// [`CacheMode::resolve`] for a `family` model whose cache is `available` to this
    /// generation (an engine told not to use the cache has none).
    pub(crate) fn resolve_for(
        requested: Option<CacheMode>,
        available: bool,
        family: Family,
    ) -> Result<CacheMode> {
        match requested {
            None if available => Ok(CacheMode::Dual),
            None | Some(CacheMode::None) => Ok(CacheMode::None),
            Some(mode) if available => Ok(mode),
            Some(mode) => Err(EngineError::CacheUnavailable {
                mode: mode.name(),
                family,
            }),
        }
    }
}

impl std::fmt::Display for CacheMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CacheMode {
    type Err = EngineError;
    /// Parses `none`, `prefix` or `dual`.
    ///
    /// ```
    /// use diffulex_edge::runtime::sampler::CacheMode;
    /// assert!("both".parse::<CacheMode>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        CacheMode::ALL
            .into_iter()
            .find(|mode| mode.name() == s)
            .ok_or_else(|| invalid("cache", s, "expected none, prefix or dual"))
    }
}
