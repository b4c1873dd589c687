//! `diffulex serve`: the model behind a local OpenAI-compatible HTTP API
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`), streamed as server-sent
//! events when asked. One model, one engine: requests take turns on it, while health and model
//! queries answer at once from other threads.

mod api;
mod stop;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
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
use stop::StopFilter;

use crate::block_text::BlockText;
use crate::chat_args::TemplateArgs;
use crate::limits::LengthArgs;
use crate::output::eprint_line;
use crate::sampling::DecodeArgs;
use crate::session::{ModelArgs, Session, SessionOptions};

/// Most threads taking requests (generation itself runs one at a time).
const MAX_REQUEST_THREADS: usize = 64;

/// What the request threads share: the engine, and how many requests wait for it.
struct Shared {
    backend: Mutex<Backend>,
    /// `/v1/models`'s answer, ready without the engine.
    models: Value,
    waiting: AtomicUsize,
    queue: usize,
}

/// A place in the queue for the engine; leaving it (by drop) frees it.
struct QueueTicket<'a>(&'a AtomicUsize);

impl Drop for QueueTicket<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// A place in the queue, or `None` when `queue` requests already wait or run.
    fn enter(&self) -> Option<QueueTicket<'_>> {
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let ticket = QueueTicket(&self.waiting);
        (before <= self.queue).then_some(ticket)
    }
}

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
    let server = tiny_http::Server::http((args.host.as_str(), args.port)).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}:{}: {e} (is the port in use? pass --port N, or 0 for any)",
            args.host,
            args.port
        )
    })?;
    let address = server
        .server_addr()
        .to_ip()
        .map_or_else(|| "?".to_string(), |a| a.to_string());
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
    let server = Arc::new(server);
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
    // One thread per request that may wait, one generating, and one for health checks.
    let threads = args.queue.saturating_add(2).min(MAX_REQUEST_THREADS);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    handle(request, &shared);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

/// A JSON response that closes its connection. tiny_http serves each connection on a pooled
/// thread for as long as it stays open, and its pool hands a new connection to a busy thread when
/// several arrive at once; with clients that keep connections alive (the openai package does),
/// such a connection waited until another closed (found by tools/serve_load.py: 2 of 8
/// simultaneous first requests hung). One request per connection keeps every thread free.
fn json_response(status: u16, body: &Value) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let header = |name: &str, value: &str| {
        tiny_http::Header::from_bytes(name, value).expect("a valid static header")
    };
    tiny_http::Response::from_data(body.to_string().into_bytes())
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Connection", "close"))
}

/// Answers one request; failures to write go nowhere (the client is gone).
fn handle(mut request: tiny_http::Request, shared: &Shared) {
    let backend = &shared.backend;
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let method = request.method().clone();
    let endpoint = match path.as_str() {
        "/v1/chat/completions" => Some(Endpoint::Chat),
        "/v1/completions" => Some(Endpoint::Text),
        _ => None,
    };
    let reply = |request: tiny_http::Request, status: u16, body: Value| {
        let _ = request.respond(json_response(status, &body));
    };
    match (&method, path.as_str(), endpoint) {
        (tiny_http::Method::Get, "/health", _) => reply(request, 200, json!({ "status": "ok" })),
        (tiny_http::Method::Get, "/v1/models", _) => reply(request, 200, shared.models.clone()),
        (tiny_http::Method::Post, _, Some(endpoint)) => {
            let body = match read_body(&mut request) {
                Ok(body) => body,
                Err(e) => return reply(request, e.status, e.body()),
            };
            let parsed = match api::parse_request(endpoint, &body) {
                Ok(parsed) => parsed,
                Err(e) => return reply(request, e.status, e.body()),
            };
            let Some(_ticket) = shared.enter() else {
                let e = ApiError::status(
                    503,
                    format!(
                        "the server is busy: {} requests are waiting for the model (--queue); retry later",
                        shared.queue
                    ),
                );
                return reply(request, e.status, e.body());
            };
            let Ok(mut backend) = backend.lock() else {
                let e = ApiError::status(500, "the engine failed earlier; restart the server");
                return reply(request, e.status, e.body());
            };
            if parsed.stream {
                stream(request, &mut backend, &parsed);
            } else {
                let who = backend.response_id(endpoint);
                match backend.complete(&parsed, &mut |_| true) {
                    Ok(done) => reply(
                        request,
                        200,
                        api::completion_body(
                            endpoint,
                            &who,
                            &done.text,
                            done.finish,
                            done.usage,
                            done.stats,
                        ),
                    ),
                    Err(e) => reply(request, e.status, e.body()),
                }
            }
        }
        (_, "/health" | "/v1/models" | "/v1/chat/completions" | "/v1/completions", _) => {
            let e = ApiError::status(405, format!("{method} is not allowed on {path}"));
            reply(request, e.status, e.body())
        }
        _ => {
            let e = ApiError::status(
                404,
                format!("no route {path}: the server has /v1/chat/completions, /v1/completions, /v1/models and /health"),
            );
            reply(request, e.status, e.body())
        }
    }
}

/// The body, refused past [`api::MAX_BODY_BYTES`] before and while it is read.
fn read_body(request: &mut tiny_http::Request) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::status(
            413,
            format!(
                "the request body is larger than {} bytes",
                api::MAX_BODY_BYTES
            ),
        )
    };
    if request
        .body_length()
        .is_some_and(|n| n > api::MAX_BODY_BYTES)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(api::MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::status(400, format!("cannot read the request body: {e}")))?;
    if body.len() > api::MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(body)
}

/// Streams a completion as server-sent events on the raw connection (`Connection: close`
/// ends the stream). A request that cannot run gets its error before any event; a client that
/// goes away stops the generation at the next block.
fn stream(request: tiny_http::Request, backend: &mut Backend, parsed: &CompletionRequest) {
    let prepared = match backend.prepare(parsed) {
        Ok(prepared) => prepared,
        Err(e) => {
            let _ = request.respond(json_response(e.status, &e.body()));
            return;
        }
    };
    let who = backend.response_id(parsed.endpoint);
    let mut writer = request.into_writer();
    // Chunked framing ends the response clearly for every client, and `Connection: close` lets
    // the client close the connection after it (the server keeps no stream half-open).
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let mut alive = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.flush())
        .is_ok();
    let send = |writer: &mut Box<dyn Write + Send>, line: &str| -> bool {
        let event = format!("data: {line}\n\n");
        writer
            .write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
            .and_then(|()| writer.flush())
            .is_ok()
    };
    let result = backend.run(prepared, &mut |piece| {
        alive = alive
            && send(
                &mut writer,
                &api::chunk_body(parsed.endpoint, &who, Some(piece), None).to_string(),
            );
        alive
    });
    if !alive {
        return;
    }
    let last = match result {
        Ok(done) => api::chunk_body(parsed.endpoint, &who, None, Some(done.finish)),
        Err(e) => e.body(),
    };
    if send(&mut writer, &last.to_string()) && send(&mut writer, "[DONE]") {
        let _ = writer.write_all(b"0\r\n\r\n").and_then(|()| writer.flush());
    }
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
