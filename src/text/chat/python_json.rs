//! The `tojson` filter as Hugging Face defines it for chat templates: Python's
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`, not
//! Jinja's HTML-escaping one (`<` stays `<`, and Python's `", "`/`": "` separators are kept), so
//! tool lists and arguments render byte for byte as `apply_chat_template` renders them.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

/// Nesting deeper than this is an error rather than a deep recursion.
const MAX_DEPTH: usize = 128;

/// `x | tojson`, `x | tojson(2)`, `x | tojson(indent=2, sort_keys=true, ensure_ascii=true)`.
pub(super) fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent.or(kwargs.get::<Option<Value>>("indent")?) {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(
            usize::try_from(v.clone())
                .ok()
                .filter(|&n| n <= 64)
                .ok_or_else(|| invalid(format!("tojson indent must be 0..=64, got {v}")))?,
        ),
    };
    let options = Options {
        indent,
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
    };
    if kwargs.has("separators") {
        return Err(invalid("tojson: separators is not supported".to_string()));
    }
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_value(value, &options, 0, &mut out)?;
    Ok(Value::from(out))
}

struct Options {
    indent: Option<usize>,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

fn write_value(
    value: &Value,
    options: &Options,
    depth: usize,
    out: &mut String,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "tojson: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&python_number(value)),
        ValueKind::String => write_string(value.as_str().unwrap_or_default(), options, out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(
                ('[', ']'),
                items.len(),
                options,
                depth,
                out,
                |index, out| write_value(&items[index], options, depth + 1, out),
            )?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter()?.collect();
            if options.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            write_container(('{', '}'), keys.len(), options, depth, out, |index, out| {
                let key = &keys[index];
                write_string(
                    &key.as_str().map_or_else(|| key.to_string(), str::to_string),
                    options,
                    out,
                );
                out.push_str(": ");
                write_value(&value.get_item(key)?, options, depth + 1, out)
            })?;
        }
        ValueKind::Undefined => return Err(invalid("tojson: the value is undefined".to_string())),
        other => return Err(invalid(format!("tojson: cannot serialize a {other}"))),
    }
    Ok(())
}

/// Python's layout: `[1, 2]` on one line, or one item per line at `indent` spaces a level with
/// `,` ending each line; empty containers stay `[]`/`{}`.
fn write_container(
    (open, close): (char, char),
    len: usize,
    options: &Options,
    depth: usize,
    out: &mut String,
    mut item: impl FnMut(usize, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    for index in 0..len {
        match options.indent {
            Some(width) => {
                out.push_str(if index == 0 { "\n" } else { ",\n" });
                out.extend(std::iter::repeat_n(' ', width * (depth + 1)));
            }
            None if index > 0 => out.push_str(", "),
            None => {}
        }
        item(index, out)?;
    }
    if let (Some(width), true) = (options.indent, len > 0) {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', width * depth));
    }
    out.push(close);
    Ok(())
}

/// Integers as digits; floats as Python's `repr` (always with a `.` or an exponent).
fn python_number(value: &Value) -> String {
    if let Ok(i) = i64::try_from(value.clone()) {
        if !value.to_string().contains(['.', 'e', 'E']) {
            return i.to_string();
        }
    }
    match f64::try_from(value.clone()) {
        Ok(f) if f.is_nan() => "NaN".to_string(),
        Ok(f) if f.is_infinite() => if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string(),
        Ok(f) if f == f.trunc() && f.abs() < 1e16 => format!("{f:.1}"),
        Ok(f) => {
            let s = format!("{f:?}");
            // Rust writes 1e20 as "1e20"; Python as "1e+20".
            match s.split_once('e') {
                Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
                _ => s,
            }
        }
        Err(_) => value.to_string(),
    }
}

/// A JSON string as Python writes it: `"`, `\` and control characters escaped (`\n`, `\t`, …,
/// else `\u00XX`); other characters as they are, or as `\uXXXX` (surrogate pairs past the BMP)
/// with `ensure_ascii`.
fn write_string(text: &str, options: &Options, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (options.ensure_ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str) -> String {
        let mut env = minijinja::Environment::new();
        env.add_filter("tojson", tojson);
        env.render_str(src, ()).unwrap()
    }

    /// Expected strings are what CPython 3.11's json.dumps prints for the same values.
    #[test]
    fn matches_python_json_dumps() {
        assert_eq!(
            render("{{ {'a': 1, 'b': [1, 2.5, none, true]} | tojson }}"),
            r#"{"a": 1, "b": [1, 2.5, null, true]}"#
        );
        assert_eq!(
            render("{{ '<a href=\"x\">é\n' | tojson }}"),
            r#""<a href=\"x\">é\n""#
        );
        assert_eq!(
            render("{{ 'é😀' | tojson(ensure_ascii=true) }}"),
            r#""\u00e9\ud83d\ude00""#
        );
        assert_eq!(
            render("{{ [1, {'k': []}] | tojson(indent=2) }}"),
            "[\n  1,\n  {\n    \"k\": []\n  }\n]"
        );
        assert_eq!(
            render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"),
            r#"{"a": 2, "b": 1}"#
        );
        assert_eq!(render("{{ 1.0 | tojson }} {{ 3 | tojson }}"), "1.0 3");
    }
}
