//! The HTTP side of `diffulex serve`: axum routes on a tokio runtime. Generation is blocking
//! work, so each completion runs on tokio's blocking threads and takes the one engine in turn;
//! a bounded count of requests may wait for it, past which a request gets 503 at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::api::{self, ApiError, CompletionRequest, Endpoint};
use super::Backend;

/// What the request handlers share: the engine, and how many requests hold a place for it.
pub(super) struct Shared {
    pub backend: Mutex<Backend>,
    /// `/v1/models`'s answer, ready without the engine.
    pub models: Value,
    pub waiting: AtomicUsize,
    /// Requests that may wait while one runs.
    pub queue: usize,
}

/// A place in the queue for the engine; dropping it frees the place.
struct QueueTicket(Arc<Shared>);

impl Drop for QueueTicket {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// A place in the queue, or the 503 for a full one.
    fn enter(self: &Arc<Self>) -> Result<QueueTicket, ApiError> {
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let ticket = QueueTicket(Arc::clone(self));
        if before <= self.queue {
            Ok(ticket)
        } else {
            Err(ApiError::status(
                503,
                format!(
                    "the server is busy: {} requests are waiting for the model (--queue); retry later",
                    self.queue
                ),
            ))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body())).into_response()
    }
}

/// Serves `shared` on `listener` until the process ends.
pub(super) fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) -> anyhow::Result<()> {
    use anyhow::Context;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async move {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = Router::new()
            .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(text))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            // The handlers bound the body themselves, with OpenAI's error shape.
            .layer(DefaultBodyLimit::disable())
            .with_state(shared);
        axum::serve(listener, app).await
    })?;
    Ok(())
}

async fn models(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.models.clone())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::status(
        404,
        format!(
            "no route {}: the server has /v1/chat/completions, /v1/completions, /v1/models and /health",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::status(405, format!("{method} is not allowed on {}", uri.path()))
}

async fn chat(state: State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    match read_body(&headers, body).await {
        Ok(bytes) => complete(state, Endpoint::Chat, bytes).await,
        Err(e) => e.into_response(),
    }
}

async fn text(state: State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    match read_body(&headers, body).await {
        Ok(bytes) => complete(state, Endpoint::Text, bytes).await,
        Err(e) => e.into_response(),
    }
}

/// The body, refused past [`api::MAX_BODY_BYTES`]: from `Content-Length` before a byte is
/// read (a client announcing a gigabyte gets its 413 at once), and while it is read.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::status(
            413,
            format!(
                "the request body is larger than {} bytes",
                api::MAX_BODY_BYTES
            ),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > api::MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, api::MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            // axum's error for a body past the limit (a chunked one: no Content-Length to check).
            if e.to_string().contains("length limit") {
                too_large()
            } else {
                ApiError::status(400, format!("cannot read the request body: {e}"))
            }
        })
}

fn lock(shared: &Shared) -> Result<std::sync::MutexGuard<'_, Backend>, ApiError> {
    shared
        .backend
        .lock()
        .map_err(|_| ApiError::status(500, "the engine failed earlier; restart the server"))
}

async fn complete(State(shared): State<Arc<Shared>>, endpoint: Endpoint, body: Bytes) -> Response {
    let parsed = match api::parse_request(endpoint, &body) {
        Ok(parsed) => parsed,
        Err(e) => return e.into_response(),
    };
    let ticket = match shared.enter() {
        Ok(ticket) => ticket,
        Err(e) => return e.into_response(),
    };
    if parsed.stream {
        stream(shared, parsed, ticket).await
    } else {
        let work = tokio::task::spawn_blocking(move || {
            let _ticket = ticket;
            let mut backend = lock(&shared)?;
            let who = backend.response_id(endpoint);
            let done = backend.complete(&parsed, &mut |_| true)?;
            Ok::<_, ApiError>(api::completion_body(
                endpoint,
                &who,
                &done.text,
                done.finish,
                done.usage,
                done.stats,
            ))
        });
        match work.await {
            Ok(Ok(body)) => Json(body).into_response(),
            Ok(Err(e)) => e.into_response(),
            Err(e) => ApiError::status(500, format!("generation failed: {e}")).into_response(),
        }
    }
}

/// Server-sent events, one per final block, then the finish chunk and `[DONE]`. A request that
/// cannot run gets its JSON error before any event; a client that goes away drops the stream,
/// which stops the generation at the next block.
async fn stream(shared: Arc<Shared>, parsed: CompletionRequest, ticket: QueueTicket) -> Response {
    let (events, mut receiver) = tokio::sync::mpsc::channel::<String>(64);
    let (ready, started) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    tokio::task::spawn_blocking(move || {
        let _ticket = ticket;
        let mut backend = match lock(&shared) {
            Ok(backend) => backend,
            Err(e) => return drop(ready.send(Err(e))),
        };
        let prepared = match backend.prepare(&parsed) {
            Ok(prepared) => prepared,
            Err(e) => return drop(ready.send(Err(e))),
        };
        if ready.send(Ok(())).is_err() {
            return;
        }
        let who = backend.response_id(parsed.endpoint);
        let send = |line: String| events.blocking_send(format!("data: {line}\n\n")).is_ok();
        let result = backend.run(prepared, &mut |piece| {
            send(api::chunk_body(parsed.endpoint, &who, Some(piece), None).to_string())
        });
        let last = match result {
            Ok(done) => api::chunk_body(parsed.endpoint, &who, None, Some(done.finish)),
            Err(e) => e.body(),
        };
        if send(last.to_string()) {
            send("[DONE]".to_string());
        }
    });
    match started.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return e.into_response(),
        Err(_) => return ApiError::status(500, "generation failed to start").into_response(),
    }
    let body = futures_util::stream::poll_fn(move |context| {
        receiver
            .poll_recv(context)
            .map(|event| event.map(Ok::<_, std::convert::Infallible>))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
