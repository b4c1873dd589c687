//! A model ready to answer: the `.pte` loaded into an engine, with its tokenizer (the one
//! embedded in the file, else `tokenizer.json` beside it, or `--tokenizer`) checked against it.
//! Shared by `generate`, `chat` and `serve`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use diffulex_edge::runtime::{DiffusionEngine, DiffusionModel, ModelType, PteModel};
use diffulex_edge::text::{ChatTemplate, TextTokenizer};

use crate::load::{check_file, LoadArgs};
use crate::threads::ThreadArgs;

/// The flags that name and load a model, shared by `generate`, `chat` and `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// The `.pte` model (default: the bundled model in models/default).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Hugging Face tokenizer.json (default: the one embedded in the model, else tokenizer.json
    /// beside it).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[command(flatten)]
    pub threads: ThreadArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How to open a session, besides the model's own flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOptions {
    /// `--max-seq-len`: the engine's context limit (default: the exported bound).
    pub max_seq_len: Option<usize>,
    /// `--model-type`.
    pub model_type: ModelType,
    /// `--no-kv-cache`.
    pub no_kv_cache: bool,
    /// `--verify`: check the weights digest first.
    pub verify: bool,
}

/// A loaded model and its text side.
pub struct Session {
    /// The `.pte` file.
    pub model_path: PathBuf,
    /// Where the tokenizer came from (a file, or the model for an embedded one).
    pub tokenizer_path: PathBuf,
    /// The tokenizer, checked against the model's recorded vocabulary digest.
    pub tokenizer: TextTokenizer,
    /// The chat template embedded in the model, if it has one.
    pub embedded_template: Option<ChatTemplate>,
    /// The engine, with the context limit asked for.
    pub engine: DiffusionEngine,
}

impl Session {
    /// Sizes the thread pool, then loads the model and its tokenizer.
    pub fn open(args: &ModelArgs, options: &SessionOptions) -> Result<Self> {
        args.threads.apply()?;
        let load = &args.load;
        let model_path = match &args.model {
            Some(p) => p.clone(),
            None => default_model()?,
        };
        check_file(
            "model",
            &model_path,
            "pass --model PATH.pte (export one with `diffulex-export export`)",
        )?;
        let model = load.model(&model_path)?;
        // The tokenizer: --tokenizer, else the one embedded in the model (bound to it by the
        // export), else tokenizer.json beside it.
        let embedded = match args.tokenizer {
            Some(_) => None,
            None => model.embedded_file("tokenizer.json")?,
        };
        let (tokenizer, tokenizer_path) = match embedded {
            Some(json) => {
                let origin = model_path.with_file_name(format!(
                    "{} (embedded tokenizer.json)",
                    model_path
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                ));
                (
                    TextTokenizer::from_bytes(&json, origin)?,
                    model_path.clone(),
                )
            }
            None => {
                let path = match &args.tokenizer {
                    Some(p) => p.clone(),
                    None => model_path.with_file_name("tokenizer.json"),
                };
                check_file(
                    "tokenizer",
                    &path,
                    "pass --tokenizer PATH/tokenizer.json (or export with --embed-tokenizer)",
                )?;
                (TextTokenizer::from_file(&path)?, path)
            }
        };
        let embedded_template = embedded_template(&model, &model_path)?;
        let meta = model.metadata().clone();
        let use_kv_cache = meta.use_kv_cache && !options.no_kv_cache;
        tokenizer.check_model(&meta, model.tokenizer_digest())?;
        if options.verify {
            model.verify_weights()?;
        }
        // `--max-seq-len` is the engine's context limit (from_pte's `max_seq_len`); the engine
        // refuses 0 and anything above the model's bound.
        let engine = DiffusionEngine::from_model(model, options.model_type, use_kv_cache)?
            .with_max_seq_len(options.max_seq_len.unwrap_or(meta.max_seq_len))?;
        Ok(Session {
            model_path,
            tokenizer_path,
            tokenizer,
            embedded_template,
            engine,
        })
    }

    /// The directory whose chat template files belong to the tokenizer.
    pub fn tokenizer_dir(&self) -> &Path {
        self.tokenizer_path.parent().unwrap_or(Path::new("."))
    }

    /// A name for the model: its file's stem.
    pub fn model_name(&self) -> String {
        self.model_path
            .file_stem()
            .map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned())
    }
}

/// The chat template embedded in the model, if the export stored one.
fn embedded_template(model: &PteModel, model_path: &Path) -> Result<Option<ChatTemplate>> {
    let text = |name: &str| -> Result<Option<String>> {
        model
            .embedded_file(name)?
            .map(|bytes| {
                String::from_utf8(bytes)
                    .with_context(|| format!("the embedded {name} is not UTF-8"))
            })
            .transpose()
    };
    let (config, jinja) = (text("tokenizer_config.json")?, text("chat_template.jinja")?);
    let has_template = jinja.is_some()
        || config.as_deref().is_some_and(|c| {
            serde_json::from_str::<serde_json::Value>(c)
                .is_ok_and(|json| json.get("chat_template").is_some())
        });
    if !has_template {
        return Ok(None);
    }
    Ok(Some(ChatTemplate::from_parts(
        config.as_deref(),
        jinja.as_deref(),
        model_path,
    )?))
}

/// The bundled model: next to the executable first (installed layout), then the source tree.
fn default_model() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("models/default/model.pte"));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default/model.pte"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "no --model given and the bundled model is missing (looked at {}); pass --model PATH.pte",
                candidates
                    .iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}
