//! The stages in process: a [`Pipeline`](super::pipeline::Pipeline) on a fake client and
//! scripted upstreams (`fake.rs`), no socket. What each test asserts is what a client or an
//! operator would see: the answer, what left for the upstream, the attempts recorded.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::downstream::ReadError;
use super::fake::{serve, Client, Script, Upstreams};
use super::forward::ForwardError;
use super::relay::{decide, Relay};
use crate::telemetry::record::UpstreamErrorReason;
use crate::wire::Family;

const BASE: &str = r#"
listen: 127.0.0.1:0
environment: prod
upstreams:
  primary: {url: "http://primary.test/v1", api_key: "${UPSTREAM_KEY}"}
  secondary: {url: "http://secondary.test/v1", api_key: "${UPSTREAM_KEY}"}
  backup: {url: "http://backup.test/v1", api_key: "${UPSTREAM_KEY}"}
routes:
  - name: chat
    models: [gpt-4o]
    upstreams: [{name: primary}]
    fallbacks: [backup]
  - name: strict
    models: [strict]
    upstreams: [{name: primary}]
    fallbacks: [backup]
    retry_on: []
  - name: aliased
    models: [fast]
    upstream: primary
    model: gpt-4o-mini
  - name: files
    paths: [/v1/files]
    upstream: primary
    fallbacks: [backup]
"#;

const KEYS: &str = r#"
keys:
  - name: team-a
    key: ${KEY_A}
    models: [gpt-4o]
    limits: {requests_per_minute: 2}
  - name: team-b
    key: ${KEY_B}
"#;

const KEY_A: &str = "vg-key-a-0123456789abcdef";
const KEY_B: &str = "vg-key-b-0123456789abcdef";
const UPSTREAM_KEY: &str = "sk-upstream-secret-0123456789abcdef";

const OK: &str = r#"{"id":"c1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

fn chat_body(model: &str, text: &str) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": text}]}).to_string()
}

fn keyed() -> String {
    format!("{BASE}{KEYS}")
}

// ---- authentication --------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_a_key_is_refused_in_openais_shape_and_never_leaves() {
    let ups = Upstreams::new();
    let p = super::fake::pipeline(&keyed(), &ups);
    let mut c = Client::chat(None, &chat_body("gpt-4o", "hello"));
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 401);
    assert_eq!(c.json()["error"]["code"], "invalid_api_key");
    assert_eq!(
        c.answer_header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(ups.received().is_empty());
    assert_eq!(
        (ctx.record.status, ctx.record.error),
        (401, Some("invalid_api_key"))
    );
    assert_eq!(ctx.record.environment, "prod", "refusals are labelled too");
}

#[tokio::test]
async fn on_the_messages_api_a_refusal_is_in_anthropics_shape() {
    let ups = Upstreams::new();
    let p = super::fake::pipeline(&keyed(), &ups);
    let mut c = Client::request(
        "POST",
        "/v1/messages",
        &[("x-api-key", "vg-not-a-key-0000000000")],
        r#"{"model":"claude-x","max_tokens":5,"messages":[]}"#,
    );
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 401);
    let body = c.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(!c.text().contains("vg-not-a-key"));
}

#[tokio::test]
async fn the_virtual_key_never_reaches_the_upstream_and_the_upstream_key_does() {
    let ups = Upstreams::new();
    ups.then("primary", Script::json(200, OK));
    let p = super::fake::pipeline(&keyed(), &ups);
    let mut c = Client::request(
        "POST",
        "/v1/chat/completions?api-key=vg-key-b-0123456789abcdef",
        &[
            ("authorization", &format!("Bearer {KEY_B}")),
            ("x-forwarded-note", KEY_B),
        ],
        &chat_body("gpt-4o", "hello"),
    );
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 200, "{}", c.text());
    let sent = &ups.received()[0];
    let head = format!("{:?}", sent.header);
    assert!(!head.contains(KEY_B), "{head}");
    assert_eq!(
        sent.header.headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}").as_str()
    );
    assert_eq!(ctx.record.key.as_deref(), Some("team-b"));
}

#[tokio::test]
async fn a_key_limited_to_some_models_gets_403_for_others() {
    let ups = Upstreams::new();
    let p = super::fake::pipeline(&keyed(), &ups);
    let mut c = Client::chat(Some(KEY_A), &chat_body("fast", "hello"));
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 403, "{}", c.text());
    assert_eq!(c.json()["error"]["code"], "model_not_allowed");
    assert!(ups.received().is_empty());
}

// ---- routing ---------------------------------------------------------------------------

#[tokio::test]
async fn an_alias_is_rewritten_for_the_upstream_and_the_client_keeps_its_name_in_labels() {
    let ups = Upstreams::new();
    ups.then("primary", Script::json(200, OK));
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::chat(None, &chat_body("fast", "hello"));
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 200);
    let sent: serde_json::Value = serde_json::from_slice(&ups.received()[0].body).unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(ctx.record.route, "aliased");
    assert_eq!(ctx.record.model, "fast");
    assert_eq!(ups.received()[0].header.uri.path(), "/v1/chat/completions");
}

#[tokio::test]
async fn an_unknown_model_is_404_and_a_wrong_method_405() {
    let ups = Upstreams::new();
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::chat(None, &chat_body("nope", "hello"));
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 404);
    assert_eq!(c.json()["error"]["code"], "model_not_found");
    let mut c = Client::request("GET", "/v1/chat/completions", &[], "");
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 405);
    let mut c = Client::request("POST", "/v1/%2e%2e/admin", &[], "{}");
    serve(&p, &mut c).await;
    assert_eq!(
        c.status(),
        400,
        "a non-canonical path is refused: {}",
        c.text()
    );
    assert!(ups.received().is_empty());
}

// ---- attempts: retries and fallbacks ---------------------------------------------------

#[tokio::test]
async fn a_5xx_goes_to_the_fallback_and_both_attempts_are_recorded() {
    let ups = Upstreams::new();
    ups.then(
        "primary",
        Script::json(503, r#"{"error":{"message":"busy"}}"#),
    )
    .then("backup", Script::json(200, OK));
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::chat(None, &chat_body("gpt-4o", "hello"));
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 200);
    assert_eq!(ups.asked(), ["primary", "backup"]);
    let a = &ctx.record.attempts;
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].error, Some(UpstreamErrorReason::Status(503)));
    assert_eq!((a[1].status, a[1].error), (Some(200), None));
    assert_eq!(
        *ups.finished.lock().unwrap(),
        2,
        "both connections given back"
    );
}

#[tokio::test]
async fn a_refused_connection_goes_to_the_fallback_with_the_same_body() {
    let ups = Upstreams::new();
    ups.then("backup", Script::json(200, OK));
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::chat(None, &chat_body("gpt-4o", "hello"));
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 200);
    let r = ups.received();
    assert_eq!(r[0].body, r[1].body);
    assert_eq!(
        ctx.record.attempts[0].error,
        Some(UpstreamErrorReason::Connect)
    );
}

#[tokio::test]
async fn with_retry_on_empty_the_upstreams_own_error_is_relayed() {
    let ups = Upstreams::new();
    ups.then(
        "primary",
        Script::json(503, r#"{"error":{"message":"busy"}}"#),
    );
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::chat(None, &chat_body("strict", "hello"));
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 503);
    assert_eq!(c.json()["error"]["message"], "busy");
    assert_eq!(ups.asked(), ["primary"]);
}

#[tokio::test]
async fn when_every_upstream_fails_the_client_gets_the_last_failure_as_502_or_504() {
    let ups = Upstreams::new();
    ups.then(
        "primary",
        Script::Fail(ForwardError::Tls("TLSHandshakeFailure".into())),
    )
    .then(
        "backup",
        Script::Fail(ForwardError::FirstByteTimeout(Duration::from_secs(3))),
    );
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::chat(None, &chat_body("gpt-4o", "hello"));
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 504, "{}", c.text());
    let reasons: Vec<_> = ctx.record.attempts.iter().map(|a| a.error).collect();
    assert_eq!(
        reasons,
        [
            Some(UpstreamErrorReason::Tls),
            Some(UpstreamErrorReason::Timeout)
        ]
    );
    assert!(!c.text().contains(UPSTREAM_KEY));
}

#[tokio::test]
async fn a_429_with_retry_after_rests_the_upstream_for_the_next_requests() {
    let ups = Upstreams::new();
    ups.then(
        "primary",
        Script::Answer {
            status: 429,
            headers: vec![
                ("content-type", "application/json".into()),
                ("retry-after", "30".into()),
            ],
            chunks: vec![Ok(Bytes::from_static(b"{}"))],
        },
    )
    .then("backup", Script::json(200, OK))
    .then("backup", Script::json(200, OK));
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::chat(None, &chat_body("gpt-4o", "one"));
    serve(&p, &mut c).await;
    let mut c = Client::chat(None, &chat_body("gpt-4o", "two"));
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 200);
    assert_eq!(
        ups.asked(),
        ["primary", "backup", "backup"],
        "primary rests"
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_cancels_the_attempt_and_is_recorded_as_499() {
    let ups = Upstreams::new();
    ups.then("primary", Script::Hang);
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::chat(None, &chat_body("gpt-4o", "hello"));
    c.hangs_up = true;
    let ctx = serve(&p, &mut c).await;
    assert!(c.written.is_none());
    assert!(c.closed);
    assert_eq!(
        (ctx.record.status, ctx.record.error),
        (499, Some("client_disconnected"))
    );
}

// ---- admission -------------------------------------------------------------------------

#[tokio::test]
async fn a_keys_request_budget_refuses_with_429_and_says_when_to_retry() {
    let ups = Upstreams::new();
    for _ in 0..2 {
        ups.then("primary", Script::json(200, OK));
    }
    let p = super::fake::pipeline(&keyed(), &ups);
    for _ in 0..2 {
        let mut c = Client::chat(Some(KEY_A), &chat_body("gpt-4o", "hello"));
        serve(&p, &mut c).await;
        assert_eq!(c.status(), 200);
        assert!(c.answer_header("x-ratelimit-limit-requests").is_some());
    }
    let mut c = Client::chat(Some(KEY_A), &chat_body("gpt-4o", "hello"));
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 429, "{}", c.text());
    assert!(c.answer_header("retry-after").is_some());
    assert_eq!(ups.received().len(), 2, "the refused request never left");
    assert_eq!(ctx.record.status, 429);
    // Another key has its own budget.
    ups.then("primary", Script::json(200, OK));
    let mut c = Client::chat(Some(KEY_B), &chat_body("gpt-4o", "hello"));
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 200);
}

#[tokio::test]
async fn without_keys_a_route_limit_applies_per_client_address() {
    let yaml = BASE.replace(
        "    retry_on: []\n",
        "    retry_on: []\n    limits: {requests_per_minute: 1}\n",
    );
    let ups = Upstreams::new();
    for _ in 0..3 {
        ups.then("primary", Script::json(200, OK));
    }
    let p = super::fake::pipeline(&yaml, &ups);
    let mut statuses = Vec::new();
    for ip in ["192.0.2.1", "192.0.2.1", "192.0.2.2"] {
        let mut c = Client::chat(None, &chat_body("strict", "hello"));
        c.ip = Some(ip.parse().unwrap());
        serve(&p, &mut c).await;
        statuses.push(c.status());
    }
    assert_eq!(statuses, [200, 429, 200]);
}

// ---- the request body ------------------------------------------------------------------

#[tokio::test]
async fn a_body_over_the_limit_is_413_before_it_is_read() {
    let yaml = format!("max_body_bytes: 1024\nmax_buffered_bytes: 4096\n{BASE}");
    let ups = Upstreams::new();
    let p = super::fake::pipeline(&yaml, &ups);
    let mut c = Client::chat(None, &chat_body("gpt-4o", &"x".repeat(2000)));
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 413);
    assert!(c.closed, "the unread rest makes the connection unusable");
    assert!(ups.received().is_empty());
}

#[tokio::test]
async fn a_stalled_body_is_408_and_a_broken_one_400() {
    let ups = Upstreams::new();
    let p = super::fake::pipeline(BASE, &ups);
    for (error, status) in [(ReadError::TimedOut, 408), (ReadError::Failed, 400)] {
        let mut c = Client::chat(None, "");
        c.header.insert_header("content-length", "100").unwrap();
        c.body = [Ok(Bytes::from_static(b"{\"model\"")), Err(error)].into();
        serve(&p, &mut c).await;
        assert_eq!(c.status(), status, "{}", c.text());
        assert_eq!(c.read_timeout, Some(Duration::from_secs(60)));
    }
    assert!(ups.received().is_empty());
}

#[tokio::test]
async fn a_client_expecting_100_continue_gets_it_before_its_body_is_read() {
    let ups = Upstreams::new();
    ups.then("primary", Script::json(200, OK));
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::request(
        "POST",
        "/v1/chat/completions",
        &[("expect", "100-continue")],
        &chat_body("gpt-4o", "hello"),
    );
    serve(&p, &mut c).await;
    assert!(c.continued);
    assert_eq!(c.status(), 200);
}

// ---- redaction on the way out and back -------------------------------------------------

const GITHUB_TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

#[tokio::test]
async fn a_secret_in_any_field_is_redacted_before_it_leaves() {
    let ups = Upstreams::new();
    ups.then("primary", Script::json(200, OK));
    let p = super::fake::pipeline(BASE, &ups);
    let body =
        json!({"model": "gpt-4o", "messages": [], "some_future_field": {"deep": [GITHUB_TOKEN]}})
            .to_string();
    let mut c = Client::chat(None, &body);
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 200);
    let sent = ups.received()[0].text();
    assert!(!sent.contains(GITHUB_TOKEN), "{sent}");
    assert!(sent.contains("[REDACTED:github_token]"), "{sent}");
    assert!(ctx.record.redactions.iter().any(|r| r.n >= 1), "counted");
}

#[tokio::test]
async fn a_secret_split_across_stream_chunks_is_redacted_in_the_answer() {
    let ups = Upstreams::new();
    let (a, b) = GITHUB_TOKEN.split_at(12);
    let event = |text: &str| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]})
        )
    };
    let first = event(&format!("token {a}"));
    let second = event(&format!("{b} end"));
    ups.then(
        "primary",
        Script::sse(&[
            &first[..first.len() - 3],
            &first[first.len() - 3..],
            &second,
            "data: [DONE]\n\n",
        ]),
    );
    let p = super::fake::pipeline(BASE, &ups);
    let body = json!({"model": "gpt-4o", "stream": true, "messages": []}).to_string();
    let mut c = Client::chat(None, &body);
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 200);
    assert!(c.ended);
    let text = c.text();
    let said: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: {"))
        .map(|l| serde_json::from_str::<serde_json::Value>(&format!("{{{l}")).unwrap())
        .map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(said, "token [REDACTED:github_token] end", "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

#[tokio::test]
async fn an_answer_echoing_the_upstream_key_reaches_the_client_without_it() {
    let ups = Upstreams::new();
    let echo = format!(r#"{{"error":{{"message":"bad key {UPSTREAM_KEY}"}}}}"#);
    ups.then("primary", Script::json(401, &echo));
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::chat(None, &chat_body("strict", "hello"));
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 401);
    assert!(!c.text().contains(UPSTREAM_KEY), "{}", c.text());
}

#[tokio::test]
async fn a_stream_broken_off_ends_with_an_error_event_and_a_closed_connection() {
    let ups = Upstreams::new();
    ups.then(
        "primary",
        Script::Answer {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into())],
            chunks: vec![
                Ok(Bytes::from_static(
                    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
                )),
                Err(ForwardError::Protocol("connection reset".into())),
            ],
        },
    );
    let p = super::fake::pipeline(BASE, &ups);
    let body = json!({"model": "gpt-4o", "stream": true, "messages": []}).to_string();
    let mut c = Client::chat(None, &body);
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 200);
    assert!(c.closed);
    assert!(c.text().contains("\"error\""), "{}", c.text());
    assert_eq!(ctx.record.error, Some("upstream_broke_off"));
}

// ---- paths: routes ---------------------------------------------------------------------

#[tokio::test]
async fn a_paths_route_gets_attempts_redaction_and_the_rest_of_the_path() {
    let ups = Upstreams::new();
    ups.then("primary", Script::json(500, "{}"))
        .then("backup", Script::json(200, r#"{"id":"file-1"}"#));
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::request(
        "POST",
        "/v1/files/abc?purpose=batch",
        &[("content-type", "text/plain")],
        &format!("notes {GITHUB_TOKEN}"),
    );
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 200, "{}", c.text());
    let r = ups.received();
    assert_eq!(ups.asked(), ["primary", "backup"]);
    assert_eq!(r[1].header.uri.path(), "/v1/files/abc");
    assert_eq!(r[1].header.uri.query(), Some("purpose=batch"));
    assert!(!r[1].text().contains(GITHUB_TOKEN), "{}", r[1].text());
    assert_eq!(ctx.record.route, "files");
}

/// A `paths:` route relays an API the gateway does not know; its stream is read in the shape
/// its events show, so a secret split over two Messages-style deltas is still caught.
#[tokio::test]
async fn a_paths_routes_stream_is_redacted_across_events_whatever_its_api() {
    let ups = Upstreams::new();
    let (a, b) = GITHUB_TOKEN.split_at(12);
    let ev =
        |v: serde_json::Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let delta = |t: &str| {
        ev(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
        )
    };
    ups.then(
        "primary",
        Script::sse(&[
            &ev(json!({"type": "message_start", "message": {"id": "m", "content": []}})),
            &ev(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            &delta(&format!("token {a}")),
            &delta(&format!("{b} end")),
            &ev(json!({"type": "content_block_stop", "index": 0})),
            &ev(json!({"type": "message_stop"})),
        ]),
    );
    let p = super::fake::pipeline(BASE, &ups);
    let mut c = Client::request(
        "POST",
        "/v1/files/stream",
        &[("content-type", "application/json")],
        "{}",
    );
    serve(&p, &mut c).await;
    assert_eq!(c.status(), 200, "{}", c.text());
    let text = c.text();
    assert!(!text.contains(a) && !text.contains(b), "{text}");
    assert!(text.contains("[REDACTED:github_token]"), "{text}");
}

#[tokio::test]
async fn a_large_upload_is_streamed_once_through_redaction() {
    let ups = Upstreams::new();
    ups.then("primary", Script::json(503, "{}"));
    let p = super::fake::pipeline(BASE, &ups);
    let line = format!("{{\"custom_id\":\"x\",\"body\":{{\"note\":\"{GITHUB_TOKEN}\"}}}}\n");
    let body = line.repeat(super::upload::STREAM_ABOVE / line.len() + 1);
    let mut c = Client::request(
        "POST",
        "/v1/files",
        &[("content-type", "application/jsonl")],
        &body,
    );
    serve(&p, &mut c).await;
    let r = ups.received();
    assert_eq!(r.len(), 1, "a streamed body is not sent twice");
    assert!(r[0].streamed);
    assert!(!r[0].text().contains(GITHUB_TOKEN));
    assert_eq!(c.status(), 503);
}

// ---- relay decisions -------------------------------------------------------------------

#[test]
fn how_answers_are_relayed() {
    let config = crate::config::load_str(BASE, "t.yaml", &super::fake::env).unwrap();
    let runtime = crate::runtime::Runtime::build(config).unwrap();
    let redacts = Some(runtime.redaction.as_ref());
    let r = |status, ct: &str, binary, family, policy| decide(status, ct, binary, family, policy);
    let chat = Family::ChatCompletions;
    // JSON is read whole, whatever the policy.
    assert_eq!(
        r(200, "application/json", false, chat, None),
        Relay {
            sse: false,
            json: true,
            redacting: false,
            whole: true
        }
    );
    assert!(
        r(
            200,
            "application/problem+json; charset=utf-8",
            false,
            chat,
            None
        )
        .json
    );
    // Streams go as they arrive, redacted event by event.
    assert_eq!(
        r(200, "text/event-stream", false, chat, redacts),
        Relay {
            sse: true,
            json: false,
            redacting: true,
            whole: false
        }
    );
    // An error answer is always read whole: an upstream may echo its key in it.
    assert!(r(500, "text/html", false, chat, None).whole);
    // Anything else on a redacting route is read whole (text scanned, the rest refused)…
    assert!(
        r(
            200,
            "application/octet-stream",
            false,
            Family::Other,
            redacts
        )
        .whole
    );
    // …unless it is the audio an audio endpoint was asked for: relayed unread.
    let audio = r(200, "audio/mpeg", true, Family::Other, redacts);
    assert!(!audio.whole && !audio.redacting);
    // A route that inspects nothing relays a download as it arrives.
    assert!(!r(200, "application/octet-stream", false, Family::Other, None).whole);
}

#[test]
fn on_the_messages_api_a_request_policy_alone_inspects_the_answer() {
    let yaml = "listen: 127.0.0.1:0\nenvironment: t\nupstreams:\n  u: {url: 'http://u.test/v1'}\nroutes:\n  - models: [m]\n    upstream: u\nredaction:\n  request: {secrets: redact}\n  response: {secrets: off}\n";
    let config = crate::config::load_str(yaml, "t.yaml", &|_| None).unwrap();
    let runtime = crate::runtime::Runtime::build(config).unwrap();
    let policy = Some(runtime.redaction.as_ref());
    assert!(decide(200, "text/event-stream", false, Family::Messages, policy).redacting);
    assert!(
        !decide(
            200,
            "text/event-stream",
            false,
            Family::ChatCompletions,
            policy
        )
        .redacting
    );
}

#[tokio::test]
async fn an_open_stream_holds_no_copy_of_its_request() {
    let ups = Upstreams::new();
    ups.then("primary", Script::json(200, OK)).then(
        "primary",
        Script::sse(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
            "data: [DONE]\n\n",
        ]),
    );
    let p = super::fake::pipeline(BASE, &ups);
    // A whole answer: the body's bytes stay counted until the request ends.
    let mut c = Client::chat(None, &chat_body("gpt-4o", "hello"));
    let ctx = serve(&p, &mut c).await;
    assert!(ctx.buffered.bytes() > 0);
    // A stream: once under way, its request body (and its share of max_buffered_bytes) is
    // given back, the token estimate made from it first.
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "x".repeat(400)}]}).to_string();
    let mut c = Client::chat(None, &body);
    let ctx = serve(&p, &mut c).await;
    assert_eq!(c.status(), 200);
    assert_eq!(ctx.buffered.bytes(), 0);
    let tokens = ctx
        .record
        .tokens
        .expect("estimated: the stream reported no usage");
    assert!(tokens.prompt >= 100, "{tokens:?}");
}
