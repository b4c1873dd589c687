//! Conversations as chat templates see them: the message list of Hugging Face's
//! `apply_chat_template` (and of OpenAI's chat API), and the keyword arguments a template reads.

use std::path::Path;

use super::TextError;

/// One message of a conversation.
///
/// ```
/// use diffulex_edge::text::ChatMessage;
/// let m = ChatMessage::system("Answer briefly.");
/// assert_eq!((m.role.as_str(), m.content.as_str()), ("system", "Answer briefly."));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, or any role the template knows.
    pub role: String,
    /// The message's text.
    pub content: String,
    /// Other fields the template may read (`reasoning_content`, `tool_calls`, `name`), as
    /// they were given; fields whose value is `null` are left out, as Hugging Face does.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatMessage {
    /// A message with this role.
    ///
    /// ```
    /// let m = diffulex_edge::text::ChatMessage::new("tool", "42");
    /// assert_eq!(m.role, "tool");
    /// ```
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// A system message.
    ///
    /// ```
    /// assert_eq!(diffulex_edge::text::ChatMessage::system("s").role, "system");
    /// ```
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A user message.
    ///
    /// ```
    /// assert_eq!(diffulex_edge::text::ChatMessage::user("u").role, "user");
    /// ```
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An assistant message (an earlier answer, in a multi-turn conversation).
    ///
    /// ```
    /// assert_eq!(diffulex_edge::text::ChatMessage::assistant("a").role, "assistant");
    /// ```
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    /// Parses a message list from JSON: an array of `{"role": …, "content": …}` objects, or an
    /// object with such an array under `"messages"` (an OpenAI request body). `content` may be
    /// a string or a list of `{"type": "text", "text": …}` parts, which are joined; other part
    /// types (images, audio) are refused, as these models read text only. A message's other
    /// fields go to [`extra`](Self::extra).
    ///
    /// ```
    /// use diffulex_edge::text::ChatMessage;
    /// let m = ChatMessage::parse_list(r#"[{"role": "system", "content": "Be brief."},
    ///     {"role": "user", "content": [{"type": "text", "text": "2+2="}]}]"#).unwrap();
    /// assert_eq!(m, vec![ChatMessage::system("Be brief."), ChatMessage::user("2+2=")]);
    /// assert!(ChatMessage::parse_list(r#"[{"role": "user"}]"#).is_err());
    /// ```
    pub fn parse_list(json: &str) -> Result<Vec<ChatMessage>, TextError> {
        let err = |reason: String| TextError::Messages { reason };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let list = match &value {
            serde_json::Value::Array(list) => list,
            serde_json::Value::Object(body) => match body.get("messages") {
                Some(serde_json::Value::Array(list)) => list,
                _ => {
                    return Err(err(
                        "an object must hold the list under \"messages\"".to_string()
                    ))
                }
            },
            _ => return Err(err("expected a JSON array of messages".to_string())),
        };
        list.iter()
            .enumerate()
            .map(|(index, message)| {
                let at = |what: &str| err(format!("message {index}: {what}"));
                let role = match message.get("role") {
                    Some(serde_json::Value::String(role)) if !role.is_empty() => role.clone(),
                    _ => return Err(at("no \"role\" string")),
                };
                let content =
                    match message.get("content") {
                        Some(serde_json::Value::String(text)) => text.clone(),
                        Some(serde_json::Value::Array(parts)) => {
                            let mut text = String::new();
                            for part in parts {
                                match (part.get("type"), part.get("text")) {
                                    (Some(kind), Some(serde_json::Value::String(piece)))
                                        if kind == "text" =>
                                    {
                                        text.push_str(piece)
                                    }
                                    _ => return Err(at(
                                        "content parts must be {\"type\": \"text\", \"text\": …}; \
                                         these models read text only",
                                    )),
                                }
                            }
                            text
                        }
                        _ => return Err(at("no \"content\" string or list of text parts")),
                    };
                let extra = match message {
                    serde_json::Value::Object(fields) => fields
                        .iter()
                        .filter(|(key, value)| {
                            !value.is_null() && key.as_str() != "role" && key.as_str() != "content"
                        })
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect(),
                    _ => return Err(at("not a JSON object")),
                };
                Ok(ChatMessage {
                    role,
                    content,
                    extra,
                })
            })
            .collect()
    }

    /// Reads [`parse_list`](Self::parse_list)'s format from a file of at most `max_bytes`.
    ///
    /// ```
    /// # use diffulex_edge::text::ChatMessage;
    /// assert!(ChatMessage::read_list("/no/such/messages.json", 1 << 20).is_err());
    /// ```
    pub fn read_list(
        path: impl AsRef<Path>,
        max_bytes: u64,
    ) -> Result<Vec<ChatMessage>, TextError> {
        let path = path.as_ref();
        let text = read_bounded(path, max_bytes).map_err(|reason| TextError::Messages {
            reason: format!("{}: {reason}", quoted(path)),
        })?;
        Self::parse_list(&text).map_err(|e| match e {
            TextError::Messages { reason } => TextError::Messages {
                reason: format!("{}: {reason}", quoted(path)),
            },
            other => other,
        })
    }
}

/// How to render a conversation: whether to open the assistant's turn, and the extra keyword
/// arguments the template reads (Hugging Face's `**kwargs` to `apply_chat_template`, e.g.
/// Qwen3's `enable_thinking`).
///
/// ```
/// use diffulex_edge::text::{ChatMessage, ChatOptions, ChatTemplate};
/// let t = ChatTemplate::from_source(
///     "{% for m in messages %}{{ m.content }}{% endfor %}{% if not enable_thinking %}<nothink>{% endif %}",
/// );
/// let options = ChatOptions::default().with_kwargs_json(r#"{"enable_thinking": false}"#).unwrap();
/// assert_eq!(t.render(&[ChatMessage::user("hi")], &options).unwrap(), "hi<nothink>");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOptions {
    /// Open the assistant's turn after the messages (true to generate an answer).
    pub add_generation_prompt: bool,
    /// Template variables besides `messages`, `add_generation_prompt`, `bos_token` and
    /// `eos_token`.
    pub kwargs: serde_json::Map<String, serde_json::Value>,
    /// The time `strftime_now` reports, in seconds since 1970 (UTC); `None` is the clock's.
    pub now_unix_seconds: Option<i64>,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            add_generation_prompt: true,
            kwargs: serde_json::Map::new(),
            now_unix_seconds: None,
        }
    }
}

impl ChatOptions {
    /// Names a template gets from the renderer itself; a keyword argument may not replace them.
    pub const RESERVED: [&'static str; 4] = [
        "messages",
        "add_generation_prompt",
        "bos_token",
        "eos_token",
    ];

    /// Adds the keyword arguments of a JSON object (`{"enable_thinking": false}`), as llama.cpp's
    /// `--chat-template-kwargs` does.
    ///
    /// ```
    /// use diffulex_edge::text::ChatOptions;
    /// assert!(ChatOptions::default().with_kwargs_json("[1]").is_err());
    /// assert!(ChatOptions::default().with_kwargs_json(r#"{"messages": []}"#).is_err());
    /// ```
    pub fn with_kwargs_json(mut self, json: &str) -> Result<Self, TextError> {
        let err = |reason: String| TextError::TemplateKwargs { reason };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(err(
                "expected a JSON object such as {\"enable_thinking\": false}".to_string(),
            ));
        };
        for (key, value) in map {
            if Self::RESERVED.contains(&key.as_str()) {
                return Err(err(format!(
                    "\"{key}\" is set by the renderer; pass messages with --messages or --system"
                )));
            }
            self.kwargs.insert(key, value);
        }
        Ok(self)
    }
}

/// Reads at most `max_bytes` of UTF-8 text (one byte more tells a file that is too large).
pub(crate) fn read_bounded(path: &Path, max_bytes: u64) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(max_bytes.saturating_add(1))
                .read_to_string(&mut text)
        })
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > max_bytes {
        return Err(format!("larger than {max_bytes} bytes"));
    }
    Ok(text)
}

fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}
