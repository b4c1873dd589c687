use std::path::{Path, PathBuf};

use super::TextError;

/// A Hugging Face `tokenizer.json` tokenizer (pure-Rust regex backend) speaking in `i64` ids,
/// the dtype of the `.pte` token inputs.
///
/// ```
/// use diffulex_edge::text::TextTokenizer;
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
/// let tok = TextTokenizer::from_file(path).unwrap();
/// assert!(tok.vocab_size() > 0);
/// ```
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// assert!(TextTokenizer::from_file("missing.json").is_err());
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TextError> {
        let path = path.as_ref().to_path_buf();
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| TextError::Load {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { inner, path })
    }

    /// The file this tokenizer was loaded from.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// assert!(TextTokenizer::from_file(p).unwrap().path().ends_with("tokenizer.json"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of ids the tokenizer can produce, added special tokens included.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// assert!(TextTokenizer::from_file(p).unwrap().vocab_size() >= 10);
    /// ```
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest id the tokenizer knows, used to check it against the model's vocabulary.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_file(p).unwrap();
    /// assert!(tok.max_id() + 1 >= tok.vocab_size() as u32);
    /// ```
    pub fn max_id(&self) -> u32 {
        self.inner
            .get_vocab(true)
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// The id of a token string (special tokens included), if it exists.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_file(p).unwrap();
    /// assert!(tok.token_to_id("<|endoftext|>").is_some());
    /// ```
    pub fn token_to_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    /// Tokenizes `text`; `add_special_tokens` applies the tokenizer's post-processor (BOS etc.).
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let ids = TextTokenizer::from_file(p).unwrap().encode("1+1=", false).unwrap();
    /// assert!(!ids.is_empty());
    /// ```
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<i64>, TextError> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| TextError::Encode(e.to_string()))?;
        Ok(enc.get_ids().iter().map(|&id| i64::from(id)).collect())
    }

    /// Detokenizes ids; `skip_special_tokens` drops EOS, mask and other special tokens.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_file(p).unwrap();
    /// assert!(tok.decode(&[-1], true).is_err());
    /// ```
    pub fn decode(&self, ids: &[i64], skip_special_tokens: bool) -> Result<String, TextError> {
        let ids = to_u32(ids)?;
        self.inner
            .decode(&ids, skip_special_tokens)
            .map_err(|e| TextError::Decode(e.to_string()))
    }
}

fn to_u32(ids: &[i64]) -> Result<Vec<u32>, TextError> {
    ids.iter()
        .map(|&id| {
            u32::try_from(id)
                .map_err(|_| TextError::Decode(format!("token id {id} is out of range")))
        })
        .collect()
}
