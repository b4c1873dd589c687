use super::{TextError, TextTokenizer};

/// Incremental detokenizer for streaming output.
///
/// Byte-level tokenizers split multi-byte characters across tokens, so decoding each new token
/// alone would print replacement characters. This keeps the ids seen so far and emits only the
/// text that has become stable: a trailing `U+FFFD` means a character is still incomplete, and
/// the text is held back until the next tokens complete it.
///
/// ```
/// use diffulex_edge::text::{StreamDecoder, TextTokenizer};
/// let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
/// let tok = TextTokenizer::from_file(p).unwrap();
/// let ids = tok.encode("12+34=", false).unwrap();
/// let mut stream = StreamDecoder::new(true);
/// let mut out = String::new();
/// for id in ids.iter().copied() {
///     out += &stream.push(&tok, &[id]).unwrap();
/// }
/// out += &stream.finish(&tok).unwrap();
/// assert_eq!(out, tok.decode(&ids, true).unwrap());
/// ```
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ids: Vec<i64>,
    emitted: usize,
    skip_special_tokens: bool,
}

impl StreamDecoder {
    /// A decoder with no tokens yet.
    ///
    /// ```
    /// let s = diffulex_edge::text::StreamDecoder::new(true);
    /// assert!(s.ids().is_empty());
    /// ```
    pub fn new(skip_special_tokens: bool) -> Self {
        Self {
            ids: Vec::new(),
            emitted: 0,
            skip_special_tokens,
        }
    }

    /// All ids pushed so far.
    ///
    /// ```
    /// let s = diffulex_edge::text::StreamDecoder::new(true);
    /// assert_eq!(s.ids(), &[] as &[i64]);
    /// ```
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// Adds tokens and returns the newly stable text (possibly empty).
    ///
    /// ```
    /// # use diffulex_edge::text::{StreamDecoder, TextTokenizer};
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// # let tok = TextTokenizer::from_file(p).unwrap();
    /// let mut s = StreamDecoder::new(true);
    /// let text = s.push(&tok, &tok.encode("7", false).unwrap()).unwrap();
    /// assert_eq!(text.trim(), "7");
    /// ```
    pub fn push(&mut self, tok: &TextTokenizer, ids: &[i64]) -> Result<String, TextError> {
        self.ids.extend_from_slice(ids);
        let text = tok.decode(&self.ids, self.skip_special_tokens)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        Ok(self.take_new(text))
    }

    /// Flushes whatever is left, incomplete characters included.
    ///
    /// ```
    /// # use diffulex_edge::text::{StreamDecoder, TextTokenizer};
    /// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
    /// # let tok = TextTokenizer::from_file(p).unwrap();
    /// let mut s = StreamDecoder::new(true);
    /// assert_eq!(s.finish(&tok).unwrap(), "");
    /// ```
    pub fn finish(&mut self, tok: &TextTokenizer) -> Result<String, TextError> {
        let text = tok.decode(&self.ids, self.skip_special_tokens)?;
        Ok(self.take_new(text))
    }

    fn take_new(&mut self, text: String) -> String {
        // Decoding is not always prefix-stable (a cleanup rule may change earlier spacing);
        // then emit from the first byte that differs is impossible, so emit nothing new until
        // the text grows past what was already printed.
        if text.len() <= self.emitted || !text.is_char_boundary(self.emitted) {
            return String::new();
        }
        let new = text[self.emitted..].to_string();
        self.emitted = text.len();
        new
    }
}
