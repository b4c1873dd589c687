//! `diffulex generate`: prompt text in, generated text out, streamed as blocks are committed.

use std::ffi::OsStr;
use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Args;
use diffulex_edge::runtime::{
    BlockEvent, Control, DiffusionGenerationConfig, Family, GenerationObserver, GenerationOutput,
    GenerationStats, ModelType, StepEvent, StopReason,
};
use diffulex_edge::text::{
    encode_chat, encode_prompt, read_prompt_bounded, PromptOptions, TextTokenizer,
};

use crate::block_text::BlockText;
use crate::chat_args::ChatArgs;
use crate::limits::{self, LengthArgs};
use crate::output::{eprint_line, write_stdout};
use crate::sampling::DecodeArgs;
use crate::session::{ModelArgs, Session, SessionOptions};

/// Flags of `diffulex generate`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  diffulex generate --prompt '12+34='                      # bundled default model
  echo '7+8=' | diffulex generate --json                   # prompt from stdin, JSON out
  diffulex generate --model sdar.pte --chat --prompt 'Hi' --threshold 0.9
  diffulex generate --model sdar.pte --system 'Answer briefly.' --prompt 'Hi' --chat-template-kwargs '{\"enable_thinking\": false}'
  diffulex generate --model sdar.pte --messages chat.json
  diffulex generate --model dream.pte --alg entropy --steps 64 --max-new-tokens 64 --visual
  diffulex generate --model sdar.pte --threads 2 --prompt 'Hi'")]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt text; read from stdin when omitted.
    #[arg(long)]
    pub prompt: Option<String>,
    #[command(flatten)]
    pub chat: ChatArgs,
    /// Tokenize special-token strings typed in the prompt (`<|endoftext|>`) as control tokens.
    /// Without it they are plain text, and only the chat template's own markup makes them.
    #[arg(long)]
    pub raw_special_tokens: bool,
    /// Expected family: auto reads it from the .pte; a family name refuses a model of another.
    #[arg(long, default_value = "auto", value_name = "TYPE", value_parser = ModelTypeParser)]
    pub model_type: ModelType,
    #[command(flatten)]
    pub lengths: LengthArgs,
    /// Seed for sampling (temperature > 0, random remasking, ...).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Recompute the whole sequence every forward instead of using the KV cache.
    #[arg(long)]
    pub no_kv_cache: bool,
    /// Check the weights against the digest recorded at export before generating (one read of the file).
    #[arg(long)]
    pub verify: bool,
    /// Print one JSON object (tokens, text, stop reason, stats) instead of streaming text.
    #[arg(long, conflicts_with = "visual")]
    pub json: bool,
    /// Redraw the denoising canvas after every step (masked positions shown as `_`).
    #[arg(long)]
    pub visual: bool,
    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// `--model-type`: whatever the library's `ModelType::from_str` accepts, with `--help` and the
/// error for anything else listing `auto` and the family names (`Family::ALL`).
#[derive(Debug, Clone, Copy)]
struct ModelTypeParser;

impl ModelTypeParser {
    fn names() -> impl Iterator<Item = &'static str> {
        std::iter::once("auto").chain(Family::ALL.iter().map(|family| family.name()))
    }
}

impl TypedValueParser for ModelTypeParser {
    type Value = ModelType;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> std::result::Result<ModelType, clap::Error> {
        match value.to_str().map(str::parse::<ModelType>) {
            Some(Ok(model_type)) => Ok(model_type),
            // Clap's own "invalid value" error, with the accepted names and a suggestion.
            _ => PossibleValuesParser::new(Self::names())
                .parse_ref(cmd, arg, value)?
                .parse()
                .map_err(|e| clap::Error::raw(clap::error::ErrorKind::InvalidValue, e)),
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(Self::names().map(PossibleValue::new)))
    }
}

/// The prompt from `--prompt` or stdin; stdin is read up to the prompt byte bound only.
fn read_prompt(
    args: &GenerateArgs,
    tokenizer: &TextTokenizer,
    max_seq_len: usize,
) -> Result<String> {
    if let Some(p) = &args.prompt {
        return Ok(p.clone());
    }
    if args.chat.messages.is_some() {
        return Ok(String::new());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("no prompt: pass --prompt TEXT or pipe the prompt on stdin");
    }
    let text = read_prompt_bounded(
        stdin.lock(),
        tokenizer.max_prompt_bytes(max_seq_len),
        max_seq_len,
        tokenizer.bytes_per_token(),
    )
    .context("cannot read the prompt from stdin")?;
    if text.is_empty() {
        bail!("the prompt on stdin is empty: pass --prompt TEXT or pipe some text");
    }
    Ok(text)
}

/// Streams committed text to stdout, or redraws the canvas with `--visual`.
struct Printer<'t> {
    tokenizer: &'t TextTokenizer,
    text: BlockText,
    visual: bool,
    quiet: bool,
    error: Option<anyhow::Error>,
}

impl Printer<'_> {
    fn emit(&mut self, ids: &[i64]) {
        if self.quiet || self.visual {
            return;
        }
        match self.text.push(self.tokenizer, ids) {
            Ok(text) => {
                if let Err(e) = write_stdout(&text) {
                    self.error = Some(e);
                }
            }
            Err(e) => self.error = Some(e.into()),
        }
    }

    fn draw(&mut self, event: &StepEvent<'_>) {
        let mut line = String::new();
        for &t in event.canvas {
            if t == event.mask_token_id {
                line.push('_');
            } else {
                line += &self
                    .tokenizer
                    .decode(&[t], false)
                    .unwrap_or_else(|_| "?".into());
            }
        }
        let frame = format!(
            "\x1b[2J\x1b[Hstep {:>4}  block {:>3}\n{line}\n",
            event.step, event.block
        );
        if let Err(e) = write_stdout(&frame) {
            self.error = Some(e);
        }
    }

    /// Stop decoding once output failed: nobody can see the rest.
    fn control(&self) -> Control {
        if self.error.is_some() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

impl GenerationObserver for Printer<'_> {
    fn on_step(&mut self, event: &StepEvent<'_>) -> Control {
        if self.visual && self.error.is_none() {
            self.draw(event);
        }
        self.control()
    }

    fn on_block(&mut self, event: &BlockEvent<'_>) -> Control {
        self.emit(event.tokens);
        self.control()
    }
}

/// Runs `diffulex generate`.
pub fn run(args: &GenerateArgs) -> Result<()> {
    let session = Session::open(
        &args.model,
        &SessionOptions {
            max_seq_len: args.lengths.max_seq_len,
            model_type: args.model_type,
            no_kv_cache: args.no_kv_cache,
            verify: args.verify,
        },
    )?;
    let tokenizer_dir = session.tokenizer_dir().to_path_buf();
    let Session {
        tokenizer,
        mut engine,
        embedded_template,
        ..
    } = session;
    let max_seq_len = engine.context_limit();
    let prompt_text = read_prompt(args, &tokenizer, max_seq_len)?;

    let options = PromptOptions {
        max_seq_len,
        chat: None,
        raw_special_tokens: args.raw_special_tokens,
    };
    let encoded = if args.chat.enabled() {
        let template = args
            .chat
            .template
            .template(embedded_template, &tokenizer_dir)?;
        let messages = args
            .chat
            .conversation((args.chat.messages.is_none()).then_some(prompt_text))?;
        encode_chat(
            &tokenizer,
            &template,
            &messages,
            &args.chat.template.options()?,
            &options,
        )?
    } else {
        encode_prompt(&tokenizer, &prompt_text, &options)?
    };
    if encoded.unknown_tokens > 0 {
        eprint_line(&format!(
            "warning: {} of the prompt's {} tokens are unknown to the tokenizer: the model does not see that text",
            encoded.unknown_tokens, encoded.user_tokens
        ));
    }
    let prompt = encoded.ids;
    if prompt.is_empty() {
        bail!("the prompt tokenizes to nothing: give some text");
    }
    let max_new_tokens =
        limits::new_token_budget(prompt.len(), args.lengths.max_new_tokens, &engine)?;

    let config = DiffusionGenerationConfig {
        max_new_tokens,
        seed: args.seed,
        sampler: Some(args.decode.sampler_for(engine.family())?),
        ..Default::default()
    };
    let mut printer = Printer {
        tokenizer: &tokenizer,
        text: BlockText::new(engine.metadata().eos_ids.clone()),
        visual: args.visual,
        quiet: args.json,
        error: None,
    };
    let out = engine.generate_with(&prompt, &config, &mut printer)?;
    if let Some(e) = printer.error.take() {
        return Err(e);
    }
    let answer = tokenizer.decode(&out.tokens, true)?;
    if args.json {
        let report = serde_json::to_string_pretty(&json_report(&prompt, &answer, &out))?;
        write_stdout(&(report + "\n"))?;
    } else {
        let rest = if args.visual {
            answer
        } else {
            printer.text.finish(&tokenizer)?
        };
        write_stdout(&(rest + "\n"))?;
        eprint_line(&stats_line(&out));
    }
    Ok(())
}

/// The object `generate --json` prints.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    prompt_tokens: &'a [i64],
    tokens: &'a [i64],
    text: &'a str,
    stop_reason: StopReason,
    stats: &'a GenerationStats,
}

fn json_report<'a>(prompt: &'a [i64], text: &'a str, out: &'a GenerationOutput) -> JsonReport<'a> {
    JsonReport {
        prompt_tokens: prompt,
        tokens: &out.tokens,
        text,
        stop_reason: out.stop_reason,
        stats: &out.stats,
    }
}

fn stats_line(out: &GenerationOutput) -> String {
    let s = &out.stats;
    format!(
        "[{} tokens, stop: {:?} | {} forwards ({} decode), {:.2} tokens/forward | {:.1} tokens/s | prefill {:.1} ms, decode {:.1} ms, execute {:.1} ms, engine {:.1} ms]",
        s.tokens_generated,
        out.stop_reason,
        s.forwards,
        s.decode_forwards,
        s.tokens_per_forward(),
        s.tokens_per_second(),
        s.prefill_time.as_secs_f64() * 1e3,
        s.decode_time.as_secs_f64() * 1e3,
        s.execute_time.as_secs_f64() * 1e3,
        s.engine_time().as_secs_f64() * 1e3,
    )
}
