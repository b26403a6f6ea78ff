//! End to end: a real gateway process in front of a mock upstream, as SDKs use it.

mod common;

use std::time::{Duration, Instant};

use common::mock::{chat_stream, MockUpstream, Reply};
use common::{client, expect_error, free_port, GatewayProcess};
use serde_json::json;

struct Setup {
    gw: GatewayProcess,
    primary: MockUpstream,
    keyed: MockUpstream,
    slow: MockUpstream,
}

async fn setup() -> Setup {
    let primary = MockUpstream::start().await;
    let keyed = MockUpstream::start().await;
    let slow = MockUpstream::with_handler(|_| Reply::Stall).await;
    let dead_port = free_port();
    let config = format!(
        r#"
environment: test
max_body_bytes: 65536
upstreams:
  primary:
    url: {primary}
  keyed:
    url: {keyed}
    api_key: ${{TEST_UPSTREAM_KEY}}
  dead:
    url: http://127.0.0.1:{dead_port}/v1
    connect_timeout: 1s
  slow:
    url: {slow}
    timeout: 1s
routes:
  - models: [gpt-4o, "gpt-4.1*"]
    upstream: primary
  - models: [fast]
    upstream: primary
    model: gpt-4o-mini
  - models: [keyed-model, whisper-1]
    upstream: keyed
  - models: [dead-model]
    upstream: dead
  - models: [slow-model]
    upstream: slow
  - paths: [/v1/files]
    upstream: primary
"#,
        primary = primary.url(),
        keyed = keyed.url(),
        slow = slow.url(),
    );
    let gw =
        GatewayProcess::start_with_env(&config, &[("TEST_UPSTREAM_KEY", "sk-upstream-secret")])
            .await;
    Setup {
        gw,
        primary,
        keyed,
        slow,
    }
}

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

#[tokio::test]
async fn chat_completion_is_forwarded_byte_identical_and_answered() {
    let s = setup().await;
    let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}],"temperature":0.2}"#;
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer client-key")
        .header("x-custom", "kept")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "mock");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from mock (gpt-4o)"
    );

    let seen = s.primary.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body, body.to_vec());
    assert_eq!(
        seen.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(seen.header("authorization"), Some("Bearer client-key"));
    assert_eq!(seen.header("x-custom"), Some("kept"));
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{}", s.primary.port).as_str())
    );
    assert_eq!(
        seen.header("accept-encoding"),
        None,
        "upstream bodies are asked uncompressed"
    );
}

#[tokio::test]
async fn upstream_key_replaces_the_clients_authorization() {
    let s = setup().await;
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .header("authorization", "Bearer client-key")
        .json(&chat("keyed-model"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = s.keyed.last();
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-upstream-secret")
    );
    assert_eq!(s.primary.count(), 0);
}

#[tokio::test]
async fn alias_rewrites_only_the_model() {
    let s = setup().await;
    let body = br#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#;
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = s.primary.last();
    assert_eq!(
        seen.body,
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#
            .to_vec()
    );
}

#[tokio::test]
async fn globs_route_and_first_match_wins() {
    let s = setup().await;
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .json(&chat("gpt-4.1-nano"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(s.primary.last().json()["model"], "gpt-4.1-nano");
}

#[tokio::test]
async fn streamed_chat_arrives_event_by_event() {
    let s = setup().await;
    s.primary.set_handler(|_| {
        Reply::Sse(chat_stream(
            "gpt-4o",
            &["one ", "two ", "three"],
            Duration::from_millis(700),
        ))
    });
    let started = Instant::now();
    let mut resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "count"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    let mut first_word_at = None;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if first_word_at.is_none() && text.contains("one") {
            first_word_at = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    // The upstream pauses 700 ms before each of three words: the first word must reach the
    // client long before the stream ends, i.e. nothing waits for the whole response.
    let first = first_word_at.expect("first word arrived");
    assert!(total >= Duration::from_millis(2000), "total {total:?}");
    assert!(
        total - first >= Duration::from_millis(1200),
        "first word at {first:?} of {total:?}"
    );
    let words: Vec<String> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(words.concat(), "one two three");
    assert!(text.trim_end().ends_with("data: [DONE]"));
}

#[tokio::test]
async fn completions_embeddings_and_responses_are_routed() {
    let s = setup().await;
    let c = client();
    for (path, body, upstream_path) in [
        (
            "/v1/completions",
            json!({"model": "gpt-4o", "prompt": "Say"}),
            "/v1/completions",
        ),
        (
            "/v1/embeddings",
            json!({"model": "gpt-4o", "input": ["a", "b"]}),
            "/v1/embeddings",
        ),
        (
            "/v1/responses",
            json!({"model": "fast", "input": "hi"}),
            "/v1/responses",
        ),
    ] {
        let resp = c.post(s.gw.url(path)).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let seen = s.primary.last();
        assert_eq!(seen.path, upstream_path);
        let _: serde_json::Value = resp.json().await.unwrap();
    }
    assert_eq!(s.primary.last().json()["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn models_are_listed_without_globs() {
    let s = setup().await;
    let v: serde_json::Value = client()
        .get(s.gw.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "gpt-4o",
            "fast",
            "keyed-model",
            "whisper-1",
            "dead-model",
            "slow-model"
        ]
    );
    assert_eq!(v["data"][0]["object"], "model");
    // Internal upstream names are not shown unless the upstream sets `owned_by:`.
    assert_eq!(v["data"][0]["owned_by"], "veilgate");
    let one = client()
        .get(s.gw.url("/v1/models/fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let missing = client()
        .get(s.gw.url("/v1/models/gpt-4.1*"))
        .send()
        .await
        .unwrap();
    expect_error(missing, 404).await;
    // A name the glob route serves is retrieved without asking the upstream.
    let globbed = client()
        .get(s.gw.url("/v1/models/gpt-4.1-nano"))
        .send()
        .await
        .unwrap();
    assert_eq!(globbed.status(), 200);
    // The list asked the glob route's upstream for its models once (its mock lists none);
    // nothing else reached it.
    let asked: Vec<String> = s
        .primary
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(asked, ["GET /v1/models"]);
}

fn multipart(model: &str, audio: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----veilgate-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes());
    body.extend_from_slice(audio);
    body.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn audio_upload_reaches_the_upstream_byte_identical() {
    let s = setup().await;
    let audio: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (ct, body) = multipart("whisper-1", &audio);
    let resp = client()
        .post(s.gw.url("/v1/audio/transcriptions"))
        .header("content-type", &ct)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = s.keyed.last();
    assert_eq!(seen.path, "/v1/audio/transcriptions");
    assert_eq!(seen.header("content-type"), Some(ct.as_str()));
    assert!(seen.body == body, "upload altered in transit");

    // Aliased: only the model field changes.
    let (ct, body) = multipart("fast", &audio);
    let resp = client()
        .post(s.gw.url("/v1/audio/translations"))
        .header("content-type", &ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, expected) = multipart("gpt-4o-mini", &audio);
    assert!(s.primary.last().body == expected);
}

#[tokio::test]
async fn paths_routes_are_forwarded_as_they_are() {
    let s = setup().await;
    let resp = client()
        .get(s.gw.url("/v1/files?purpose=batch"))
        .header("authorization", "Bearer c")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = s.primary.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/v1/files?purpose=batch");
    assert_eq!(seen.header("authorization"), Some("Bearer c"));
    let resp = client()
        .post(s.gw.url("/v1/files/file-abc/content"))
        .body("raw bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = s.primary.last();
    assert_eq!(seen.path, "/v1/files/file-abc/content");
    assert_eq!(seen.body, b"raw bytes");
}

#[tokio::test]
async fn request_ids_are_kept_or_made() {
    let s = setup().await;
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .header("x-request-id", "req-42")
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    assert_eq!(s.primary.last().header("x-request-id"), Some("req-42"));
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .json(&chat("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn bad_requests_get_openai_errors_and_nothing_is_sent() {
    let s = setup().await;
    let c = client();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/v1/chat/completions",
            b"{\"model\": \"gpt-4o\", ".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "/v1/chat/completions",
            b"{\"model\": \"gpt-4o\", \"messages\": [\"\xff\"]}".to_vec(),
            400,
            "invalid_utf8",
        ),
        (
            "/v1/chat/completions",
            br#"{"messages": []}"#.to_vec(),
            400,
            "missing_required_parameter",
        ),
        (
            "/v1/chat/completions",
            br#"{"model": 4, "messages": []}"#.to_vec(),
            400,
            "invalid_type",
        ),
        (
            "/v1/chat/completions",
            br#"{"model": "gpt-4o", "messages": {"role": "user"}}"#.to_vec(),
            400,
            "invalid_type",
        ),
        (
            "/v1/chat/completions",
            br#"[{"model": "gpt-4o"}]"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "/v1/embeddings",
            br#"{"model": "gpt-5-unknown", "input": "x"}"#.to_vec(),
            404,
            "model_not_found",
        ),
        ("/v1/nope", b"{}".to_vec(), 404, "unknown_url"),
    ];
    for (path, body, status, code) in cases {
        let resp = c
            .post(s.gw.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let err = expect_error(resp, status).await;
        assert_eq!(err["code"], code, "{path} {err}");
    }
    let resp = c
        .get(s.gw.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(resp, 405).await["code"], "method_not_allowed");
    assert_eq!(s.primary.count(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let s = setup().await;
    let big =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(70_000)}]});
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .json(&big)
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 413).await;
    assert_eq!(err["code"], "request_too_large");
    // Chunked, no declared length: refused once the limit is crossed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b' '; 8192])).collect();
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413).await;
    assert_eq!(s.primary.count(), 0);
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_slow_upstream_is_504() {
    let s = setup().await;
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .json(&chat("dead-model"))
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 502).await;
    assert!(err["message"].as_str().unwrap().contains("dead"), "{err}");
    let started = Instant::now();
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .json(&chat("slow-model"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 504).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(s.slow.count(), 1);
}

#[tokio::test]
async fn upstream_errors_pass_through_as_sent() {
    let s = setup().await;
    s.primary.set_handler(|_| Reply::Json(429, json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})));
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 429).await;
    assert_eq!(err["message"], "slow down");
    s.primary.set_handler(|_| Reply::Json(500, json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}})));
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .json(&chat("gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(resp, 500).await["message"], "boom");
}

#[tokio::test]
async fn a_stream_cut_by_the_upstream_ends_with_an_error_event() {
    let s = setup().await;
    s.primary.set_handler(|_| {
        let mut pieces = chat_stream("gpt-4o", &["partial "], Duration::ZERO);
        pieces.truncate(2);
        Reply::SseTruncated(pieces)
    });
    let resp = client()
        .post(s.gw.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = String::from_utf8_lossy(&resp.bytes().await.unwrap_or_default()).into_owned();
    assert!(text.contains("partial"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let v: serde_json::Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "upstream_unavailable", "{text}");
}

#[tokio::test]
async fn health_endpoints_answer() {
    let s = setup().await;
    let r = client()
        .get(s.gw.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(s.gw.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
