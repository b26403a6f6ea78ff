//! End to end: Anthropic's Messages API through the gateway — routed by model, redacted both
//! ways (streams exactly, every delta type), thinking blocks round-tripped, Anthropic-shaped
//! errors, usage, budgets and cost from Anthropic's usage.

mod common;

use std::time::Duration;

use common::mock::{MockUpstream, Recorded, Reply};
use common::otlp::{int_attr, str_attr, OtlpReceiver};
use common::{access_log, client, GatewayProcess};
use serde_json::{json, Value};

const KEY: &str = "vk-claude-app-7";
const PROVIDER_KEY: &str = "sk-ant-api03-PROVIDERSECRET";
/// A GitHub token (a detector with a checksum: no false positive can hide a miss).
const SECRET: &str = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
const SIGNATURE: &str = "EqQBCkgIARABGAIiQLmZ4s5z0VAaT1c2S0P5";

fn sse(events: &[Value]) -> Vec<(Duration, Vec<u8>)> {
    events
        .iter()
        .map(|e| {
            let name = e["type"].as_str().unwrap();
            (
                Duration::ZERO,
                format!("event: {name}\ndata: {e}\n\n").into_bytes(),
            )
        })
        .collect()
}

/// Splits `text` in three pieces, cutting through [`SECRET`] when it holds it.
fn thirds(text: &str) -> Vec<String> {
    let at = text.find(SECRET).map_or(text.len() / 3, |i| i + 7);
    let second = (at + 11).min(text.len());
    vec![
        text[..at].to_owned(),
        text[at..second].to_owned(),
        text[second..].to_owned(),
    ]
}

/// A mock of Anthropic's Messages API: JSON or streamed answers that repeat the secret in a
/// thinking block, a text block and a tool call; `count_tokens`; usage with cache tokens.
fn anthropic(req: &Recorded) -> Reply {
    let body = req.json();
    if req.path.ends_with("/messages/count_tokens") {
        return Reply::Json(200, json!({"input_tokens": 1234}));
    }
    let model = body["model"].as_str().unwrap_or("").to_owned();
    let usage = json!({"input_tokens": 50, "cache_read_input_tokens": 1000,
                       "cache_creation_input_tokens": 200, "output_tokens": 100});
    let thinking = format!("The token {SECRET} is in the prompt.");
    let text = format!("Use {SECRET} carefully.");
    let input = json!({"command": format!("git push https://{SECRET}@github.com/o/r")});
    if body["stream"] == true {
        let mut events = vec![
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 50, "cache_read_input_tokens": 1000,
                          "cache_creation_input_tokens": 200, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ];
        for piece in thirds(&thinking) {
            events.push(json!({"type": "content_block_delta", "index": 0,
                               "delta": {"type": "thinking_delta", "thinking": piece}}));
        }
        events.push(json!({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "signature_delta", "signature": SIGNATURE}}));
        events.push(json!({"type": "content_block_stop", "index": 0}));
        events.push(json!({"type": "content_block_start", "index": 1,
                           "content_block": {"type": "text", "text": ""}}));
        for piece in thirds(&text) {
            events.push(json!({"type": "content_block_delta", "index": 1,
                               "delta": {"type": "text_delta", "text": piece}}));
        }
        events.push(json!({"type": "content_block_stop", "index": 1}));
        events.push(json!({"type": "content_block_start", "index": 2,
                           "content_block": {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}}}));
        for piece in thirds(&input.to_string()) {
            events.push(json!({"type": "content_block_delta", "index": 2,
                               "delta": {"type": "input_json_delta", "partial_json": piece}}));
        }
        events.push(json!({"type": "content_block_stop", "index": 2}));
        events.push(json!({"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                           "usage": {"output_tokens": 100}}));
        events.push(json!({"type": "message_stop"}));
        return Reply::Sse(sse(&events));
    }
    Reply::Json(
        200,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
               "content": [
                   {"type": "thinking", "thinking": thinking, "signature": SIGNATURE},
                   {"type": "text", "text": text},
                   {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": input}],
               "stop_reason": "tool_use", "stop_sequence": null, "usage": usage}),
    )
}

fn config(upstream: &str, extra: &str) -> String {
    format!(
        r#"environment: test
upstreams:
  claude:
    url: {upstream}
    api: anthropic
    api_key: {PROVIDER_KEY}
routes:
  - models: ["claude-*"]
    upstream: claude
keys:
  - name: agent
    key: {KEY}
{extra}"#
    )
}

fn request(stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
           "thinking": {"type": "enabled", "budget_tokens": 512},
           "system": [{"type": "text", "text": format!("Deploy key: {SECRET}")}],
           "tools": [{"name": "bash", "description": format!("runs commands; token {SECRET}"),
                      "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
           "messages": [
               {"role": "user", "content": [{"type": "text", "text": format!("push with {SECRET}")}]},
               {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0", "name": "bash",
                                                  "input": {"command": format!("echo {SECRET}")}}]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0",
                                             "content": [{"type": "text", "text": format!("{SECRET}\n")}]},
                                            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0KGgo".repeat(20)}}]}]})
}

async fn post(gw: &GatewayProcess, path: &str, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_are_redacted_both_ways_and_the_key_stays_home() {
    let up = MockUpstream::with_handler(anthropic).await;
    let gw = GatewayProcess::start(&config(&up.url(), "")).await;
    let resp = post(&gw, "/v1/messages", KEY, &request(false)).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();

    let sent = up.last();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(PROVIDER_KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(sent.header("authorization"), None);
    let body = String::from_utf8(sent.body.clone()).unwrap();
    assert!(!body.contains(SECRET), "{body}");
    assert!(!body.contains(KEY));
    assert_eq!(body.matches("[REDACTED:github_token]").count(), 5, "{body}");
    assert!(
        body.contains(&"iVBORw0KGgo".repeat(20)),
        "the image stays byte for byte"
    );

    let text = answer.to_string();
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(
        answer["content"][1]["text"],
        "Use [REDACTED:github_token] carefully."
    );
    assert_eq!(
        answer["content"][2]["input"]["command"],
        "git push https://[REDACTED:github_token]@github.com/o/r"
    );
    assert_eq!(
        answer["content"][0]["thinking"],
        "The token [REDACTED:github_token] is in the prompt."
    );
    let sealed = answer["content"][0]["signature"].as_str().unwrap();
    assert!(sealed.starts_with("VkdUM") && sealed != SIGNATURE);

    // Usage and cost from Anthropic's fields: 50 + 1 000 cache reads + 200 cache writes.
    let line = &access_log(&gw, 1).await[0];
    assert_eq!(line["key"], "agent");
    assert_eq!(line["tokens"]["prompt"], 1250, "{line}");
    assert_eq!(line["tokens"]["completion"], 100);
    assert_eq!(line["tokens"]["cache_read"], 1000);
    assert_eq!(line["tokens"]["cache_write"], 200);
    // 50 × $3 + 1 000 × $0.30 + 200 × $3.75 + 100 × $15 per million.
    assert!(
        (line["cost_usd"].as_f64().unwrap() - 0.0027).abs() < 1e-12,
        "{line}"
    );
}

#[tokio::test]
async fn streams_are_redacted_exactly_and_thinking_comes_back_signed() {
    let up = MockUpstream::with_handler(anthropic).await;
    let gw = GatewayProcess::start(&config(&up.url(), "")).await;
    let resp = post(&gw, "/v1/messages", KEY, &request(true)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let raw = resp.text().await.unwrap();
    assert!(
        !raw.contains(SECRET) && !raw.contains(&SECRET[7..18]),
        "{raw}"
    );

    // Rebuild the blocks as an SDK does.
    let mut thinking = String::new();
    let mut signature = String::new();
    let mut text = String::new();
    let mut json_input = String::new();
    for block in raw.split("\n\n").filter(|b| !b.is_empty()) {
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .unwrap();
        let data = block
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], name, "{block}");
        let d = &v["delta"];
        match d["type"].as_str() {
            Some("thinking_delta") => thinking.push_str(d["thinking"].as_str().unwrap()),
            Some("signature_delta") => signature.push_str(d["signature"].as_str().unwrap()),
            Some("text_delta") => text.push_str(d["text"].as_str().unwrap()),
            Some("input_json_delta") => json_input.push_str(d["partial_json"].as_str().unwrap()),
            _ => {}
        }
    }
    assert_eq!(
        thinking,
        "The token [REDACTED:github_token] is in the prompt."
    );
    assert_eq!(text, "Use [REDACTED:github_token] carefully.");
    let input: Value = serde_json::from_str(&json_input).unwrap();
    assert_eq!(
        input["command"],
        "git push https://[REDACTED:github_token]@github.com/o/r"
    );
    assert!(signature.starts_with("VkdUM"), "{signature}");

    // The next turn sends the thinking block back as the client got it: the upstream gets
    // the block it signed, and the rest of the turn redacted as usual.
    let next = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
        "thinking": {"type": "enabled", "budget_tokens": 512},
        "messages": [
            {"role": "user", "content": "push it"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": thinking, "signature": signature},
                {"type": "text", "text": text},
                {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": format!("pushed with {SECRET}")}]}]});
    let resp = post(&gw, "/v1/messages", KEY, &next).await;
    assert_eq!(resp.status(), 200);
    let sent = up.last().json();
    let block = &sent["messages"][1]["content"][0];
    assert_eq!(
        block["thinking"],
        format!("The token {SECRET} is in the prompt.")
    );
    assert_eq!(block["signature"], SIGNATURE);
    assert_eq!(
        sent["messages"][2]["content"][0]["content"],
        "pushed with [REDACTED:github_token]"
    );

    // Stream usage: message_start's input and cache figures, message_delta's output.
    let lines = access_log(&gw, 2).await;
    assert_eq!(lines[0]["stream"], true);
    assert_eq!(lines[0]["tokens"]["prompt"], 1250, "{}", lines[0]);
    assert_eq!(lines[0]["tokens"]["completion"], 100, "{}", lines[0]);
    // Priced like the JSON answer: 50 × $3 + 1 000 × $0.30 + 200 × $3.75 + 100 × $15 per million.
    assert!(
        (lines[0]["cost_usd"].as_f64().unwrap() - 0.0027).abs() < 1e-12,
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn errors_take_anthropics_shape_and_count_tokens_is_free() {
    let up = MockUpstream::with_handler(anthropic).await;
    let gw = GatewayProcess::start(&config(
        &up.url(),
        "    limits: {requests_per_minute: 3, tokens_per_minute: 100000}\n",
    ))
    .await;
    let shape = |v: &Value, kind: &str| {
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(v.get("code").is_none() && v["error"].get("code").is_none());
    };
    let resp = post(&gw, "/v1/messages", "vk-wrong", &request(false)).await;
    assert_eq!(resp.status(), 401);
    shape(&resp.json().await.unwrap(), "authentication_error");
    let mut unknown = request(false);
    unknown["model"] = json!("gpt-4o");
    let resp = post(&gw, "/v1/messages", KEY, &unknown).await;
    assert_eq!(resp.status(), 404);
    shape(&resp.json().await.unwrap(), "not_found_error");
    let resp = post(&gw, "/v1/messages/batches", KEY, &request(false)).await;
    assert_eq!(resp.status(), 404);
    shape(&resp.json().await.unwrap(), "not_found_error");
    let resp = post(
        &gw,
        "/v1/messages",
        KEY,
        &json!({"model": "claude-sonnet-4-5"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    shape(&resp.json().await.unwrap(), "invalid_request_error");

    // count_tokens: routed by model, answered by the upstream, charged nothing.
    let resp = post(&gw, "/v1/messages/count_tokens", KEY, &request(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["input_tokens"], 1234);
    assert!(!String::from_utf8(up.last().body).unwrap().contains(SECRET));
    assert!(up.last().path.ends_with("/v1/messages/count_tokens"));
    // The request budget counts it: two more, then 429 in Anthropic's shape.
    assert_eq!(
        post(&gw, "/v1/messages", KEY, &request(false))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&gw, "/v1/messages", KEY, &request(false))
            .await
            .status(),
        200
    );
    let resp = post(&gw, "/v1/messages", KEY, &request(false)).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    shape(&resp.json().await.unwrap(), "rate_limit_error");
    let lines = access_log(&gw, 8).await;
    let counted = lines
        .iter()
        .find(|l| l["status"] == 200 && l["tokens"]["prompt"] == 0)
        .expect("the count_tokens line");
    assert_eq!(counted["tokens"]["completion"], 0, "{counted}");

    // An upstream's own 529 reaches the client as it was sent.
    up.set_handler(|_: &Recorded| {
        Reply::Json(
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )
    });
    let gw2 = GatewayProcess::start(&config(&up.url(), "")).await;
    let resp = post(&gw2, "/v1/messages", KEY, &request(false)).await;
    assert_eq!(resp.status(), 529);
    shape(&resp.json().await.unwrap(), "overloaded_error");
}

/// A stream cut after `message_start`: its input as reported, its output as seen, and the
/// client told in Anthropic's shape.
#[tokio::test]
async fn a_cut_stream_is_charged_what_was_generated() {
    let up = MockUpstream::with_handler(|_: &Recorded| {
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-5", "content": [], "stop_reason": null,
                "usage": {"input_tokens": 50, "cache_read_input_tokens": 1000, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": "a".repeat(400)}}),
        ];
        Reply::SseTruncated(sse(&events))
    })
    .await;
    let gw = GatewayProcess::start(&config(&up.url(), "")).await;
    let resp = post(&gw, "/v1/messages", KEY, &request(true)).await;
    assert_eq!(resp.status(), 200);
    let raw = resp.text().await.unwrap_or_default();
    assert!(raw.contains("event: error"), "{raw}");
    let line = &access_log(&gw, 1).await[0];
    assert_eq!(line["tokens"]["prompt"], 1050, "{line}");
    assert_eq!(line["tokens"]["cache_read"], 1000, "{line}");
    assert_eq!(line["tokens"]["completion"], 100, "{line}");
}

/// Spans follow the GenAI conventions: provider `anthropic`, the answer's model and id, the
/// cache token attributes and the cost; no secret in any attribute.
#[tokio::test]
async fn spans_name_anthropic_and_carry_cache_tokens() {
    let up = MockUpstream::with_handler(anthropic).await;
    let otlp = OtlpReceiver::start().await;
    let traces = format!(
        "telemetry:\n  traces:\n    endpoint: {}\n    sample_ratio: 1.0\n    batch_delay_ms: 100\n",
        otlp.url("/v1/traces")
    );
    let gw = GatewayProcess::start(&config(&up.url(), &traces)).await;
    let resp = post(&gw, "/v1/messages", KEY, &request(true)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("message_stop"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans: Vec<_> = otlp.exports().iter().flat_map(|e| e.spans()).collect();
        if spans.len() >= 2 || std::time::Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let client_span = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| str_attr(&s.attributes, "gen_ai.provider.name").as_deref() == Some("anthropic"))
        .expect("a span for the upstream attempt names the provider anthropic");
    let a = &client_span.attributes;
    assert_eq!(
        str_attr(a, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(str_attr(a, "gen_ai.response.id").as_deref(), Some("msg_1"));
    assert_eq!(int_attr(a, "gen_ai.usage.input_tokens"), Some(1250));
    assert_eq!(int_attr(a, "gen_ai.usage.output_tokens"), Some(100));
    assert_eq!(
        int_attr(a, "gen_ai.usage.cache_read.input_tokens"),
        Some(1000)
    );
    assert_eq!(
        int_attr(a, "gen_ai.usage.cache_creation.input_tokens"),
        Some(200)
    );
    let line = &access_log(&gw, 1).await[0];
    assert_eq!(line["tokens"]["completion"], 100, "{line}");
    let dump = format!("{spans:?}");
    assert!(!dump.contains(SECRET) && !dump.contains(PROVIDER_KEY) && !dump.contains(KEY));
}
