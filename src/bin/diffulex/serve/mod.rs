//! `diffulex serve`: the model behind a local OpenAI-compatible HTTP API
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`), streamed as server-sent
//! events when asked. One model, one engine: requests take turns on it, while health and model
//! queries answer at once from other threads.

mod api;
mod http;
mod stop;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Args;
use diffulex_edge::runtime::sampler::{BlockSampler, SamplerOptions};
use diffulex_edge::runtime::{
    BlockEvent, Control, DiffusionEngine, DiffusionGenerationConfig, GenerationObserver, StopReason,
};
use diffulex_edge::text::{
    encode_chat, encode_prompt, ChatOptions, ChatTemplate, PromptOptions, TextTokenizer,
};
use serde_json::{json, Value};

use api::{ApiError, CompletionRequest, Endpoint, ResponseId, Usage};
use http::Shared;
use stop::StopFilter;

use crate::block_text::BlockText;
use crate::chat_args::TemplateArgs;
use crate::limits::LengthArgs;
use crate::output::eprint_line;
use crate::sampling::DecodeArgs;
use crate::session::{ModelArgs, Session, SessionOptions};

/// Flags of `diffulex serve`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  diffulex serve                                          # bundled model on 127.0.0.1:8080
  diffulex serve --model sdar.pte --port 9000 --threshold 0.9
  curl -s localhost:8080/v1/chat/completions -d '{\"messages\": [{\"role\": \"user\", \"content\": \"12+34=\"}]}'")]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Name of the model in responses and /v1/models (default: the file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Completion requests that may wait for the engine while it answers another; past this a
    /// request gets 503 at once (retry later) instead of queueing without bound.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub queue: usize,
    #[command(flatten)]
    pub template: TemplateArgs,
    #[command(flatten)]
    pub lengths: LengthArgs,
    /// Decoding defaults; a request's temperature, top_p, top_k, steps and threshold override them.
    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// What answers requests: the engine and everything around it.
struct Backend {
    engine: DiffusionEngine,
    tokenizer: TextTokenizer,
    template: Option<ChatTemplate>,
    template_kwargs: ChatOptions,
    defaults: SamplerOptions,
    default_max_tokens: Option<usize>,
    name: String,
    next_id: u64,
}

/// One finished completion.
struct Completion {
    text: String,
    finish: &'static str,
    usage: Usage,
    stats: Value,
}

/// Runs `diffulex serve`.
pub fn run(args: &ServeArgs) -> Result<()> {
    let session = Session::open(
        &args.model,
        &SessionOptions {
            max_seq_len: args.lengths.max_seq_len,
            ..Default::default()
        },
    )?;
    let template = match args
        .template
        .template(session.embedded_template.clone(), session.tokenizer_dir())
    {
        Ok(template) => Some(template),
        // Without a template the chat endpoint refuses requests; /v1/completions still works.
        Err(e) => {
            eprint_line(&format!(
                "warning: no chat template ({e:#}); /v1/chat/completions will refuse requests"
            ));
            None
        }
    };
    let template_kwargs = args.template.options()?;
    let defaults = SamplerOptions::from(&args.decode);
    // Refuse server-wide flags the family cannot use now, not on every request.
    args.decode.sampler_for(session.engine.family())?;
    let name = args.name.clone().unwrap_or_else(|| session.model_name());
    let listener = std::net::TcpListener::bind((args.host.as_str(), args.port)).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}:{}: {e} (is the port in use? pass --port N, or 0 for any)",
            args.host,
            args.port
        )
    })?;
    let address = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let backend = Backend {
        tokenizer: session.tokenizer,
        // A client continuing a conversation resends it whole: only the new turn is prefilled,
        // with the tokens of a fresh run (tests/kv_reuse.rs).
        engine: session.engine.with_kv_reuse(true),
        template,
        template_kwargs,
        defaults,
        default_max_tokens: args.lengths.max_new_tokens,
        name,
        next_id: 0,
    };
    eprint_line(&format!(
        "diffulex serve: {} ({}, context {}) on http://{address}/v1",
        backend.name,
        backend.engine.family().name(),
        backend.engine.context_limit()
    ));
    let models = json!({ "object": "list", "data": [{
        "id": backend.name, "object": "model", "owned_by": "diffulex",
        "family": backend.engine.family().name(), "max_seq_len": backend.engine.context_limit(),
    }]});
    let shared = Arc::new(Shared {
        backend: Mutex::new(backend),
        models,
        waiting: AtomicUsize::new(0),
        queue: args.queue,
    });
    http::serve(listener, shared)
}

/// A request ready to run: prompt ids and generation settings, all checked.
struct Prepared {
    prompt: Vec<i64>,
    config: DiffusionGenerationConfig,
    stop: Vec<String>,
}

impl Backend {
    fn response_id(&mut self, endpoint: Endpoint) -> ResponseId {
        self.next_id += 1;
        ResponseId {
            id: match endpoint {
                Endpoint::Chat => format!("chatcmpl-{}", self.next_id),
                Endpoint::Text => format!("cmpl-{}", self.next_id),
            },
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: self.name.clone(),
        }
    }

    /// Generates the answer to `request`; see [`Backend::run`].
    fn complete(
        &mut self,
        request: &CompletionRequest,
        sink: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, ApiError> {
        let prepared = self.prepare(request)?;
        self.run(prepared, sink)
    }

    /// Checks and tokenizes `request`: everything that can be refused is refused here, before
    /// a stream starts.
    fn prepare(&mut self, request: &CompletionRequest) -> Result<Prepared, ApiError> {
        let family = self.engine.family();
        let options = PromptOptions {
            max_seq_len: self.engine.context_limit(),
            chat: None,
            raw_special_tokens: false,
        };
        let prompt = match request.endpoint {
            Endpoint::Chat => {
                let template = self.template.as_ref().ok_or_else(|| {
                    ApiError::status(400, "the model has no chat template: use /v1/completions, or start the server with --chat-template FILE")
                })?;
                let mut chat = self.template_kwargs.clone();
                chat.kwargs.extend(request.chat_template_kwargs.clone());
                encode_chat(&self.tokenizer, template, &request.messages, &chat, &options)
            }
            Endpoint::Text => {
                let text = request.messages.first().map_or("", |m| m.content.as_str());
                encode_prompt(&self.tokenizer, text, &options)
            }
        }
        .map_err(|e| ApiError::invalid(if request.endpoint == Endpoint::Chat { "messages" } else { "prompt" }, e.to_string()))?;
        let prompt = prompt.ids;
        if prompt.is_empty() {
            return Err(ApiError::status(400, "the prompt tokenizes to nothing"));
        }
        let room = self.engine.room_after(prompt.len());
        let wanted = request
            .max_tokens
            .or(self.default_max_tokens)
            .unwrap_or(room);
        let max_new_tokens = self
            .engine
            .max_new_tokens_for(prompt.len(), wanted)
            .map_err(|e| ApiError::invalid("max_tokens", e.to_string()))?;
        // The request's settings over the server's flags.
        let defaults = &self.defaults;
        let sampler_options = SamplerOptions {
            temperature: request.temperature.or(defaults.temperature),
            top_p: request.top_p.or(defaults.top_p),
            top_k: request.top_k.or(defaults.top_k),
            steps: request.steps.or(defaults.steps),
            threshold: request.threshold.or(defaults.threshold),
            block_size: request.block_length.or(defaults.block_size),
            ..defaults.clone()
        };
        let sampler = BlockSampler::from_options(family, &sampler_options)
            .map_err(|e| ApiError::status(400, e.to_string()))?;
        let config = DiffusionGenerationConfig {
            max_new_tokens,
            seed: request.seed.unwrap_or(0),
            sampler: Some(sampler),
            ..Default::default()
        };
        Ok(Prepared {
            prompt,
            config,
            stop: request.stop.clone(),
        })
    }

    /// Runs a prepared request, passing text to `sink` as blocks are final (`sink` returning
    /// false stops the generation).
    fn run(
        &mut self,
        prepared: Prepared,
        sink: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, ApiError> {
        let Prepared {
            prompt,
            config,
            stop,
        } = prepared;
        let mut observer = TextObserver {
            tokenizer: &self.tokenizer,
            blocks: BlockText::new(self.engine.metadata().eos_ids.clone()),
            stops: StopFilter::new(stop),
            text: String::new(),
            sink,
            client_gone: false,
            error: None,
        };
        let out = self
            .engine
            .generate_with(&prompt, &config, &mut observer)
            .map_err(|e| ApiError::status(500, format!("generation failed: {e}")))?;
        if let Some(e) = observer.error {
            return Err(ApiError::status(500, e));
        }
        if !observer.stops.stopped() {
            let rest = observer
                .blocks
                .finish(&self.tokenizer)
                .map_err(|e| ApiError::status(500, e.to_string()))?;
            let released = observer.stops.push(&rest) + &observer.stops.finish();
            observer.release(&released);
        }
        let finish = api::finish_reason(
            out.stop_reason == StopReason::MaxNewTokens && !observer.stops.stopped(),
        );
        Ok(Completion {
            text: observer.text,
            finish,
            usage: Usage {
                prompt: prompt.len(),
                completion: out.tokens.len(),
            },
            stats: serde_json::to_value(&out.stats).unwrap_or(Value::Null),
        })
    }
}

/// Turns final blocks into text pieces for the sink, through the stop strings.
struct TextObserver<'a> {
    tokenizer: &'a TextTokenizer,
    blocks: BlockText,
    stops: StopFilter,
    text: String,
    sink: &'a mut dyn FnMut(&str) -> bool,
    client_gone: bool,
    error: Option<String>,
}

impl TextObserver<'_> {
    fn release(&mut self, piece: &str) {
        if piece.is_empty() {
            return;
        }
        self.text.push_str(piece);
        if !self.client_gone && !(self.sink)(piece) {
            self.client_gone = true;
        }
    }
}

impl GenerationObserver for TextObserver<'_> {
    fn on_block(&mut self, event: &BlockEvent<'_>) -> Control {
        match self.blocks.push(self.tokenizer, event.tokens) {
            Ok(piece) => {
                let released = self.stops.push(&piece);
                self.release(&released);
            }
            Err(e) => self.error = Some(e.to_string()),
        }
        if self.stops.stopped() || self.client_gone || self.error.is_some() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}
