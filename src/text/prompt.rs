//! From prompt text to prompt ids, with the checks a prompt from a user needs: a byte bound
//! before anything is tokenized, special tokens only from a chat template's own markup, and
//! unknown tokens counted (a prompt of nothing else is an error).

use std::io::Read;

use super::{ChatMessage, ChatOptions, ChatTemplate, MarkedText, TextError, TextTokenizer};

/// How a prompt is turned into ids.
#[derive(Debug, Clone, Copy)]
pub struct PromptOptions<'a> {
    /// The context limit in tokens; the prompt's byte bound is
    /// [`TextTokenizer::max_prompt_bytes`] of it.
    pub max_seq_len: usize,
    /// Wrap the prompt in this chat template as a single user turn.
    pub chat: Option<&'a ChatTemplate>,
    /// Tokenize special-token strings typed in the prompt as control tokens (Hugging Face's
    /// default). Off: they are plain text, and only a chat template's own markup produces
    /// special tokens.
    pub raw_special_tokens: bool,
}

/// A tokenized prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The ids to give the engine.
    pub ids: Vec<i64>,
    /// How many of the user's tokens are the unknown token (the model sees nothing of that
    /// text). With `raw_special_tokens` and a chat template, tokens of the markup are counted too.
    pub unknown_tokens: usize,
    /// How many tokens the user's text became.
    pub user_tokens: usize,
}

/// Trailing line-break bytes a prompt may have beyond its byte limit (they are dropped).
const TRAILING_NEWLINES: usize = 64;

/// Reads a prompt of at most `limit` bytes and drops its trailing line breaks. It reads at most
/// `limit + 65` bytes, so a huge input costs nothing: more than `limit` bytes once line breaks
/// at the end are dropped (or more than 64 of those) is [`TextError::PromptTooLarge`] (with
/// `max_seq_len` and `bytes_per_token` for its message).
///
/// ```
/// use diffulex_edge::text::{read_prompt_bounded, TextError};
/// let text = read_prompt_bounded(&b"12+34=\n"[..], 6, 1, 6).unwrap();
/// assert_eq!(text, "12+34=");
/// let err = read_prompt_bounded(&[b'1'; 1000][..], 10, 1, 10).unwrap_err();
/// assert!(matches!(err, TextError::PromptTooLarge { limit: 10, .. }));
/// ```
pub fn read_prompt_bounded(
    reader: impl Read,
    limit: usize,
    max_seq_len: usize,
    bytes_per_token: usize,
) -> Result<String, TextError> {
    let cap = limit.saturating_add(TRAILING_NEWLINES);
    let mut buf = Vec::new();
    reader
        .take(u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut buf)?;
    let read = buf.len();
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    if buf.len() > limit || read > cap {
        return Err(TextError::PromptTooLarge {
            got: read,
            limit,
            max_seq_len,
            bytes_per_token,
        });
    }
    String::from_utf8(buf).map_err(|e| TextError::NotUtf8 {
        valid_up_to: e.utf8_error().valid_up_to(),
    })
}

/// Tokenizes a user's prompt:
///
/// 1. text longer than [`TextTokenizer::max_prompt_bytes`]`(max_seq_len)` is
///    [`TextError::PromptTooLarge`] before anything is rendered or tokenized, and the chat
///    template's output is bounded by the same number of bytes;
/// 2. special-token strings in the user's text stay text ([`TextTokenizer::encode_marked`]),
///    unless `raw_special_tokens`; a user token that is still a control token (a vocabulary
///    that spells one as a word) is [`TextError::SpecialTokenInText`];
/// 3. user text that is only unknown tokens is [`TextError::OnlyUnknownTokens`]; some unknown
///    tokens are counted in [`Prompt::unknown_tokens`] for the caller to warn about.
///
/// ```
/// use diffulex_edge::text::{encode_prompt, PromptOptions, TextError, TextTokenizer};
/// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
/// let tok = TextTokenizer::from_file(p).unwrap();
/// let opts = PromptOptions { max_seq_len: 64, chat: None, raw_special_tokens: false };
/// assert_eq!(encode_prompt(&tok, "12+34=", &opts).unwrap().ids.len(), 6);
/// assert!(matches!(encode_prompt(&tok, " ", &opts), Err(TextError::OnlyUnknownTokens { .. })));
/// ```
pub fn encode_prompt(
    tok: &TextTokenizer,
    text: &str,
    opts: &PromptOptions<'_>,
) -> Result<Prompt, TextError> {
    match opts.chat {
        Some(template) => encode_input(
            tok,
            Input::Chat(
                template,
                &[ChatMessage::user(text)],
                &ChatOptions::default(),
            ),
            opts,
        ),
        None => encode_input(tok, Input::Plain(text), opts),
    }
}

/// Tokenizes a conversation rendered by `template` (system prompt, earlier turns, template
/// keyword arguments), with the rules of [`encode_prompt`]: the contents together are bounded
/// by [`TextTokenizer::max_prompt_bytes`], and special tokens come only from the template's
/// markup, never from a message's text (unless `opts.raw_special_tokens`). `opts.chat` is not
/// used: `template` is.
///
/// ```
/// use diffulex_edge::text::{encode_chat, ChatMessage, ChatOptions, ChatTemplate, PromptOptions, TextTokenizer};
/// # let p = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default/tokenizer.json");
/// let tok = TextTokenizer::from_file(p).unwrap();
/// let template = ChatTemplate::from_source("{% for m in messages %}{{ m.content }}{% endfor %}");
/// let chat = [ChatMessage::system("1+1="), ChatMessage::user("2")];
/// let opts = PromptOptions { max_seq_len: 64, chat: None, raw_special_tokens: false };
/// let prompt = encode_chat(&tok, &template, &chat, &ChatOptions::default(), &opts).unwrap();
/// assert_eq!(prompt.ids, tok.encode("1+1=2", false).unwrap());
/// ```
pub fn encode_chat(
    tok: &TextTokenizer,
    template: &ChatTemplate,
    messages: &[ChatMessage],
    chat: &ChatOptions,
    opts: &PromptOptions<'_>,
) -> Result<Prompt, TextError> {
    encode_input(tok, Input::Chat(template, messages, chat), opts)
}

/// What is tokenized: the user's text as is, or a conversation through a template.
enum Input<'a> {
    Plain(&'a str),
    Chat(&'a ChatTemplate, &'a [ChatMessage], &'a ChatOptions),
}

fn encode_input(
    tok: &TextTokenizer,
    input: Input<'_>,
    opts: &PromptOptions<'_>,
) -> Result<Prompt, TextError> {
    let limit = tok.max_prompt_bytes(opts.max_seq_len);
    let content_bytes = match &input {
        Input::Plain(text) => text.len(),
        Input::Chat(_, messages, _) => messages
            .iter()
            .fold(0usize, |sum, m| sum.saturating_add(m.content.len())),
    };
    if content_bytes > limit {
        return Err(TextError::PromptTooLarge {
            got: content_bytes,
            limit,
            max_seq_len: opts.max_seq_len,
            bytes_per_token: tok.bytes_per_token(),
        });
    }
    let bounded = |t: &ChatTemplate| {
        t.clone().with_max_output_bytes_because(
            limit,
            &format!(
                "more than a context of {} tokens can hold at {} bytes per token",
                opts.max_seq_len,
                tok.bytes_per_token()
            ),
        )
    };
    let unk = tok.unk_token().map(|(id, _)| id);
    let prompt = if opts.raw_special_tokens {
        let rendered = match &input {
            Input::Chat(t, messages, chat) => bounded(t).render(messages, chat)?,
            Input::Plain(text) => text.to_string(),
        };
        let ids = tok.encode_raw(&rendered, false)?;
        Prompt {
            unknown_tokens: ids.iter().filter(|&&id| Some(id) == unk).count(),
            user_tokens: ids.len(),
            ids,
        }
    } else {
        let marked = match &input {
            Input::Chat(t, messages, chat) => bounded(t).render_marked(messages, chat)?,
            Input::Plain(text) => MarkedText::user(*text),
        };
        let tokens = tok.encode_marked(&marked)?;
        if let Some(t) = tokens.iter().find(|t| t.from_user && tok.is_control(t.id)) {
            let s = marked.text();
            return Err(TextError::SpecialTokenInText {
                text: s.get(t.range.clone()).unwrap_or_default().to_string(),
                token: tok.decode(&[t.id], false).unwrap_or_default(),
                id: t.id,
            });
        }
        let user: Vec<i64> = tokens
            .iter()
            .filter(|t| t.from_user)
            .map(|t| t.id)
            .collect();
        Prompt {
            unknown_tokens: user.iter().filter(|&&id| Some(id) == unk).count(),
            user_tokens: user.len(),
            ids: tokens.into_iter().map(|t| t.id).collect(),
        }
    };
    if prompt.user_tokens > 0 && prompt.unknown_tokens == prompt.user_tokens {
        if let Some((_, name)) = tok.unk_token() {
            // With raw special tokens and a template, markup counts too: only an all-unknown
            // prompt is refused.
            if prompt.ids.iter().all(|&id| Some(id) == unk) || !opts.raw_special_tokens {
                return Err(TextError::OnlyUnknownTokens {
                    count: prompt.user_tokens,
                    unk: name.to_string(),
                });
            }
        }
    }
    Ok(prompt)
}
