//! `diffulex inspect MODEL.pte`: file size, methods, inputs/outputs (dtypes, shapes, dynamic
//! bounds), delegate backends, and the values of constant methods (methods without inputs are
//! run and their outputs printed).

use std::path::PathBuf;

use anyhow::Context;
use diffulex_edge::pte::{MethodMeta, OwnedTensor, PteModule};
use serde::Serialize;

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .pte program to inspect.
    pub model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Everything `inspect` reports.
#[derive(Debug, Serialize)]
struct Report {
    file: PathBuf,
    file_size: u64,
    methods: Vec<MethodReport>,
}

#[derive(Debug, Serialize)]
struct MethodReport {
    name: String,
    #[serde(flatten)]
    meta: Option<MethodMeta>,
    /// For constant methods: the output values (one entry per output).
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs the subcommand.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut module = PteModule::load(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let mut methods = Vec::new();
    for name in module.method_names()? {
        methods.push(describe(&mut module, &name));
    }
    let failures = methods.iter().filter(|m| m.error.is_some()).count();
    let report = Report {
        file: args.model.clone(),
        file_size: module.file_size(),
        methods,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    anyhow::ensure!(failures == 0, "{failures} method(s) could not be inspected");
    Ok(())
}

/// Metadata of one method, and its value if it is a constant; errors are kept per method so
/// one broken method does not hide the others.
fn describe(module: &mut PteModule, name: &str) -> MethodReport {
    let mut report = MethodReport {
        name: name.to_string(),
        meta: None,
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
            report.meta = Some(meta);
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

fn print_text(report: &Report) {
    println!(
        "file: {} ({} bytes)",
        report.file.display(),
        report.file_size
    );
    println!("methods: {}", report.methods.len());
    for m in &report.methods {
        println!();
        println!("method {}", m.name);
        if let Some(meta) = &m.meta {
            for (label, list) in [("inputs", &meta.inputs), ("outputs", &meta.outputs)] {
                if list.is_empty() {
                    println!("  {label}: none");
                    continue;
                }
                println!("  {label}:");
                for (i, info) in list.iter().enumerate() {
                    let dynamic = if info.dynamic {
                        "  (dynamic, upper bounds)"
                    } else {
                        ""
                    };
                    println!("    {i}: {info}{dynamic}");
                }
            }
            let backends = if meta.backends.is_empty() {
                "none (CPU kernels)".to_string()
            } else {
                meta.backends.join(", ")
            };
            println!("  delegates: {backends}");
        }
        if let Some(value) = &m.value {
            let shown: Vec<String> = value.iter().map(|v| v.to_string()).collect();
            let text = if shown.len() == 1 {
                shown[0].clone()
            } else {
                format!("[{}]", shown.join(", "))
            };
            println!("  value: {text}");
        }
        if let Some(error) = &m.error {
            println!("  error: {error}");
        }
    }
}
