use std::path::{Path, PathBuf};

use super::TextError;

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
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
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
        }
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
        let raw = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&raw).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let source = match json.get("chat_template") {
            Some(serde_json::Value::String(s)) => s.clone(),
            // Some configs ship a list of named templates; "default" is the chat one.
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string)
                .ok_or_else(|| err("no template named \"default\"".into()))?,
            _ => return Err(err("it has no \"chat_template\" entry".into())),
        };
        let token = |key: &str| -> String {
            match json.get(key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v
                    .get("content")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_string(),
                None => String::new(),
            }
        };
        Ok(Self {
            source,
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
        })
    }

    /// Renders a single user turn followed by the assistant's generation prompt.
    ///
    /// ```
    /// let t = diffulex_edge::text::ChatTemplate::from_source("U:{{ messages[0].content }}");
    /// assert_eq!(t.render_user("2+2").unwrap(), "U:2+2");
    /// ```
    pub fn render_user(&self, content: &str) -> Result<String, TextError> {
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
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
        tmpl.render(minijinja::context! {
            messages => vec![minijinja::context! { role => "user", content => content }],
            add_generation_prompt => true,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| TextError::Render(e.to_string()))
    }
}
