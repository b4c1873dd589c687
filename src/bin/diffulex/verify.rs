//! `diffulex verify MODEL.pte`: is the file intact? Hashes the weight segments and compares the
//! SHA-256 with the one recorded at export (`get_weights_digest`, docs/pte-contract.md); with a
//! `tokenizer.json` beside the model (or `--tokenizer`), also checks that it is the model's.

use std::path::PathBuf;

use anyhow::Context;
use diffulex_edge::runtime::{DiffusionModel, PteModel};
use diffulex_edge::text::TextTokenizer;
use serde::Serialize;

use crate::output::write_stdout;

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The .pte model to verify.
    pub model: PathBuf,
    /// Tokenizer to check against the model (default: tokenizer.json beside it, if present).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    file: PathBuf,
    weights_sha256: String,
    segment_offset: u64,
    segment_bytes: u64,
    /// The tokenizer that was checked, if any.
    tokenizer: Option<PathBuf>,
}

/// Runs the subcommand: exit 0 when the weights (and the tokenizer, if checked) match, one
/// `error:` line and exit 1 otherwise.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let model = PteModel::load(&args.model).with_context(|| {
        format!(
            "cannot verify {:?} (expected a .pte exported by diffulex-export)",
            args.model
        )
    })?;
    let digest = model.verify_weights()?;
    // The tokenizer: --tokenizer, else the one embedded in the model (covered by the weights
    // digest too: named data is segment data), else tokenizer.json beside it, if present.
    let embedded = match &args.tokenizer {
        Some(_) => None,
        None => model.embedded_file("tokenizer.json")?,
    };
    let tokenizer = match (&args.tokenizer, embedded) {
        (Some(p), _) => {
            TextTokenizer::from_file(p)?.check_model(model.metadata(), model.tokenizer_digest())?;
            Some(p.clone())
        }
        (None, Some(json)) => {
            let origin = PathBuf::from(format!(
                "{} (embedded tokenizer.json)",
                args.model.display()
            ));
            TextTokenizer::from_bytes(&json, origin.clone())?
                .check_model(model.metadata(), model.tokenizer_digest())?;
            Some(origin)
        }
        (None, None) => {
            let beside = args.model.with_file_name("tokenizer.json");
            if beside.is_file() {
                TextTokenizer::from_file(&beside)?
                    .check_model(model.metadata(), model.tokenizer_digest())?;
                Some(beside)
            } else {
                None
            }
        }
    };
    let report = Report {
        file: args.model.clone(),
        weights_sha256: digest.hex(),
        segment_offset: digest.offset,
        segment_bytes: digest.bytes,
        tokenizer,
    };
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        format!(
            "{:?}: weights intact (SHA-256 {} of {} bytes of segments, as recorded at export){}\n",
            report.file,
            report.weights_sha256,
            report.segment_bytes,
            match &report.tokenizer {
                Some(t) => format!("; tokenizer {t:?} belongs to it"),
                None => String::new(),
            }
        )
    };
    write_stdout(&text)
}
