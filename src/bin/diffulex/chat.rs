//! `diffulex chat`: an interactive multi-turn conversation. Each turn renders the whole
//! conversation with the model's chat template and streams the answer as blocks are final; the
//! engine reuses the KV cache of the turns before when the model has one.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result};
use clap::Args;
use diffulex_edge::runtime::{
    BlockEvent, Control, DiffusionEngine, DiffusionGenerationConfig, GenerationObserver,
    GenerationOutput,
};
use diffulex_edge::text::{
    encode_chat, ChatMessage, ChatOptions, ChatTemplate, PromptOptions, TextTokenizer,
};

use crate::block_text::BlockText;
use crate::chat_args::TemplateArgs;
use crate::limits::{self, LengthArgs};
use crate::output::{eprint_line, write_stdout};
use crate::sampling::DecodeArgs;
use crate::session::{ModelArgs, Session, SessionOptions};

/// Flags of `diffulex chat`.
#[derive(Debug, Args)]
#[command(
    after_help = "Type a message and press Enter; /reset starts over, /exit (or Ctrl-D) quits.
With stdin not a terminal, each line is one user turn.

Examples:
  diffulex chat --model sdar.pte --system 'Answer briefly.'
  diffulex chat --model sdar.pte --chat-template-kwargs '{\"enable_thinking\": false}'
  printf '12+34=\\n7+8=\\n' | diffulex chat"
)]
pub struct ChatCommandArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A system message at the start of the conversation.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Recompute the whole sequence every forward instead of using the KV cache.
    #[arg(long)]
    pub no_kv_cache: bool,
    #[command(flatten)]
    pub lengths: LengthArgs,
    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// Where the user's lines come from: a line editor at a terminal, else stdin's lines.
enum Input {
    Terminal(Box<rustyline::DefaultEditor>),
    Lines(std::io::StdinLock<'static>),
}

impl Input {
    fn open() -> Result<Self> {
        if std::io::stdin().is_terminal() {
            let editor = rustyline::DefaultEditor::new().context("cannot start the line editor")?;
            Ok(Input::Terminal(Box::new(editor)))
        } else {
            Ok(Input::Lines(std::io::stdin().lock()))
        }
    }

    /// The next line, or `None` at the end of input.
    fn next_line(&mut self) -> Result<Option<String>> {
        match self {
            Input::Terminal(editor) => match editor.readline("> ") {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    Ok(Some(line))
                }
                Err(
                    rustyline::error::ReadlineError::Eof
                    | rustyline::error::ReadlineError::Interrupted,
                ) => Ok(None),
                Err(e) => Err(e).context("cannot read the next line"),
            },
            Input::Lines(stdin) => {
                let mut line = String::new();
                let read = stdin.read_line(&mut line).context("cannot read stdin")?;
                Ok((read > 0).then(|| line.trim_end_matches(['\n', '\r']).to_string()))
            }
        }
    }
}

/// The conversation and what renders it.
struct Conversation {
    engine: DiffusionEngine,
    tokenizer: TextTokenizer,
    template: ChatTemplate,
    options: ChatOptions,
    system: Option<String>,
    messages: Vec<ChatMessage>,
}

impl Conversation {
    fn reset(&mut self) {
        self.engine.reset_kv_cache();
        self.messages.clear();
        if let Some(system) = &self.system {
            self.messages.push(ChatMessage::system(system.clone()));
        }
    }

    /// Answers `line`, streaming the text; the turn is kept only when it was answered.
    fn turn(&mut self, line: &str, args: &ChatCommandArgs) -> Result<GenerationOutput> {
        self.messages.push(ChatMessage::user(line));
        let result = self.answer(args);
        match &result {
            Ok((_, text)) => self.messages.push(ChatMessage::assistant(text.clone())),
            Err(_) => {
                self.messages.pop();
            }
        }
        result.map(|(out, _)| out)
    }

    fn answer(&mut self, args: &ChatCommandArgs) -> Result<(GenerationOutput, String)> {
        let options = PromptOptions {
            max_seq_len: self.engine.context_limit(),
            chat: None,
            raw_special_tokens: false,
        };
        let prompt = encode_chat(
            &self.tokenizer,
            &self.template,
            &self.messages,
            &self.options,
            &options,
        )
        .context("the conversation does not fit: /reset starts a new one")?
        .ids;
        let max_new_tokens =
            limits::new_token_budget(prompt.len(), args.lengths.max_new_tokens, &self.engine)
                .context(
                    "the conversation leaves no room for an answer: /reset starts a new one",
                )?;
        let config = DiffusionGenerationConfig {
            max_new_tokens,
            seed: args.seed,
            sampler: Some(args.decode.sampler_for(self.engine.family())?),
            ..Default::default()
        };
        let mut printer = TurnPrinter {
            tokenizer: &self.tokenizer,
            text: BlockText::new(self.engine.metadata().eos_ids.clone()),
            answer: String::new(),
            error: None,
        };
        let out = self.engine.generate_with(&prompt, &config, &mut printer)?;
        if let Some(e) = printer.error.take() {
            return Err(e);
        }
        let rest = printer.text.finish(&self.tokenizer)?;
        write_stdout(&format!("{rest}\n"))?;
        let mut answer = printer.answer;
        answer.push_str(&rest);
        Ok((out, answer))
    }
}

/// Streams one answer to stdout and keeps its text for the history.
struct TurnPrinter<'t> {
    tokenizer: &'t TextTokenizer,
    text: BlockText,
    answer: String,
    error: Option<anyhow::Error>,
}

impl GenerationObserver for TurnPrinter<'_> {
    fn on_block(&mut self, event: &BlockEvent<'_>) -> Control {
        match self.text.push(self.tokenizer, event.tokens) {
            Ok(piece) => {
                self.answer.push_str(&piece);
                if let Err(e) = write_stdout(&piece) {
                    self.error = Some(e);
                }
            }
            Err(e) => self.error = Some(e.into()),
        }
        if self.error.is_some() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

/// Runs `diffulex chat`.
pub fn run(args: &ChatCommandArgs) -> Result<()> {
    // A flag error is the flag's, not the conversation's: said before anything loads.
    if args.lengths.max_new_tokens == Some(0) {
        anyhow::bail!("--max-new-tokens must be at least 1");
    }
    let session = Session::open(
        &args.model,
        &SessionOptions {
            max_seq_len: args.lengths.max_seq_len,
            no_kv_cache: args.no_kv_cache,
            ..Default::default()
        },
    )?;
    let template = args
        .template
        .template(session.embedded_template.clone(), session.tokenizer_dir())?;
    let options = args.template.options()?;
    // Flags the family cannot use are refused now, not at the first turn.
    args.decode.sampler_for(session.engine.family())?;
    // Each turn prefills only what the turns before did not: the tokens equal a fresh run on
    // the whole transcript (tests/kv_reuse.rs, tests/cli_chat.rs).
    let mut conversation = Conversation {
        engine: session.engine.with_kv_reuse(true),
        tokenizer: session.tokenizer,
        template,
        options,
        system: args.system.clone(),
        messages: Vec::new(),
    };
    conversation.reset();
    let mut input = Input::open()?;
    let interactive = matches!(input, Input::Terminal(_));
    if interactive {
        eprint_line("Type a message; /reset starts over, /exit quits.");
    }
    while let Some(line) = input.next_line()? {
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                conversation.reset();
                eprint_line("[new conversation]");
                continue;
            }
            "/help" => {
                eprint_line(
                    "/reset starts a new conversation, /exit quits; anything else is your message",
                );
                continue;
            }
            _ => {}
        }
        match conversation.turn(&line, args) {
            Ok(out) => eprint_line(&turn_stats(&out)),
            // A turn that cannot run is said, and the conversation goes on (at a terminal).
            Err(e) if interactive => eprint_line(&format!("error: {e:#}")),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn turn_stats(out: &GenerationOutput) -> String {
    let s = &out.stats;
    format!(
        "[{} tokens, stop: {:?} | prompt {} tokens, {} prefilled ({} reused from earlier turns) | {} forwards, {:.1} tokens/s | prefill {:.1} ms]",
        s.tokens_generated,
        out.stop_reason,
        out.prompt_len,
        out.prompt_len.saturating_sub(s.reused_prompt_tokens),
        s.reused_prompt_tokens,
        s.forwards,
        s.tokens_per_second(),
        s.prefill_time.as_secs_f64() * 1e3,
    )
}
