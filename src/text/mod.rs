//! Text in, text out: Hugging Face `tokenizer.json` tokenization, streaming detokenization that
//! never splits a multi-byte character, and chat templates from `tokenizer_config.json`.
//!
//! ```
//! use diffulex_edge::text::TextTokenizer;
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default");
//! let tok = TextTokenizer::from_file(format!("{dir}/tokenizer.json")).unwrap();
//! let ids = tok.encode("12+34=", false).unwrap();
//! assert_eq!(tok.decode(&ids, false).unwrap().replace(' ', ""), "12+34=");
//! ```

mod chat;
mod error;
mod messages;
mod prompt;
mod stream;
mod tokenizer;

pub use chat::ChatTemplate;
pub use error::TextError;
pub use messages::{ChatMessage, ChatOptions};
pub use prompt::{encode_chat, encode_prompt, read_prompt_bounded, Prompt, PromptOptions};
pub use stream::StreamDecoder;
pub use tokenizer::{
    unknown_id_marker, MarkedText, MarkedToken, TextTokenizer, MIN_BYTES_PER_TOKEN,
};
