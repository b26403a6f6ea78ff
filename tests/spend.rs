//! End to end: what requests cost (JSON, streamed, Responses API, cached tokens) in the access
//! log, the metrics and `/usage`; USD budgets that hold under a concurrent burst, in memory
//! and through two gateways sharing redis-server.

mod common;

use std::time::Duration;

use common::mock::{event, MockUpstream, Recorded, Reply};
use common::{access_log, check, client, expect_error, metrics_when, GatewayProcess, RedisServer};
use serde_json::{json, Value};

const KEY: &str = "vk-spend-app-1";

/// The usage every answer of [`billed`] reports: 2 000 prompt tokens of which 1 500 cached,
/// 500 completion tokens of which 100 reasoning.
fn chat_usage() -> Value {
    json!({"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500,
           "prompt_tokens_details": {"cached_tokens": 1500, "audio_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": 100, "audio_tokens": 0}})
}

/// gpt-4o in conf/prices.yaml: $2.50 input, $1.25 cached input, $10 output per million:
/// 500 × 2.50 + 1 500 × 1.25 + 500 × 10 = 8 125 per million.
const GPT_4O_COST: f64 = 0.008_125;

/// An upstream that answers chat completions (JSON or streamed, after `delay`) and Responses
/// requests with fixed usage, saying the dated model name like OpenAI does.
fn billed(delay: Duration) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |req: &Recorded| {
        let body = req.json();
        let model = body["model"].as_str().unwrap_or("").to_owned();
        let dated = if model == "gpt-4o" {
            "gpt-4o-2024-08-06".to_owned()
        } else {
            model.clone()
        };
        if req.path.ends_with("/responses") {
            return Reply::Json(
                200,
                json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
                       "model": dated, "output": [{"type": "message", "id": "m", "status": "completed",
                       "role": "assistant", "content": [{"type": "output_text", "text": "ok", "annotations": []}]}],
                       "usage": {"input_tokens": 1000, "output_tokens": 200, "total_tokens": 1200,
                                 "input_tokens_details": {"cached_tokens": 800},
                                 "output_tokens_details": {"reasoning_tokens": 50}}}),
            );
        }
        if body["stream"] == true {
            let chunk = |delta: Value, finish: Value| {
                event(
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                    "model": dated, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
                )
            };
            let mut pieces = vec![
                (
                    delay,
                    chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null),
                ),
                (
                    Duration::ZERO,
                    chunk(json!({"content": "lo"}), json!("stop")),
                ),
            ];
            assert_eq!(
                body["stream_options"]["include_usage"], true,
                "the gateway asks for the stream's usage"
            );
            pieces.push((
                Duration::ZERO,
                event(
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                    "model": dated, "choices": [], "usage": chat_usage()}),
                ),
            ));
            pieces.push((Duration::ZERO, b"data: [DONE]\n\n".to_vec()));
            return Reply::Sse(pieces);
        }
        Reply::Json(
            200,
            json!({"id": "c1", "object": "chat.completion", "created": 1, "model": dated,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                                "finish_reason": "stop"}],
                   "usage": chat_usage()}),
        )
    }
}

fn config(upstream: &str, key_limits: &str, extra: &str) -> String {
    format!(
        r#"environment: test
upstreams:
  u: {{url: {upstream}}}
routes:
  - models: [gpt-4o, house-model, unpriced-model]
    upstream: u
    name: chat
keys:
  - name: app
    key: {KEY}
    limits: {key_limits}
prices:
  house-model: {{input: 1.00, cached_input: 0.10, output: 4.00, reasoning: 8.00}}
{extra}"#
    )
}

async fn post(gw: &GatewayProcess, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(model: &str, stream: bool, max_tokens: u64) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": "hi"}]})
}

async fn usage(gw: &GatewayProcess) -> Value {
    let resp = client().get(gw.admin_url("/usage")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn costs_come_from_real_usage_with_cached_tokens_everywhere() {
    let up = MockUpstream::with_handler(billed(Duration::ZERO)).await;
    let gw = GatewayProcess::start(&config(&up.url(), "{}", "")).await;

    // JSON and streamed chat at built-in prices; the stream's client did not ask for usage.
    let resp = post(&gw, "/v1/chat/completions", chat("gpt-4o", false, 64)).await;
    assert_eq!(resp.status(), 200);
    let text = post(&gw, "/v1/chat/completions", chat("gpt-4o", true, 64))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains("usage"),
        "the usage the gateway asked for is hidden"
    );
    // Configured prices: reasoning priced apart (100 of the 500 output tokens):
    // 500 × 1 + 1 500 × 0.10 + 400 × 4 + 100 × 8 = 3 050 per million.
    let resp = post(&gw, "/v1/chat/completions", chat("house-model", false, 64)).await;
    assert_eq!(resp.status(), 200);
    // The Responses API's names: 200 × 2.50 + 800 × 1.25 + 200 × 10 = 3 500 per million.
    let resp = post(
        &gw,
        "/v1/responses",
        json!({"model": "gpt-4o", "input": "hi", "max_output_tokens": 300}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // No price: answered, logged without a cost.
    let resp = post(
        &gw,
        "/v1/chat/completions",
        chat("unpriced-model", false, 64),
    )
    .await;
    assert_eq!(resp.status(), 200);

    let lines = access_log(&gw, 5).await;
    let expected = [
        Some(GPT_4O_COST),
        Some(GPT_4O_COST),
        Some(0.003_05),
        Some(0.003_5),
        None,
    ];
    for (line, want) in lines.iter().zip(expected) {
        match want {
            Some(want) => assert!(
                close(line["cost_usd"].as_f64().unwrap(), want),
                "{line} should cost {want}"
            ),
            None => assert!(line.get("cost_usd").is_none_or(Value::is_null), "{line}"),
        }
        assert_eq!(line["key"], "app", "{line}");
    }
    assert_eq!(lines[1]["tokens"]["cache_read"], 1500, "{}", lines[1]);
    assert_eq!(lines[1]["tokens"]["reasoning"], 100, "{}", lines[1]);
    let total: f64 = lines.iter().filter_map(|l| l["cost_usd"].as_f64()).sum();

    // The counter, per key; the request and token counters carry the key too.
    let text = metrics_when(&gw, |m| m.contains("veilgate_cost_usd_total{")).await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let cost: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "veilgate_cost_usd_total")
        .inspect(|s| {
            assert_eq!(s.labels.get("key"), Some("app"));
            assert_eq!(s.labels.get("environment"), Some("test"));
            assert_eq!(s.labels.get("route"), Some("chat"));
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .sum();
    assert!(close(cost, total), "metric {cost} vs access log {total}");
    let requests: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "veilgate_requests_total" && s.labels.get("key") == Some("app"))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .sum();
    assert_eq!(requests, 5.0, "{text}");

    // /usage: the same figures, per key and per route.
    let report = usage(&gw).await;
    let key = &report["keys"][0];
    assert_eq!(key["name"], "app");
    for period in ["hour", "day", "month", "since_start"] {
        assert_eq!(key[period]["requests"], 5, "{period}: {key}");
        assert!(
            close(key[period]["cost_usd"].as_f64().unwrap(), total),
            "{period}: {key} vs {total}"
        );
        assert_eq!(key[period]["unpriced_requests"], 1, "{key}");
    }
    assert_eq!(
        key["day"]["tokens"]["cache_read"],
        1500 * 3 + 1500 + 800,
        "{key}"
    );
    let route = &report["routes"][0];
    assert_eq!(route["name"], "chat");
    assert!(close(route["month"]["cost_usd"].as_f64().unwrap(), total));
    assert_eq!(report["prices_taken"], "2025-12-01");
}

/// Twelve concurrent requests that each could cost $0.0100x (1 000 output tokens at $10 per
/// million, and the prompt) against $0.05 a day: four are admitted, the rest refused with
/// 429 naming the budget; each admitted one is then charged what it really cost.
async fn burst_against(gateways: &[&GatewayProcess]) -> (usize, Vec<Value>) {
    let requests = (0..12).map(|i| {
        let gw = gateways[i % gateways.len()];
        async move {
            let resp = post(gw, "/v1/chat/completions", chat("gpt-4o", true, 1_000)).await;
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let no_retry = resp
                .headers()
                .get("x-should-retry")
                .map(|v| v.to_str().unwrap().to_owned());
            let text = resp.text().await.unwrap();
            (status, retry, no_retry, text)
        }
    });
    let results = futures_util::future::join_all(requests).await;
    let mut errors = Vec::new();
    let mut ok = 0;
    for (status, retry, no_retry, text) in results {
        match status {
            200 => ok += 1,
            429 => {
                let retry: u64 = retry.expect("Retry-After").parse().unwrap();
                assert!((1..=86_400).contains(&retry), "{retry}");
                if retry > 60 {
                    assert_eq!(no_retry.as_deref(), Some("false"));
                }
                errors.push(serde_json::from_str::<Value>(&text).unwrap()["error"].clone());
            }
            other => panic!("{other}: {text}"),
        }
    }
    (ok, errors)
}

fn assert_spend_refusal(error: &Value) {
    assert_eq!(error["type"], "insufficient_quota", "{error}");
    assert_eq!(error["code"], "budget_exceeded", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("Spend limit reached for key app: usd_per_day: $0.05 per day (UTC)"),
        "{message}"
    );
}

fn day_budget(report: &Value) -> Value {
    report["keys"][0]["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["budget"] == "usd_per_day")
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_concurrent_burst_never_overshoots_a_usd_budget() {
    // Every answer waits 1 s: the whole burst is decided before any request is settled.
    let up = MockUpstream::with_handler(billed(Duration::from_secs(1))).await;
    let gw = GatewayProcess::start(&config(&up.url(), "{usd_per_day: 0.05}", "")).await;
    let (ok, errors) = burst_against(&[&gw]).await;
    assert_eq!(
        ok, 4,
        "$0.05 holds four worst cases of $0.0100x: {errors:?}"
    );
    assert_eq!(up.count(), 4, "refused requests never reached the upstream");
    for e in &errors {
        assert_spend_refusal(e);
    }
    // Each admitted request really cost $0.008125: four, settled, is $0.0325.
    access_log(&gw, 12).await;
    let budget = day_budget(&usage(&gw).await);
    assert_eq!(budget["limit_usd"], 0.05, "{budget}");
    assert!(
        close(budget["spent_usd"].as_f64().unwrap(), 4.0 * GPT_4O_COST),
        "{budget}"
    );
    assert!(close(
        budget["remaining_usd"].as_f64().unwrap(),
        0.05 - 4.0 * GPT_4O_COST
    ));
    // What remains ($0.0175) holds one more worst case, not two.
    let (ok, _) = burst_against(&[&gw]).await;
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn requests_a_usd_budget_cannot_count_or_never_fit_are_refused() {
    let up = MockUpstream::with_handler(billed(Duration::ZERO)).await;
    let gw = GatewayProcess::start(&config(&up.url(), "{usd_per_day: 0.05}", "")).await;
    let err = expect_error(
        post(
            &gw,
            "/v1/chat/completions",
            chat("unpriced-model", false, 64),
        )
        .await,
        403,
    )
    .await;
    assert_eq!(err["code"], "model_not_priced");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("`unpriced-model` has no price"),
        "{err}"
    );
    // 10 000 output tokens at $10 per million is $0.10, twice the whole budget.
    let err = expect_error(
        post(&gw, "/v1/chat/completions", chat("gpt-4o", false, 10_000)).await,
        400,
    )
    .await;
    assert_eq!(err["code"], "request_exceeds_budget");
    assert_eq!(err["param"], "max_tokens");
    assert_eq!(up.count(), 0);
    // Without max_tokens, the model's longest answer (16 384 tokens for gpt-4o) is reserved.
    let mut no_cap = chat("gpt-4o", false, 0);
    no_cap.as_object_mut().unwrap().remove("max_tokens");
    let err = expect_error(post(&gw, "/v1/chat/completions", no_cap).await, 400).await;
    assert!(
        err["message"].as_str().unwrap().contains("longest answer"),
        "{err}"
    );
}

#[tokio::test]
async fn two_gateways_share_one_usd_budget_through_redis() {
    let redis = RedisServer::start();
    let up = MockUpstream::with_handler(billed(Duration::from_secs(1))).await;
    let shared = format!(
        "rate_limit:\n  backend: redis\n  url: {}\n  timeout: 500ms\n",
        redis.url()
    );
    let config = config(&up.url(), "{usd_per_day: 0.05}", &shared);
    let g1 = GatewayProcess::start(&config).await;
    let g2 = GatewayProcess::start(&config).await;
    let (ok, errors) = burst_against(&[&g1, &g2]).await;
    assert_eq!(ok, 4, "one budget for both: {errors:?}");
    for e in &errors {
        assert_spend_refusal(e);
    }
    access_log(&g1, 6).await;
    access_log(&g2, 6).await;
    // Both report the shared spend; each ledger counts its own traffic.
    let (r1, r2) = (usage(&g1).await, usage(&g2).await);
    assert_eq!(r1["budget_backend"], "redis");
    for r in [&r1, &r2] {
        let budget = day_budget(r);
        assert!(
            close(budget["spent_usd"].as_f64().unwrap(), 4.0 * GPT_4O_COST),
            "{budget}"
        );
    }
    let own = |r: &Value| r["keys"][0]["day"]["cost_usd"].as_f64().unwrap();
    assert!(close(own(&r1) + own(&r2), 4.0 * GPT_4O_COST));

    // A restarted gateway finds the day's spend in Redis.
    drop(g1);
    let g3 = GatewayProcess::start(&config).await;
    let budget = day_budget(&usage(&g3).await);
    assert!(
        close(budget["spent_usd"].as_f64().unwrap(), 4.0 * GPT_4O_COST),
        "{budget}"
    );
    assert_eq!(usage(&g3).await["keys"][0]["day"]["requests"], 0);
}

/// A retried request costs its one answer; a stream cut short before its usage costs what was
/// estimated (the prompt, and the text seen), and both are settled against the budget.
#[tokio::test]
async fn retried_and_cut_short_requests_are_charged_what_they_used() {
    let up = MockUpstream::with_handler(billed(Duration::ZERO)).await;
    let failing = MockUpstream::with_handler(|_: &Recorded| {
        Reply::Json(
            503,
            json!({"error": {"message": "overloaded", "type": "server_error"}}),
        )
    })
    .await;
    let cut = MockUpstream::with_handler(|_: &Recorded| {
        let text = "a".repeat(400);
        Reply::SseTruncated(vec![(
            Duration::ZERO,
            event(
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o-2024-08-06",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}),
            ),
        )])
    })
    .await;
    let config = format!(
        r#"environment: test
upstreams:
  good: {{url: {}}}
  failing: {{url: {}}}
  cut: {{url: {}}}
routes:
  - models: [gpt-4o]
    upstream: failing
    fallbacks: [good]
  - models: [gpt-4o-mini]
    upstream: cut
keys:
  - name: app
    key: {KEY}
    limits: {{usd_per_month: 5}}
"#,
        up.url(),
        failing.url(),
        cut.url()
    );
    let gw = GatewayProcess::start(&config).await;
    let resp = post(&gw, "/v1/chat/completions", chat("gpt-4o", false, 64)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(failing.count(), 1, "the first attempt failed");
    let resp = post(&gw, "/v1/chat/completions", chat("gpt-4o-mini", true, 500)).await;
    let _ = resp.text().await;

    let lines = access_log(&gw, 2).await;
    assert_eq!(lines[0]["attempts"], 2, "{}", lines[0]);
    assert!(close(lines[0]["cost_usd"].as_f64().unwrap(), GPT_4O_COST));
    // 400 characters are 100 tokens of output at $0.60 per million, and the prompt's
    // estimate at $0.15: more than the output alone, far less than the 500 reserved.
    let cut_cost = lines[1]["cost_usd"].as_f64().unwrap();
    assert_eq!(lines[1]["tokens"]["completion"], 100, "{}", lines[1]);
    let prompt = lines[1]["tokens"]["prompt"].as_u64().unwrap();
    assert!(
        close(cut_cost, (prompt as f64 * 0.15 + 100.0 * 0.60) / 1e6),
        "{}",
        lines[1]
    );

    let report = usage(&gw).await;
    let month = &report["keys"][0]["budgets"][0];
    assert_eq!(month["budget"], "usd_per_month");
    let spent = month["spent_usd"].as_f64().unwrap();
    // The budget counts whole micro-dollars, each request's cost rounded up.
    let expected = (GPT_4O_COST * 1e6).ceil() + (cut_cost * 1e6).ceil();
    assert!(close(spent * 1e6, expected), "{spent} vs {expected}");
}

/// A reload applies new prices and budgets; the dollars already spent stay counted.
#[tokio::test]
async fn a_reload_changes_prices_and_budgets_and_keeps_the_spend() {
    let up = MockUpstream::with_handler(billed(Duration::ZERO)).await;
    let gw = GatewayProcess::start(&config(&up.url(), "{usd_per_day: 1}", "")).await;
    let resp = post(&gw, "/v1/chat/completions", chat("house-model", false, 64)).await;
    assert_eq!(resp.status(), 200);
    let reloaded = config(&up.url(), "{usd_per_day: 2}", "").replace(
        "house-model: {input: 1.00, cached_input: 0.10, output: 4.00, reasoning: 8.00}",
        "house-model: {input: 2.00, output: 4.00}",
    );
    gw.write_config(&reloaded);
    assert!(
        gw.wait_for_log("config reloaded (file changed)", Duration::from_secs(10))
            .await
    );
    let resp = post(&gw, "/v1/chat/completions", chat("house-model", false, 64)).await;
    assert_eq!(resp.status(), 200);
    // 2 000 input at $2 (no cached price now) + 500 output at $4: 6 000 per million.
    let lines = access_log(&gw, 2).await;
    assert!(close(lines[0]["cost_usd"].as_f64().unwrap(), 0.003_05));
    assert!(close(lines[1]["cost_usd"].as_f64().unwrap(), 0.006));
    let budget = day_budget(&usage(&gw).await);
    assert_eq!(budget["limit_usd"], 2.0, "{budget}");
    assert!(
        close(budget["spent_usd"].as_f64().unwrap(), 0.009_05),
        "{budget}"
    );
}

/// `veilgate check` names each routed model without a price, and still passes.
#[test]
fn check_warns_about_models_without_a_price() {
    let (ok, stderr) = check(
        "environment: test\nlisten: 127.0.0.1:0\nupstreams:\n  u: {url: http://127.0.0.1:9/v1}\nroutes:\n  - models: [gpt-4o, \"claude-*\", my-finetune]\n    upstream: u\n    name: chat\n  - models: [fast]\n    model: llama-3-8b\n    upstream: u\nprices:\n  llama-3-8b: {input: 0.1, output: 0.1}\n",
    );
    assert!(ok, "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        ["warning: route `chat` sends model `my-finetune`, which has no price (conf/prices.yaml or `prices:`): its requests are logged without a cost and refused by any usd_per_* budget"],
        "{stderr}"
    );
}

/// Without keys, a route's request budget is per client address but its USD budget is the
/// route's: two clients share it, and `/usage` reports it.
#[tokio::test]
async fn an_open_gateway_keeps_route_usd_budgets_route_wide() {
    let up = MockUpstream::with_handler(billed(Duration::ZERO)).await;
    let gw = GatewayProcess::start(&format!(
        "environment: test\nupstreams:\n  u: {{url: {}}}\nroutes:\n  - models: [gpt-4o]\n    upstream: u\n    name: chat\n    limits: {{requests_per_day: 2, usd_per_day: 0.02}}\n",
        up.url()
    ))
    .await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let (a, b) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let send = |c: &reqwest::Client, max_tokens: u64| {
        c.post(gw.url("/v1/chat/completions"))
            .json(&chat("gpt-4o", false, max_tokens))
            .send()
    };
    // Each costs $0.008125 and reserves ~$0.005 (500 output tokens at $10 per million): after
    // two, $0.00375 is left. a's third asks for 100 tokens (~$0.001), which the dollars allow:
    // it is over a's own request budget only. (A request over two budgets is refused by the
    // one with the longest wait, which for a day's dollars depends on the time of day.)
    // b's first would take the route past $0.02.
    assert_eq!(send(&a, 500).await.unwrap().status(), 200);
    assert_eq!(send(&a, 500).await.unwrap().status(), 200);
    let third = send(&a, 100).await.unwrap();
    let err = expect_error(third, 429).await;
    assert_eq!(
        err["code"], "rate_limit_exceeded",
        "a's own request budget: {err}"
    );
    let err = expect_error(send(&b, 500).await.unwrap(), 429).await;
    assert_eq!(
        err["code"], "budget_exceeded",
        "the route's dollars, spent by a: {err}"
    );
    let report = usage(&gw).await;
    let route = &report["routes"][0];
    let spend = route["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["budget"] == "usd_per_day")
        .unwrap();
    assert!(
        close(spend["spent_usd"].as_f64().unwrap(), 2.0 * GPT_4O_COST),
        "{route}"
    );
}
