//! End to end: virtual keys and exact budgets, in memory and shared through Redis.

mod common;

use std::time::{Duration, Instant};

use common::mock::{chat_stream, MockUpstream, Reply};
use common::{client, expect_error, metrics_when, GatewayProcess, RedisServer};
use serde_json::json;

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn keyed_config(upstream: &str, key_limits: &str, extra: &str) -> String {
    format!(
        r#"environment: test
upstreams:
  u:
    url: {upstream}
    api_key: sk-provider-secret
routes:
  - models: ["gpt-*", other]
    upstream: u
keys:
  - name: app
    key: vk-app-123
    environment: production
    models: ["gpt-*"]
    limits: {key_limits}
  - name: hashed
    key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
{extra}"#
    )
}

async fn send(
    gw: &GatewayProcess,
    key: Option<&str>,
    body: &serde_json::Value,
) -> reqwest::Response {
    let mut req = client().post(gw.url("/v1/chat/completions")).json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn keys_authenticate_and_never_reach_the_upstream() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&keyed_config(&up.url(), "{}", "")).await;

    let err = expect_error(send(&gw, None, &chat("gpt-4o")).await, 401).await;
    assert_eq!(err["code"], "invalid_api_key");
    let err = expect_error(send(&gw, Some("vk-wrong"), &chat("gpt-4o")).await, 401).await;
    assert!(!err["message"].as_str().unwrap().contains("vk-wrong"));
    assert_eq!(up.count(), 0);

    assert_eq!(
        send(&gw, Some("vk-app-123"), &chat("gpt-4o"))
            .await
            .status(),
        200
    );
    assert_eq!(
        up.last().header("authorization"),
        Some("Bearer sk-provider-secret")
    );
    // `test` hashes to the configured key_sha256; api-key header works too.
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .header("api-key", "test")
        .json(&chat("other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().header("api-key"), None);

    let err = expect_error(send(&gw, Some("vk-app-123"), &chat("other")).await, 403).await;
    assert_eq!(err["code"], "model_not_allowed");
    let models: serde_json::Value = client()
        .get(gw.url("/v1/models"))
        .bearer_auth("vk-app-123")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        models["data"].as_array().unwrap().len(),
        0,
        "globs are not listed; `other` is not allowed"
    );
    assert_eq!(
        client()
            .get(gw.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

async fn burst(gw: &GatewayProcess, n: usize) -> Vec<reqwest::Response> {
    let body = chat("gpt-4o");
    let futures = (0..n).map(|_| send(gw, Some("vk-app-123"), &body));
    futures_util::future::join_all(futures).await
}

#[tokio::test]
async fn a_burst_gets_exactly_the_request_budget() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&keyed_config(&up.url(), "{requests_per_minute: 20}", "")).await;
    let responses = burst(&gw, 30).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    assert_eq!(ok, 20);
    assert_eq!(up.count(), 20, "refused requests never reach the upstream");
    let refused: Vec<_> = responses
        .into_iter()
        .filter(|r| r.status() == 429)
        .collect();
    assert_eq!(refused.len(), 10);
    for r in refused {
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        assert_eq!(r.headers()["x-ratelimit-limit-requests"], "20");
        assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
        assert!(r.headers().contains_key("x-ratelimit-reset-requests"));
        let err = expect_error(r, 429).await;
        assert_eq!(err["code"], "rate_limit_exceeded");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("requests_per_minute"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn token_budgets_reconcile_with_real_usage_streamed_or_not() {
    // Each mock answer uses 12 tokens (9 prompt + 3 completion); the estimate for "hi" is ~5.
    // With 50 tokens per minute exactly 4 requests fit: 48 used, 2 left < the next estimate.
    for stream in [false, true] {
        let up = MockUpstream::start().await;
        let gw =
            GatewayProcess::start(&keyed_config(&up.url(), "{tokens_per_minute: 50}", "")).await;
        let mut ok = 0;
        for _ in 0..8 {
            let body = json!({"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
            let resp = send(&gw, Some("vk-app-123"), &body).await;
            if resp.status() == 200 {
                ok += 1;
                assert!(resp.headers().contains_key("x-ratelimit-remaining-tokens"));
                let text = resp.text().await.unwrap();
                if stream {
                    assert!(
                        !text.contains("\"usage\""),
                        "the client did not ask for usage: {text}"
                    );
                    assert!(text.contains("[DONE]"));
                }
            } else {
                assert_eq!(resp.status(), 429);
            }
        }
        assert_eq!(ok, 4, "stream={stream}");
        if stream {
            assert_eq!(up.last().json()["stream_options"]["include_usage"], true);
        }
    }
}

#[tokio::test]
async fn a_client_that_asks_for_usage_still_gets_it() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&keyed_config(&up.url(), "{tokens_per_minute: 1000}", "")).await;
    let body = json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}, "messages": []});
    let text = send(&gw, Some("vk-app-123"), &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"usage\""), "{text}");
}

#[tokio::test]
async fn concurrency_limits_release_on_every_path() {
    let up = MockUpstream::with_handler(|_| {
        Reply::Sse(chat_stream("m", &["a", "b"], Duration::from_millis(600)))
    })
    .await;
    let gw = GatewayProcess::start(&keyed_config(&up.url(), "{concurrent: 2}", "")).await;
    let body = json!({"model": "gpt-4o", "stream": true, "messages": []});
    let (a, b) = tokio::join!(
        send(&gw, Some("vk-app-123"), &body),
        send(&gw, Some("vk-app-123"), &body)
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let third = send(&gw, Some("vk-app-123"), &body).await;
    assert_eq!(
        expect_error(third, 429).await["code"],
        "rate_limit_exceeded"
    );
    // One finishes normally, the other is dropped by its client mid-stream.
    a.text().await.unwrap();
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (c, d) = tokio::join!(
        send(&gw, Some("vk-app-123"), &body),
        send(&gw, Some("vk-app-123"), &body)
    );
    assert_eq!(
        (c.status().as_u16(), d.status().as_u16()),
        (200, 200),
        "both slots were released"
    );
}

#[tokio::test]
async fn two_gateways_share_one_budget_through_redis_and_survive_its_outage() {
    let mut redis = RedisServer::start();
    let up = MockUpstream::start().await;
    // 500 ms instead of the default 50 ms: with the suite's gateways sharing two cores, a
    // 50 ms stall of Redis is a CI hiccup, not the outage this test makes below. Two checks
    // against the stopped Redis still end well inside the 3 s asserted there.
    let extra = |mode: &str| {
        format!(
            "rate_limit:\n  backend: redis\n  url: {}\n  timeout: 500ms\n  on_backend_error: {mode}\n",
            redis.url()
        )
    };
    let g1 = GatewayProcess::start(&keyed_config(
        &up.url(),
        "{requests_per_minute: 20}",
        &extra("allow"),
    ))
    .await;
    let g2 = GatewayProcess::start(&keyed_config(
        &up.url(),
        "{requests_per_minute: 20}",
        &extra("deny"),
    ))
    .await;
    let body = chat("gpt-4o");
    let futures = (0..30).map(|i| {
        let gw = if i % 2 == 0 { &g1 } else { &g2 };
        send(gw, Some("vk-app-123"), &body)
    });
    let statuses: Vec<u16> = futures_util::future::join_all(futures)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10);

    // Redis down: allow admits quickly, deny refuses with 503; nobody waits long.
    redis.stop();
    let started = Instant::now();
    assert_eq!(
        send(&g1, Some("vk-app-123"), &chat("gpt-4o"))
            .await
            .status(),
        200
    );
    let err = expect_error(send(&g2, Some("vk-app-123"), &chat("gpt-4o")).await, 503).await;
    assert_eq!(err["code"], "rate_limit_backend_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The limiter's own counters say what happened to its backend.
    let text = metrics_when(&g2, |m| {
        m.lines().any(|l| {
            l.starts_with("veilgate_ratelimit_backend_incidents_total ") && !l.ends_with(" 0")
        })
    })
    .await;
    for family in [
        "veilgate_ratelimit_backend_incidents_total ",
        "veilgate_ratelimit_backend_operation_errors_total ",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(family) && !l.ends_with(" 0")),
            "{family}: {text}"
        );
    }

    // Back: the restarted Redis (empty: it keeps no data) is used again by both gateways: the
    // deny-mode gateway admits instead of answering 503, and a fresh shared budget of 20 is
    // enforced across the two again.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = send(&g2, Some("vk-app-123"), &chat("gpt-4o"))
            .await
            .status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only the outage answer while Redis comes back");
        assert!(Instant::now() < deadline, "redis not used again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut admitted = 1;
    let mut refused = false;
    for i in 0..30 {
        let gw = if i % 2 == 0 { &g1 } else { &g2 };
        match send(gw, Some("vk-app-123"), &body).await.status().as_u16() {
            200 => admitted += 1,
            429 => {
                refused = true;
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused, "the shared budget is enforced again");
    // 20 a minute: one more may have been refilled while Redis came back.
    assert!((20..=22).contains(&admitted), "{admitted} admitted");
}

#[tokio::test]
async fn responses_api_usage_counts_against_token_budgets_too() {
    // Each Responses answer of the mock uses 12 tokens; the estimate for input "hi" is 1, so
    // with 50 tokens a minute the 5th request still fits (48 used) and goes into debt (60);
    // the 6th is refused — streamed or not.
    for stream in [false, true] {
        let up = MockUpstream::start().await;
        let gw =
            GatewayProcess::start(&keyed_config(&up.url(), "{tokens_per_minute: 50}", "")).await;
        let mut statuses = Vec::new();
        for _ in 0..7 {
            let resp = client()
                .post(gw.url("/v1/responses"))
                .bearer_auth("vk-app-123")
                .json(&json!({"model": "gpt-4o", "input": "hi", "stream": stream}))
                .send()
                .await
                .unwrap();
            statuses.push(resp.status().as_u16());
            let _ = resp.text().await;
        }
        assert_eq!(
            statuses,
            [200, 200, 200, 200, 200, 429, 429],
            "stream={stream}"
        );
    }
}

#[tokio::test]
async fn a_stream_sent_with_content_length_ends_after_the_usage_chunk_is_hidden() {
    // The upstream frames its stream with Content-Length and keeps the connection open; the
    // gateway removes the usage chunk it asked for, so it must re-frame (chunked) the stream.
    let up = MockUpstream::with_handler(|_| {
        let mut body = String::new();
        body.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n");
        body.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n");
        body.push_str("data: [DONE]\n\n");
        Reply::RawKeepOpen(
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}", body.len())
                .into_bytes(),
        )
    })
    .await;
    let extra =
        "redaction:\n  request: {secrets: off, pii: off}\n  response: {secrets: off, pii: off}\n";
    let gw =
        GatewayProcess::start(&keyed_config(&up.url(), "{tokens_per_minute: 1000}", extra)).await;
    let body = json!({"model": "gpt-4o", "stream": true, "messages": []});
    let resp = send(&gw, Some("vk-app-123"), &body).await;
    let text = tokio::time::timeout(Duration::from_secs(5), resp.text())
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(
        !text.contains("\"usage\"") && text.trim_end().ends_with("data: [DONE]"),
        "{text}"
    );
}
