//! End to end: secrets and personal data never cross the gateway — requests, responses and
//! streams (split anywhere), both APIs; block, mask, pseudonymize; fail closed.

mod common;

use std::time::Duration;

use common::mock::{event, MockUpstream, Recorded, Reply};
use common::{client, expect_error, metrics_when, GatewayProcess};
use serde_json::json;

/// Secrets are assembled at run time so this file holds no literal token.
fn github_token() -> String {
    format!("ghp_{}", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d")
}
fn aws_key() -> String {
    format!("AKIA{}", "ATJPUU5XFMZKP2EC")
}

fn config(upstream: &str) -> String {
    format!(
        r#"environment: test
upstreams:
  u: {{url: {upstream}}}
redaction:
  request:  {{secrets: redact, pii: redact}}
  response: {{secrets: redact, pii: off}}
  actions: {{email: {{request: mask}}}}
  detectors:
    - {{name: employee_id, pattern: 'EMP-\d{{6}}', category: pii}}
  allow: ["sk-your-key-here"]
routes:
  - models: [default-policy]
    upstream: u
  - models: [blocking]
    upstream: u
    redaction: {{actions: {{aws_access_key: block}}}}
  - models: [pseudo]
    upstream: u
    redaction: {{request: {{pii: pseudonymize}}, actions: {{email: pseudonymize}}}}
"#
    )
}

/// An upstream that answers with the last user message as the assistant's text (so tests can
/// check what crosses in both directions), streamed in the given pieces when asked to stream.
fn echo_upstream(split: usize) -> impl Fn(&Recorded) -> Reply {
    move |req: &Recorded| {
        let body = req.json();
        let text = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_owned();
        let model = body["model"].as_str().unwrap_or("").to_owned();
        if body["stream"].as_bool() == Some(true) {
            let chars: Vec<char> = text.chars().collect();
            let mut sse = Vec::new();
            for piece in chars.chunks(split.max(1)) {
                let delta: String = piece.iter().collect();
                sse.extend(event(json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]})));
            }
            sse.extend(event(
                json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            ));
            sse.extend(b"data: [DONE]\n\n");
            // Cut the byte stream at odd places, unrelated to event boundaries.
            let pieces = sse
                .chunks(7)
                .map(|c| (Duration::ZERO, c.to_vec()))
                .collect();
            return Reply::Sse(pieces);
        }
        Reply::Json(
            200,
            json!({"id": "c", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
        )
    }
}

fn user(model: &str, text: &str, stream: bool) -> serde_json::Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
}

fn streamed_text(sse: &str) -> String {
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn requests_are_redacted_before_they_leave() {
    let up = MockUpstream::with_handler(echo_upstream(5)).await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let image = format!(
        "data:image/png;base64,{}",
        "iVBORw0KGgoAAAANSUhEUgAA".repeat(40)
    );
    let body = json!({"model": "default-policy", "temperature": 0.5, "messages": [
        {"role": "system", "content": "Use sk-your-key-here as the example key."},
        {"role": "user", "content": [
            {"type": "text", "text": format!("my token {} and mail jane.doe@example.com, badge EMP-123456", github_token())},
            {"type": "image_url", "image_url": {"url": image}}]},
        {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": format!("{{\"key\":\"{}\"}}", aws_key())}}]},
        {"role": "tool", "tool_call_id": "t", "content": format!("found {}", aws_key())}]});
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = String::from_utf8(up.last().body).unwrap();
    assert!(
        !seen.contains(&github_token()) && !seen.contains(&aws_key()),
        "{seen}"
    );
    assert!(
        !seen.contains("jane.doe@example.com") && !seen.contains("EMP-123456"),
        "{seen}"
    );
    assert!(
        seen.contains("[REDACTED:github_token]") && seen.contains("[REDACTED:employee_id]"),
        "{seen}"
    );
    assert!(
        seen.contains(".com") && seen.contains("****"),
        "email masked to its last 4: {seen}"
    );
    assert!(
        seen.contains("sk-your-key-here") && seen.contains(&image),
        "allow-list and image data untouched"
    );
    let v: serde_json::Value = serde_json::from_str(&seen).expect("still valid JSON");
    assert_eq!(v["model"], "default-policy");
    assert_eq!(v["temperature"], 0.5);

    // Other endpoints: completions prompt, embeddings input, responses input + instructions.
    for (path, body) in [
        (
            "/v1/completions",
            json!({"model": "default-policy", "prompt": format!("token {}", github_token())}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "default-policy", "input": [format!("token {}", github_token()), "plain"]}),
        ),
        (
            "/v1/responses",
            json!({"model": "default-policy", "instructions": format!("use {}", aws_key()), "input": format!("token {}", github_token())}),
        ),
    ] {
        up.set_handler(|_| Reply::Json(200, json!({"object": "list", "data": []})));
        client()
            .post(gw.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let seen = String::from_utf8(up.last().body).unwrap();
        assert!(
            !seen.contains(&github_token()) && !seen.contains(&aws_key()),
            "{path}: {seen}"
        );
    }
}

#[tokio::test]
async fn responses_whole_and_streamed_are_redacted_exactly() {
    let up = MockUpstream::with_handler(echo_upstream(3)).await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    // The request side redacts too, so the upstream is told to echo a secret it never saw:
    // it answers with the secret itself (as a model might), and the client must not get it.
    let secret = github_token();
    up.set_handler({
        let secret = secret.clone();
        move |req| {
            let mut r = req.clone();
            let text = format!("here it is: {secret} — and write to ops@example.com.");
            r.body = serde_json::to_vec(&user(
                req.json()["model"].as_str().unwrap(),
                &text,
                req.json()["stream"].as_bool().unwrap_or(false),
            ))
            .unwrap();
            echo_upstream(3)(&r)
        }
    });
    let whole: serde_json::Value = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&user("default-policy", "hi", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unstreamed = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !unstreamed.contains(&secret) && unstreamed.contains("[REDACTED:github_token]"),
        "{unstreamed}"
    );
    assert!(
        unstreamed.contains("ops@example.com"),
        "pii is off for responses"
    );

    let sse = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&user("default-policy", "hi", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !sse.contains("u8jzPde0"),
        "no part of the secret in the stream: {sse}"
    );
    for prefix_len in 8..secret.len() {
        assert!(
            !sse.contains(&secret[4..prefix_len.max(12)]),
            "a fragment leaked"
        );
    }
    assert_eq!(
        streamed_text(&sse),
        unstreamed,
        "the stream gives exactly the unstreamed redaction"
    );
    assert!(sse.trim_end().ends_with("data: [DONE]"));
}

#[tokio::test]
async fn responses_api_streams_are_redacted() {
    let secret = github_token();
    let up = MockUpstream::with_handler({
        let secret = secret.clone();
        move |_| {
            let text = format!("token {secret} end");
            let mut sse = Vec::new();
            for (i, piece) in text.as_bytes().chunks(4).enumerate() {
                let delta = String::from_utf8_lossy(piece).into_owned();
                sse.extend(format!("event: response.output_text.delta\ndata: {}\n\n", json!({
                    "type": "response.output_text.delta", "sequence_number": i, "item_id": "m", "output_index": 0, "content_index": 0, "delta": delta})).into_bytes());
            }
            sse.extend(format!("event: response.output_text.done\ndata: {}\n\n", json!({
                "type": "response.output_text.done", "sequence_number": 99, "item_id": "m", "output_index": 0, "content_index": 0, "text": text})).into_bytes());
            Reply::Sse(sse.chunks(5).map(|c| (Duration::ZERO, c.to_vec())).collect())
        }
    })
    .await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let sse = client()
        .post(gw.url("/v1/responses"))
        .json(&json!({"model": "default-policy", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!sse.contains("u8jzPde0") && !sse.contains(&secret), "{sse}");
    let deltas: String = sse
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v["type"] == "response.output_text.delta")
        .filter_map(|v| v["delta"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(deltas, "token [REDACTED:github_token] end");
}

#[tokio::test]
async fn block_refuses_and_sends_nothing() {
    let up = MockUpstream::with_handler(echo_upstream(5)).await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&user("blocking", &format!("key {}", aws_key()), false))
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 400).await;
    assert_eq!(err["code"], "content_blocked");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("aws_access_key") && !message.contains(&aws_key()),
        "{message}"
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn pseudonyms_are_restored_in_answers_even_when_split() {
    let up = MockUpstream::with_handler(echo_upstream(2)).await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let text =
        "write to jane.doe@example.com and john@example.org, then jane.doe@example.com again";
    let whole: serde_json::Value = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&user("pseudo", text, false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen = String::from_utf8(up.last().body).unwrap();
    assert!(
        seen.contains("<EMAIL_1>") && seen.contains("<EMAIL_2>") && !seen.contains("jane.doe"),
        "{seen}"
    );
    assert_eq!(
        whole["choices"][0]["message"]["content"], text,
        "restored for the client"
    );
    let sse = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&user("pseudo", text, true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        streamed_text(&sse),
        text,
        "restored across 2-character deltas"
    );
}

#[tokio::test]
async fn what_cannot_be_inspected_is_not_forwarded() {
    let up = MockUpstream::with_handler(|_| {
        let mut sse = event(
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "fine "}, "finish_reason": null}]}),
        );
        sse.extend(b"data: {not json AKIA".to_vec());
        sse.extend(b"ATJPUU5XFMZKP2EC\n\n".to_vec());
        Reply::Sse(vec![(Duration::ZERO, sse)])
    })
    .await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let sse = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&user("default-policy", "hi", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!sse.contains("AKIA") && !sse.contains("not json"), "{sse}");
    let last = sse.trim_end().rsplit("\n\n").next().unwrap();
    let v: serde_json::Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "invalid_upstream_stream", "{sse}");

    // A JSON endpoint sent with another content type is refused on a redacting route.
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "text/plain")
        .body(user("default-policy", "hi", false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(resp, 415).await["code"],
        "unsupported_media_type"
    );
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn with_no_redaction_section_secrets_are_still_redacted_both_ways() {
    let up = MockUpstream::with_handler(echo_upstream(4)).await;
    let gw = GatewayProcess::start(&format!("environment: test\nupstreams:\n  u: {{url: {}}}\nroutes:\n  - models: [m]\n    upstream: u\n", up.url())).await;
    let resp: serde_json::Value = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&user(
            "m",
            &format!("{} jane@example.com", github_token()),
            false,
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen = String::from_utf8(up.last().body).unwrap();
    assert!(
        !seen.contains(&github_token()) && seen.contains("jane@example.com"),
        "secrets redacted, PII left alone: {seen}"
    );
    assert!(resp["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("[REDACTED:github_token]"));
    let metrics = metrics_when(&gw, |m| {
        m.contains("detector=\"github_token\",direction=\"request\"")
    })
    .await;
    assert!(metrics.contains("veilgate_redactions_total{action=\"redact\",detector=\"github_token\",direction=\"request\",environment=\"test\"} 1"), "{metrics}");
}

/// Ops turn one detector on by name, for one direction, where its category is off, and add a
/// detector of their own in the catalogue's format: both act on a real gateway, streamed too.
#[tokio::test]
async fn a_detector_named_in_actions_acts_where_its_category_is_off() {
    let up = MockUpstream::with_handler(echo_upstream(3)).await;
    let config = format!(
        r#"environment: test
upstreams:
  u: {{url: {}}}
redaction:
  request:  {{secrets: redact, pii: off}}
  response: {{secrets: redact, pii: off}}
  actions:
    email: {{response: mask}}
    acme_key: {{request: redact, response: off}}
  detectors:
    - name: acme_key
      category: pii
      pattern: 'acme_[a-z0-9]{{4}}_ACME[A-Za-z0-9]{{12}}'
      keywords: [_ACME]
      entropy: 3.0
      examples:
        match: ['acme_live_ACMEq9wMxEhh2FDE']
        no_match: ['acme_live_ACMEaaaaaaaaaaaa']
routes:
  - models: [m]
    upstream: u
"#,
        up.url()
    );
    let gw = GatewayProcess::start(&config).await;
    let text = "mail jane@example.com, key acme_live_ACMEq9wMxEhh2FDE, badge +44 20 7946 0958";
    for stream in [false, true] {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&user("m", text, stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.text().await.unwrap();
        let answer = if stream {
            streamed_text(&body)
        } else {
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["choices"][0]["message"]
                ["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let seen = String::from_utf8(up.last().body).unwrap();
        assert!(
            seen.contains("jane@example.com") && seen.contains("+44 20 7946 0958"),
            "e-mail is masked in responses only, phones never: {seen}"
        );
        assert!(
            !seen.contains("acme_live_ACMEq9wMxEhh2FDE") && seen.contains("[REDACTED:acme_key]"),
            "the custom detector acts on requests: {seen}"
        );
        assert_eq!(
            answer, "mail ************.com, key [REDACTED:acme_key], badge +44 20 7946 0958",
            "stream: {stream}"
        );
    }
}

#[tokio::test]
async fn an_upstream_answer_that_is_not_json_is_not_forwarded() {
    let up = MockUpstream::with_handler(|_| {
        Reply::Raw(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\n\r\n{\"choices\": [AKIAATJPUU5X".to_vec())
    })
    .await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&user("default-policy", "hi", false))
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 502).await;
    assert!(!err.to_string().contains("AKIA"), "{err}");
}

#[tokio::test]
async fn transcripts_are_redacted_json_or_text() {
    let up = MockUpstream::with_handler(|req| {
        let text = format!("say {}", github_token());
        if String::from_utf8_lossy(&req.body).contains("name=\"response_format\"") {
            return Reply::Raw(format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}", text.len()).into_bytes());
        }
        Reply::Json(200, json!({"text": text, "segments": [{"id": 0, "text": text}]}))
    })
    .await;
    let gw = GatewayProcess::start(&config(&up.url())).await;
    for extra in [
        "",
        "--b\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\ntext\r\n",
    ] {
        let body = format!("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ndefault-policy\r\n{extra}--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--b--\r\n");
        let resp = client()
            .post(gw.url("/v1/audio/transcriptions"))
            .header("content-type", "multipart/form-data; boundary=b")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains("u8jzPde0") && text.contains("[REDACTED:github_token]"),
            "{text}"
        );
    }
}

/// Shapes taken from gitleaks' and Presidio's test data, on a real gateway: what they call a
/// secret or personal data leaves redacted, what they call harmless leaves untouched, whole
/// and streamed.
#[tokio::test]
async fn peer_test_data_shapes_are_redacted_and_their_negatives_are_not() {
    let up = MockUpstream::with_handler(echo_upstream(3)).await;
    let config = format!(
        r#"environment: test
upstreams:
  u: {{url: {}}}
redaction:
  request:  {{secrets: redact, pii: redact}}
  response: {{secrets: redact, pii: redact}}
routes:
  - models: [m]
    upstream: u
"#,
        up.url()
    );
    let gw = GatewayProcess::start(&config).await;
    let secrets = [
        (
            "curl -u elastic:P@ssw0rd$1 https://localhost:9200",
            "elastic:P@ssw0rd$1",
            "curl_user",
        ),
        (
            r#"<add key="ClearTextPassword" value="CleartextPassword1" />"#,
            "CleartextPassword1",
            "nuget_password",
        ),
        (
            "export BUNDLE_GEMS__CONTRIBSYS__COM=cafebabe:deadbeef",
            "cafebabe:deadbeef",
            "bundler_credentials",
        ),
        ("call 090-1234-5678 today", "090-1234-5678", "phone"),
        ("or +44 (20) 7123 4567", "+44 (20) 7123 4567", "phone"),
        ("card 122000000000003", "122000000000003", "credit_card"),
        ("ssn 078.05.1123", "078.05.1123", "us_ssn"),
    ];
    let harmless = [
        "IBAN DE89 3704 0044 0532 0130 01 (check digits wrong)",
        "token = xoxb-my-bot-token",
        "secret_length = X25519.secret_length",
        "curl -u username:password https://example.com",
        "-----BEGIN PRIVATE KEY-----\nanything\n-----END PRIVATE KEY-----",
        "aws_access_key: AKIAIOSFODNN7EXAMPLE",
    ];
    let text = secrets
        .iter()
        .map(|(line, _, _)| *line)
        .chain(harmless)
        .collect::<Vec<_>>()
        .join("\n");
    for stream in [false, true] {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&user("m", &text, stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.text().await.unwrap();
        let answer = if stream {
            streamed_text(&body)
        } else {
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["choices"][0]["message"]
                ["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let seen = String::from_utf8(up.last().body).unwrap();
        for (line, value, detector) in secrets {
            let want = line.replace(value, &format!("[REDACTED:{detector}]"));
            assert!(
                !seen.contains(value),
                "{value} reached the upstream: {seen}"
            );
            assert!(
                answer.contains(&want),
                "stream {stream}: {want:?} in {answer:?}"
            );
        }
        for line in harmless {
            assert!(
                answer.contains(line),
                "stream {stream}: {line:?} changed: {answer:?}"
            );
        }
    }
}
