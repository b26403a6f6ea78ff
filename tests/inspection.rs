//! End to end, deny by default: what an allow-list of "the text fields" let through, each
//! class tried against a real gateway with a mock upstream that records every byte — unknown
//! request fields, unknown answer fields, stream events of any type (transcriptions too),
//! JSON inside strings with escaped slashes, percent-encoded values, error bodies, the
//! provider's key echoed back, multipart text fields.

mod common;

use std::time::Duration;

use common::mock::{event, MockUpstream, Recorded, Reply};
use common::{check, client, GatewayProcess};
use serde_json::json;

/// Assembled at run time so this file holds no literal token.
fn github_token() -> String {
    format!("ghp_{}", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d")
}

const PROVIDER_KEY: &str = "sk-provider-own-key-7f3a9c2e5b";

fn config(upstream: &str) -> String {
    format!(
        r#"environment: test
upstreams:
  u: {{url: {upstream}, api_key: {PROVIDER_KEY}}}
redaction:
  request:  {{secrets: redact, pii: redact}}
  response: {{secrets: redact, pii: redact}}
routes:
  - models: ["*"]
    upstream: u
"#
    )
}

async fn post(gw: &GatewayProcess, path: &str, body: serde_json::Value) -> (u16, String) {
    let resp = client()
        .post(gw.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn sse(events: &[serde_json::Value]) -> Reply {
    let mut bytes = Vec::new();
    for e in events {
        bytes.extend(event(e.clone()));
    }
    // Cut anywhere, unrelated to event boundaries.
    Reply::Sse(
        bytes
            .chunks(5)
            .map(|c| (Duration::ZERO, c.to_vec()))
            .collect(),
    )
}

#[tokio::test]
async fn request_fields_nobody_listed_are_redacted_before_they_leave() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let secret = github_token();
    let password = "s3cr3t-Pa55w0rd";
    let body = json!({
        "model": "gpt-4o",
        "user": secret,
        "metadata": {"note": format!("deploy with {secret}")},
        "stop": [secret],
        "tools": [{"type": "function", "function": {"name": "f", "description": format!("uses {secret}"),
            "parameters": {"type": "object", "properties": {"a": {"type": "string", "description": secret}}}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"description": secret}}},
        "messages": [
            {"role": "user", "name": secret, "content": [{"type": "future_part", "payload": {"deep": [secret]}}]},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"token": secret}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": format!(r#"{{"dsn":"postgres:\/\/app:{password}@db\/x"}}"#)},
            {"role": "user", "content": format!("callback https://x.test/cb?token%3D{secret}%26a%3Db")}
        ]
    });
    let (status, _) = post(&gw, "/v1/chat/completions", body).await;
    assert_eq!(status, 200);
    let seen = String::from_utf8(up.last().body).unwrap();
    assert!(!seen.contains(&secret), "{seen}");
    assert!(!seen.contains(password), "{seen}");
    assert!(seen.contains("[REDACTED:github_token]"), "{seen}");
    let v: serde_json::Value = serde_json::from_str(&seen).expect("still JSON");
    assert_eq!(v["model"], "gpt-4o");

    // Responses input items of newer types, prompt variables, a text format schema.
    let body = json!({"model": "gpt-4o",
    "prompt": {"id": "p", "variables": {"v": secret}},
    "text": {"format": {"type": "json_schema", "schema": {"description": secret}}},
    "input": [
        {"type": "shell_call_output", "call_id": "c", "output": [{"stdout": secret}]},
        {"type": "mcp_call", "name": "n", "arguments": secret, "output": secret},
        {"type": "apply_patch_call_output", "output": secret}
    ]});
    let (status, _) = post(&gw, "/v1/responses", body).await;
    assert_eq!(status, 200);
    let seen = String::from_utf8(up.last().body).unwrap();
    assert!(!seen.contains(&secret), "{seen}");
}

#[tokio::test]
async fn answer_fields_and_every_stream_event_are_redacted() {
    let secret = github_token();
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url())).await;

    // A whole answer: audio transcript, annotations, reasoning, logprobs tokens.
    up.set_handler({
        let s = secret.clone();
        move |_| {
            Reply::Json(
                200,
                json!({"id": "c", "object": "chat.completion", "model": "gpt-4o",
                "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ok", "reasoning": s,
                        "audio": {"id": "a", "transcript": s},
                        "annotations": [{"type": "url_citation", "url_citation": {"url": s}}]},
                    "logprobs": {"content": [{"token": s, "logprob": -0.1}]}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
            )
        }
    });
    let (status, text) = post(
        &gw,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!text.contains(&secret), "{text}");

    // A Responses stream with events an allow-list never heard of, the secret split across
    // deltas; an error event; a whole item at `.done`.
    let (a, b) = secret.split_at(10);
    up.set_handler({
        let (a, b, s) = (a.to_owned(), b.to_owned(), secret.clone());
        move |_| {
            sse(&[
                json!({"type": "response.mcp_call_arguments.delta", "output_index": 0, "item_id": "m", "delta": a, "sequence_number": 1}),
                json!({"type": "response.mcp_call_arguments.delta", "output_index": 0, "item_id": "m", "delta": b, "sequence_number": 2}),
                json!({"type": "response.code_interpreter_call_code.delta", "output_index": 1, "item_id": "x", "delta": format!("print('{s}')"), "sequence_number": 3}),
                json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "mcp_call", "arguments": s, "output": s}, "sequence_number": 4}),
                json!({"type": "error", "code": "x", "message": format!("failed with {s}"), "sequence_number": 5}),
            ])
        }
    });
    let (status, text) = post(
        &gw,
        "/v1/responses",
        json!({"model": "gpt-4o", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!text.contains(&secret), "{text}");
    assert!(
        !text.contains(b),
        "the second half never follows the first: {text}"
    );
    assert!(text.contains("[REDACTED:github_token]"), "{text}");
}

/// A multipart upload with a text field, the file part untouched.
fn transcription_form(prompt: &str, audio: &[u8]) -> (String, Vec<u8>) {
    let boundary = "vgboundary7MA4YWxk";
    let mut body = Vec::new();
    for (name, value) in [
        ("model", "whisper-1"),
        ("stream", "true"),
        ("prompt", prompt),
    ] {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .bytes(),
        );
    }
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").bytes());
    body.extend_from_slice(audio);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn streamed_transcriptions_and_form_fields_are_redacted() {
    let secret = github_token();
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let (a, b) = secret.split_at(7);
    up.set_handler({
        let (a, b, s) = (a.to_owned(), b.to_owned(), secret.clone());
        move |_: &Recorded| {
            sse(&[
                json!({"type": "transcript.text.delta", "delta": "the key is "}),
                json!({"type": "transcript.text.delta", "delta": a}),
                json!({"type": "transcript.text.delta", "delta": b}),
                json!({"type": "transcript.text.done", "text": format!("the key is {s}")}),
            ])
        }
    });
    let audio: Vec<u8> = (0..=255u8).cycle().take(2048).collect();
    let (content_type, body) = transcription_form(&format!("spell {secret}"), &audio);
    let resp = client()
        .post(gw.url("/v1/audio/transcriptions"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&secret), "{text}");
    assert!(!text.contains(b), "{text}");
    let seen = up.last().body;
    let seen_text = String::from_utf8_lossy(&seen);
    assert!(!seen_text.contains(&secret), "the prompt field is redacted");
    assert!(
        seen.windows(audio.len()).any(|w| w == audio.as_slice()),
        "the audio bytes are forwarded as they were"
    );
}

#[tokio::test]
async fn error_bodies_are_redacted_and_the_provider_key_never_reaches_the_client() {
    let secret = github_token();
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    // An upstream 401 that echoes the key it was given, and a 400 that echoes the request.
    up.set_handler(|req: &Recorded| {
        let auth = req.header("authorization").unwrap_or("").to_owned();
        Reply::Json(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {auth}"), "type": "invalid_request_error", "code": "invalid_api_key"}}),
        )
    });
    let (status, text) = post(
        &gw,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 401);
    assert!(!text.contains(PROVIDER_KEY), "{text}");
    assert!(text.contains("[REDACTED:upstream_key]"), "{text}");

    up.set_handler({
        let s = secret.clone();
        move |_| {
            Reply::Json(
                400,
                json!({"error": {"message": format!("bad value: {s}"), "type": "invalid_request_error"}}),
            )
        }
    });
    let (status, text) = post(
        &gw,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(!text.contains(&secret), "{text}");
    assert!(text.contains("[REDACTED:github_token]"), "{text}");

    // An HTML error page from a proxy in front of the upstream: scanned as text.
    up.set_handler({
        let s = secret.clone();
        move |_| {
            let page = format!("<html><body>upstream error, token {s}</body></html>");
            Reply::Raw(
                format!(
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                )
                .into_bytes(),
            )
        }
    });
    let (status, text) = post(
        &gw,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert!(status >= 500, "{status}");
    assert!(!text.contains(&secret), "{text}");
}

#[test]
fn check_names_every_uninspected_route_of_a_redacting_policy() {
    let head =
        "environment: test\nlisten: 127.0.0.1:0\nupstreams:\n  u: {url: http://127.0.0.1:9/v1}\n";
    let routes = |inspect: &str| {
        format!("routes:\n  - paths: [/v1/files]\n    upstream: u\n{inspect}  - models: [\"*\"]\n    upstream: u\n")
    };
    // Inspected by default: nothing to warn about.
    let (ok, stderr) = check(&format!("{head}{}", routes("")));
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    // `inspect: false` on a redacting policy: named.
    let (ok, stderr) = check(&format!("{head}{}", routes("    inspect: false\n")));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: route `/v1/files` has `inspect: false`"),
        "{stderr}"
    );
    // No redaction at all: nothing is uninspected.
    let off =
        "redaction:\n  request: {secrets: off, pii: off}\n  response: {secrets: off, pii: off}\n";
    let (ok, stderr) = check(&format!("{head}{off}{}", routes("    inspect: false\n")));
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    // `inspect:` on a models: route is a mistake.
    let (ok, stderr) = check(&format!(
        "{head}routes:\n  - models: [m]\n    upstream: u\n    inspect: false\n"
    ));
    assert!(!ok);
    assert!(
        stderr.contains("inspect: applies only to paths: routes"),
        "{stderr}"
    );
}

/// `paths:` routes (files, batches) on a redacting policy: bodies inspected by media type
/// (JSON, JSON Lines in a multipart upload, text), binary ones refused unless the route says
/// `inspect: false`; answers (a file's content) redacted; the same attempts, fallbacks,
/// failure accounting and environment rule as routes chosen by model.
#[tokio::test]
async fn paths_routes_are_inspected_and_retried_like_model_routes() {
    let secret = github_token();
    let password = "s3cr3t-Pa55w0rd";
    let up = MockUpstream::start().await;
    let dead = common::free_port();
    let config = format!(
        r#"environment: test
upstreams:
  dead: {{url: "http://127.0.0.1:{dead}/v1"}}
  u: {{url: {upstream}}}
routes:
  - paths: [/v1/files]
    upstream: dead
    fallbacks: [u]
  - paths: [/v1/blobs]
    upstream: u
    inspect: false
  - models: ["*"]
    upstream: u
keys:
  - name: app
    key: vk-app-123
    environment: prod-env
"#,
        upstream = up.url()
    );
    let gw = GatewayProcess::start(&config).await;
    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        client()
            .post(gw.url(path))
            .bearer_auth("vk-app-123")
            .header("content-type", content_type.to_owned())
            .body(body)
    };

    // JSON, through the fallback (the first upstream is down).
    up.set_handler(|_| Reply::Json(200, json!({"id": "file-1", "object": "file"})));
    let resp = post(
        "/v1/files",
        "application/json",
        json!({"purpose": "batch", "note": format!("key {secret}")})
            .to_string()
            .into_bytes(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = String::from_utf8(up.last().body).unwrap();
    assert!(!seen.contains(&secret), "{seen}");

    // A batch file (JSON Lines) in a multipart upload, a secret behind JSON escapes.
    let line = format!(
        r#"{{"custom_id":"1","body":{{"messages":[{{"role":"user","content":"db postgres:\/\/app:{password}@db\/x"}}]}}}}"#
    );
    let boundary = "vgb0undary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{line}\n{line}\n\r\n--{boundary}--\r\n"
    );
    let resp = post(
        "/v1/files",
        &format!("multipart/form-data; boundary={boundary}"),
        form.into_bytes(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = String::from_utf8(up.last().body).unwrap();
    assert!(!seen.contains(password), "{seen}");
    assert!(seen.contains("\"custom_id\":\"1\""), "{seen}");

    // A binary body cannot be inspected: refused, nothing sent.
    let before = up.count();
    let resp = post(
        "/v1/files",
        "application/octet-stream",
        vec![0xff, 0xfe, 0x00, 0x01],
    )
    .send()
    .await
    .unwrap();
    let err = common::expect_error(resp, 415).await;
    assert!(
        err["message"].as_str().unwrap().contains("inspect: false"),
        "{err}"
    );
    assert_eq!(up.count(), before);

    // Unless the route says so: then it is proxied as it is.
    let blob = vec![0xff, 0xfe, 0x00, 0x01];
    let resp = post("/v1/blobs", "application/octet-stream", blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().body, blob);

    // A file's content, as the upstream returns it: redacted on its way to the client.
    up.set_handler({
        let s = secret.clone();
        move |_| {
            let body = format!("{{\"custom_id\":\"1\",\"note\":\"{s}\"}}\n");
            Reply::Raw(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        }
    });
    let resp = client()
        .get(gw.url("/v1/files/file-1/content"))
        .bearer_auth("vk-app-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&secret), "{text}");
    assert!(text.contains("[REDACTED:github_token]"), "{text}");

    // The down upstream is counted, and the traffic is the key's environment.
    let metrics = common::metrics_when(&gw, |m| m.contains("upstream=\"dead\"")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("veilgate_upstream_errors_total")
                && l.contains("upstream=\"dead\"")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("veilgate_requests_total")
                && l.contains("environment=\"prod-env\"")
                && l.contains("route=\"/v1/files\"")),
        "{metrics}"
    );
}

/// A request on a `paths:` route counts in `veilgate_inflight_requests` of its environment
/// while it runs, like a request chosen by model.
#[tokio::test]
async fn paths_routes_count_as_in_flight() {
    let up = MockUpstream::with_handler(|_| Reply::StallUntilClosed).await;
    let config = format!(
        "environment: test\nupstreams:\n  u: {{url: {}}}\nroutes:\n  - paths: [/v1/batches]\n    upstream: u\n    environment: batchy\n",
        up.url()
    );
    let gw = GatewayProcess::start(&config).await;
    let url = gw.url("/v1/batches");
    let pending = tokio::spawn(async move { client().get(url).send().await });
    let metrics = common::metrics_when(&gw, |m| {
        m.lines()
            .any(|l| l == "veilgate_inflight_requests{environment=\"batchy\"} 1")
    })
    .await;
    assert!(metrics.contains("veilgate_inflight_requests{environment=\"batchy\"} 1"));
    pending.abort();
}

/// The provider's key never reaches a client from a stream either — split across the pieces the
/// upstream writes, and on a route whose policy redacts nothing.
#[tokio::test]
async fn a_stream_echoing_the_provider_key_never_shows_it_even_with_redaction_off() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&format!(
        "environment: test\nupstreams:\n  u: {{url: {}, api_key: {PROVIDER_KEY}}}\nroutes:\n  - models: [gpt-4o]\n    upstream: u\nredaction:\n  request: {{secrets: off, pii: off}}\n  response: {{secrets: off, pii: off}}\n",
        up.url()
    ))
    .await;
    up.set_handler(|_| {
        let ev = format!(
            "data: {}\n\n",
            json!({"error": {"message": format!("key {PROVIDER_KEY} was revoked"), "type": "invalid_request_error"}})
        );
        // The key is cut in two between the pieces the upstream writes.
        let cut = ev.find(PROVIDER_KEY).unwrap() + 9;
        Reply::Sse(vec![
            (Duration::ZERO, ev.as_bytes()[..cut].to_vec()),
            (Duration::from_millis(50), ev.as_bytes()[cut..].to_vec()),
        ])
    });
    let (status, text) = post(
        &gw,
        "/v1/chat/completions",
        json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!text.contains(PROVIDER_KEY), "{text}");
    assert!(
        text.contains("key [REDACTED:upstream_key] was revoked"),
        "{text}"
    );
}
