use std::path::{Path, PathBuf};

use super::messages::read_bounded;
use super::{ChatMessage, ChatOptions, MarkedText, TextError};

mod python_json;
mod strftime;

/// A model's own chat template (the `chat_template` of its `tokenizer_config.json`), rendered
/// with minijinja plus Python-compatible string methods, as Hugging Face's
/// `apply_chat_template(..., add_generation_prompt=True)` does.
///
/// ```
/// use diffulex_edge::text::ChatTemplate;
/// let t = ChatTemplate::from_source(
///     "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
/// );
/// assert_eq!(t.render_user("hi").unwrap(), "<user>hi<assistant>");
/// ```
///
/// Templates are code from a file, so rendering is bounded: a step budget (minijinja fuel,
/// [`DEFAULT_FUEL`](Self::DEFAULT_FUEL) plus a share for the content) and an output size
/// ([`DEFAULT_MAX_OUTPUT_BYTES`](Self::DEFAULT_MAX_OUTPUT_BYTES)); either is a typed error.
///
/// ```
/// use diffulex_edge::text::{ChatTemplate, TextError};
/// let spin = ChatTemplate::from_source(
///     "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
/// );
/// assert!(matches!(spin.render_user("x"), Err(TextError::TemplateBudget { .. })));
/// let big = ChatTemplate::from_source("{{ 'x' * 100000 }}").with_max_output_bytes(1000);
/// assert!(matches!(big.render_user("x"), Err(TextError::TemplateOutputTooLarge { .. })));
/// ```
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
    fuel: u64,
    max_output_bytes: usize,
    output_context: String,
}

impl ChatTemplate {
    /// A template from its Jinja source.
    ///
    /// ```
    /// let t = diffulex_edge::text::ChatTemplate::from_source("{{ messages[0].content }}");
    /// assert_eq!(t.render_user("x").unwrap(), "x");
    /// ```
    pub fn from_source(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            bos_token: String::new(),
            eos_token: String::new(),
            fuel: Self::DEFAULT_FUEL,
            max_output_bytes: Self::DEFAULT_MAX_OUTPUT_BYTES,
            output_context: String::new(),
        }
    }

    /// Step budget of one render, in minijinja fuel (about one unit per instruction executed
    /// and per 64 bytes of data created): a thousand times what a real template needs for one
    /// message, while a loop nest of 10^10 iterations or 64 MB of built strings runs out.
    /// Each render also gets `content.len() / 16` more, so a long message can be copied a few
    /// times.
    pub const DEFAULT_FUEL: u64 = 1_000_000;

    /// Largest `tokenizer_config.json` read (64 MiB; real ones are kilobytes to a few MB).
    pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

    /// Largest rendered text by default (16 MiB).
    pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 16 << 20;

    /// Sets the step budget (see [`DEFAULT_FUEL`](Self::DEFAULT_FUEL)).
    ///
    /// ```
    /// use diffulex_edge::text::{ChatTemplate, TextError};
    /// let t = ChatTemplate::from_source("{% for i in range(1000) %}.{% endfor %}").with_fuel(100);
    /// assert!(matches!(t.render_user(""), Err(TextError::TemplateBudget { fuel: 100 })));
    /// ```
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// Sets the largest rendered text, in bytes.
    ///
    /// ```
    /// let t = diffulex_edge::text::ChatTemplate::from_source("ab").with_max_output_bytes(1);
    /// assert!(t.render_user("").is_err());
    /// ```
    pub fn with_max_output_bytes(mut self, max: usize) -> Self {
        self.max_output_bytes = max;
        self.output_context.clear();
        self
    }

    /// Like [`with_max_output_bytes`](Self::with_max_output_bytes), with the reason for the
    /// bound, appended to the error message.
    ///
    /// ```
    /// let t = diffulex_edge::text::ChatTemplate::from_source("ab")
    ///     .with_max_output_bytes_because(1, "the context");
    /// assert!(t.render_user("").unwrap_err().to_string().ends_with("the context"));
    /// ```
    pub fn with_max_output_bytes_because(mut self, max: usize, why: &str) -> Self {
        self.max_output_bytes = max;
        self.output_context = format!(": {why}");
        self
    }

    /// Reads `chat_template` (and `bos_token`/`eos_token`) from a `tokenizer_config.json`.
    ///
    /// ```
    /// # use diffulex_edge::text::ChatTemplate;
    /// assert!(ChatTemplate::from_tokenizer_config("/no/such/tokenizer_config.json").is_err());
    /// ```
    pub fn from_tokenizer_config(path: impl AsRef<Path>) -> Result<Self, TextError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let err = |reason: String| TextError::Template {
            path: path.clone(),
            reason,
        };
        // Reads one byte past the bound, so a huge (or endless) file costs nothing.
        let raw = read_bounded(&path, Self::MAX_CONFIG_BYTES).map_err(|reason| {
            err(if reason.starts_with("larger than") {
                format!("{reason}, not a tokenizer_config.json")
            } else {
                reason
            })
        })?;
        Self::from_parts(Some(&raw), None, &path)
    }

    /// A template from the contents of a checkpoint's files, as Hugging Face combines them: the
    /// `chat_template.jinja` text if there is one, else the `chat_template` of the
    /// `tokenizer_config.json` text, with the config's `bos_token`/`eos_token` either way.
    /// `origin` names where they came from in errors (a directory, or a `.pte` that embeds
    /// them).
    ///
    /// ```
    /// use diffulex_edge::text::ChatTemplate;
    /// let config = r#"{"chat_template": "{{ bos_token }}{{ messages[0].content }}", "bos_token": "<s>"}"#;
    /// let t = ChatTemplate::from_parts(Some(config), None, "model.pte".as_ref()).unwrap();
    /// assert_eq!(t.render_user("hi").unwrap(), "<s>hi");
    /// let t = ChatTemplate::from_parts(Some(config), Some("[{{ messages[0].content }}]"), "m".as_ref()).unwrap();
    /// assert_eq!(t.render_user("hi").unwrap(), "[hi]");
    /// assert!(ChatTemplate::from_parts(Some("{}"), None, "m".as_ref()).is_err());
    /// ```
    pub fn from_parts(
        config_json: Option<&str>,
        jinja: Option<&str>,
        origin: &Path,
    ) -> Result<Self, TextError> {
        let err = |reason: String| TextError::Template {
            path: origin.to_path_buf(),
            reason,
        };
        let json: serde_json::Value = match config_json {
            Some(raw) => serde_json::from_str(raw)
                .map_err(|e| err(format!("tokenizer_config.json is not valid JSON: {e}")))?,
            None => serde_json::Value::Null,
        };
        let source = match (jinja, json.get("chat_template")) {
            (Some(jinja), _) => jinja.to_string(),
            (None, Some(serde_json::Value::String(s))) => s.clone(),
            // Some configs ship a list of named templates; "default" is the chat one.
            (None, Some(serde_json::Value::Array(list))) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string)
                .ok_or_else(|| err("no template named \"default\"".into()))?,
            (None, _) if config_json.is_some() => {
                return Err(err("it has no \"chat_template\" entry".into()))
            }
            (None, _) => return Err(err("no chat template".into())),
        };
        let (bos_token, eos_token) = special_tokens(&json);
        Ok(Self {
            bos_token,
            eos_token,
            ..Self::from_source(source)
        })
    }

    /// A template from a file: a `tokenizer_config.json` (its `chat_template`, `bos_token`,
    /// `eos_token`) or a Jinja file (`chat_template.jinja`, as newer checkpoints ship it),
    /// told apart by content.
    ///
    /// ```
    /// # use diffulex_edge::text::ChatTemplate;
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default");
    /// assert!(ChatTemplate::from_file(format!("{dir}/tokenizer_config.json")).is_ok());
    /// assert!(ChatTemplate::from_file("/no/such/chat_template.jinja").is_err());
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TextError> {
        let path = path.as_ref();
        let source =
            read_bounded(path, Self::MAX_CONFIG_BYTES).map_err(|reason| TextError::Template {
                path: path.to_path_buf(),
                reason,
            })?;
        if source.trim_start().starts_with('{')
            && serde_json::from_str::<serde_json::Value>(&source).is_ok_and(|v| v.is_object())
        {
            return Self::from_tokenizer_config(path);
        }
        Ok(Self::from_source(source))
    }

    /// The template of a checkpoint directory as Hugging Face finds it: `chat_template.jinja`
    /// (where newer checkpoints keep it), else the `chat_template` of `tokenizer_config.json`,
    /// with the config's `bos_token`/`eos_token` either way.
    ///
    /// ```
    /// # use diffulex_edge::text::ChatTemplate;
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default");
    /// assert!(ChatTemplate::from_dir(dir).is_ok());
    /// assert!(ChatTemplate::from_dir("/no/such/dir").is_err());
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, TextError> {
        let dir = dir.as_ref();
        let read = |name: &str| -> Result<Option<String>, TextError> {
            let path = dir.join(name);
            if !path.is_file() {
                return Ok(None);
            }
            read_bounded(&path, Self::MAX_CONFIG_BYTES)
                .map(Some)
                .map_err(|reason| TextError::Template { path, reason })
        };
        let (config, jinja) = (read("tokenizer_config.json")?, read("chat_template.jinja")?);
        if config.is_none() && jinja.is_none() {
            return Err(TextError::Template {
                path: dir.join("tokenizer_config.json"),
                reason: "not found, and no chat_template.jinja beside it either".into(),
            });
        }
        let origin = dir.join(if jinja.is_some() {
            "chat_template.jinja"
        } else {
            "tokenizer_config.json"
        });
        Self::from_parts(config.as_deref(), jinja.as_deref(), &origin)
    }

    /// Sets the `bos_token` and `eos_token` strings the template may print (a
    /// `tokenizer_config.json` gives them; a bare Jinja file does not).
    ///
    /// ```
    /// let t = diffulex_edge::text::ChatTemplate::from_source("{{ bos_token }}x").with_special_tokens("<s>", "</s>");
    /// assert_eq!(t.render_user("").unwrap(), "<s>x");
    /// ```
    pub fn with_special_tokens(mut self, bos_token: &str, eos_token: &str) -> Self {
        self.bos_token = bos_token.to_string();
        self.eos_token = eos_token.to_string();
        self
    }

    /// The template's `bos_token` and `eos_token` strings.
    ///
    /// ```
    /// let t = diffulex_edge::text::ChatTemplate::from_source("").with_special_tokens("<s>", "</s>");
    /// assert_eq!(t.special_tokens(), ("<s>", "</s>"));
    /// ```
    pub fn special_tokens(&self) -> (&str, &str) {
        (&self.bos_token, &self.eos_token)
    }

    /// The Jinja source.
    ///
    /// ```
    /// assert_eq!(diffulex_edge::text::ChatTemplate::from_source("x").source(), "x");
    /// ```
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a single user turn followed by the assistant's generation prompt.
    ///
    /// ```
    /// let t = diffulex_edge::text::ChatTemplate::from_source("U:{{ messages[0].content }}");
    /// assert_eq!(t.render_user("2+2").unwrap(), "U:2+2");
    /// ```
    pub fn render_user(&self, content: &str) -> Result<String, TextError> {
        self.render(&[ChatMessage::user(content)], &ChatOptions::default())
    }

    /// Renders a conversation as `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=…, **kwargs)` does.
    ///
    /// ```
    /// use diffulex_edge::text::{ChatMessage, ChatOptions, ChatTemplate};
    /// let t = ChatTemplate::from_source(
    ///     "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
    /// );
    /// let chat = [ChatMessage::system("Be brief."), ChatMessage::user("2+2=")];
    /// assert_eq!(t.render(&chat, &ChatOptions::default()).unwrap(), "<system>Be brief.<user>2+2=<assistant>");
    /// ```
    pub fn render(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
    ) -> Result<String, TextError> {
        let fuel = self.fuel.saturating_add(content_fuel(messages));
        self.render_bounded(messages, options, fuel)
    }

    /// Renders a single user turn like [`render_user`](Self::render_user), marking the user's
    /// bytes (see [`render_marked`](Self::render_marked)).
    ///
    /// ```
    /// let t = diffulex_edge::text::ChatTemplate::from_source(
    ///     "<|im_start|>user\n{{ messages[0].content }}<|im_end|>",
    /// );
    /// let m = t.render_user_marked("hi <|im_end|>").unwrap();
    /// assert_eq!(m.text(), "<|im_start|>user\nhi <|im_end|><|im_end|>");
    /// assert_eq!(m.user_ranges(), &[17..30]);
    /// ```
    pub fn render_user_marked(&self, content: &str) -> Result<MarkedText, TextError> {
        self.render_marked(&[ChatMessage::user(content)], &ChatOptions::default())
    }

    /// Renders a conversation like [`render`](Self::render) and marks which bytes of the result
    /// are message content, so that only the template's own markup can produce special tokens
    /// ([`TextTokenizer::encode_marked`](super::TextTokenizer::encode_marked)).
    ///
    /// The template is rendered twice: with the contents, and with a placeholder per message
    /// that appears nowhere in the template or its tokens. The second output, with each content
    /// put back in place of its placeholder, must equal the first (or equal it with every
    /// content trimmed, as Llama 3's `message['content'] | trim` does); otherwise the template
    /// transforms or inspects the content and the result is
    /// [`TextError::TemplateTransformsContent`]. (Qwen3's template, for one, cuts
    /// `<think>…</think>` out of earlier assistant turns: such a history turn is refused here,
    /// and renders with [`render`](Self::render).)
    ///
    /// ```
    /// use diffulex_edge::text::{ChatMessage, ChatOptions, ChatTemplate};
    /// let t = ChatTemplate::from_source("{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}");
    /// let chat = [ChatMessage::system("<s>"), ChatMessage::user("hi")];
    /// let m = t.render_marked(&chat, &ChatOptions::default()).unwrap();
    /// assert_eq!(m.text(), "[system]<s>[user]hi");
    /// assert_eq!(m.user_ranges(), &[8..11, 17..19]);
    /// ```
    pub fn render_marked(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
    ) -> Result<MarkedText, TextError> {
        let rendered = self.render(messages, options)?;
        // Placeholders of private-use characters the template cannot contain or produce.
        let (open, close) = ('\u{F0000}', '\u{F0001}');
        let mut attempt = 0u64;
        let prefix = loop {
            let p = format!("{open}diffulex-content-{attempt}-");
            let seen = [&self.source, &self.bos_token, &self.eos_token]
                .into_iter()
                .chain(messages.iter().map(|m| &m.content))
                .any(|s| s.contains(&p));
            if !seen {
                break p;
            }
            attempt += 1;
        };
        let skeleton_messages: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .map(|(index, m)| ChatMessage {
                content: format!("{prefix}{index}{close}"),
                ..m.clone()
            })
            .collect();
        let skeleton = self.render_bounded(&skeleton_messages, options, self.fuel)?;
        // Markup parts and, between them, the index of the message whose content goes there.
        let mut parts: Vec<&str> = Vec::new();
        let mut slots: Vec<usize> = Vec::new();
        let mut rest = skeleton.as_str();
        while let Some(at) = rest.find(&prefix) {
            parts.push(&rest[..at]);
            let after = &rest[at + prefix.len()..];
            let end = after
                .find(close)
                .ok_or(TextError::TemplateTransformsContent)?;
            let index: usize = after[..end]
                .parse()
                .map_err(|_| TextError::TemplateTransformsContent)?;
            if index >= messages.len() {
                return Err(TextError::TemplateTransformsContent);
            }
            slots.push(index);
            rest = &after[end + close.len_utf8()..];
        }
        parts.push(rest);
        // A part holding the placeholder's first character is derived from a content.
        let template_has_open = [&self.source, &self.bos_token, &self.eos_token]
            .iter()
            .any(|s| s.contains(open));
        if !template_has_open && parts.iter().any(|p| p.contains(open)) {
            return Err(TextError::TemplateTransformsContent);
        }
        for trimmed in [false, true] {
            let content = |index: usize| {
                let c = messages[index].content.as_str();
                if trimmed {
                    c.trim()
                } else {
                    c
                }
            };
            let markup: usize = parts.iter().map(|p| p.len()).sum();
            let inserted = slots
                .iter()
                .try_fold(markup, |sum, &index| sum.checked_add(content(index).len()));
            if inserted != Some(rendered.len()) {
                continue;
            }
            let mut text = String::with_capacity(rendered.len());
            let mut user = Vec::with_capacity(slots.len());
            for (position, part) in parts.iter().enumerate() {
                if position > 0 {
                    let c = content(slots[position - 1]);
                    user.push(text.len()..text.len() + c.len());
                    text.push_str(c);
                }
                text.push_str(part);
            }
            if text == rendered {
                // Empty contents leave empty ranges, which mark nothing.
                user.retain(|range| !range.is_empty());
                return MarkedText::new(text, user).ok_or(TextError::TemplateTransformsContent);
            }
        }
        Err(TextError::TemplateTransformsContent)
    }

    fn render_bounded(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
        fuel: u64,
    ) -> Result<String, TextError> {
        if let Some(key) = ChatOptions::RESERVED
            .iter()
            .find(|key| options.kwargs.contains_key(**key))
        {
            return Err(TextError::TemplateKwargs {
                reason: format!("\"{key}\" is set by the renderer, not by a keyword argument"),
            });
        }
        let mut env = minijinja::Environment::new();
        // Hugging Face renders with trim_blocks and lstrip_blocks on: a block tag takes the
        // newline after it and the indentation before it with it.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(|state, value, method, args| {
            if let (Some(f), "format") = (value.as_str(), method) {
                check_format_string(f)?;
            }
            minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
        });
        // The printf-style `format` filter shares minijinja's byte-slicing spec parser: the same
        // check before the builtin runs.
        let builtin_format = minijinja::Value::from_function(minijinja::filters::format);
        env.add_filter(
            "format",
            move |state: &mut minijinja::State,
                  args: minijinja::value::Rest<minijinja::Value>|
                  -> Result<minijinja::Value, minijinja::Error> {
                if let Some(f) = args.first().and_then(minijinja::Value::as_str) {
                    check_printf_string(f)?;
                }
                builtin_format.call(state, &args)
            },
        );
        // Hugging Face replaces Jinja's HTML-escaping `tojson` with `json.dumps`; so do we.
        env.add_filter("tojson", python_json::tojson);
        let now = options.now_unix_seconds;
        env.add_function("strftime_now", move |format: String| {
            strftime::strftime_now(&format, now)
        });
        env.set_fuel(Some(fuel));
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", &self.source)
            .map_err(|e| TextError::Render(e.to_string()))?;
        let tmpl = env
            .get_template("chat")
            .map_err(|e| TextError::Render(e.to_string()))?;
        let mut sink = BoundedSink {
            buf: Vec::new(),
            limit: self.max_output_bytes,
            exceeded: false,
        };
        let context = template_context(self, messages, options);
        // A template is input, and minijinja 3.1 has panicked on some (a format spec it slices
        // inside a multi-byte character): a panic of the template engine is this template's
        // error, never the process's.
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tmpl.render_captured_to(context, &mut sink)
        }));
        let Ok(result) = rendered else {
            return Err(TextError::Render(
                "the template engine failed on this template (it panicked); the chat template \
                 is malformed"
                    .into(),
            ));
        };
        if sink.exceeded {
            return Err(TextError::TemplateOutputTooLarge {
                limit: self.max_output_bytes,
                context: self.output_context.clone(),
            });
        }
        match result {
            Ok(_) => String::from_utf8(sink.buf)
                .map_err(|e| TextError::Render(format!("output is not UTF-8: {e}"))),
            Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => {
                Err(TextError::TemplateBudget { fuel })
            }
            Err(e) => Err(TextError::Render(e.to_string())),
        }
    }
}

/// `bos_token` and `eos_token` of a tokenizer_config.json: a string, or an added-token object
/// with `content`; empty when absent.
fn special_tokens(config: &serde_json::Value) -> (String, String) {
    let token = |key: &str| -> String {
        match config.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v
                .get("content")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        }
    };
    (token("bos_token"), token("eos_token"))
}

/// Extra fuel for the contents: `len / 16` per message, so a long message can be copied a few
/// times without the step budget bounding honest prompts.
fn content_fuel(messages: &[ChatMessage]) -> u64 {
    messages.iter().fold(0u64, |fuel, m| {
        fuel.saturating_add(m.content.len() as u64 / 16)
    })
}

/// The variables a template sees: the keyword arguments, then `messages`,
/// `add_generation_prompt`, `bos_token` and `eos_token` (which the keyword arguments may not
/// replace), in an ordered map, as Python's dicts are.
fn template_context(
    template: &ChatTemplate,
    messages: &[ChatMessage],
    options: &ChatOptions,
) -> minijinja::Value {
    use minijinja::Value;
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut fields = vec![
                ("role".to_string(), Value::from(m.role.as_str())),
                ("content".to_string(), Value::from(m.content.as_str())),
            ];
            fields.extend(
                m.extra
                    .iter()
                    .map(|(key, value)| (key.clone(), json_to_value(value))),
            );
            OrderedMap::value(fields)
        })
        .collect();
    let mut entries: Vec<(String, Value)> = options
        .kwargs
        .iter()
        .map(|(key, value)| (key.clone(), json_to_value(value)))
        .collect();
    entries.extend([
        ("messages".to_string(), Value::from(messages)),
        (
            "add_generation_prompt".to_string(),
            Value::from(options.add_generation_prompt),
        ),
        (
            "bos_token".to_string(),
            Value::from(template.bos_token.as_str()),
        ),
        (
            "eos_token".to_string(),
            Value::from(template.eos_token.as_str()),
        ),
    ]);
    OrderedMap::value(entries)
}

/// A JSON value as a template value; objects keep their key order.
fn json_to_value(json: &serde_json::Value) -> minijinja::Value {
    use minijinja::Value;
    match json {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::from(f),
            (None, None) => Value::from(n.to_string()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(json_to_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => OrderedMap::value(
            map.iter()
                .map(|(key, value)| (key.clone(), json_to_value(value)))
                .collect(),
        ),
    }
}

/// A map that iterates in insertion order, as a Python dict does (minijinja's own maps sort
/// their keys unless built with `preserve_order`).
#[derive(Debug)]
struct OrderedMap(Vec<(String, minijinja::Value)>);

impl OrderedMap {
    fn value(entries: Vec<(String, minijinja::Value)>) -> minijinja::Value {
        minijinja::Value::from_object(OrderedMap(entries))
    }
}

impl minijinja::value::Object for OrderedMap {
    fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Map
    }

    fn get_value(self: &std::sync::Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let key = key.as_str()?;
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(
            self.0
                .iter()
                .map(|(k, _)| minijinja::Value::from(k.as_str()))
                .collect(),
        )
    }

    fn enumerator_len(self: &std::sync::Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }
}

/// Largest width or precision `str.format` may ask for in a chat template: minijinja-contrib's
/// `str.format` pads before fuel is charged, so `'{:>100000000000}'.format(1)` would allocate
/// 100 GB.
const MAX_FORMAT_WIDTH: u64 = 4096;

/// Refuses a `str.format` string with a number above [`MAX_FORMAT_WIDTH`] inside a replacement
/// field (`{:>N}`, `{:.N}`, `{0:0N}`), or with a replacement field and any non-ASCII character:
/// minijinja 3.1's field parser slices by bytes and panicked inside a multi-byte character
/// (found by the `chat_template` fuzz target; a field's `[index]` may run past `}`, so where a
/// field ends is not simple to tell). Python allows non-ASCII text and fill characters there; no
/// chat template seen needs them, and the render's panic barrier stays as the second line.
fn check_format_string(f: &str) -> Result<(), minijinja::Error> {
    if f.contains('{') && !f.is_ascii() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "str.format on a string with replacement fields and non-ASCII characters",
        ));
    }
    let mut in_field = false;
    let mut n: u64 = 0;
    for c in f.chars() {
        match c {
            '{' => in_field = true,
            '}' => in_field = false,
            '0'..='9' if in_field => {
                n = n
                    .saturating_mul(10)
                    .saturating_add(u64::from(c) - u64::from('0'));
                if n > MAX_FORMAT_WIDTH {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("str.format width or precision above {MAX_FORMAT_WIDTH}"),
                    ));
                }
                continue;
            }
            _ => {}
        }
        n = 0;
    }
    Ok(())
}

/// Refuses a printf-style `format` filter string with a `%` spec and any non-ASCII character,
/// for the reason of [`check_format_string`] (the `chat_template` fuzz target found
/// `'%(engthth5d\u{97}…'|format(3)` panicking minijinja 3.1 the same way).
fn check_printf_string(f: &str) -> Result<(), minijinja::Error> {
    if f.contains('%') && !f.is_ascii() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "the format filter on a string with % specs and non-ASCII characters",
        ));
    }
    Ok(())
}

/// Collects rendered output and refuses to grow past `limit` bytes.
struct BoundedSink {
    buf: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl std::io::Write for BoundedSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("chat template output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str) -> Result<String, TextError> {
        ChatTemplate::from_source(src).render_user("12+34=")
    }

    /// Loops that would run for hours run out of the step budget instead.
    #[test]
    fn runaway_loops_exhaust_the_step_budget() {
        for src in [
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
            "{% for m in messages * 100000 %}{% for i in range(100000) %}{% if i > 1 %}{% continue %}{% endif %}{% endfor %}{% endfor %}",
            "{% macro f(n) %}{% for i in range(10) %}{{ f(n + 1) }}{% endfor %}{% endmacro %}{{ f(0) }}",
        ] {
            match render(src) {
                Err(TextError::TemplateBudget { fuel }) => {
                    assert_eq!(fuel, ChatTemplate::DEFAULT_FUEL, "{src}")
                }
                // minijinja's own recursion limit may stop the macro first.
                Err(TextError::Render(m)) if src.contains("macro") => {
                    assert!(m.contains("recursion"), "{src}: {m}")
                }
                other => panic!("{src}: {other:?}"),
            }
        }
    }

    /// Templates that write or build about a gigabyte stop at a bound, with the bound named.
    #[test]
    fn huge_output_and_data_are_bounded() {
        let t = |src: &str| ChatTemplate::from_source(src).with_max_output_bytes(1 << 20);
        for src in [
            "{% for i in range(100000) %}{{ 'x' * 10000 }}{% endfor %}",
            "{% for i in range(100) %}{{ messages[0].content * 10000000 }}{% endfor %}",
            "{{ 'x' * 1000000000 }}",
        ] {
            let err = t(src).render_user("12+34=").unwrap_err();
            assert!(
                matches!(
                    err,
                    TextError::TemplateOutputTooLarge { limit: 1048576, .. }
                        | TextError::TemplateBudget { .. }
                ),
                "{src}: {err:?}"
            );
        }
        // Output alone, within the budget: the size bound is what stops it.
        let err = t("{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}")
            .render_user("")
            .unwrap_err();
        assert!(
            matches!(
                err,
                TextError::TemplateOutputTooLarge { limit: 1048576, .. }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("1048576 bytes"), "{err}");
        // Data that is never written (set blocks, strings built by methods) costs fuel.
        for src in [
            "{% set s = 'x' * 100000000 %}",
            "{% set s %}{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}",
            "{% set s = 'x' * 1000000 %}{{ s.replace('x', s) | length }}",
            "{% set s = 'x' * 100000 %}{{ ((s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s) * 1000) | length }}",
            "{{ '{:>100000000000}'.format(1) | length }}",
            "{{ '%100000000000d' | format(1) | length }}",
            "{{ '%.100000000000f' | format(1.5) | length }}",
            "{{ '{:.100000000000f}'.format(1.5) | length }}",
            "{{ '{:>{}}'.format(1, 100000000000) | length }}",
            "{{ ('ab'.join(range(100000)) * 100000) | length }}",
        ] {
            let err = t(src).render_user("").unwrap_err();
            assert!(
                matches!(
                    err,
                    TextError::TemplateBudget { .. } | TextError::TemplateOutputTooLarge { .. }
                ) || matches!(&err, TextError::Render(m) if m.contains("above 4096") || m.contains("format spec")),
                "{src}: {err:?}"
            );
        }
    }

    /// A long message gets fuel in proportion, so bounding steps does not bound honest prompts.
    /// Found by the `chat_template` fuzz target: minijinja 3.1 panicked slicing this format spec
    /// inside a multi-byte character; now it is this template's error.
    #[test]
    fn non_ascii_format_specs_are_errors_not_panics() {
        for src in [
            "{{'{Tp[im:.0f}im:\u{85}\u{85}.1f}'.format(1) }}",
            "{{ '{:\u{e9}>4}'.format(1) }}",
        ] {
            let err = render(src).unwrap_err();
            assert!(
                matches!(&err, TextError::Render(m) if m.contains("non-ASCII")),
                "{src}: {err}"
            );
        }
        // The printf-style filter: the second reproducer of the fuzz run.
        for src in [
            "{{ '%(engthth5d\u{97}\u{97}\u{97}' | format(3) }}",
            "{{ '%\u{e9}d' | format(1) }}",
        ] {
            let err = render(src).unwrap_err();
            assert!(
                matches!(&err, TextError::Render(m) if m.contains("non-ASCII")),
                "{src}: {err}"
            );
        }
        assert_eq!(render("{{ '%d%%' | format(5) }}").unwrap(), "5%");
        // Plain non-ASCII text with no replacement field is untouched.
        assert_eq!(render("{{ 'caf\u{e9}'.format() }}").unwrap(), "caf\u{e9}");
    }

    #[test]
    fn long_messages_still_render() {
        let t = ChatTemplate::from_source(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}",
        );
        let content = "1+1=".repeat(1 << 20);
        assert_eq!(t.render_user(&content).unwrap().len(), content.len() + 28);
    }

    #[test]
    fn endless_config_files_are_refused() {
        let err = ChatTemplate::from_tokenizer_config("/dev/zero").unwrap_err();
        assert!(
            err.to_string().contains("larger than 67108864 bytes"),
            "{err}"
        );
    }

    #[test]
    fn marked_rendering_keeps_user_text_apart() {
        let t = ChatTemplate::from_source(
            "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content | trim }}[/]{% endfor %}",
        );
        let m = t.render_user_marked("  <s>hi ").unwrap();
        assert_eq!(m.text(), "[user]<s>hi[/]");
        assert_eq!(&m.text()[m.user_ranges()[0].clone()], "<s>hi");
        // Content used twice: two user ranges.
        let t = ChatTemplate::from_source("{{ messages[0].content }}|{{ messages[0].content }}");
        assert_eq!(
            t.render_user_marked("ab").unwrap().user_ranges(),
            &[0..2, 3..5]
        );
        // A template that inspects or reshapes the content cannot be split.
        for src in [
            "{{ messages[0].content | upper }}",
            "{{ messages[0].content[:1] }}",
            "{% if messages[0].content.startswith('a') %}<A>{% endif %}{{ messages[0].content }}",
            "{{ messages[0].content | length }}",
        ] {
            let r = ChatTemplate::from_source(src).render_user_marked("abc");
            assert!(
                matches!(r, Err(TextError::TemplateTransformsContent)),
                "{src}: {r:?}"
            );
        }
        // Ignoring the content is fine: no user text.
        let m = ChatTemplate::from_source("<x>")
            .render_user_marked("abc")
            .unwrap();
        assert!(m.user_ranges().is_empty());
    }
}
