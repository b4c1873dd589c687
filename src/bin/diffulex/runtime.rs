//! `diffulex runtime [--copy-to DIR] [--json]`: where the ExecuTorch runtime was loaded from,
//! what it registers, and the files a copy of `diffulex` (or of any binary built on
//! diffulex-edge) needs beside it on another machine of the same architecture.

use std::path::{Path, PathBuf};

use anyhow::Context;
use diffulex_edge::pte;
use serde::Serialize;

use crate::output::write_stdout;

/// Arguments of `runtime`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Copy the runtime's files into this directory (created if missing); put the binary there
    /// too and the copy runs with no environment variable.
    #[arg(long, value_name = "DIR")]
    pub copy_to: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    /// The shim library that was opened (absent when the runtime is linked in).
    shim: Option<PathBuf>,
    /// How it was found.
    source: String,
    /// How the runtime was linked at build time (`shared` or `static`).
    link_kind: &'static str,
    /// Files to ship beside the binary.
    files: Vec<PathBuf>,
    /// Number of operator kernels and the backends registered.
    operators: usize,
    backends: Vec<String>,
    /// Where `--copy-to` copied the files.
    #[serde(skip_serializing_if = "Option::is_none")]
    copied_to: Option<PathBuf>,
}

/// Runs the subcommand.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = pte::runtime()?;
    let report = Report {
        shim: runtime.shim_path().map(Path::to_path_buf),
        source: runtime.source().to_string(),
        link_kind: env!("DIFFULEX_RUNTIME_LINK_KIND"),
        files: runtime.files().to_vec(),
        operators: pte::registered_operators()?.len(),
        backends: pte::registered_backends()?,
        copied_to: args.copy_to.clone(),
    };
    if let Some(dir) = &args.copy_to {
        copy_files(&report.files, dir)?;
    }
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render_text(&report)
    };
    write_stdout(&text)
}

fn copy_files(files: &[PathBuf], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {dir:?}"))?;
    for file in files {
        let name = file
            .file_name()
            .with_context(|| format!("{file:?} has no file name"))?;
        let dest = dir.join(name);
        // Copied under a temporary name and renamed, so a program running from `dir` never
        // maps a half-written library.
        let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        std::fs::copy(file, &tmp).with_context(|| format!("copying {file:?} to {tmp:?}"))?;
        std::fs::rename(&tmp, &dest).with_context(|| format!("renaming {tmp:?} to {dest:?}"))?;
    }
    Ok(())
}

fn render_text(report: &Report) -> String {
    let mut lines = Vec::new();
    match &report.shim {
        Some(shim) => lines.push(format!("shim: {} ({})", shim.display(), report.source)),
        None => lines.push(format!("runtime: {}", report.source)),
    }
    lines.push(format!("link kind: {}", report.link_kind));
    lines.push(format!(
        "registered: {} operator kernels; backends: {}",
        report.operators,
        report.backends.join(", ")
    ));
    lines.push("files to ship beside the binary:".into());
    lines.extend(report.files.iter().map(|f| format!("  {}", f.display())));
    if let Some(dir) = &report.copied_to {
        lines.push(format!("copied to {}", dir.display()));
    }
    lines.join("\n") + "\n"
}
