use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::TextError;
use crate::runtime::ModelMetadata;

/// How an id the tokenizer does not know is shown in decoded text: never silently dropped.
///
/// ```
/// assert_eq!(diffulex_edge::text::unknown_id_marker(151_935), "<id:151935>");
/// ```
pub fn unknown_id_marker(id: u32) -> String {
    format!("<id:{id}>")
}

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
    /// An id the tokenizer does not know (a model's vocabulary is often padded past its
    /// tokenizer, e.g. Qwen's 151,665 tokens for 151,936 logits) is shown as `<id:N>`
    /// ([`unknown_id_marker`]) instead of vanishing; the runs of known ids between such ids are
    /// decoded as usual.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_file(p).unwrap();
    /// assert!(tok.decode(&[-1], true).is_err());
    /// let ids = tok.encode("12", false).unwrap();
    /// let with_unknown = [ids[0], 500, ids[1]];
    /// assert_eq!(tok.decode(&with_unknown, true).unwrap(), "1<id:500>2");
    /// ```
    pub fn decode(&self, ids: &[i64], skip_special_tokens: bool) -> Result<String, TextError> {
        let ids = to_u32(ids)?;
        let decode = |run: &[u32]| {
            self.inner
                .decode(run, skip_special_tokens)
                .map_err(|e| TextError::Decode(e.to_string()))
        };
        if ids.iter().all(|&id| self.inner.id_to_token(id).is_some()) {
            return decode(&ids);
        }
        let mut out = String::new();
        for run in ids.split_inclusive(|&id| self.inner.id_to_token(id).is_none()) {
            match run.split_last() {
                Some((&last, known)) if self.inner.id_to_token(last).is_none() => {
                    out += &decode(known)?;
                    out += &unknown_id_marker(last);
                }
                _ => out += &decode(run)?,
            }
        }
        Ok(out)
    }

    /// SHA-256 of the tokenizer's vocabulary, added tokens included: for every (token, id)
    /// pair, sorted by id then token bytes, the id as 4 little-endian bytes, the token's UTF-8
    /// length as 4 little-endian bytes, then its bytes. `diffulex-export` records the same
    /// digest in the `.pte` (`get_tokenizer_digest`, docs/pte-contract.md); only the id <-> token
    /// mapping counts, so normalizer or template edits that keep it do not change the digest.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let d = TextTokenizer::from_file(p).unwrap().vocab_digest();
    /// assert_eq!(d.len(), 32);
    /// ```
    pub fn vocab_digest(&self) -> [u8; 32] {
        let mut pairs: Vec<(u32, String)> = self
            .inner
            .get_vocab(true)
            .into_iter()
            .map(|(token, id)| (id, token))
            .collect();
        pairs.sort_unstable();
        let mut h = Sha256::new();
        for (id, token) in &pairs {
            h.update(id.to_le_bytes());
            h.update((token.len() as u32).to_le_bytes());
            h.update(token.as_bytes());
        }
        h.finalize().into()
    }

    /// Checks that this tokenizer belongs to the model. Always: the tokenizer knows no id past
    /// the model's vocabulary (fewer is fine: vocabularies are padded). Then the model's
    /// recorded vocabulary digest (`model_digest`, from `PteModel::tokenizer_digest`) must
    /// equal [`Self::vocab_digest`]. Models exported before the digest existed have none;
    /// for them the special ids are compared instead: the model's mask id must be one of the
    /// tokenizer's added tokens with "mask" in its text (every supported family's mask token
    /// is), and every eos id must be a token of the tokenizer.
    ///
    /// ```
    /// use diffulex_edge::runtime::{DiffusionModel, PteModel};
    /// use diffulex_edge::text::TextTokenizer;
    /// let root = env!("CARGO_MANIFEST_DIR");
    /// let model = PteModel::load(format!("{root}/models/default/model.pte")).unwrap();
    /// let own = TextTokenizer::from_file(format!("{root}/models/default/tokenizer.json")).unwrap();
    /// assert!(own.check_model(model.metadata(), model.tokenizer_digest()).is_ok());
    /// let other = TextTokenizer::from_file(format!("{root}/tests/fixtures/ckpt/sdar/tokenizer.json")).unwrap();
    /// assert!(other.check_model(model.metadata(), model.tokenizer_digest()).is_err());
    /// ```
    pub fn check_model(
        &self,
        meta: &ModelMetadata,
        model_digest: Option<&[u8; 32]>,
    ) -> Result<(), TextError> {
        let mismatch = |reason: String| {
            Err(TextError::Mismatch {
                path: self.path.clone(),
                reason,
            })
        };
        let max = self.max_id();
        if max as usize >= meta.vocab_size {
            return mismatch(format!(
                "it has ids up to {max} but the model's vocabulary has {} entries",
                meta.vocab_size
            ));
        }
        if let Some(want) = model_digest {
            let got = self.vocab_digest();
            if &got != want {
                return mismatch(format!(
                    "its vocabulary digest is {}, the model was exported with a tokenizer of digest {}",
                    hex(&got),
                    hex(want)
                ));
            }
            return Ok(());
        }
        let added = self.inner.get_added_tokens_decoder();
        let mask = u32::try_from(meta.mask_token_id).ok();
        match mask.and_then(|m| added.get(&m)) {
            Some(t) if t.content.to_lowercase().contains("mask") => {}
            found => {
                return mismatch(format!(
                    "the model's mask id {} is {} (the model records no tokenizer digest, so its special ids were compared)",
                    meta.mask_token_id,
                    match (found, mask.and_then(|m| self.inner.id_to_token(m))) {
                        (Some(t), _) => format!("the tokenizer's added token {:?}, not a mask token", t.content),
                        (None, Some(t)) => format!("the tokenizer's ordinary token {t:?}"),
                        (None, None) => "not a token of the tokenizer".to_string(),
                    }
                ));
            }
        }
        for &eos in &meta.eos_ids {
            if u32::try_from(eos)
                .ok()
                .and_then(|e| self.inner.id_to_token(e))
                .is_none()
            {
                return mismatch(format!(
                    "the model's eos id {eos} is not a token of the tokenizer (the model records no tokenizer digest, so its special ids were compared)"
                ));
            }
        }
        Ok(())
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_u32(ids: &[i64]) -> Result<Vec<u32>, TextError> {
    ids.iter()
        .map(|&id| {
            u32::try_from(id)
                .map_err(|_| TextError::Decode(format!("token id {id} is out of range")))
        })
        .collect()
}
