//! A mock OpenAI upstream the tests own: it records every request byte for byte and answers as
//! each test tells it to (JSON, SSE with pauses, errors, stalls, broken connections).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("upstream body is JSON")
    }
}

/// How the mock answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete answer with Content-Length.
    Json(u16, serde_json::Value),
    /// The same with extra headers.
    JsonWithHeaders(u16, Vec<(&'static str, String)>, serde_json::Value),
    /// Read the request, then wait until the client closes the connection (counted in
    /// [`MockUpstream::cancelled`]).
    StallUntilClosed,
    /// An SSE stream, chunked: each piece is written after its pause, then the terminating chunk.
    Sse(Vec<(Duration, Vec<u8>)>),
    /// An SSE stream that stops after these pieces without a terminating chunk, closing the
    /// connection (a truncated stream).
    SseTruncated(Vec<(Duration, Vec<u8>)>),
    /// Read the request, never answer.
    Stall,
    /// Send the header of an SSE stream, then nothing.
    StallAfterHeader,
    /// Close the connection without answering.
    Close,
    /// Raw bytes.
    Raw(Vec<u8>),
    /// Raw bytes, then the connection stays open (a keep-alive upstream).
    RawKeepOpen(Vec<u8>),
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A running mock upstream.
pub struct MockUpstream {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    cancelled: Arc<std::sync::atomic::AtomicUsize>,
    handler: Arc<Mutex<Handler>>,
}

impl MockUpstream {
    /// Starts a mock answering like OpenAI (see [`openai_like`]).
    pub async fn start() -> MockUpstream {
        Self::with_handler(openai_like).await
    }

    pub async fn with_handler(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Arc::new(handler)));
        let cancelled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (reqs, h, c) = (requests.clone(), handler.clone(), cancelled.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (reqs, h, c) = (reqs.clone(), h.clone(), c.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, reqs, h, c).await;
                });
            }
        });
        MockUpstream {
            port,
            requests,
            cancelled,
            handler,
        }
    }

    /// Replaces the answering function.
    pub fn set_handler(&self, handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("the upstream saw a request")
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Requests whose client closed the connection while the mock was stalling.
    pub fn cancelled(&self) -> usize {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn serve(
    mut stream: TcpStream,
    requests: Arc<Mutex<Vec<Recorded>>>,
    handler: Arc<Mutex<Handler>>,
    cancelled: Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Read one request (header + body).
        let (recorded, consumed) = loop {
            if let Some(done) = parse(&buf)? {
                break done;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..consumed);
        requests.lock().unwrap().push(recorded.clone());
        let h = handler.lock().unwrap().clone();
        match h(&recorded) {
            Reply::Json(status, body) => {
                let body = serde_json::to_vec(&body).unwrap();
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-upstream: mock\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body).await?;
            }
            Reply::JsonWithHeaders(status, headers, body) => {
                let body = serde_json::to_vec(&body).unwrap();
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body).await?;
            }
            Reply::StallUntilClosed => {
                let mut sink = [0u8; 1024];
                loop {
                    match stream.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                cancelled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return Ok(());
            }
            Reply::Sse(pieces) => {
                write_sse(&mut stream, pieces).await?;
                stream.write_all(b"0\r\n\r\n").await?;
            }
            Reply::SseTruncated(pieces) => {
                write_sse(&mut stream, pieces).await?;
                stream.flush().await?;
                return Ok(());
            }
            Reply::Stall => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Reply::StallAfterHeader => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await?;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Reply::Close => return Ok(()),
            Reply::RawKeepOpen(bytes) => {
                stream.write_all(&bytes).await?;
                stream.flush().await?;
            }
            Reply::Raw(bytes) => {
                stream.write_all(&bytes).await?;
                stream.flush().await?;
                return Ok(());
            }
        }
        stream.flush().await?;
    }
}

async fn write_sse(
    stream: &mut TcpStream,
    pieces: Vec<(Duration, Vec<u8>)>,
) -> std::io::Result<()> {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n")
        .await?;
    stream.flush().await?;
    for (pause, piece) in pieces {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        if piece.is_empty() {
            continue;
        }
        stream
            .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
            .await?;
        stream.write_all(&piece).await?;
        stream.write_all(b"\r\n").await?;
        stream.flush().await?;
    }
    Ok(())
}

/// Parses one complete request from `buf`: the request and the bytes it used.
fn parse(buf: &[u8]) -> std::io::Result<Option<(Recorded, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let rest = &buf[head_len..];
    let (body, used) = if let Some(len) = get("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other("bad length"))?;
        if rest.len() < len {
            return Ok(None);
        }
        (rest[..len].to_vec(), len)
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let Some(line_end) = find(&rest[pos..], b"\r\n") else {
                return Ok(None);
            };
            let size_text =
                std::str::from_utf8(&rest[pos..pos + line_end]).map_err(std::io::Error::other)?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(std::io::Error::other)?;
            pos += line_end + 2;
            if size == 0 {
                let Some(end) = find(&rest[pos..], b"\r\n") else {
                    return Ok(None);
                };
                pos += end + 2;
                break (body, pos);
            }
            if rest.len() < pos + size + 2 {
                return Ok(None);
            }
            body.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
    } else {
        (Vec::new(), 0)
    };
    Ok(Some((
        Recorded {
            method: req.method.unwrap_or("").to_owned(),
            path: req.path.unwrap_or("").to_owned(),
            headers,
            body,
        },
        head_len + used,
    )))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One SSE `data:` event.
pub fn event(json: serde_json::Value) -> Vec<u8> {
    format!("data: {json}\n\n").into_bytes()
}

/// The chunks of a streamed chat completion saying `words`.
pub fn chat_stream(model: &str, words: &[&str], pause: Duration) -> Vec<(Duration, Vec<u8>)> {
    let mut out = vec![(
        Duration::ZERO,
        event(serde_json::json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]
        })),
    )];
    for w in words {
        out.push((pause, event(serde_json::json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]
        }))));
    }
    out.push((
        Duration::ZERO,
        event(serde_json::json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]
        })),
    ));
    out.push((Duration::ZERO, b"data: [DONE]\n\n".to_vec()));
    out
}

/// Answers like OpenAI for every endpoint the gateway routes; the text says which model and
/// path it saw, so tests can check routing.
pub fn openai_like(req: &Recorded) -> Reply {
    let path = req.path.split('?').next().unwrap_or("");
    let body: serde_json::Value =
        serde_json::from_slice(&req.body).unwrap_or(serde_json::Value::Null);
    let model = body["model"].as_str().unwrap_or("unknown").to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let usage = serde_json::json!({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12});
    if path.ends_with("/chat/completions") {
        if stream {
            let mut pieces = chat_stream(&model, &["Hello", " from", " mock"], Duration::ZERO);
            if body["stream_options"]["include_usage"].as_bool() == Some(true) {
                let done = pieces.pop().expect("[DONE]");
                pieces.push((Duration::ZERO, event(serde_json::json!({
                    "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [], "usage": usage
                }))));
                pieces.push(done);
            }
            return Reply::Sse(pieces);
        }
        let has_tools = body.get("tools").is_some();
        let message = if has_tools {
            serde_json::json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
        } else {
            serde_json::json!({"role": "assistant", "content": format!("Hello from mock ({model})")})
        };
        return Reply::Json(
            200,
            serde_json::json!({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": if has_tools {"tool_calls"} else {"stop"}, "logprobs": null}],
                "usage": usage
            }),
        );
    }
    if path.ends_with("/completions") {
        return Reply::Json(
            200,
            serde_json::json!({
                "id": "cmpl-mock", "object": "text_completion", "created": 1, "model": model,
                "choices": [{"index": 0, "text": "Hello from mock", "finish_reason": "stop", "logprobs": null}],
                "usage": usage
            }),
        );
    }
    if path.ends_with("/embeddings") {
        return Reply::Json(
            200,
            serde_json::json!({
                "object": "list", "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "usage": {"prompt_tokens": 2, "total_tokens": 2}
            }),
        );
    }
    if path.ends_with("/responses") {
        let response = |status: &str, text: &str| {
            serde_json::json!({
                "id": "resp_mock", "object": "response", "created_at": 1, "status": status, "model": model,
                "output": if text.is_empty() { serde_json::json!([]) } else { serde_json::json!([{
                    "type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}]) },
                "usage": {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12,
                          "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
                "parallel_tool_calls": true, "tool_choice": "auto", "tools": []
            })
        };
        if stream {
            let mut pieces = vec![(Duration::ZERO, format!("event: response.created\ndata: {}\n\n",
                serde_json::json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress", "")})).into_bytes())];
            for (i, w) in ["Hello", " from", " mock"].iter().enumerate() {
                pieces.push((Duration::ZERO, format!("event: response.output_text.delta\ndata: {}\n\n", serde_json::json!({
                    "type": "response.output_text.delta", "sequence_number": i + 1, "item_id": "msg_1",
                    "output_index": 0, "content_index": 0, "delta": w, "logprobs": []})).into_bytes()));
            }
            pieces.push((Duration::ZERO, format!("event: response.completed\ndata: {}\n\n",
                serde_json::json!({"type": "response.completed", "sequence_number": 4, "response": response("completed", "Hello from mock")})).into_bytes()));
            return Reply::Sse(pieces);
        }
        return Reply::Json(
            200,
            response("completed", &format!("Hello from mock ({model})")),
        );
    }
    if path.contains("/audio/") {
        return Reply::Json(
            200,
            serde_json::json!({"text": format!("transcribed {} bytes", req.body.len())}),
        );
    }
    Reply::Json(
        200,
        serde_json::json!({"object": "list", "data": [], "path": path, "method": req.method}),
    )
}
