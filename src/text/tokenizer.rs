use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
///
/// Special tokens: [`encode`](Self::encode) treats the text as the user's, so a special-token
/// string typed in it (`<|endoftext|>`) is tokenized as plain characters, never as the control
/// token; [`encode_raw`](Self::encode_raw) is Hugging Face's default, matching them.
/// [`encode_marked`](Self::encode_marked) does both in one string: special tokens only inside
/// trusted markup (a chat template's own text).
pub struct TextTokenizer {
    /// Special tokens are *not* matched in text (`set_encode_special_tokens(true)`).
    inner: tokenizers::Tokenizer,
    /// Hugging Face's default matching, made on first use of [`encode_raw`](Self::encode_raw).
    raw: OnceLock<tokenizers::Tokenizer>,
    path: PathBuf,
    /// Special added tokens: (content, id, lstrip, rstrip), longest content first.
    specials: Vec<SpecialToken>,
    /// Ids of the special tokens but the unknown token, sorted.
    controls: Vec<u32>,
    /// The model's unknown token, if it has one.
    unk: Option<(u32, String)>,
    /// Bytes of the longest vocabulary entry, added tokens included.
    longest_token: usize,
}

#[derive(Debug, Clone)]
struct SpecialToken {
    content: String,
    id: u32,
    lstrip: bool,
    rstrip: bool,
}

/// Text with the byte ranges that came from the user; everything else is trusted markup (a chat
/// template's own text) in which special-token strings are control tokens.
///
/// ```
/// use diffulex_edge::text::MarkedText;
/// let m = MarkedText::user("12+34=");
/// assert_eq!(m.user_ranges(), &[0..6]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedText {
    text: String,
    user: Vec<Range<usize>>,
}

impl MarkedText {
    /// All of `text` is the user's.
    ///
    /// ```
    /// assert_eq!(diffulex_edge::text::MarkedText::user("hi").text(), "hi");
    /// ```
    pub fn user(text: impl Into<String>) -> Self {
        let text = text.into();
        let user = if text.is_empty() {
            Vec::new()
        } else {
            std::iter::once(0..text.len()).collect()
        };
        Self { text, user }
    }

    /// Text whose `user` byte ranges are the user's; the ranges must be sorted, disjoint, inside
    /// the text and on character boundaries, else `None`.
    ///
    /// ```
    /// use diffulex_edge::text::MarkedText;
    /// assert!(MarkedText::new("<s>hi</s>".into(), vec![3..5]).is_some());
    /// assert!(MarkedText::new("hi".into(), vec![1..5]).is_none());
    /// ```
    pub fn new(text: String, user: Vec<Range<usize>>) -> Option<Self> {
        let mut end = 0;
        for r in &user {
            if r.start < end
                || r.start > r.end
                || !text.is_char_boundary(r.start)
                || !text.is_char_boundary(r.end)
            {
                return None;
            }
            end = r.end;
        }
        let user = user.into_iter().filter(|r| !r.is_empty()).collect();
        Some(Self { text, user })
    }

    /// The whole text.
    ///
    /// ```
    /// assert_eq!(diffulex_edge::text::MarkedText::user("x").text(), "x");
    /// ```
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The user's byte ranges, sorted and disjoint.
    ///
    /// ```
    /// assert!(diffulex_edge::text::MarkedText::user("").user_ranges().is_empty());
    /// ```
    pub fn user_ranges(&self) -> &[Range<usize>] {
        &self.user
    }

    fn is_user(&self, r: &Range<usize>) -> bool {
        self.user.iter().any(|u| {
            if r.is_empty() {
                u.start <= r.start && r.start < u.end
            } else {
                u.start < r.end && r.start < u.end
            }
        })
    }

    /// Maximal trusted (markup) ranges: the complement of the user ranges.
    fn trusted(&self) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut at = 0;
        for u in &self.user {
            if u.start > at {
                out.push(at..u.start);
            }
            at = u.end;
        }
        if at < self.text.len() {
            out.push(at..self.text.len());
        }
        out
    }
}

/// One token of an encoding and the byte range of the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedToken {
    /// The token id.
    pub id: i64,
    /// Byte range in the text the token stands for (may be empty).
    pub range: Range<usize>,
    /// Whether any of that range is the user's.
    pub from_user: bool,
}

/// Every token stands for at most this many bytes when computing the prompt byte limit, even if
/// the vocabulary's entries are all shorter (see [`TextTokenizer::bytes_per_token`]).
pub const MIN_BYTES_PER_TOKEN: usize = 16;

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
        Ok(Self::from_inner(inner, path))
    }

    /// Loads a `tokenizer.json` held in memory (one embedded in a `.pte`); `origin` names where
    /// it came from in messages and [`path`](Self::path).
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_bytes(&std::fs::read(p).unwrap(), "model.pte (embedded)").unwrap();
    /// assert_eq!(tok.encode("12+34=", false).unwrap().len(), 6);
    /// assert!(TextTokenizer::from_bytes(b"{", "x").is_err());
    /// ```
    pub fn from_bytes(
        json: &[u8],
        origin: impl Into<std::path::PathBuf>,
    ) -> Result<Self, TextError> {
        let path = origin.into();
        let inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| TextError::Load {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_inner(inner, path))
    }

    fn from_inner(mut inner: tokenizers::Tokenizer, path: std::path::PathBuf) -> Self {
        inner.set_encode_special_tokens(true);
        let unk = unk_token(&inner);
        let mut specials: Vec<SpecialToken> = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special && !t.content.is_empty())
            .map(|(id, t)| SpecialToken {
                content: t.content,
                id,
                lstrip: t.lstrip,
                rstrip: t.rstrip,
            })
            .collect();
        // Longest first, then by id, so matching is leftmost-longest and deterministic.
        specials.sort_by(|a, b| b.content.len().cmp(&a.content.len()).then(a.id.cmp(&b.id)));
        let longest_token = longest_token(&inner);
        let mut controls: Vec<u32> = specials
            .iter()
            .map(|t| t.id)
            .filter(|&id| Some(id) != unk.as_ref().map(|(u, _)| *u))
            .collect();
        controls.sort_unstable();
        Self {
            inner,
            raw: OnceLock::new(),
            path,
            specials,
            controls,
            unk,
            longest_token,
        }
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

    /// Tokenizes `text` as user text: special-token strings in it (`<|endoftext|>`) are plain
    /// characters, not control tokens (Hugging Face's `split_special_tokens=True`);
    /// `add_special_tokens` applies the tokenizer's post-processor (BOS etc.).
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_file(p).unwrap();
    /// let ids = tok.encode("1+1=", false).unwrap();
    /// assert!(!ids.is_empty());
    /// let eos = tok.token_to_id("<|endoftext|>").unwrap();
    /// assert!(!tok.encode("1=<|endoftext|>", false).unwrap().contains(&eos));
    /// ```
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<i64>, TextError> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| TextError::Encode(e.to_string()))?;
        Ok(enc.get_ids().iter().map(|&id| i64::from(id)).collect())
    }

    /// Tokenizes `text` the way Hugging Face does by default: special-token strings in it become
    /// control tokens. For trusted text only (`diffulex generate --raw-special-tokens`).
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_file(p).unwrap();
    /// let eos = tok.token_to_id("<|endoftext|>").unwrap();
    /// assert_eq!(tok.encode_raw("1=<|endoftext|>", false).unwrap().last(), Some(&eos));
    /// ```
    pub fn encode_raw(&self, text: &str, add_special_tokens: bool) -> Result<Vec<i64>, TextError> {
        let raw = self.raw.get_or_init(|| {
            let mut t = self.inner.clone();
            t.set_encode_special_tokens(false);
            t
        });
        let enc = raw
            .encode(text, add_special_tokens)
            .map_err(|e| TextError::Encode(e.to_string()))?;
        Ok(enc.get_ids().iter().map(|&id| i64::from(id)).collect())
    }

    /// Tokenizes text in which only the markup (everything outside the user ranges) may produce
    /// special tokens: special-token strings are matched inside the markup (leftmost-longest,
    /// honouring their `lstrip`/`rstrip` flags), and everything between them, markup and user
    /// text alike, is tokenized with special tokens as plain text. Each token says whether it
    /// came from the user's text.
    ///
    /// ```
    /// use diffulex_edge::text::{MarkedText, TextTokenizer};
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_file(p).unwrap();
    /// let eos = tok.token_to_id("<|endoftext|>").unwrap();
    /// // "<|endoftext|>" is markup here, so it is the control token; "1=" is the user's.
    /// let m = MarkedText::new("1=<|endoftext|>".into(), vec![0..2]).unwrap();
    /// let toks = tok.encode_marked(&m).unwrap();
    /// assert_eq!(toks.last().unwrap().id, eos);
    /// assert!(!toks.last().unwrap().from_user && toks[0].from_user);
    /// ```
    pub fn encode_marked(&self, text: &MarkedText) -> Result<Vec<MarkedToken>, TextError> {
        let s = text.text();
        let mut out = Vec::new();
        let mut at = 0;
        let plain = |from: usize, to: usize, out: &mut Vec<MarkedToken>| {
            if from >= to {
                return Ok(());
            }
            let enc = self
                .inner
                .encode(&s[from..to], false)
                .map_err(|e| TextError::Encode(e.to_string()))?;
            for (&id, &(a, b)) in enc.get_ids().iter().zip(enc.get_offsets()) {
                let range = (from + a).min(to)..(from + b).min(to);
                out.push(MarkedToken {
                    id: i64::from(id),
                    from_user: text.is_user(&range),
                    range,
                });
            }
            Ok::<(), TextError>(())
        };
        for m in self.special_matches(text) {
            plain(at, m.start, &mut out)?;
            out.push(MarkedToken {
                id: i64::from(m.id),
                range: m.start..m.end,
                from_user: false,
            });
            at = m.end;
        }
        plain(at, s.len(), &mut out)?;
        Ok(out)
    }

    /// Special-token matches inside the trusted ranges, in order, not overlapping.
    fn special_matches(&self, text: &MarkedText) -> Vec<SpecialMatch> {
        let s = text.text();
        let mut out: Vec<SpecialMatch> = Vec::new();
        if self.specials.is_empty() {
            return out;
        }
        for r in text.trusted() {
            let mut i = r.start;
            while i < r.end {
                let rest = &s[i..r.end];
                if let Some(t) = self.specials.iter().find(|t| rest.starts_with(&t.content)) {
                    let mut start = i;
                    let mut end = i + t.content.len();
                    let floor = out.last().map_or(r.start, |m| m.end.max(r.start));
                    if t.lstrip {
                        let before = &s[floor..start];
                        start = floor + before.trim_end().len();
                    }
                    if t.rstrip {
                        let after = &s[end..r.end];
                        end += after.len() - after.trim_start().len();
                    }
                    out.push(SpecialMatch {
                        start,
                        end,
                        id: t.id,
                    });
                    i = end;
                } else {
                    i += rest.chars().next().map_or(1, char::len_utf8);
                }
            }
        }
        out
    }

    /// The model's unknown token (`unk_token` / `unk_id` of `tokenizer.json`), if it has one.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_file(p).unwrap();
    /// assert_eq!(tok.unk_token(), Some((3, "<|unk|>")));
    /// ```
    pub fn unk_token(&self) -> Option<(i64, &str)> {
        self.unk
            .as_ref()
            .map(|(id, s)| (i64::from(*id), s.as_str()))
    }

    /// Whether `id` is a special (control) token other than the unknown token.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// let tok = TextTokenizer::from_file(p).unwrap();
    /// assert!(tok.is_control(tok.token_to_id("<|pad|>").unwrap()));
    /// assert!(!tok.is_control(3) && !tok.is_control(tok.token_to_id("7").unwrap()));
    /// ```
    pub fn is_control(&self, id: i64) -> bool {
        u32::try_from(id).is_ok_and(|id| self.controls.binary_search(&id).is_ok())
    }

    /// The most bytes of text one token is taken to stand for: the longest vocabulary entry
    /// (added tokens included) in input bytes, and at least [`MIN_BYTES_PER_TOKEN`]. An entry's
    /// input bytes are its UTF-8 length, or its character count for a byte-level pre-tokenizer
    /// (one character per byte). A text of
    /// more than `max_seq_len * bytes_per_token()` bytes cannot fit a context of `max_seq_len`
    /// tokens whenever every token covers at most that many input bytes: true of byte-level BPE
    /// (each token's entry spells its bytes, at one or two characters per byte) and of
    /// character-level vocabularies like the bundled model's. Only text the model cannot see
    /// breaks it: a run of unknown characters that becomes one unknown token (the bundled
    /// pre-tokenizer leaves a run of `\n` in one piece), or input a tokenizer drops
    /// (whitespace-splitting pre-tokenizers, normalizers that delete characters). A prompt
    /// refused for that reason would have had that much text invisible to the model.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// // The bundled vocabulary's longest entry is "<|endoftext|>" (13 bytes).
    /// assert_eq!(TextTokenizer::from_file(p).unwrap().bytes_per_token(), 16);
    /// ```
    pub fn bytes_per_token(&self) -> usize {
        self.longest_token.max(MIN_BYTES_PER_TOKEN)
    }

    /// The byte limit of a prompt for a context of `max_seq_len` tokens:
    /// `max_seq_len * bytes_per_token()`, saturating.
    ///
    /// ```
    /// # use diffulex_edge::text::TextTokenizer;
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// assert_eq!(TextTokenizer::from_file(p).unwrap().max_prompt_bytes(64), 1024);
    /// ```
    pub fn max_prompt_bytes(&self, max_seq_len: usize) -> usize {
        max_seq_len.saturating_mul(self.bytes_per_token())
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

#[derive(Debug, Clone, Copy)]
struct SpecialMatch {
    start: usize,
    end: usize,
    id: u32,
}

/// Input bytes of the longest vocabulary entry: a byte-level model's entries spell one
/// character per input byte; others (and added tokens, kept as typed) at most their UTF-8 length
/// (`▁` for a space, `##` continuation prefixes only make an entry longer than its input).
fn longest_token(tok: &tokenizers::Tokenizer) -> usize {
    use tokenizers::pre_tokenizers::PreTokenizerWrapper;
    use tokenizers::Model;
    let byte_level = match tok.get_pre_tokenizer() {
        Some(PreTokenizerWrapper::ByteLevel(_)) => true,
        Some(PreTokenizerWrapper::Sequence(seq)) => seq
            .as_ref()
            .iter()
            .any(|p| matches!(p, PreTokenizerWrapper::ByteLevel(_))),
        _ => false,
    };
    let model = tok
        .get_model()
        .get_vocab()
        .into_keys()
        .map(|k| {
            if byte_level {
                k.chars().count()
            } else {
                k.len()
            }
        })
        .max()
        .unwrap_or(0);
    let added = tok
        .get_added_tokens_decoder()
        .into_values()
        .map(|t| t.content.len())
        .max()
        .unwrap_or(0);
    model.max(added)
}

/// The model's unknown token: `unk_token` of BPE, WordPiece and WordLevel models, `unk_id` of
/// Unigram ones (read from the serialized model, which only Unigram needs).
fn unk_token(tok: &tokenizers::Tokenizer) -> Option<(u32, String)> {
    use tokenizers::models::ModelWrapper;
    let name = match tok.get_model() {
        ModelWrapper::BPE(m) => m.get_unk_token().clone()?,
        ModelWrapper::WordPiece(m) => m.unk_token.clone(),
        ModelWrapper::WordLevel(m) => m.unk_token.clone(),
        ModelWrapper::Unigram(m) => {
            let v = serde_json::to_value(m).ok()?;
            let id = u32::try_from(v.get("unk_id")?.as_u64()?).ok()?;
            return Some((id, tok.id_to_token(id).unwrap_or_default()));
        }
    };
    Some((tok.token_to_id(&name)?, name))
}

fn to_u32(ids: &[i64]) -> Result<Vec<u32>, TextError> {
    ids.iter()
        .map(|&id| {
            u32::try_from(id)
                .map_err(|_| TextError::Decode(format!("token id {id} is out of range")))
        })
        .collect()
}
