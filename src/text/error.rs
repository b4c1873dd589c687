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
}
