//! A deterministic synthetic model for tests and examples (no weights, no ExecuTorch).
//!
//! Its logits are a hash of the tokens each query may see under the family's attention mask,
//! and it keeps a token-level "KV cache" with the exact `.pte` cache contract. So it catches
//! stale caches (a block whose final tokens were never written changes later logits), wrong
//! positions and wrong masks, and the Python twin (`diffulex_export.reference.hash_model`)
//! produces identical float32 logits for cross-language golden tests.

use super::error::{EngineError, Result};
use super::model::{
    check_logits_rows, check_rows, pack_rows, DiffusionModel, LogitsView, ModelMetadata,
};
use super::rng::mix64;

/// Hash-based test double implementing [`DiffusionModel`].
///
/// Logit of token v at query q: `(mix64(h_q ^ (v+1)·C) >> 56) / 32` (in [0, 8)), plus an integer
/// boost in 0..=12 on one token chosen by `h_q`; `h_q` folds the seed, every visible key
/// (position, token) in ascending order and q itself. All values are exact in float32.
///
/// ```
/// use diffulex_edge::runtime::{DiffusionModel, Family, HashModel, ModelMetadata};
/// let mut meta = ModelMetadata::for_family(Family::Sdar, 64, 32, 31, vec![1], 4);
/// meta.use_kv_cache = true;
/// let mut cached = HashModel::new(meta.clone(), 9);
/// meta.use_kv_cache = false;
/// let mut full = HashModel::new(meta, 9);
/// let toks = [5i64, 6, 7, 8, 9, 10];
/// let want = full.forward(&toks, None).unwrap().row(5).to_vec();
/// cached.forward(&toks[..4], Some(0)).unwrap();
/// assert_eq!(cached.forward(&toks[4..], Some(4)).unwrap().row(1), &want[..]);
/// ```
#[derive(Debug, Clone)]
pub struct HashModel {
    meta: ModelMetadata,
    seed: u64,
    cache: Vec<i64>,
    out: Vec<f32>,
    /// Rows of logits one forward returns at most, as a `.pte`'s `--max-logits-rows`.
    max_logits_rows: usize,
}

impl HashModel {
    /// Creates the model; `seed` selects the synthetic "weights".
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionModel, Family, HashModel, ModelMetadata};
    /// let m = HashModel::new(ModelMetadata::for_family(Family::Dream, 16, 8, 7, vec![1], 0), 3);
    /// assert_eq!(m.metadata().vocab_size, 8);
    /// ```
    pub fn new(meta: ModelMetadata, seed: u64) -> Self {
        let cache = vec![0; meta.max_seq_len];
        HashModel {
            max_logits_rows: meta.max_seq_len,
            meta,
            seed,
            cache,
            out: Vec::new(),
        }
    }

    /// Returns at most `rows` rows of logits per forward, as a `.pte` exported with
    /// `--max-logits-rows rows` does, and refuses forwards that need more.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionModel, EngineError, Family, HashModel, ModelMetadata};
    /// let meta = ModelMetadata::for_family(Family::Dream, 16, 8, 7, vec![1], 0);
    /// let mut m = HashModel::new(meta, 3).with_max_logits_rows(2);
    /// assert!(m.forward_rows(&[2, 3, 4], None, &[1, 2]).is_ok());
    /// let err = m.forward_rows(&[2, 3, 4], None, &[0, 1, 2]).unwrap_err();
    /// assert!(matches!(err, EngineError::TooManyLogitsRows { requested: 3, max: 2, .. }));
    /// ```
    pub fn with_max_logits_rows(mut self, rows: usize) -> Self {
        self.max_logits_rows = rows;
        self
    }

    fn visible(&self, key: usize, query: usize) -> bool {
        !self.meta.family.block_causal()
            || key / self.meta.block_size <= query / self.meta.block_size
    }
}

impl HashModel {
    /// Fills `self.out` with the logits of every input row.
    fn compute(&mut self, tokens: &[i64], input_pos: Option<usize>) -> Result<()> {
        let token_count = tokens.len();
        let start = match (self.meta.use_kv_cache, input_pos) {
            (true, Some(pos)) => pos,
            (true, None) => {
                return Err(EngineError::ForwardArgs(
                    "cached model needs input_pos".into(),
                ))
            }
            (false, None) => 0,
            (false, Some(pos)) => {
                return Err(EngineError::ForwardArgs(format!(
                    "uncached model got input_pos {pos}"
                )))
            }
        };
        // Checked: `input_pos` comes from the caller; a wrapped sum would pass the bound.
        if token_count == 0
            || start
                .checked_add(token_count)
                .is_none_or(|end| end > self.meta.max_seq_len)
        {
            return Err(EngineError::ForwardArgs(format!(
                "{token_count} tokens at position {start} exceed max_seq_len {}",
                self.meta.max_seq_len
            )));
        }
        self.cache[start..start + token_count].copy_from_slice(tokens);
        let vocab = self.meta.vocab_size;
        self.out.clear();
        self.out.resize(token_count * vocab, 0.0);
        for row_index in 0..token_count {
            let query = start + row_index;
            let mut hash = self.seed;
            for key in 0..start + token_count {
                if self.visible(key, query) {
                    hash = mix64(hash ^ ((key as u64) << 32) ^ (self.cache[key] as u64));
                }
            }
            hash = mix64(hash ^ (query as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let row = &mut self.out[row_index * vocab..(row_index + 1) * vocab];
            for (token, logit) in row.iter_mut().enumerate() {
                let bits = mix64(hash ^ (token as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
                *logit = (bits >> 56) as f32 / 32.0;
            }
            row[((hash >> 8) % vocab as u64) as usize] += ((hash >> 20) % 13) as f32;
        }
        Ok(())
    }
}

impl DiffusionModel for HashModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn forward(&mut self, tokens: &[i64], input_pos: Option<usize>) -> Result<LogitsView<'_>> {
        check_logits_rows(tokens.len(), self.max_logits_rows)?;
        self.compute(tokens, input_pos)?;
        LogitsView::new(&self.out, tokens.len(), self.meta.vocab_size)
    }

    /// Keeps only the selected rows, packed as a row-selecting `.pte` returns them, so the
    /// engine's row bookkeeping is tested against every hash golden.
    fn forward_rows<'s>(
        &'s mut self,
        tokens: &[i64],
        input_pos: Option<usize>,
        rows: &'s [usize],
    ) -> Result<LogitsView<'s>> {
        check_rows(rows, tokens.len())?;
        check_logits_rows(rows.len(), self.max_logits_rows)?;
        self.compute(tokens, input_pos)?;
        let vocab = self.meta.vocab_size;
        pack_rows(&mut self.out, rows, vocab);
        LogitsView::selected(&self.out, rows, tokens.len(), vocab)
    }

    fn max_logits_rows(&self) -> usize {
        self.max_logits_rows
    }
}
