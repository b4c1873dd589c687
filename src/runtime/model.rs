//! The forward interface the engine decodes with, and model metadata.

use super::error::{EngineError, Result};
use super::parallel::{RowPool, SequentialPool};
use std::sync::Arc;

/// Diffusion LM family; decides the decoding algorithm, mask and logit shift.
///
/// ```
/// use diffulex_edge::runtime::Family;
/// assert_eq!(Family::from_id(0).unwrap(), Family::Sdar);
/// assert!(Family::Dream.shifted());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// SDAR (block-causal, unshifted).
    Sdar,
    /// Fast-dLLM v2 (block-causal, shifted, sub-blocks).
    FastDllmV2,
    /// LLaDA (bidirectional, unshifted).
    Llada,
    /// Dream (bidirectional, shifted).
    Dream,
}

impl Family {
    /// Maps the `.pte` `get_family_id` value (0 = sdar, 1 = fast_dllm_v2, 2 = llada, 3 = dream).
    ///
    /// ```
    /// use diffulex_edge::runtime::Family;
    /// assert_eq!(Family::from_id(3).unwrap(), Family::Dream);
    /// assert!(Family::from_id(9).is_err());
    /// ```
    pub fn from_id(id: i64) -> Result<Self> {
        match id {
            0 => Ok(Family::Sdar),
            1 => Ok(Family::FastDllmV2),
            2 => Ok(Family::Llada),
            3 => Ok(Family::Dream),
            other => Err(EngineError::Metadata(format!(
                "unknown family id {other} (expected 0..=3)"
            ))),
        }
    }

    /// Inverse of [`Family::from_id`].
    ///
    /// ```
    /// assert_eq!(diffulex_edge::runtime::Family::Llada.id(), 2);
    /// ```
    pub fn id(self) -> i64 {
        match self {
            Family::Sdar => 0,
            Family::FastDllmV2 => 1,
            Family::Llada => 2,
            Family::Dream => 3,
        }
    }

    /// Canonical lower-case name (`sdar`, `fast_dllm_v2`, `llada`, `dream`).
    ///
    /// ```
    /// assert_eq!(diffulex_edge::runtime::Family::FastDllmV2.name(), "fast_dllm_v2");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Family::Sdar => "sdar",
            Family::FastDllmV2 => "fast_dllm_v2",
            Family::Llada => "llada",
            Family::Dream => "dream",
        }
    }

    /// Whether logits at position i predict token i + 1 (the engine shifts them).
    ///
    /// ```
    /// assert!(!diffulex_edge::runtime::Family::Sdar.shifted());
    /// ```
    pub fn shifted(self) -> bool {
        matches!(self, Family::FastDllmV2 | Family::Dream)
    }

    /// Whether attention is block-causal (blocks aligned at absolute position 0).
    ///
    /// ```
    /// assert!(diffulex_edge::runtime::Family::Sdar.block_causal());
    /// ```
    pub fn block_causal(self) -> bool {
        matches!(self, Family::Sdar | Family::FastDllmV2)
    }
}

impl Family {
    /// Every family, in `get_family_id` order (for listing the accepted names).
    ///
    /// ```
    /// use diffulex_edge::runtime::Family;
    /// assert!(Family::ALL.iter().enumerate().all(|(i, f)| f.id() == i as i64));
    /// ```
    pub const ALL: [Family; 4] = [
        Family::Sdar,
        Family::FastDllmV2,
        Family::Llada,
        Family::Dream,
    ];
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Family {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "sdar" => Ok(Family::Sdar),
            "fast_dllm_v2" | "fastdllmv2" | "fast_dllm" => Ok(Family::FastDllmV2),
            "llada" => Ok(Family::Llada),
            "dream" => Ok(Family::Dream),
            other => Err(EngineError::Metadata(format!(
                "unknown model family {other:?} (expected sdar, fast_dllm_v2, llada or dream)"
            ))),
        }
    }
}

/// Which family the caller expects; `Auto` trusts the model's metadata.
///
/// ```
/// use diffulex_edge::runtime::{Family, ModelType};
/// assert_eq!(ModelType::Auto.resolve(Family::Llada).unwrap(), Family::Llada);
/// assert!(ModelType::Family(Family::Sdar).resolve(Family::Dream).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelType {
    /// Read the family from the model (`get_family_id`).
    #[default]
    Auto,
    /// Require this family.
    Family(Family),
}

impl ModelType {
    /// Checks the expectation against the model's family.
    ///
    /// ```
    /// use diffulex_edge::runtime::{Family, ModelType};
    /// assert_eq!(ModelType::from(Family::Sdar).resolve(Family::Sdar).unwrap(), Family::Sdar);
    /// ```
    pub fn resolve(self, model: Family) -> Result<Family> {
        match self {
            ModelType::Auto => Ok(model),
            ModelType::Family(f) if f == model => Ok(f),
            ModelType::Family(f) => Err(EngineError::FamilyMismatch {
                what: "model_type",
                expected: f,
                got: model,
            }),
        }
    }
}

impl std::str::FromStr for ModelType {
    type Err = EngineError;
    /// `auto` or a family name.
    ///
    /// ```
    /// use diffulex_edge::runtime::{Family, ModelType};
    /// assert_eq!("auto".parse::<ModelType>().unwrap(), ModelType::Auto);
    /// assert_eq!("sdar".parse::<ModelType>().unwrap(), ModelType::Family(Family::Sdar));
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("auto") {
            Ok(ModelType::Auto)
        } else {
            s.parse().map(ModelType::Family)
        }
    }
}

impl From<Family> for ModelType {
    fn from(f: Family) -> Self {
        ModelType::Family(f)
    }
}

/// Constants a model reports (the `.pte` constant methods).
///
/// ```
/// use diffulex_edge::runtime::{Family, ModelMetadata};
/// let m = ModelMetadata::for_family(Family::Sdar, 256, 512, 511, vec![2], 4);
/// assert_eq!(m.block_size, 4);
/// assert!(m.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetadata {
    /// Model family.
    pub family: Family,
    /// Longest token sequence a forward accepts.
    pub max_seq_len: usize,
    /// Vocabulary size (last logits dimension).
    pub vocab_size: usize,
    /// Id of the mask token.
    pub mask_token_id: i64,
    /// End-of-sequence / stop ids.
    pub eos_ids: Vec<i64>,
    /// Block size for block-causal families (0 otherwise).
    pub block_size: usize,
    /// Fast-dLLM v2 sub-block size (0 otherwise).
    pub sub_block_size: usize,
    /// Whether the model keeps a KV cache and takes `input_pos` (for LLaDA and Dream: the cache
    /// of Fast-dLLM's prefix and dual modes, see [`ModelMetadata::has_bidirectional_cache`]).
    pub use_kv_cache: bool,
    /// Whether the engine must shift logits (i predicts i + 1).
    pub shift_logits: bool,
    /// Padding id.
    pub pad_id: i64,
    /// Fast-dLLM v2 with a KV cache only: whether the program also takes the end of the cache
    /// slots its queries read (contract 3, `get_cache_modes` bit 2), so that a sub-block can be
    /// recomputed alone against the K/V its block's last full forward stored: the official
    /// `use_block_cache`, see [`FastdLLMV2Sampler::sub_block_cache`](super::sampler::FastdLLMV2Sampler::sub_block_cache).
    pub sub_block_cache: bool,
}

impl ModelMetadata {
    /// Metadata with the family's conventions (shift, sub-block 8 for Fast-dLLM v2), no KV cache.
    ///
    /// ```
    /// use diffulex_edge::runtime::{Family, ModelMetadata};
    /// let m = ModelMetadata::for_family(Family::FastDllmV2, 256, 512, 3, vec![2], 32);
    /// assert_eq!((m.sub_block_size, m.shift_logits), (8, true));
    /// ```
    pub fn for_family(
        family: Family,
        max_seq_len: usize,
        vocab_size: usize,
        mask_token_id: i64,
        eos_ids: Vec<i64>,
        block_size: usize,
    ) -> Self {
        ModelMetadata {
            family,
            max_seq_len,
            vocab_size,
            mask_token_id,
            eos_ids,
            block_size: if family.block_causal() { block_size } else { 0 },
            sub_block_size: if family == Family::FastDllmV2 {
                8.min(block_size.max(1))
            } else {
                0
            },
            use_kv_cache: false,
            shift_logits: family.shifted(),
            pad_id: 0,
            sub_block_cache: false,
        }
    }

    /// Positions a canvas can fill within a context limit of `context_limit` positions: the
    /// limit itself, rounded down to whole blocks for the block families (SDAR and Fast-dLLM v2
    /// grow their canvas a block at a time). [`DiffusionEngine::capacity`](super::DiffusionEngine::capacity)
    /// is this at the engine's limit.
    ///
    /// ```
    /// use diffulex_edge::runtime::{Family, ModelMetadata};
    /// let sdar = ModelMetadata::for_family(Family::Sdar, 64, 32, 31, vec![1], 4);
    /// assert_eq!(sdar.capacity(30), 28);
    /// let llada = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// assert_eq!(llada.capacity(30), 30);
    /// ```
    pub fn capacity(&self, context_limit: usize) -> usize {
        if self.family.block_causal() && self.block_size > 0 {
            context_limit / self.block_size * self.block_size
        } else {
            context_limit
        }
    }

    /// Whether the model keeps the KV cache of Fast-dLLM's prefix and dual modes: a LLaDA or
    /// Dream program exported with `--kv-cache` (contract 3), whose forward also takes the end
    /// of the cache slots its queries read ([`DiffusionModel::forward_span`]).
    ///
    /// ```
    /// use diffulex_edge::runtime::{Family, ModelMetadata};
    /// let mut m = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// assert!(!m.has_bidirectional_cache());
    /// m.use_kv_cache = true;
    /// assert!(m.has_bidirectional_cache());
    /// ```
    pub fn has_bidirectional_cache(&self) -> bool {
        self.use_kv_cache && !self.family.block_causal()
    }

    /// Whether the program's forward takes `kv_end` (contract 3), so that
    /// [`DiffusionModel::forward_span`] runs: a bidirectional cache (LLaDA, Dream) or Fast-dLLM
    /// v2's sub-block cache.
    ///
    /// ```
    /// use diffulex_edge::runtime::{Family, ModelMetadata};
    /// let mut m = ModelMetadata::for_family(Family::FastDllmV2, 64, 32, 31, vec![1], 32);
    /// m.use_kv_cache = true;
    /// assert!(!m.takes_kv_end());
    /// m.sub_block_cache = true;
    /// assert!(m.takes_kv_end());
    /// ```
    pub fn takes_kv_end(&self) -> bool {
        self.has_bidirectional_cache() || self.sub_block_cache
    }

    /// Checks every constant against the others (docs/pte-contract.md, "Methods"): the mask,
    /// pad and every eos id lie in the vocabulary; no eos or pad id is the mask id; at least one
    /// eos id; the shift, block and sub-block sizes and the KV cache match the family; a block
    /// fits the context. A contradiction is [`EngineError::ConflictingConstants`] naming both
    /// constants and their values.
    ///
    /// ```
    /// use diffulex_edge::runtime::{EngineError, Family, ModelMetadata};
    /// let mut m = ModelMetadata::for_family(Family::Sdar, 256, 512, 3, vec![2], 4);
    /// m.mask_token_id = 512;
    /// assert!(m.validate().is_err());
    /// m.mask_token_id = 3;
    /// m.pad_id = 3; // pad == mask: padding would be read as "still to generate"
    /// let e = m.validate().unwrap_err().to_string();
    /// assert!(e.contains("get_pad_id = 3") && e.contains("get_mask_token_id = 3"), "{e}");
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::Metadata(m));
        let conflict = |constant: String,
                        value: i64,
                        other: &'static str,
                        other_value: i64,
                        reason: &'static str| {
            Err(EngineError::ConflictingConstants {
                constant,
                value,
                other,
                other_value,
                reason,
            })
        };
        // Sizes beyond i64 cannot come from a `.pte` (its constants are int64).
        let int = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        if self.vocab_size == 0 || self.max_seq_len == 0 {
            return bad(format!(
                "vocab_size {} and max_seq_len {} must be > 0",
                self.vocab_size, self.max_seq_len
            ));
        }
        let vocab = int(self.vocab_size);
        let in_vocab = |id: i64| (0..vocab).contains(&id);
        let mask = self.mask_token_id;
        if !in_vocab(self.mask_token_id) {
            return conflict(
                "get_mask_token_id".into(),
                mask,
                "get_vocab_size",
                vocab,
                "an id must lie in [0, vocab_size)",
            );
        }
        if self.eos_ids.is_empty() {
            return bad(
                "get_eos_ids returned no ids (the contract requires at least one stop id)".into(),
            );
        }
        for (k, &eos) in self.eos_ids.iter().enumerate() {
            let name = format!("get_eos_ids[{k}]");
            if !in_vocab(eos) {
                return conflict(
                    name,
                    eos,
                    "get_vocab_size",
                    vocab,
                    "an id must lie in [0, vocab_size)",
                );
            }
            if eos == self.mask_token_id {
                return conflict(
                    name,
                    eos,
                    "get_mask_token_id",
                    mask,
                    "a stop id must not be the mask id",
                );
            }
        }
        if !in_vocab(self.pad_id) {
            return conflict(
                "get_pad_id".into(),
                self.pad_id,
                "get_vocab_size",
                vocab,
                "an id must lie in [0, vocab_size)",
            );
        }
        if self.pad_id == self.mask_token_id {
            return conflict(
                "get_pad_id".into(),
                self.pad_id,
                "get_mask_token_id",
                mask,
                "the pad id must not be the mask id",
            );
        }
        let family = self.family.id();
        if self.shift_logits != self.family.shifted() {
            return conflict(
                "shift_logits".into(),
                i64::from(self.shift_logits),
                "get_family_id",
                family,
                if self.family.shifted() {
                    "this family's logits are shifted (fast_dllm_v2, dream)"
                } else {
                    "this family's logits are not shifted (sdar, llada)"
                },
            );
        }
        let block = int(self.block_size);
        if self.family.block_causal() && self.block_size == 0 {
            return conflict(
                "get_block_size".into(),
                0,
                "get_family_id",
                family,
                "block-causal families (sdar, fast_dllm_v2) need a block size > 0",
            );
        }
        if !self.family.block_causal() && self.block_size != 0 {
            return conflict(
                "get_block_size".into(),
                block,
                "get_family_id",
                family,
                "bidirectional families (llada, dream) have block size 0",
            );
        }
        if self.block_size > self.max_seq_len {
            return conflict(
                "get_block_size".into(),
                block,
                "get_max_seq_len",
                int(self.max_seq_len),
                "a block must fit the context",
            );
        }
        let sub = int(self.sub_block_size);
        if self.family == Family::FastDllmV2 {
            if self.sub_block_size == 0 || !self.block_size.is_multiple_of(self.sub_block_size) {
                return conflict(
                    "get_sub_block_size".into(),
                    sub,
                    "get_block_size",
                    block,
                    "fast_dllm_v2's sub-block size must be > 0 and divide the block size",
                );
            }
        } else if self.sub_block_size != 0 {
            return conflict(
                "get_sub_block_size".into(),
                sub,
                "get_family_id",
                family,
                "only fast_dllm_v2 has sub-blocks (0 for the other families)",
            );
        }
        if self.sub_block_cache && self.family != Family::FastDllmV2 {
            return conflict(
                "get_cache_modes".into(),
                SUB_BLOCK_CACHE_MODE,
                "get_family_id",
                family,
                "the sub-block cache is fast_dllm_v2's",
            );
        }
        if self.sub_block_cache && !self.use_kv_cache {
            return conflict(
                "get_cache_modes".into(),
                SUB_BLOCK_CACHE_MODE,
                "use_kv_cache",
                0,
                "the sub-block cache reads the KV cache",
            );
        }
        Ok(())
    }
}

/// `get_cache_modes` of a contract-3 Fast-dLLM v2 program: bit 2, the sub-block cache.
pub(crate) const SUB_BLOCK_CACHE_MODE: i64 = 0b100;

/// Borrowed float32 logits `[rows, vocab]` of one forward call (zero-copy from the backend).
///
/// ```
/// use diffulex_edge::runtime::LogitsView;
/// let data = [0.0f32, 1.0, 2.0, 3.0];
/// let v = LogitsView::new(&data, 2, 2).unwrap();
/// assert_eq!(v.row(1), &[2.0, 3.0]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LogitsView<'a> {
    data: &'a [f32],
    rows: usize,
    vocab: usize,
    /// Input rows that `data` holds, ascending, when the forward computed only some of them
    /// (`None`: every row, in order).
    selected: Option<&'a [usize]>,
}

impl<'a> LogitsView<'a> {
    /// Wraps `data`, checking that it holds exactly `rows * vocab` values.
    ///
    /// ```
    /// assert!(diffulex_edge::runtime::LogitsView::new(&[0.0f32; 5], 2, 2).is_err());
    /// ```
    pub fn new(data: &'a [f32], rows: usize, vocab: usize) -> Result<Self> {
        if rows.checked_mul(vocab) != Some(data.len()) {
            return Err(EngineError::LogitsShape {
                got: vec![data.len()],
                tokens: rows,
                vocab,
            });
        }
        Ok(LogitsView {
            data,
            rows,
            vocab,
            selected: None,
        })
    }

    /// Wraps the logits of the input rows `selected` (ascending, unique, each `< rows`) of a
    /// forward over `rows` tokens: `data` holds `selected.len() * vocab` values, in that order.
    /// [`LogitsView::row`] still takes input-row indices.
    ///
    /// ```
    /// use diffulex_edge::runtime::LogitsView;
    /// let data = [1.0f32, 2.0, 5.0, 6.0];
    /// let v = LogitsView::selected(&data, &[0, 2], 3, 2).unwrap();
    /// assert_eq!((v.rows(), v.computed_rows()), (3, 2));
    /// assert_eq!(v.row(2), &[5.0, 6.0]);
    /// assert!(LogitsView::selected(&data, &[2, 0], 3, 2).is_err());
    /// ```
    pub fn selected(
        data: &'a [f32],
        selected: &'a [usize],
        rows: usize,
        vocab: usize,
    ) -> Result<Self> {
        check_rows(selected, rows)?;
        if selected.len().checked_mul(vocab) != Some(data.len()) {
            return Err(EngineError::LogitsShape {
                got: vec![data.len()],
                tokens: selected.len(),
                vocab,
            });
        }
        Ok(LogitsView {
            data,
            rows,
            vocab,
            selected: Some(selected),
        })
    }

    /// Number of rows whose logits were computed (`rows()` unless the forward selected some).
    ///
    /// ```
    /// let v = diffulex_edge::runtime::LogitsView::new(&[0.0f32; 6], 3, 2).unwrap();
    /// assert_eq!(v.computed_rows(), 3);
    /// ```
    pub fn computed_rows(&self) -> usize {
        self.selected.map_or(self.rows, <[usize]>::len)
    }

    /// Whether the logits of input row `i` are available.
    ///
    /// ```
    /// let v = diffulex_edge::runtime::LogitsView::selected(&[0.0f32; 2], &[1], 3, 2).unwrap();
    /// assert!(v.has_row(1) && !v.has_row(0));
    /// ```
    pub fn has_row(&self, i: usize) -> bool {
        match self.selected {
            None => i < self.rows,
            Some(sel) => sel.binary_search(&i).is_ok(),
        }
    }

    /// Number of rows (input tokens).
    ///
    /// ```
    /// assert_eq!(diffulex_edge::runtime::LogitsView::new(&[0.0f32; 6], 3, 2).unwrap().rows(), 3);
    /// ```
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Vocabulary size.
    ///
    /// ```
    /// assert_eq!(diffulex_edge::runtime::LogitsView::new(&[0.0f32; 6], 3, 2).unwrap().vocab(), 2);
    /// ```
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Logits of input row `i`. Panics if the row is out of range or was not computed: the
    /// engine asks only for rows it requested ([`LogitsView::has_row`] tells).
    ///
    /// ```
    /// let d = [1.0f32, 2.0];
    /// assert_eq!(diffulex_edge::runtime::LogitsView::new(&d, 1, 2).unwrap().row(0), &[1.0, 2.0]);
    /// ```
    pub fn row(&self, i: usize) -> &'a [f32] {
        let k = match self.selected {
            None => i,
            Some(sel) => match sel.binary_search(&i) {
                Ok(k) => k,
                Err(_) => panic!("logits row {i} was not computed (selected rows: {sel:?})"),
            },
        };
        &self.data[k * self.vocab..(k + 1) * self.vocab]
    }
}

/// Keeps only the rows `rows` (ascending, unique) of a row-major `[_, vocab]` buffer, packed in
/// that order: the layout [`LogitsView::selected`] wraps. For models that compute every row but
/// want to answer [`DiffusionModel::forward_rows`] as a row-selecting program does.
pub(crate) fn pack_rows(buf: &mut Vec<f32>, rows: &[usize], vocab: usize) {
    for (k, &r) in rows.iter().enumerate() {
        // Ascending rows: a destination never overtakes its source.
        buf.copy_within(r * vocab..(r + 1) * vocab, k * vocab);
    }
    buf.truncate(rows.len() * vocab);
}

/// Checks a row selection: ascending, unique, each `< rows`.
pub(crate) fn check_rows(selected: &[usize], rows: usize) -> Result<()> {
    let ascending = selected.windows(2).all(|w| w[0] < w[1]);
    if !ascending || selected.last().is_some_and(|&r| r >= rows) {
        return Err(EngineError::ForwardArgs(format!(
            "logit rows {selected:?} must be ascending, unique and below the {rows} input tokens"
        )));
    }
    Ok(())
}

/// Checks that one forward's `requested` rows of logits fit a model's
/// [`DiffusionModel::max_logits_rows`].
pub(crate) fn check_logits_rows(requested: usize, max: usize) -> Result<()> {
    if requested <= max {
        return Ok(());
    }
    Err(EngineError::TooManyLogitsRows {
        requested,
        max,
        remedy: format!(
            "ask for at most {max} rows per forward (DiffusionModel::forward_rows), or \
             re-export the model with `diffulex-export export --max-logits-rows {requested}`"
        ),
    })
}

/// A diffusion LM forward with the `.pte` contract (docs/pte-contract.md).
///
/// `tokens` are consecutive tokens starting at absolute position `input_pos` (cached models,
/// which write their K/V for those positions and attend to keys `< input_pos + T`) or at 0
/// (uncached models, `input_pos == None`). Logits are RAW (unshifted) `[T, vocab]`.
///
/// ```
/// use diffulex_edge::runtime::{DiffusionModel, Family, HashModel, ModelMetadata};
/// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
/// let mut m = HashModel::new(meta, 0);
/// let logits = m.forward(&[3, 4, 31], None).unwrap();
/// assert_eq!((logits.rows(), logits.vocab()), (3, 32));
/// ```
pub trait DiffusionModel {
    /// Constants of the model.
    fn metadata(&self) -> &ModelMetadata;
    /// Runs one forward; the view lives until the next call.
    fn forward(&mut self, tokens: &[i64], input_pos: Option<usize>) -> Result<LogitsView<'_>>;

    /// Runs one forward of which the caller reads only the logits of input rows `rows`
    /// (ascending, unique, each `< tokens.len()`; possibly empty when only the KV cache write
    /// matters). Models that can skip the other rows' output layer do so (a contract-2 `.pte`,
    /// where the lm_head over a large vocabulary is most of a forward); the default computes
    /// every row. Either way [`LogitsView::row`] takes input-row indices.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionModel, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let mut m = HashModel::new(meta, 0);
    /// let full = m.forward(&[3, 4, 31], None).unwrap().row(2).to_vec();
    /// let v = m.forward_rows(&[3, 4, 31], None, &[2]).unwrap();
    /// assert_eq!((v.computed_rows(), v.row(2)), (1, &full[..]));
    /// ```
    fn forward_rows<'s>(
        &'s mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
        rows: &'s [usize],
    ) -> Result<LogitsView<'s>> {
        check_rows(rows, tokens.len())?;
        self.forward(tokens, input_pos)
    }

    /// Runs one forward of a model whose forward takes `kv_end` ([`ModelMetadata::takes_kv_end`]):
    /// writes the K/V of `tokens` at positions `[input_pos, input_pos + T)` and lets the queries
    /// attend to the cache slots below `kv_end` (`input_pos + T <= kv_end <= max_seq_len`)
    /// that their family's mask shows them; slots in `[input_pos + T, kv_end)` hold what earlier
    /// calls wrote there. Rows as in [`DiffusionModel::forward_rows`]. This is the in-block step
    /// of Fast-dLLM's prefix (`kv_end` = the end of `tokens`) and dual caches (LLaDA, Dream;
    /// every slot is visible) and of Fast-dLLM v2's sub-block cache (block-causal); the default
    /// refuses, for models without such a cache.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionModel, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let mut m = HashModel::new(meta, 0);
    /// assert!(m.forward_span(&[3, 4], 2, 8, &[0]).is_err()); // no bidirectional cache
    /// ```
    fn forward_span<'s>(
        &'s mut self,
        tokens: &[i64],
        input_pos: usize,
        kv_end: usize,
        rows: &'s [usize],
    ) -> Result<LogitsView<'s>> {
        let _ = (tokens, rows);
        Err(EngineError::ForwardArgs(format!(
            "a forward at {input_pos} reading the cache up to {kv_end} needs a model whose \
             forward takes kv_end (a LLaDA or Dream .pte exported with --kv-cache, or a cached \
             Fast-dLLM v2 .pte of contract 3)"
        )))
    }

    /// The most rows of logits one forward returns: a `.pte` of contract 2 or later plans
    /// memory for that many rows (`diffulex-export export --max-logits-rows`, default
    /// min(max_seq_len, 256)) and refuses more. The engine checks a generation's largest
    /// forward against it before the first one runs. The default is `max_seq_len`: every row
    /// of the longest forward.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionModel, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// assert_eq!(HashModel::new(meta.clone(), 0).max_logits_rows(), 64);
    /// assert_eq!(HashModel::new(meta, 0).with_max_logits_rows(8).max_logits_rows(), 8);
    /// ```
    fn max_logits_rows(&self) -> usize {
        self.metadata().max_seq_len
    }

    /// The pool that scores the rows of a greedy step between two forwards (see
    /// [`RowPool`](super::RowPool)). The default scores on the calling thread; a model whose
    /// backend has idle threads between forwards hands them out here (a `.pte` model returns
    /// ExecuTorch's thread pool). The engine asks once, when it is built. Tokens never depend
    /// on the pool.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionModel, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Llada, 64, 32, 31, vec![1], 0);
    /// let seen = std::sync::Mutex::new(Vec::new());
    /// HashModel::new(meta, 0).row_pool().run(2, &|i| seen.lock().unwrap().push(i));
    /// assert_eq!(seen.into_inner().unwrap(), [0, 1]); // in order, on this thread
    /// ```
    fn row_pool(&self) -> Arc<dyn RowPool> {
        Arc::new(SequentialPool)
    }
}

impl<M: DiffusionModel + ?Sized> DiffusionModel for Box<M> {
    fn metadata(&self) -> &ModelMetadata {
        (**self).metadata()
    }
    fn forward(&mut self, tokens: &[i64], input_pos: Option<usize>) -> Result<LogitsView<'_>> {
        (**self).forward(tokens, input_pos)
    }
    fn forward_rows<'s>(
        &'s mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
        rows: &'s [usize],
    ) -> Result<LogitsView<'s>> {
        (**self).forward_rows(tokens, input_pos, rows)
    }
    fn forward_span<'s>(
        &'s mut self,
        tokens: &[i64],
        input_pos: usize,
        kv_end: usize,
        rows: &'s [usize],
    ) -> Result<LogitsView<'s>> {
        (**self).forward_span(tokens, input_pos, kv_end, rows)
    }
    fn max_logits_rows(&self) -> usize {
        (**self).max_logits_rows()
    }
    fn row_pool(&self) -> Arc<dyn RowPool> {
        (**self).row_pool()
    }
}

#[cfg(test)]
mod row_tests {
    use super::*;

    #[test]
    fn pack_rows_keeps_the_selected_rows_in_order() {
        let mut buf = vec![0.0f32, 0.5, 1.0, 1.5, 2.0, 2.5];
        pack_rows(&mut buf, &[0, 2], 2);
        assert_eq!(buf, [0.0, 0.5, 2.0, 2.5]);
    }

    #[test]
    fn check_rows_wants_ascending_unique_rows_in_range() {
        assert!(check_rows(&[0, 3], 4).is_ok());
        assert!(check_rows(&[1, 1], 4).is_err());
        assert!(check_rows(&[4], 4).is_err());
    }
}
