//! `diffulex inspect MODEL.pte`: file size, methods, inputs/outputs (dtypes, shapes, dynamic
//! bounds), delegate backends, and the values of constant methods (methods without inputs are
//! run and their outputs printed).

use std::fmt::Write as _;
use std::path::PathBuf;

use diffulex_edge::pte::{OwnedTensor, PteModule, TensorInfo};
use serde::Serialize;

use crate::load::LoadArgs;
use crate::output::write_stdout;

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .pte program to inspect.
    pub model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Everything `inspect` reports.
#[derive(Debug, Serialize)]
struct Report {
    file: PathBuf,
    file_size: u64,
    /// The ExecuTorch runtime the program was loaded with (shim path and how it was found).
    runtime: String,
    /// Files the export embedded (`--embed-tokenizer`), with their sizes.
    embedded_files: Vec<EmbeddedFile>,
    methods: Vec<MethodReport>,
}

#[derive(Debug, Serialize)]
struct EmbeddedFile {
    name: String,
    bytes: usize,
    /// For an embedded tokenizer_config.json or chat_template.jinja: the chat template.
    #[serde(skip_serializing_if = "Option::is_none")]
    chat_template: Option<String>,
}

#[derive(Debug, Serialize)]
struct MethodReport {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    inputs: Option<Vec<TensorInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<Vec<TensorInfo>>,
    /// Delegate backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    backends: Option<Vec<String>>,
    /// For constant methods: the output values (one entry per output).
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs the subcommand.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut module = args.load.module(&args.model)?;
    let mut methods = Vec::new();
    for name in module.method_names()? {
        methods.push(describe(&mut module, &name));
    }
    let failures = methods.iter().filter(|m| m.error.is_some()).count();
    let names: Vec<String> = module.embedded_files().map(str::to_string).collect();
    let mut embedded_files = Vec::new();
    for name in names {
        let bytes = module.embedded_file(&name)?.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let chat_template = match name.as_str() {
            "chat_template.jinja" => Some(text.to_string()),
            "tokenizer_config.json" => serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("chat_template")
                        .and_then(|t| t.as_str())
                        .map(str::to_string)
                }),
            _ => None,
        };
        embedded_files.push(EmbeddedFile {
            name,
            bytes: bytes.len(),
            chat_template,
        });
    }
    let report = Report {
        file: args.model.clone(),
        file_size: module.file_size(),
        runtime: diffulex_edge::pte::runtime()?.to_string(),
        embedded_files,
        methods,
    };
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render_text(&report)
    };
    // A closed pipe (`| head`) ends the program quietly (see `output`).
    write_stdout(&text)?;
    anyhow::ensure!(failures == 0, "{failures} method(s) could not be inspected");
    Ok(())
}

/// Metadata of one method, and its value if it is a constant; errors are kept per method so
/// one broken method does not hide the others.
fn describe(module: &mut PteModule, name: &str) -> MethodReport {
    let mut report = MethodReport {
        name: name.to_string(),
        inputs: None,
        outputs: None,
        backends: None,
        value: None,
        error: None,
    };
    match module.method_meta(name) {
        Ok(meta) => {
            if meta.inputs.is_empty() {
                match constant_value(module, name) {
                    Ok(v) => report.value = Some(v),
                    Err(e) => report.error = Some(format!("{e:#}")),
                }
            }
            report.inputs = Some(meta.inputs);
            report.outputs = Some(meta.outputs);
            report.backends = Some(meta.backends);
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    report
}

fn constant_value(module: &mut PteModule, name: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let outputs = module.execute(name, &[])?;
    let mut values = Vec::new();
    for output in outputs.iter() {
        values.push(json_value(&output?.to_owned()?));
    }
    Ok(values)
}

/// A scalar as a JSON number/bool, a tensor as a flat array.
fn json_value(t: &OwnedTensor) -> serde_json::Value {
    use diffulex_edge::pte::DType;
    let numbers = t.to_f64_vec();
    let one = |v: f64| match t.dtype() {
        DType::Bool => serde_json::Value::Bool(v != 0.0),
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 => serde_json::json!(v),
        _ => serde_json::json!(v as i64),
    };
    if t.shape().is_empty() && numbers.len() == 1 {
        one(numbers[0])
    } else {
        serde_json::Value::Array(numbers.into_iter().map(one).collect())
    }
}

fn render_text(report: &Report) -> String {
    let mut o = String::new();
    // Writing into a String cannot fail, hence the ignored results.
    let _ = writeln!(o, "file: {:?} ({} bytes)", report.file, report.file_size);
    let _ = writeln!(o, "runtime: {}", report.runtime);
    if report.embedded_files.is_empty() {
        let _ = writeln!(o, "embedded files: none");
    }
    for file in &report.embedded_files {
        let _ = writeln!(o, "embedded file: {} ({} bytes)", file.name, file.bytes);
        if let Some(template) = &file.chat_template {
            let _ = writeln!(o, "  chat template: {}", template.escape_debug());
        }
    }
    let _ = writeln!(o, "methods: {}", report.methods.len());
    for m in &report.methods {
        let _ = writeln!(o, "\nmethod {}", m.name);
        for (label, list) in [("inputs", &m.inputs), ("outputs", &m.outputs)] {
            let Some(list) = list else { continue };
            if list.is_empty() {
                let _ = writeln!(o, "  {label}: none");
                continue;
            }
            let _ = writeln!(o, "  {label}:");
            for (i, info) in list.iter().enumerate() {
                let dynamic = if info.dynamic {
                    "  (dynamic, upper bounds)"
                } else {
                    ""
                };
                let _ = writeln!(o, "    {i}: {info}{dynamic}");
            }
        }
        if let Some(backends) = &m.backends {
            let shown = if backends.is_empty() {
                "none (CPU kernels)".to_string()
            } else {
                delegate_counts(backends)
            };
            let _ = writeln!(o, "  delegates: {shown}");
        }
        if let Some(value) = &m.value {
            let shown: Vec<String> = value.iter().map(|v| v.to_string()).collect();
            let text = if shown.len() == 1 {
                shown[0].clone()
            } else {
                format!("[{}]", shown.join(", "))
            };
            let _ = writeln!(o, "  value: {text}");
        }
        if let Some(error) = &m.error {
            let _ = writeln!(o, "  error: {error}");
        }
    }
    o
}

/// "XnnpackBackend x43" rather than the name 43 times (one delegate call per lowered
/// subgraph); backends in order of first use.
fn delegate_counts(backends: &[String]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for b in backends {
        match counts.iter_mut().find(|(name, _)| name == b) {
            Some((_, n)) => *n += 1,
            None => counts.push((b, 1)),
        }
    }
    counts
        .iter()
        .map(|&(name, n)| {
            if n == 1 {
                name.to_string()
            } else {
                format!("{name} x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::delegate_counts;

    #[test]
    fn delegates_are_counted_in_order_of_first_use() {
        let names: Vec<String> = ["XnnpackBackend", "VulkanBackend", "XnnpackBackend"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(delegate_counts(&names), "XnnpackBackend x2, VulkanBackend");
    }
}
