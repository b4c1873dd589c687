//! `diffulex serve` from a client's side: a real server process on a free port, spoken to over
//! TCP as an OpenAI client would. Its answers must be `diffulex generate`'s (whose tokens the
//! Python reference goldens pin), streamed or not, and bad requests must get OpenAI-shaped
//! errors naming the field while the server keeps serving.
#![cfg(all(feature = "cli", feature = "pte"))]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .args(["serve", "--port", "0"])
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start diffulex serve");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server { child, address }
}

/// One request on its own connection: (status, body with chunked framing removed).
fn request(server: &Server, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.address).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, mut payload) = raw.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = String::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        loop {
            let (size, rest) = payload.split_once("\r\n").unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            body.push_str(&rest[..size]);
            payload = &rest[size + 2..];
        }
    } else {
        body = payload.to_string();
    }
    (status, body)
}

fn post(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = request(server, "POST", path, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// What `diffulex generate` answers.
fn generate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .args(["generate", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["text"].as_str().unwrap().to_string()
}

#[test]
fn answers_as_generate_does_streamed_or_not() {
    let server = start(&[]);
    let (status, health) = request(&server, "GET", "/health", "");
    assert_eq!((status, health.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, models) = request(&server, "GET", "/v1/models", "");
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["family"], "sdar");
    for prompt in ["12+34=", "905+88=", "7+8="] {
        let want = generate(&["--chat", "--prompt", prompt]);
        let messages = json!([{ "role": "user", "content": prompt }]);
        let (status, v) = post(
            &server,
            "/v1/chat/completions",
            &json!({ "messages": messages }),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            want.as_str(),
            "{prompt}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
        // The same answer as server-sent events, ending with [DONE].
        let body = json!({ "messages": messages, "stream": true }).to_string();
        let (status, events) = request(&server, "POST", "/v1/chat/completions", &body);
        assert_eq!(status, 200);
        let data: Vec<&str> = events
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .collect();
        assert_eq!(data.last(), Some(&"[DONE]"), "{events}");
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let streamed: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(streamed, want, "{prompt}");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
        // The raw completion endpoint takes the text as it is.
        let want = generate(&["--prompt", prompt]);
        let (status, v) = post(&server, "/v1/completions", &json!({ "prompt": prompt }));
        assert_eq!(status, 200);
        assert_eq!(v["choices"][0]["text"], want.as_str());
    }
    // max_tokens and stop strings end the answer early, with OpenAI's finish reasons.
    let (_, v) = post(
        &server,
        "/v1/completions",
        &json!({ "prompt": "905+88=", "max_tokens": 1 }),
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 1);
    let full = generate(&["--prompt", "905+88="]);
    let stop = &full[1..2];
    let (_, v) = post(
        &server,
        "/v1/completions",
        &json!({ "prompt": "905+88=", "stop": stop }),
    );
    assert_eq!(v["choices"][0]["text"], &full[..full.find(stop).unwrap()]);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let server = start(&[]);
    let user = json!([{ "role": "user", "content": "1+1=" }]);
    for (body, status, param) in [
        (json!({}), 400, Some("messages")),
        (json!({ "messages": "hi" }), 400, Some("messages")),
        (
            json!({ "messages": user, "max_tokens": 100000 }),
            400,
            Some("max_tokens"),
        ),
        (
            json!({ "messages": user, "temperature": -1 }),
            400,
            Some("temperature"),
        ),
        (json!({ "messages": user, "n": 3 }), 400, Some("n")),
        (
            json!({ "messages": [{ "role": "user", "content": "9".repeat(5000) }] }),
            400,
            Some("messages"),
        ),
        (
            json!({ "messages": user, "cfg_scale": 2, "top_k": 5 }),
            400,
            None,
        ),
    ] {
        let (got, v) = post(&server, "/v1/chat/completions", &body);
        assert_eq!(got, status, "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}: {v}");
        assert_eq!(v["error"]["param"].as_str(), param, "{body}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, text) = request(&server, "POST", "/v1/chat/completions", "{not json");
    assert_eq!(status, 400, "{text}");
    assert_eq!(request(&server, "GET", "/nowhere", "").0, 404);
    assert_eq!(request(&server, "DELETE", "/health", "").0, 405);
    // A body announced as too large is refused before it is read.
    let mut stream = TcpStream::connect(&server.address).unwrap();
    write!(stream, "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // Still serving.
    let (status, v) = post(
        &server,
        "/v1/chat/completions",
        &json!({ "messages": user }),
    );
    assert_eq!(status, 200, "{v}");
}

#[test]
fn a_port_in_use_is_one_error_line() {
    let server = start(&[]);
    let port = server.address.rsplit(':').next().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_diffulex"))
        .args(["serve", "--port", port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains("--port"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Past `--queue` waiting requests, a completion request gets 503 at once, with OpenAI's error
/// shape, instead of waiting without bound; health checks still answer; and the server goes on.
/// Eight clients at once against `--queue 0` on a model whose answers take a few hundred
/// forwards: one runs, the others that arrive meanwhile are turned away.
#[test]
fn a_full_queue_is_503_not_an_unbounded_wait() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let model = format!("{fixtures}/pte/llada.pte");
    let tokenizer = format!("{fixtures}/ckpt/llada/tokenizer.json");
    let server = start(&["--model", &model, "--tokenizer", &tokenizer, "--queue", "0"]);
    let body = json!({ "prompt": "the cat sat on", "max_tokens": 192, "steps": 192 });
    let statuses: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| post(&server, "/v1/completions", &body)))
            .collect();
        // Health is not queued behind generation.
        assert_eq!(request(&server, "GET", "/health", "").0, 200);
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let busy: Vec<&Value> = statuses
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(ok + busy.len(), 8, "{statuses:?}");
    assert!(ok >= 1 && !busy.is_empty(), "{statuses:?}");
    for v in busy {
        assert_eq!(v["error"]["type"], "server_overloaded", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("--queue"),
            "{v}"
        );
    }
    assert_eq!(post(&server, "/v1/completions", &body).0, 200);
}
