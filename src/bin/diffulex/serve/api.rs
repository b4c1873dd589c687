//! The OpenAI-compatible request and response bodies `diffulex serve` speaks: what a request
//! may ask for (checked here, before any model work, with OpenAI's error shape), and the JSON
//! of a completion, a stream chunk and an error.

use diffulex_edge::text::ChatMessage;
use serde_json::{json, Map, Value};

/// Largest request body read, in bytes.
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Most stop strings one request may give (OpenAI's own limit).
pub const MAX_STOP_STRINGS: usize = 4;

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`: messages through the chat template.
    Chat,
    /// `/v1/completions`: a raw prompt.
    Text,
}

/// A validated completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// Chat or text completion.
    pub endpoint: Endpoint,
    /// The conversation (chat) or the prompt as one user message (text).
    pub messages: Vec<ChatMessage>,
    /// `max_completion_tokens` / `max_tokens`; the server's default when absent.
    pub max_tokens: Option<usize>,
    /// Sampling temperature (0 = greedy).
    pub temperature: Option<f64>,
    /// Nucleus mass.
    pub top_p: Option<f64>,
    /// Top-k (an extension, as llama.cpp and vLLM accept it).
    pub top_k: Option<usize>,
    /// Seed of sampling.
    pub seed: Option<u64>,
    /// Server-sent events instead of one body.
    pub stream: bool,
    /// Text after which the answer ends (not included).
    pub stop: Vec<String>,
    /// `chat_template_kwargs` (as vLLM and SGLang accept them).
    pub chat_template_kwargs: Map<String, Value>,
    /// Diffusion extensions: denoising steps.
    pub steps: Option<usize>,
    /// Diffusion extensions: parallel-commit confidence threshold.
    pub threshold: Option<f64>,
    /// Diffusion extensions: block length (`block_length`, as the official code names it).
    pub block_length: Option<usize>,
}

/// A request the server refuses, as OpenAI's error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// What was wrong and what to do.
    pub message: String,
    /// The request field at fault, if one is.
    pub param: Option<&'static str>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            param: Some(param),
        }
    }

    /// An error without a field: `status` and a message.
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
        }
    }

    /// OpenAI's error body.
    pub fn body(&self) -> Value {
        let kind = match self.status {
            400 | 405 | 413 | 422 => "invalid_request_error",
            404 => "not_found_error",
            503 => "server_overloaded",
            _ => "server_error",
        };
        json!({ "error": { "message": self.message, "type": kind, "param": self.param, "code": null } })
    }
}

fn optional<'v>(body: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    body.get(key).filter(|v| !v.is_null())
}

fn count(
    body: &Map<String, Value>,
    key: &'static str,
    min: u64,
) -> Result<Option<usize>, ApiError> {
    match optional(body, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n >= min)
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(key, format!("{key} must be an integer >= {min}, got {v}"))
            }),
    }
}

fn number(
    body: &Map<String, Value>,
    key: &'static str,
    range: (f64, f64),
) -> Result<Option<f64>, ApiError> {
    match optional(body, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && *x >= range.0 && *x <= range.1)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(
                    key,
                    format!(
                        "{key} must be a number in [{}, {}], got {v}",
                        range.0, range.1
                    ),
                )
            }),
    }
}

/// Parses and checks a request body for `endpoint`.
pub fn parse_request(endpoint: Endpoint, body: &[u8]) -> Result<CompletionRequest, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::status(
            413,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::status(400, format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(body) = value else {
        return Err(ApiError::status(
            400,
            "the request body must be a JSON object",
        ));
    };
    let messages = match endpoint {
        Endpoint::Chat => {
            let list = optional(&body, "messages")
                .ok_or_else(|| ApiError::invalid("messages", "messages is required"))?;
            let messages = ChatMessage::parse_list(&list.to_string())
                .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
            if messages.is_empty() {
                return Err(ApiError::invalid("messages", "messages must not be empty"));
            }
            messages
        }
        Endpoint::Text => match optional(&body, "prompt") {
            Some(Value::String(prompt)) => vec![ChatMessage::user(prompt.clone())],
            Some(Value::Array(list)) if list.len() == 1 && list[0].is_string() => {
                vec![ChatMessage::user(list[0].as_str().unwrap_or_default())]
            }
            _ => {
                return Err(ApiError::invalid(
                    "prompt",
                    "prompt must be a string (one prompt per request)",
                ))
            }
        },
    };
    if let Some(n) = optional(&body, "n") {
        if n.as_u64() != Some(1) {
            return Err(ApiError::invalid(
                "n",
                "only n = 1 is supported: send one request per completion",
            ));
        }
    }
    let stop = match optional(&body, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::invalid("stop", "stop must be a string or a list of strings")
            })?,
        Some(_) => {
            return Err(ApiError::invalid(
                "stop",
                "stop must be a string or a list of strings",
            ))
        }
    };
    if stop.len() > MAX_STOP_STRINGS || stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop",
            format!("stop takes 1 to {MAX_STOP_STRINGS} non-empty strings"),
        ));
    }
    let chat_template_kwargs = match optional(&body, "chat_template_kwargs") {
        None => Map::new(),
        Some(Value::Object(map)) if endpoint == Endpoint::Chat => map.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "chat_template_kwargs",
                "chat_template_kwargs must be an object, on /v1/chat/completions",
            ))
        }
    };
    let max_tokens = match count(&body, "max_completion_tokens", 1)? {
        Some(n) => Some(n),
        None => count(&body, "max_tokens", 1)?,
    };
    let stream = match optional(&body, "stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("stream", "stream must be true or false")),
    };
    Ok(CompletionRequest {
        endpoint,
        messages,
        max_tokens,
        temperature: number(&body, "temperature", (0.0, 2.0))?,
        top_p: number(&body, "top_p", (0.0, 1.0))?,
        top_k: count(&body, "top_k", 1)?,
        seed: match optional(&body, "seed") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .or_else(|| v.as_i64().map(|i| i as u64))
                    .ok_or_else(|| {
                        ApiError::invalid("seed", format!("seed must be an integer, got {v}"))
                    })?,
            ),
        },
        stream,
        stop,
        chat_template_kwargs,
        steps: count(&body, "steps", 1)?,
        threshold: number(&body, "threshold", (0.0, 1.0))?,
        block_length: count(&body, "block_length", 1)?,
    })
}

/// Why a completion ended, in OpenAI's words.
pub fn finish_reason(length_limited: bool) -> &'static str {
    if length_limited {
        "length"
    } else {
        "stop"
    }
}

/// Token counts of a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: usize,
    /// Generated tokens.
    pub completion: usize,
}

impl Usage {
    fn body(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        })
    }
}

/// Identity of one response: id, creation time, model name.
#[derive(Debug, Clone)]
pub struct ResponseId {
    /// `chatcmpl-N` or `cmpl-N`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model's name.
    pub model: String,
}

/// The body of a finished (non-streamed) completion; `stats` is the engine's.
pub fn completion_body(
    endpoint: Endpoint,
    who: &ResponseId,
    text: &str,
    finish: &str,
    usage: Usage,
    stats: Value,
) -> Value {
    let choice = match endpoint {
        Endpoint::Chat => json!({
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": finish,
        }),
        Endpoint::Text => json!({ "index": 0, "text": text, "finish_reason": finish }),
    };
    json!({
        "id": who.id,
        "object": match endpoint { Endpoint::Chat => "chat.completion", Endpoint::Text => "text_completion" },
        "created": who.created,
        "model": who.model,
        "choices": [choice],
        "usage": usage.body(),
        "diffulex_stats": stats,
    })
}

/// One server-sent event chunk: `text` (may be empty), and `finish` on the last chunk.
pub fn chunk_body(
    endpoint: Endpoint,
    who: &ResponseId,
    text: Option<&str>,
    finish: Option<&str>,
) -> Value {
    let choice = match endpoint {
        Endpoint::Chat => {
            let delta = match text {
                Some(t) => json!({ "role": "assistant", "content": t }),
                None => json!({}),
            };
            json!({ "index": 0, "delta": delta, "finish_reason": finish })
        }
        Endpoint::Text => {
            json!({ "index": 0, "text": text.unwrap_or(""), "finish_reason": finish })
        }
    };
    json!({
        "id": who.id,
        "object": match endpoint { Endpoint::Chat => "chat.completion.chunk", Endpoint::Text => "text_completion" },
        "created": who.created,
        "model": who.model,
        "choices": [choice],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<CompletionRequest, ApiError> {
        parse_request(Endpoint::Chat, body.as_bytes())
    }

    #[test]
    fn reads_what_openai_clients_send() {
        let r = chat(
            r#"{"model": "x", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
               "max_tokens": 16, "temperature": 0.5, "top_p": 0.9, "stream": true, "stop": ["\n"],
               "seed": 3, "n": 1, "logprobs": null, "chat_template_kwargs": {"enable_thinking": false}}"#,
        )
        .unwrap();
        assert_eq!(
            r.messages,
            vec![ChatMessage::system("s"), ChatMessage::user("u")]
        );
        assert_eq!(
            (r.max_tokens, r.temperature, r.top_p, r.seed),
            (Some(16), Some(0.5), Some(0.9), Some(3))
        );
        assert!(r.stream);
        assert_eq!(r.stop, vec!["\n".to_string()]);
        assert_eq!(r.chat_template_kwargs["enable_thinking"], false);
        // max_completion_tokens wins over the older max_tokens.
        let r = chat(r#"{"messages": [{"role": "user", "content": "u"}], "max_completion_tokens": 4, "max_tokens": 9}"#).unwrap();
        assert_eq!(r.max_tokens, Some(4));
        let r = parse_request(Endpoint::Text, br#"{"prompt": "12+34="}"#).unwrap();
        assert_eq!(r.messages, vec![ChatMessage::user("12+34=")]);
    }

    #[test]
    fn refuses_what_it_cannot_do_naming_the_field() {
        for (body, param) in [
            (r#"{}"#, "messages"),
            (r#"{"messages": []}"#, "messages"),
            (r#"{"messages": [{"role": "user"}]}"#, "messages"),
            (
                r#"{"messages": [{"role": "user", "content": "u"}], "n": 2}"#,
                "n",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "u"}], "max_tokens": 0}"#,
                "max_tokens",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "u"}], "max_tokens": -5}"#,
                "max_tokens",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "u"}], "temperature": 9}"#,
                "temperature",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "u"}], "top_p": "high"}"#,
                "top_p",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "u"}], "stop": ["a","b","c","d","e"]}"#,
                "stop",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "u"}], "stop": [""]}"#,
                "stop",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "u"}], "stream": "yes"}"#,
                "stream",
            ),
            (
                r#"{"messages": [{"role": "user", "content": "u"}], "chat_template_kwargs": [1]}"#,
                "chat_template_kwargs",
            ),
        ] {
            let e = chat(body).unwrap_err();
            assert_eq!((e.status, e.param), (400, Some(param)), "{body}: {e:?}");
            assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        }
        assert_eq!(chat("not json").unwrap_err().status, 400);
        assert_eq!(chat("[1]").unwrap_err().status, 400);
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse_request(Endpoint::Chat, &huge).unwrap_err().status,
            413
        );
        assert_eq!(
            parse_request(Endpoint::Text, br#"{"prompt": ["a", "b"]}"#)
                .unwrap_err()
                .param,
            Some("prompt")
        );
    }
}
