use std::path::{Path, PathBuf};

use super::{MarkedText, TextError};

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
        // Read one byte past the bound so a huge (or endless) file costs nothing.
        let mut raw = String::new();
        std::fs::File::open(&path)
            .and_then(|f| {
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(f, Self::MAX_CONFIG_BYTES + 1),
                    &mut raw,
                )
            })
            .map_err(|e| err(e.to_string()))?;
        if raw.len() as u64 > Self::MAX_CONFIG_BYTES {
            return Err(err(format!(
                "larger than {} bytes, not a tokenizer_config.json",
                Self::MAX_CONFIG_BYTES
            )));
        }
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
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
            ..Self::from_source(source)
        })
    }

    /// Renders a single user turn followed by the assistant's generation prompt.
    ///
    /// ```
    /// let t = diffulex_edge::text::ChatTemplate::from_source("U:{{ messages[0].content }}");
    /// assert_eq!(t.render_user("2+2").unwrap(), "U:2+2");
    /// ```
    pub fn render_user(&self, content: &str) -> Result<String, TextError> {
        let fuel = self.fuel.saturating_add(content.len() as u64 / 16);
        self.render_bounded(content, fuel)
    }

    /// Renders a single user turn like [`render_user`](Self::render_user) and marks which bytes
    /// of the result are the user's content, so that only the template's own markup can produce
    /// special tokens ([`TextTokenizer::encode_marked`](super::TextTokenizer::encode_marked)).
    ///
    /// The template is rendered twice: with the content, and with a placeholder that appears
    /// nowhere in the template or its tokens. The second output, with the content put back in
    /// place of each placeholder, must equal the first (or equal it with the content trimmed,
    /// as Llama 3's `message['content'] | trim` does); otherwise the template transforms or
    /// inspects the content and the result is [`TextError::TemplateTransformsContent`].
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
        let fuel = self.fuel.saturating_add(content.len() as u64 / 16);
        let rendered = self.render_bounded(content, fuel)?;
        // A placeholder of private-use characters the template cannot contain or produce.
        let mut n = 0u64;
        let (open, close) = ('\u{F0000}', '\u{F0001}');
        let placeholder = loop {
            let p = format!("{open}diffulex-user-content-{n}{close}");
            if ![&self.source, &self.bos_token, &self.eos_token, content]
                .iter()
                .any(|s| s.contains(&p))
            {
                break p;
            }
            n += 1;
        };
        let skeleton = self.render_bounded(&placeholder, self.fuel)?;
        let parts: Vec<&str> = skeleton.split(&placeholder).collect();
        // A part holding the placeholder's first character is derived from the content.
        let foreign = !self.source.contains(open)
            && !self.bos_token.contains(open)
            && !self.eos_token.contains(open)
            && parts.iter().any(|p| p.contains(open));
        if foreign {
            return Err(TextError::TemplateTransformsContent);
        }
        for c in [content, content.trim()] {
            let markup: usize = parts.iter().map(|p| p.len()).sum();
            let slots = parts.len() - 1;
            if markup.checked_add(slots.saturating_mul(c.len())) != Some(rendered.len()) {
                continue;
            }
            let mut text = String::with_capacity(rendered.len());
            let mut user = Vec::with_capacity(slots);
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    user.push(text.len()..text.len() + c.len());
                    text.push_str(c);
                }
                text.push_str(p);
            }
            if text == rendered {
                return MarkedText::new(text, user).ok_or(TextError::TemplateTransformsContent);
            }
        }
        Err(TextError::TemplateTransformsContent)
    }

    fn render_bounded(&self, content: &str, fuel: u64) -> Result<String, TextError> {
        let mut env = minijinja::Environment::new();
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
        let context = minijinja::context! {
            messages => vec![minijinja::context! { role => "user", content => content }],
            add_generation_prompt => true,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
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
