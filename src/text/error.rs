use std::path::PathBuf;

/// Errors from tokenization, detokenization and chat templating.
///
/// ```
/// use diffulex_edge::text::{TextError, TextTokenizer};
/// let err = TextTokenizer::from_file("/no/such/tokenizer.json").err().unwrap();
/// assert!(matches!(err, TextError::Load { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The tokenizer file could not be read or parsed.
    #[error("cannot load tokenizer {path}: {reason} (pass --tokenizer PATH to a Hugging Face tokenizer.json)")]
    Load {
        /// The file that was tried.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The tokenizer is not the model's: its vocabulary digest differs from the one the model
    /// recorded at export, or (models without a digest) the model's special ids are not the
    /// tokenizer's special tokens, or its ids exceed the model's vocabulary.
    #[error("tokenizer {path} does not belong to the model: {reason}; use the tokenizer.json exported beside the .pte (or pass --tokenizer PATH to it)")]
    Mismatch {
        /// The tokenizer file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Encoding the prompt failed.
    #[error("cannot tokenize the prompt: {0}")]
    Encode(String),
    /// Decoding token ids failed (e.g. an id outside the vocabulary).
    #[error("cannot detokenize ids: {0}")]
    Decode(String),
    /// `tokenizer_config.json` is missing, unreadable or has no usable `chat_template`.
    #[error("chat template unavailable from {path}: {reason}")]
    Template {
        /// The config file that was tried.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The template failed to render.
    #[error("chat template failed to render: {0}")]
    Render(String),
    /// The template used up its step budget (minijinja fuel: one unit per instruction and per
    /// ~64 bytes of data it creates), e.g. a loop over `range(100000)` inside another.
    #[error("chat template exceeded its step budget of {fuel} (minijinja fuel: about one unit per instruction or per 64 bytes of data): it loops or builds data for too long")]
    TemplateBudget {
        /// The budget that was used up.
        fuel: u64,
    },
    /// The template wrote more output than allowed.
    #[error("chat template output exceeds {limit} bytes{context}")]
    TemplateOutputTooLarge {
        /// The bound on the rendered text, in bytes.
        limit: usize,
        /// Why the bound is what it is (may be empty).
        context: String,
    },
    /// The template changes or inspects the message content, so the user's text cannot be told
    /// apart from the template's own markup (which alone may produce special tokens).
    #[error("the chat template transforms the message content (its output is not the template's markup with the content inserted verbatim), so the user's text cannot be kept apart from the template's special tokens: pass --raw-special-tokens to tokenize the rendered text as is")]
    TemplateTransformsContent,
    /// A message list (`--messages`, an API request) is not what chat templates take.
    #[error(
        "bad message list: {reason}; expected [{{\"role\": \"user\", \"content\": \"…\"}}, …]"
    )]
    Messages {
        /// What is wrong, and where.
        reason: String,
    },
    /// Chat template keyword arguments (`--chat-template-kwargs`) are unusable.
    #[error("bad chat template arguments: {reason}")]
    TemplateKwargs {
        /// What is wrong.
        reason: String,
    },
    /// The prompt has more bytes than `max_seq_len` tokens can cover, checked before tokenizing.
    #[error("the prompt is longer than {limit} bytes, more than a context of {max_seq_len} tokens can hold at {bytes_per_token} bytes per token (the longest token of this tokenizer, at least 16): shorten it")]
    PromptTooLarge {
        /// Bytes seen (at least this many: input stops being read past the limit).
        got: usize,
        /// The byte limit: `max_seq_len * bytes_per_token`.
        limit: usize,
        /// The context limit in tokens.
        max_seq_len: usize,
        /// The bound on the bytes one token can stand for.
        bytes_per_token: usize,
    },
    /// Every token of the user's text is the tokenizer's unknown token: the model would see none
    /// of it.
    #[error("the prompt is only unknown tokens ({count} x {unk:?}): the tokenizer has none of its characters, so the model would see nothing of it")]
    OnlyUnknownTokens {
        /// How many tokens the user's text became.
        count: usize,
        /// The unknown token's text.
        unk: String,
    },
    /// User text (not template markup) encoded to a special/control token although special
    /// tokens are matched as plain text (e.g. a word-level vocabulary that holds `<|endoftext|>`
    /// as a word).
    #[error("the prompt text {text:?} encodes to the control token {token:?} (id {id}); special tokens typed in a prompt are not accepted unless --raw-special-tokens is given")]
    SpecialTokenInText {
        /// The user's text the token came from.
        text: String,
        /// The special token.
        token: String,
        /// Its id.
        id: i64,
    },
    /// Reading the prompt failed.
    #[error("cannot read the prompt: {0}")]
    Read(#[from] std::io::Error),
    /// The prompt is not valid UTF-8.
    #[error("the prompt is not valid UTF-8 (byte {valid_up_to} starts an invalid sequence)")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
}
