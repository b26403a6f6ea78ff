//! End to end: metrics per environment, OTLP traces per environment exporter, access log, and
//! secrets that never show up in any of them.

mod common;

use std::time::{Duration, Instant};

use common::mock::MockUpstream;
use common::otlp::{int_attr, str_attr, OtlpReceiver};
use common::{client, metrics_when, GatewayProcess};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;

const UPSTREAM_KEY: &str = "sk-proj-UPSTREAMSECRET0123456789abcdef";
const STAGING_KEY: &str = "vk-staging-KEYSECRET-42";
const PROD_KEY: &str = "vk-prod-KEYSECRET-43";
const STAGING_AUTH: &str = "Basic c3RhZ2luZy1TRUNSRVQ=";
const PROD_AUTH: &str = "Basic cHJvZC1TRUNSRVQ=";
const PROMPT_SECRET: &str = "ghp_PROMPTSECRETabcdefghijklmnopqrstuvwx12";

async fn setup() -> (GatewayProcess, MockUpstream, OtlpReceiver) {
    let up = MockUpstream::start().await;
    let otlp = OtlpReceiver::start().await;
    let config = format!(
        r#"environment: development
upstreams:
  openai:
    url: {upstream}
    api_key: {UPSTREAM_KEY}
routes:
  - models: ["gpt-4o*"]
    upstream: openai
keys:
  - name: web-staging
    key: {STAGING_KEY}
    environment: staging
  - name: web-prod
    key: {PROD_KEY}
    environment: production
telemetry:
  traces:
    endpoint: {default}
    sample_ratio: 1.0
    batch_delay_ms: 100
    environments:
      staging:
        endpoint: {staging}
        headers: {{authorization: "{STAGING_AUTH}"}}
      production:
        endpoint: {production}
        headers: {{authorization: "{PROD_AUTH}"}}
"#,
        upstream = up.url(),
        default = otlp.url("/default/v1/traces"),
        staging = otlp.url("/staging/v1/traces"),
        production = otlp.url("/production/v1/traces"),
    );
    let gw = GatewayProcess::start(&config).await;
    (gw, up, otlp)
}

async fn chat(
    gw: &GatewayProcess,
    key: &str,
    model: &str,
    stream: bool,
    traceparent: Option<&str>,
) -> String {
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "stream": stream, "max_tokens": 64, "temperature": 0.2,
                      "messages": [{"role": "user", "content": format!("my token is {PROMPT_SECRET}")}]}));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_traces_and_logs_per_environment_without_secrets() {
    let (gw, up, otlp) = setup().await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    chat(&gw, STAGING_KEY, "gpt-4o", false, Some(incoming)).await;
    chat(&gw, STAGING_KEY, "gpt-4o-mini", true, None).await;
    chat(&gw, PROD_KEY, "gpt-4o", false, None).await;
    let unknown = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(PROD_KEY)
        .json(&json!({"model": "nope", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // The upstream continues the client's trace.
    let tp = up.requests()[0].header("traceparent").unwrap().to_owned();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(
        !tp.contains("00f067aa0ba902b7"),
        "the upstream gets the gateway's client span as parent"
    );

    // Metrics, parsed by a Prometheus text parser.
    let text = metrics_when(&gw, |m| m.contains("status=\"404\"")).await;
    for line in text.lines().filter(|l| {
        l.starts_with("veilgate_requests_total")
            || l.starts_with("veilgate_tokens_total")
            || l.starts_with("veilgate_redactions_total")
    }) {
        eprintln!("metrics sample: {line}");
    }
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let requests: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "veilgate_requests_total")
        .collect();
    let count = |env: &str, model: &str, status: &str| -> f64 {
        requests
            .iter()
            .filter(|s| {
                s.labels.get("environment") == Some(env)
                    && s.labels.get("model") == Some(model)
                    && s.labels.get("status") == Some(status)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(count("staging", "gpt-4o*", "200"), 2.0, "{text}");
    assert_eq!(count("production", "gpt-4o*", "200"), 1.0, "{text}");
    assert!(
        requests
            .iter()
            .all(|s| s.labels.get("model") != Some("gpt-4o-mini")),
        "models are labelled by their configured glob"
    );
    let tokens: f64 = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "veilgate_tokens_total" && s.labels.get("environment") == Some("staging")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(
        tokens, 24.0,
        "two staging answers of 12 tokens each, the stream included"
    );
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "veilgate_build_info"));

    // Traces: each environment to its own exporter, with its own headers.
    let deadline = Instant::now() + Duration::from_secs(15);
    let exports = loop {
        let exports = otlp.exports();
        let spans: usize = exports.iter().map(|e| e.spans().len()).sum();
        if spans >= 6 || Instant::now() > deadline {
            break exports;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let staging: Vec<_> = exports
        .iter()
        .filter(|e| e.path.starts_with("/staging"))
        .collect();
    let production: Vec<_> = exports
        .iter()
        .filter(|e| e.path.starts_with("/production"))
        .collect();
    assert!(
        !staging.is_empty() && !production.is_empty(),
        "{:?}",
        exports.iter().map(|e| &e.path).collect::<Vec<_>>()
    );
    assert!(staging
        .iter()
        .all(|e| e.header("authorization") == Some(STAGING_AUTH)));
    assert!(production
        .iter()
        .all(|e| e.header("authorization") == Some(PROD_AUTH)));
    let staging_spans: Vec<_> = staging.iter().flat_map(|e| e.spans()).collect();
    assert_eq!(
        staging_spans.len(),
        4,
        "a server and a client span per request"
    );
    for (resource, _) in &staging_spans {
        assert_eq!(
            str_attr(resource, "deployment.environment.name").as_deref(),
            Some("staging")
        );
    }
    let continued = staging_spans
        .iter()
        .find(|(_, s)| {
            s.kind == SpanKind::Server as i32
                && hex(&s.trace_id) == "4bf92f3577b34da6a3ce929d0e0e4736"
        })
        .expect("the incoming trace is continued");
    assert_eq!(hex(&continued.1.parent_span_id), "00f067aa0ba902b7");
    let attrs = &continued.1.attributes;
    assert_eq!(
        str_attr(attrs, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        str_attr(attrs, "gen_ai.request.model").as_deref(),
        Some("gpt-4o")
    );
    assert_eq!(int_attr(attrs, "gen_ai.request.max_tokens"), Some(64));

    let client_span = staging_spans
        .iter()
        .find(|(_, s)| s.kind == SpanKind::Client as i32 && s.trace_id == continued.1.trace_id)
        .expect("a client span for the upstream attempt");
    assert_eq!(client_span.1.parent_span_id, continued.1.span_id);
    assert_eq!(
        str_attr(&client_span.1.attributes, "gen_ai.response.id").as_deref(),
        Some("chatcmpl-mock"),
        "the upstream's answer id"
    );
    assert_eq!(
        hex(&client_span.1.span_id),
        tp.split('-').nth(2).unwrap(),
        "the upstream's parent is the client span"
    );
    eprintln!(
        "decoded client span {:?} kind={:?} trace={} parent={}:",
        client_span.1.name,
        client_span.1.kind,
        hex(&client_span.1.trace_id),
        hex(&client_span.1.parent_span_id)
    );
    for kv in &client_span.1.attributes {
        eprintln!(
            "  {} = {:?}",
            kv.key,
            kv.value.as_ref().and_then(|v| v.value.as_ref())
        );
    }
    assert_eq!(
        int_attr(&client_span.1.attributes, "gen_ai.usage.input_tokens"),
        Some(9)
    );
    assert_eq!(
        int_attr(&client_span.1.attributes, "gen_ai.usage.output_tokens"),
        Some(3)
    );
    let streamed = staging_spans
        .iter()
        .find(|(_, s)| s.kind == SpanKind::Client as i32 && s.trace_id != continued.1.trace_id)
        .expect("the streamed request's client span");
    assert_eq!(
        int_attr(&streamed.1.attributes, "gen_ai.usage.output_tokens"),
        Some(3),
        "streams report usage too"
    );

    // Nothing secret anywhere: logs (access log included), traces, metrics.
    let logs = gw.logs();
    assert!(
        logs.contains("\"environment\":\"staging\"") && logs.contains("\"key\":\"web-staging\""),
        "{logs}"
    );
    let trace_bytes: Vec<u8> = exports.iter().flat_map(|e| e.raw.clone()).collect();
    let trace_text = String::from_utf8_lossy(&trace_bytes);
    for secret in [
        UPSTREAM_KEY,
        STAGING_KEY,
        PROD_KEY,
        STAGING_AUTH,
        PROD_AUTH,
        PROMPT_SECRET,
        "c3RhZ2luZy1TRUNSRVQ",
    ] {
        assert!(!logs.contains(secret), "log leaks {secret}");
        assert!(!trace_text.contains(secret), "trace leaks {secret}");
        assert!(!text.contains(secret), "metrics leak {secret}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An upstream that sends its header at once and its first event 1.2 s later: time to first
/// token is the event, not the header (the header time keeps its own metric).
#[tokio::test]
async fn time_to_first_token_waits_for_the_first_event_not_the_header() {
    let up = common::mock::MockUpstream::start().await;
    up.set_handler(|_| {
        let mut pieces = vec![(Duration::from_millis(1200), Vec::new())];
        pieces.extend(common::mock::chat_stream(
            "gpt-4o",
            &["Hello", " there"],
            Duration::ZERO,
        ));
        common::mock::Reply::Sse(pieces)
    });
    let gw = GatewayProcess::start(&format!(
        "environment: test\nupstreams:\n  u: {{url: {}}}\nroutes:\n  - models: [gpt-4o]\n    upstream: u\n",
        up.url()
    ))
    .await;
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&serde_json::json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let text = metrics_when(&gw, |m| {
        m.contains("veilgate_upstream_first_token_seconds_count{")
    })
    .await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let sum = |name: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && s.labels.get("stream") == Some("true"))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v)
                | prometheus_parse::Value::Gauge(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let first_token = sum("veilgate_upstream_first_token_seconds_sum");
    let header = sum("veilgate_upstream_first_byte_seconds_sum");
    assert!(
        first_token >= 1.1,
        "time to first token {first_token} s\n{text}"
    );
    assert!(header < 0.5, "time to header {header} s");
    // The access log says the same (its writer flushes on a timer).
    assert!(
        gw.wait_for_log("\"upstream_first_token_ms\"", Duration::from_secs(5))
            .await
    );
    let log = gw.logs();
    let line = log
        .lines()
        .find(|l| l.contains("\"upstream_first_token_ms\""))
        .unwrap_or_else(|| panic!("no access log line: {log}"));
    let v: serde_json::Value = serde_json::from_str(&line[line.find('{').unwrap()..]).unwrap();
    assert!(
        v["upstream_first_token_ms"].as_f64().unwrap() >= 1100.0,
        "{line}"
    );
}

/// `capture_content: true` puts the prompt and the answer on the span, in the GenAI shape,
/// after redaction — whole or streamed; an environment without it gets neither.
#[tokio::test]
async fn captured_content_is_redacted_and_in_the_genai_shape() {
    let up = MockUpstream::start().await;
    let otlp = OtlpReceiver::start().await;
    let token = format!("ghp_{}", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d");
    let config = format!(
        "environment: captured\nupstreams:\n  u: {{url: {}}}\nroutes:\n  - models: [gpt-4o]\n    upstream: u\n  - models: [quiet]\n    upstream: u\n    environment: quiet\ntelemetry:\n  traces:\n    endpoint: {}\n    headers: {{authorization: \"Basic ZGVmYXVsdA==\"}}\n    sample_ratio: 1.0\n    batch_delay_ms: 100\n    capture_content: true\n    environments:\n      quiet: {{endpoint: {}, capture_content: false}}\n",
        up.url(),
        otlp.url("/v1/traces"),
        otlp.url("/quiet/v1/traces"),
    );
    let gw = GatewayProcess::start(&config).await;
    for (model, stream) in [("gpt-4o", false), ("gpt-4o", true), ("quiet", false)] {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&json!({"model": model, "stream": stream, "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": format!("my key is {token}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans: Vec<_> = otlp.exports().iter().flat_map(|e| e.spans()).collect();
        let with_content = spans
            .iter()
            .filter(|(_, s)| str_attr(&s.attributes, "gen_ai.input.messages").is_some())
            .count();
        let quiet = otlp.exports().iter().any(|e| e.path.starts_with("/quiet"));
        if with_content >= 2 && quiet {
            break spans;
        }
        assert!(Instant::now() < deadline, "spans: {}", spans.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let captured: Vec<_> = spans
        .iter()
        .filter_map(|(_, s)| {
            Some((
                str_attr(&s.attributes, "gen_ai.input.messages")?,
                str_attr(&s.attributes, "gen_ai.output.messages")?,
            ))
        })
        .collect();
    assert_eq!(captured.len(), 2, "the whole answer and the stream");
    for (input, output) in &captured {
        assert!(!input.contains(&token), "{input}");
        let input: serde_json::Value = serde_json::from_str(input).unwrap();
        assert_eq!(input[0]["role"], "system");
        assert_eq!(input[0]["parts"][0]["content"], "Be brief.");
        assert_eq!(
            input[1]["parts"][0]["content"],
            "my key is [REDACTED:github_token]"
        );
        let output: serde_json::Value = serde_json::from_str(output).unwrap();
        assert_eq!(output[0]["role"], "assistant");
        assert!(
            !output[0]["parts"][0]["content"]
                .as_str()
                .unwrap()
                .is_empty(),
            "{output}"
        );
    }
    // The default endpoint gets its configured headers.
    for e in otlp.exports().iter().filter(|e| e.path == "/v1/traces") {
        assert_eq!(e.header("authorization"), Some("Basic ZGVmYXVsdA=="));
    }
    assert!(otlp.exports().iter().any(|e| e.path == "/v1/traces"));
    // The quiet environment's spans carry no content.
    for e in otlp
        .exports()
        .iter()
        .filter(|e| e.path.starts_with("/quiet"))
    {
        for (_, s) in e.spans() {
            assert!(str_attr(&s.attributes, "gen_ai.input.messages").is_none());
        }
    }
}

/// `GET /v1/models` counts in `veilgate_inflight_requests` of its key's environment: the
/// series exists (back at 0) once such a request was served, and only then.
#[tokio::test]
async fn model_listings_count_as_in_flight() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&format!(
        "environment: test\nupstreams:\n  u: {{url: {}}}\nroutes:\n  - models: [m]\n    upstream: u\nkeys:\n  - name: lister\n    key: vk-list-1\n    environment: listing\n",
        up.url()
    ))
    .await;
    let series = "veilgate_inflight_requests{environment=\"listing\"} 0";
    let before = metrics_when(&gw, |_| true).await;
    assert!(!before.contains(series), "{before}");
    let resp = client()
        .get(gw.url("/v1/models"))
        .bearer_auth("vk-list-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let after = metrics_when(&gw, |m| m.contains(series)).await;
    assert!(after.contains(series), "{after}");
}
