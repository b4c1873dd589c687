//! Typed errors of the diffusion runtime.

use super::model::Family;

/// Everything that can go wrong while building an engine or generating.
///
/// Every variant carries the values needed to understand the failure without a debugger
/// (the offending field and value, expected versus got, the position involved).
///
/// ```
/// use diffulex_edge::runtime::EngineError;
/// let e = EngineError::InvalidConfig { field: "top_p", value: "1.5".into(), reason: "must be in (0, 1]".into() };
/// assert!(e.to_string().contains("top_p"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A generation or sampler setting is outside its valid range or inconsistent with the model.
    #[error("invalid generation config: {field} = {value}: {reason}")]
    InvalidConfig {
        /// Name of the offending field.
        field: &'static str,
        /// Its value, formatted.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The family needs at least one prompt token (shifted logits read the previous position).
    #[error("empty prompt: {family} needs at least one prompt token")]
    EmptyPrompt {
        /// Model family.
        family: Family,
    },
    /// A prompt token is negative, outside the vocabulary, or the mask token.
    #[error("prompt token {token} at index {index} is invalid: {reason}")]
    InvalidPromptToken {
        /// Index in the prompt.
        index: usize,
        /// The token id.
        token: i64,
        /// Why it is rejected.
        reason: String,
    },
    /// A token given to a forward lies outside the vocabulary. A contract-4 model gathers its
    /// embeddings in the engine, which checks every id before it reads a row.
    #[error(
        "forward: token {token} at index {index} is outside the vocabulary [0, {vocab}): \
         pass ids the model's tokenizer produced"
    )]
    TokenOutOfVocabulary {
        /// Index in the forward's tokens.
        index: usize,
        /// The token id.
        token: i64,
        /// The model's vocabulary size.
        vocab: usize,
    },
    /// One forward would need more rows of logits than the program returns. A `.pte` plans
    /// memory for at most [`DiffusionModel::max_logits_rows`](super::DiffusionModel::max_logits_rows)
    /// rows (`diffulex-export export --max-logits-rows`, default 256); a generation is checked
    /// against it before its first forward.
    #[error(
        "{requested} rows of logits in one forward are more than this program returns \
         ({max}, its --max-logits-rows): {remedy}"
    )]
    TooManyLogitsRows {
        /// Rows the forward, or the generation's largest forward, needs.
        requested: usize,
        /// Rows the program returns at most.
        max: usize,
        /// What needs them and what to do.
        remedy: String,
    },
    /// The prompt plus the generation does not fit into the engine's context limit.
    #[error(
        "sequence too long: prompt ({prompt_len}) + max_new_tokens ({max_new_tokens}) needs {} \
         positions but the engine's max_seq_len is {max_seq_len} (set clamp_to_max_seq_len to shorten the generation)",
        positions(*needed)
    )]
    SequenceTooLong {
        /// Prompt length in tokens.
        prompt_len: usize,
        /// Requested new tokens.
        max_new_tokens: usize,
        /// Positions the decoding canvas needs (rounded up to whole blocks for block families);
        /// `usize::MAX` when the sum does not fit a `usize` (shown as "at least ...").
        needed: usize,
        /// The engine's context limit ([`DiffusionEngine::context_limit`](super::DiffusionEngine::context_limit)).
        max_seq_len: usize,
    },
    /// The requested model type or sampler does not match the model's family.
    #[error("family mismatch: {what} is for {expected} but the model is {got}")]
    FamilyMismatch {
        /// What was checked (model type, sampler).
        what: &'static str,
        /// Family the caller asked for.
        expected: Family,
        /// Family of the model.
        got: Family,
    },
    /// The requested context limit is larger than the model's bound (the `get_max_seq_len` it
    /// was exported with: the size of its KV cache and position tables).
    ///
    /// ```
    /// use diffulex_edge::runtime::EngineError;
    /// let e = EngineError::MaxSeqLenTooLarge { requested: 512, bound: 256 };
    /// assert!(e.to_string().contains("at most 256"));
    /// ```
    #[error(
        "max_seq_len {requested} is larger than the model's bound of {bound} (fixed at export): \
         use at most {bound} or re-export with a larger --max-seq-len"
    )]
    MaxSeqLenTooLarge {
        /// Value passed by the caller.
        requested: usize,
        /// The model's own `max_seq_len`.
        bound: usize,
    },
    /// The model's metadata is unusable (unknown family id, zero vocabulary, ...).
    #[error("invalid model metadata: {0}")]
    Metadata(String),
    /// Two of the model's constants contradict each other: an id outside the vocabulary, an eos
    /// or pad id equal to the mask id, a block larger than the context, ... Both constants are
    /// named by their `.pte` method (docs/pte-contract.md) with their values.
    ///
    /// ```
    /// use diffulex_edge::runtime::{EngineError, Family, ModelMetadata};
    /// let mut m = ModelMetadata::for_family(Family::Sdar, 256, 512, 3, vec![3], 4);
    /// let e = m.validate().unwrap_err();
    /// assert!(matches!(e, EngineError::ConflictingConstants { .. }));
    /// assert_eq!(e.to_string(), "contradictory model constants: get_eos_ids[0] = 3 and \
    ///     get_mask_token_id = 3: a stop id must not be the mask id (re-export the model with \
    ///     `diffulex-export`)");
    /// ```
    #[error(
        "contradictory model constants: {constant} = {value} and {other} = {other_value}: \
         {reason} (re-export the model with `diffulex-export`)"
    )]
    ConflictingConstants {
        /// The constant found wrong (its `.pte` method, with an index for lists).
        constant: String,
        /// Its value (booleans as 0 / 1).
        value: i64,
        /// The constant it contradicts.
        other: &'static str,
        /// That constant's value.
        other_value: i64,
        /// The rule that is broken.
        reason: &'static str,
    },
    /// The model asked for a KV cache mode it does not support.
    #[error("KV cache requested but the model was exported without one (use_kv_cache = false)")]
    NoKvCache,
    /// The weight segments' SHA-256 differs from the one recorded at export
    /// (`get_weights_digest`): the file was corrupted or altered after export.
    #[error(
        "{file}: the weights are corrupt: the SHA-256 of its {bytes} bytes of segments is \
         {computed}, the export recorded {recorded} (restore or re-export the file)"
    )]
    WeightsCorrupt {
        /// The model file (`<memory>` for one loaded from bytes).
        file: String,
        /// Bytes hashed.
        bytes: u64,
        /// Digest recorded at export, hex.
        recorded: String,
        /// Digest of the bytes now, hex.
        computed: String,
    },
    /// Weight verification was asked for a model that records no weights digest.
    #[error(
        "{file} records no weights digest (it was exported before `get_weights_digest` \
         existed): re-export it with `diffulex-export export` to make it verifiable"
    )]
    NoWeightsDigest {
        /// The model file.
        file: String,
    },
    /// A forward call was given arguments outside the model's contract.
    #[error("forward call rejected: {0}")]
    ForwardArgs(String),
    /// The forward returned logits of an unexpected shape.
    #[error("forward returned logits of shape {got:?}, expected [1, {tokens}, {vocab}]")]
    LogitsShape {
        /// Shape returned.
        got: Vec<usize>,
        /// Number of input tokens.
        tokens: usize,
        /// Vocabulary size from the metadata.
        vocab: usize,
    },
    /// Every logit of a position is NaN, infinite, or belongs to the mask token.
    #[error(
        "no valid token at canvas position {position}: every logit is NaN/inf or the mask token"
    )]
    NoValidToken {
        /// Absolute canvas position.
        position: usize,
    },
    /// The model's backend failed: an ExecuTorch call for a `.pte` model, or whatever a
    /// [`DiffusionModel`](super::DiffusionModel) of your own runs on.
    ///
    /// ```
    /// use diffulex_edge::runtime::EngineError;
    /// let io = std::io::Error::other("device lost");
    /// let e = EngineError::model("MyBackend", "forward(4 tokens at 0)", io);
    /// assert_eq!(e.to_string(), "MyBackend error in forward(4 tokens at 0)");
    /// assert_eq!(std::error::Error::source(&e).unwrap().to_string(), "device lost");
    /// ```
    // The source is printed by whoever walks the error chain (`{:#}` in anyhow); repeating it
    // here would print it twice.
    #[error("{backend} error in {context}")]
    Model {
        /// The backend that failed (`ExecuTorch` for a `.pte` model).
        backend: &'static str,
        /// Which call failed.
        context: String,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A [`SamplerOptions`](super::sampler::SamplerOptions) field that the family's decoding
    /// does not use: refused rather than silently ignored.
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::{BlockSampler, SamplerOptions}, EngineError, Family};
    /// let options = SamplerOptions { cfg_scale: Some(1.0), ..Default::default() };
    /// let e = BlockSampler::from_options(Family::Sdar, &options).unwrap_err();
    /// assert!(matches!(e, EngineError::OptionNotApplicable { option: "cfg_scale", family: Family::Sdar, .. }));
    /// ```
    #[error("sampler option {option} does not apply to {family} models: {reason}")]
    OptionNotApplicable {
        /// The option, by its `SamplerOptions` field name (`cfg_scale`).
        option: &'static str,
        /// The family it was given for.
        family: Family,
        /// Why the family has no use for it.
        reason: &'static str,
    },
    /// `top_k` or `top_p` given for greedy decoding (temperature 0) of a family that filters
    /// candidates only when it samples, so the option would change nothing.
    #[error(
        "sampler option {option} only matters when sampling: {family} filters candidates only \
         at temperature > 0 (0 decodes greedily)"
    )]
    OptionNeedsSampling {
        /// `top_k` or `top_p`.
        option: &'static str,
        /// The family it was given for.
        family: Family,
    },
    /// A prefix, dual or sub-block KV cache was asked of a model exported without one (or of
    /// an engine told not to use the model's KV cache).
    ///
    /// ```
    /// use diffulex_edge::runtime::{sampler::CacheMode, EngineError, Family, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Dream, 64, 32, 31, vec![1], 0);
    /// let e = CacheMode::resolve(Some(CacheMode::Prefix), &meta).unwrap_err();
    /// assert!(matches!(e, EngineError::CacheUnavailable { mode: "prefix", family: Family::Dream }));
    /// assert!(e.to_string().contains("--kv-cache"), "{e}");
    /// ```
    #[error(
        "the {mode} cache needs a {family} model exported with its KV cache \
         (`diffulex-export export --kv-cache`, contract 3) and used with it; this one has none \
         or was opened without it: re-export it, or decode with cache none (without the \
         {mode} cache)"
    )]
    CacheUnavailable {
        /// `prefix`, `dual` or `sub-block`.
        mode: &'static str,
        /// The model's family.
        family: Family,
    },
}

impl EngineError {
    /// Shorthand for [`EngineError::Model`]: `backend` failed in `context` with `source`.
    ///
    /// ```
    /// use diffulex_edge::runtime::EngineError;
    /// let e = EngineError::model("MyBackend", "loading weights", std::io::Error::other("gone"));
    /// assert!(matches!(e, EngineError::Model { backend: "MyBackend", .. }));
    /// ```
    pub fn model(
        backend: &'static str,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        EngineError::Model {
            backend,
            context: context.into(),
            source: source.into(),
        }
    }
}

/// `needed` of [`EngineError::SequenceTooLong`] as text: a saturated sum is "at least" the
/// largest `usize` (it overflowed), never a wrapped number.
fn positions(needed: usize) -> String {
    if needed == usize::MAX {
        format!("at least {}", usize::MAX)
    } else {
        needed.to_string()
    }
}

/// Result alias of the runtime.
///
/// ```
/// fn f() -> diffulex_edge::runtime::Result<u8> { Ok(1) }
/// assert_eq!(f().unwrap(), 1);
/// ```
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Shorthand for [`EngineError::InvalidConfig`].
pub(crate) fn invalid(
    field: &'static str,
    value: impl std::fmt::Display,
    reason: impl Into<String>,
) -> EngineError {
    EngineError::InvalidConfig {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}
