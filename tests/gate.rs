//! End to end: deny by default at the gate. Paths are canonical before they are routed, the
//! client's key never leaves, query strings are inspected and never logged, a body the JSON
//! tree refuses still pays its budget, and the bytes buffered at once are bounded.

mod common;

use std::time::Duration;

use common::mock::{chat_stream, event, MockUpstream, Recorded, Reply};
use common::{client, expect_error, free_port, metrics_when, GatewayProcess};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "vg-gate-0123456789abcdef";

/// Secrets are assembled at run time so this file holds no literal token.
fn github_token() -> String {
    format!("ghp_{}", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d")
}

/// A `paths:` route, a route to an upstream that is down, and a model route; keys required.
fn config(upstream: &str) -> String {
    format!(
        r#"environment: test
upstreams:
  u: {{url: {upstream}}}
  down: {{url: "http://127.0.0.1:{down}/v1"}}
routes:
  - paths: [/v1/files]
    upstream: u
  - paths: [/v1/batches]
    upstream: down
  - paths: [/v1/uploads]
    upstream: u
    redaction: {{actions: {{github_token: block}}}}
  - paths: [/v1/vector_stores]
    upstream: u
    redaction: {{request: {{secrets: off, pii: off}}}}
  - models: ["*"]
    upstream: u
keys:
  - name: app
    key: {KEY}
"#,
        down = free_port()
    )
}

/// Sends `request` as is on a new connection and reads the answer until the gateway closes
/// it: the status and the whole answer text.
async fn raw(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn post(target: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {target} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The JSON error object of a raw answer.
fn error_of(answer: &str) -> serde_json::Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer}"));
    v["error"].clone()
}

#[tokio::test]
async fn paths_that_are_not_canonical_are_refused_before_routing() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let chat = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let targets: Vec<Vec<u8>> = [
        "/v1/files/../chat/completions",
        "/v1/files/%2e%2e/chat/completions",
        "/v1/files/%2E%2E/chat/completions",
        "/v1/files/..%2fchat/completions",
        "/v1/files/..%2Fchat/completions",
        "/v1/files/..\\chat/completions",
        "/v1/files/..%5cchat/completions",
        "/v1/files/./abc",
        "/v1/./chat/completions",
        "/v1//chat/completions",
        "/v1/files//abc",
        "/v1/files/abc%00",
    ]
    .iter()
    .map(|t| t.as_bytes().to_vec())
    .chain([b"/v1/files/abc\0x".to_vec()])
    .collect();
    for target in targets {
        let shown = String::from_utf8_lossy(&target).into_owned();
        let mut request = b"POST ".to_vec();
        request.extend_from_slice(&target);
        request.extend_from_slice(&post("", chat)[5..]);
        let (status, answer) = raw(gw.port, &request).await;
        assert_eq!(status, 400, "{shown:?}: {answer}");
        let err = error_of(&answer);
        assert_eq!(err["code"], "invalid_path", "{shown:?}: {answer}");
        assert_eq!(err["type"], "invalid_request_error");
        assert!(err["param"].is_null());
        assert!(err["message"].as_str().unwrap().contains("path"));
    }
    assert_eq!(up.count(), 0, "the upstream saw {:?}", up.requests());

    // A literal NUL never reaches the gateway as such: Pingora percent-encodes the bytes
    // httparse refuses in a request line, and the `%00` is refused.
    let mut request = b"POST /v1/files/abc\0x".to_vec();
    request.extend_from_slice(&post("", chat)[5..]);
    let (status, answer) = raw(gw.port, &request).await;
    assert_eq!(status, 400, "{answer}");
    assert!(error_of(&answer)["message"]
        .as_str()
        .unwrap()
        .contains("NUL"));

    // Pingora decodes and resolves nothing before the gateway sees a path: a canonical path
    // with percent-encoding reaches the upstream byte for byte.
    let (status, answer) = raw(gw.port, &post("/v1/files/a%20b%2Bc%41", "{}")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(up.last().path, "/v1/files/a%20b%2Bc%41");

    // Canonical paths still work, on both kinds of route.
    let (status, answer) = raw(gw.port, &post("/v1/chat/completions", chat)).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = raw(gw.port, &post("/v1/files/abc", "{}")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(up.last().path, "/v1/files/abc");
}

/// Asserts that nothing the upstream received holds the key.
fn assert_no_key(r: &Recorded) {
    assert!(!r.path.contains(KEY), "path {}", r.path);
    for (name, value) in &r.headers {
        assert!(!value.contains(KEY), "header {name}: {value}");
    }
    assert!(!String::from_utf8_lossy(&r.body).contains(KEY));
}

#[tokio::test]
async fn the_presented_key_never_leaves_from_any_header_or_parameter() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    // (header carrying the key, the value) × model route and paths: route.
    let carriers = [
        ("x-api-key", KEY.to_owned()),
        ("api-key", KEY.to_owned()),
        ("authorization", format!("Bearer {KEY}")),
    ];
    for (header, value) in &carriers {
        for query in [
            format!("?api-key={KEY}&keep=1"),
            format!("?api_key={KEY}&keep=1"),
            format!("?key={KEY}&keep=1"),
            format!("?token={KEY}&keep=1"),
            format!("?keep=1&x-api-key={KEY}"),
        ] {
            let resp = client()
                .post(gw.url(&format!("/v1/chat/completions{query}")))
                .header(*header, value)
                .header("x-copy", format!("copied {KEY}"))
                .json(&chat)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{header} {query}");
            let seen = up.last();
            assert_no_key(&seen);
            assert_eq!(seen.path, "/v1/chat/completions?keep=1");

            let resp = client()
                .get(gw.url(&format!("/v1/files{query}")))
                .header(*header, value)
                .header("x-copy", format!("copied {KEY}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{header} {query}");
            let seen = up.last();
            assert_no_key(&seen);
            assert_eq!(seen.path, "/v1/files?keep=1");
        }
    }
    // The key only in the query is not a key: refused, and nothing left.
    let resp = client()
        .get(gw.url(&format!("/v1/files?api-key={KEY}")))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(resp, 401).await["code"], "invalid_api_key");
    assert!(!gw.logs().contains(KEY));
}

#[tokio::test]
async fn secrets_in_query_strings_are_redacted_and_never_logged() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let token = github_token();
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});

    // A model route, the secret plain and percent-encoded behind other text.
    let resp = client()
        .post(gw.url(&format!(
            "/v1/chat/completions?note={token}&glued=token%3D{}&plain=a+b",
            token.replace('_', "%5F")
        )))
        .bearer_auth(KEY)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    let decoded = percent_decode(&seen.path);
    assert!(!decoded.contains(&token), "{}", seen.path);
    assert!(seen.path.contains("note="), "{}", seen.path);
    assert!(
        seen.path.ends_with("&plain=a+b"),
        "unchanged pairs stay: {}",
        seen.path
    );

    // A paths: route.
    let resp = client()
        .get(gw.url(&format!("/v1/files?purpose={token}")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert!(
        !percent_decode(&seen.path).contains(&token),
        "{}",
        seen.path
    );
    assert!(seen.path.starts_with("/v1/files?purpose="), "{}", seen.path);

    // A blocking detector refuses the request; a route that does not redact requests
    // forwards the query as it came (less any key).
    let before = up.count();
    let resp = client()
        .get(gw.url(&format!("/v1/uploads?purpose={token}")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(resp, 400).await["code"], "content_blocked");
    assert_eq!(up.count(), before);
    let resp = client()
        .get(gw.url("/v1/vector_stores?q=%ff+x&key=k"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().path, "/v1/vector_stores?q=%ff+x");

    // A query that is not UTF-8 cannot be inspected: refused.
    let resp = client()
        .get(gw.url("/v1/files?purpose=%ff%fe"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(resp, 400).await["code"], "invalid_query");

    // The error line of an upstream that is down shows no query string.
    let marker = "q-marker-4242";
    let resp = client()
        .get(gw.url(&format!("/v1/batches?{marker}={token}")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert!(
        gw.wait_for_log("failed (connect)", Duration::from_secs(5))
            .await
    );
    let logs = gw.logs();
    assert!(!logs.contains(marker), "{logs}");
    assert!(!logs.contains(&token), "{logs}");
    assert!(!logs.contains("note="), "{logs}");
    assert!(!logs.contains("purpose="), "{logs}");
}

fn percent_decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers streams (with a usage chunk when asked for it) and JSON, reading the body as text:
/// the bodies here are ones a JSON tree refuses. Every answer uses 50 tokens.
fn usage_upstream(req: &Recorded) -> Reply {
    let body = String::from_utf8_lossy(&req.body);
    let usage = json!({"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50});
    if body.contains(r#""stream":true"#) {
        let mut pieces = chat_stream("m", &["Hello", " there"], Duration::ZERO);
        if body.contains(r#""include_usage":true"#) {
            let done = pieces.pop().expect("[DONE]");
            pieces.push((
                Duration::ZERO,
                event(
                    json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
                    "model": "m", "choices": [], "usage": usage}),
                ),
            ));
            pieces.push(done);
        }
        return Reply::Sse(pieces);
    }
    Reply::Json(
        200,
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": usage}),
    )
}

#[tokio::test]
async fn a_stream_the_json_tree_refuses_is_charged_its_real_usage() {
    let up = MockUpstream::with_handler(usage_upstream).await;
    let keys: String = ["plain", "surrogate", "huge"]
        .iter()
        .map(|k| {
            format!("  - {{name: {k}, key: vk-{k}-key, limits: {{tokens_per_minute: 300}}}}\n")
        })
        .collect();
    let gw = GatewayProcess::start(&format!(
        "environment: test\nupstreams:\n  u: {{url: {}}}\nredaction:\n  request: {{secrets: off, pii: off}}\n  response: {{secrets: off, pii: off}}\nroutes:\n  - models: [\"*\"]\n    upstream: u\n  - paths: [/v1/files]\n    upstream: u\nkeys:\n{keys}  - {{name: counted, key: vk-counted-key, limits: {{requests_per_minute: 2}}}}\n",
        up.url()
    ))
    .await;
    let bodies = [
        (
            "plain",
            r#"{"model":"m","stream":true,"user":"u","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            "surrogate",
            r#"{"model":"m","stream":true,"user":"\ud800","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            "huge",
            r#"{"model":"m","stream":true,"logit_bias":{"50256":1e400},"messages":[{"role":"user","content":"hi"}]}"#,
        ),
    ];
    for (key, body) in bodies {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(format!("vk-{key}-key"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{key}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("[DONE]"), "{key}: {text}");
        assert!(
            !text.contains("\"usage\""),
            "{key}: the injected usage is hidden: {text}"
        );
        let sent = String::from_utf8_lossy(&up.last().body).into_owned();
        assert!(sent.contains(r#""include_usage":true"#), "{key}: {sent}");
    }
    // The reconcile runs once each answer has ended.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut remaining = Vec::new();
    for (key, _) in bodies {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(format!("vk-{key}-key"))
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{key}");
        let left: i64 = resp.headers()["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        remaining.push(left);
    }
    // Each stream was charged its 50 reported tokens, the unreadable ones too (a stream
    // charged nothing, or only its text, would leave ~40 more).
    for (i, (key, _)) in bodies.iter().enumerate() {
        assert!(
            (remaining[i] - remaining[0]).abs() <= 3,
            "{key}: {remaining:?}"
        );
        assert!(remaining[i] <= 300 - 50, "{key}: {remaining:?}");
    }

    // A paths: route counts requests against the key's request budget.
    for expected in [200, 200, 429] {
        let resp = client()
            .get(gw.url("/v1/files"))
            .bearer_auth("vk-counted-key")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected);
    }
}

/// A chat request body of exactly `len` bytes.
fn chat_body(len: usize) -> Vec<u8> {
    let head = r#"{"model":"m","messages":[{"role":"user","content":""#;
    let tail = r#""}]}"#;
    let mut body = head.as_bytes().to_vec();
    body.resize(len - tail.len(), b'a');
    body.extend_from_slice(tail.as_bytes());
    body
}

/// A connection that has sent a request header and the first `sent` bytes of its body.
struct SlowUpload {
    stream: TcpStream,
    body: Vec<u8>,
    sent: usize,
}

impl SlowUpload {
    async fn start(port: u16, len: usize, sent: usize) -> SlowUpload {
        let body = chat_body(len);
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..sent]).await.unwrap();
        SlowUpload { stream, body, sent }
    }

    /// Sends the rest of the body and reads the answer: its status and text.
    async fn finish(mut self) -> (u16, String) {
        let _ = self.stream.write_all(&self.body[self.sent..]).await;
        self.answer().await
    }

    async fn answer(&mut self) -> (u16, String) {
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }
}

/// `veilgate_buffered_request_bytes` once `ready` holds for it (or after 5 s).
async fn buffered_when(gw: &GatewayProcess, ready: impl Fn(u64) -> bool) -> u64 {
    let value = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("veilgate_buffered_request_bytes "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let text = metrics_when(gw, |m| value(m).is_some_and(&ready)).await;
    value(&text).unwrap_or_else(|| panic!("no gauge in:\n{text}"))
}

#[tokio::test]
async fn bodies_buffered_at_once_are_bounded_in_total() {
    let up = MockUpstream::start().await;
    let config = |cap: usize| {
        format!(
            "environment: test\nmax_body_bytes: 60000\nmax_buffered_bytes: {cap}\nupstreams:\n  u: {{url: {}}}\nroutes:\n  - models: [\"*\"]\n    upstream: u\n",
            up.url()
        )
    };
    let gw = GatewayProcess::start(&config(100_000)).await;

    // Two slow uploads hold 90,000 bytes of the 100,000.
    let a = SlowUpload::start(gw.port, 48_000, 45_000).await;
    let b = SlowUpload::start(gw.port, 48_000, 45_000).await;
    assert_eq!(buffered_when(&gw, |n| n >= 90_000).await, 90_000);

    // A third one that would go over the cap is refused, and told to retry.
    let mut c = SlowUpload::start(gw.port, 20_000, 15_000).await;
    let (status, answer) = c.answer().await;
    assert_eq!(status, 503, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 1\r\n"), "{answer}");
    let err = error_of(&answer);
    assert_eq!(err["code"], "server_overloaded");
    assert_eq!(err["type"], "server_error");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("buffering too many request bodies"));

    // What it had taken is given back at once; the two finish normally and give theirs back.
    assert_eq!(buffered_when(&gw, |n| n == 90_000).await, 90_000);
    let ((sa, ta), (sb, tb)) = tokio::join!(a.finish(), b.finish());
    assert_eq!((sa, sb), (200, 200), "{ta}\n{tb}");
    assert_eq!(up.count(), 2);
    assert_eq!(buffered_when(&gw, |n| n == 0).await, 0);
    let (status, answer) = SlowUpload::start(gw.port, 20_000, 20_000)
        .await
        .finish()
        .await;
    assert_eq!(status, 200, "{answer}");

    // A reload lowers the cap: what fitted before no longer does.
    gw.write_config(&config(60_000));
    gw.signal("HUP");
    assert!(
        gw.wait_for_log("config reloaded", Duration::from_secs(10))
            .await
    );
    let a = SlowUpload::start(gw.port, 60_000, 50_000).await;
    assert_eq!(buffered_when(&gw, |n| n >= 50_000).await, 50_000);
    let (status, answer) = SlowUpload::start(gw.port, 20_000, 20_000)
        .await
        .finish()
        .await;
    assert_eq!(status, 503, "{answer}");
    let (status, answer) = a.finish().await;
    assert_eq!(status, 200, "{answer}");
}
