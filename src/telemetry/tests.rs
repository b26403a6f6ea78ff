//! Tests across the module: metrics parsed by a real Prometheus parser, spans decoded by an
//! OTLP/HTTP receiver, a dead collector, secrets, the access log and the ops files.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wire::usage::Usage;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue as PbKeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::metrics::names;
use super::*;
use crate::redact::{Action, Count, Direction};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const STAGING_SECRET: &str = "Basic c3RhZ2luZy1TRUNSRVQtcGxhbnRlZA==";
const PRODUCTION_SECRET: &str = "Basic cHJvZHVjdGlvbi1TRUNSRVQtcGxhbnRlZA==";
const DEFAULT_SECRET: &str = "default-SECRET-planted";
/// What a client sent as its API key; the record only ever holds the key's name.
const VIRTUAL_KEY_SECRET: &str = "sk-vg-SECRET-planted-0123456789";

// ---------------------------------------------------------------------------------------
// Helpers

/// An access-log sink the test can read.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn telemetry(spec: TraceSpec, sink: AccessLogSink) -> Telemetry {
    Telemetry::builder()
        .version("9.9.9-test")
        .traces(spec)
        .access_log(sink)
        .build()
        .unwrap()
}

/// A streamed chat request that failed over from `azure` (503) to `openai`.
fn record(t: &Telemetry, environment: &str, traceparent: Option<&str>) -> RequestRecord {
    let ids = t.start_trace(traceparent);
    let mut r = RequestRecord::begin("req-1", ids);
    let base = r.started;
    let ms = Duration::from_millis;
    r.environment = environment.into();
    r.route = "chat".into();
    r.key = Some("team-a".into());
    r.model = "gpt-4o*".into();
    r.stream = true;
    r.params = RequestParams {
        max_tokens: Some(256),
        temperature: Some(0.2),
    };
    let mut failed = UpstreamAttempt::begin(ids.attempt(), "azure", "azure.ai.openai", "gpt-4o");
    failed.started = base + ms(1);
    failed.ended = Some(base + ms(5));
    failed.status = Some(503);
    failed.error = Some(UpstreamErrorReason::Status(503));
    let mut ok = UpstreamAttempt::begin(ids.attempt(), "openai", "openai", "gpt-4o-2024-08-06");
    ok.server_address = Some("api.openai.com".into());
    ok.server_port = Some(443);
    ok.started = base + ms(6);
    ok.first_byte = Some(base + ms(20));
    ok.first_token = Some(base + ms(30));
    ok.ended = Some(base + ms(90));
    ok.status = Some(200);
    r.attempts = vec![failed, ok];
    r.ended = Some(base + ms(100));
    r.status = 200;
    r.tokens = Some(Usage {
        cache_read: 16,
        ..Usage::new(31, 112)
    });
    // 31 prompt tokens at $2.50/M and 112 completion tokens at $10/M.
    r.cost_usd = Some(0.0011975);
    r.response = ResponseInfo {
        model: Some("gpt-4o-2024-08-06".into()),
        id: Some("chatcmpl-1".into()),
        finish_reasons: vec!["stop".into()],
    };
    r.redactions = vec![
        Count {
            detector: "email".into(),
            direction: Direction::Request,
            action: Action::Mask,
            n: 2,
        },
        Count {
            detector: "aws_key".into(),
            direction: Direction::Response,
            action: Action::Mask,
            n: 1,
        },
    ];
    r.rate_limit = RateLimitOutcome::Allowed;
    r.content = Some(CapturedContent {
        input: r#"[{"role":"user","parts":[{"type":"text","content":"hi [EMAIL]"}]}]"#.into(),
        output: r#"[{"role":"assistant","parts":[{"type":"text","content":"hello"}]}]"#.into(),
    });
    r
}

fn spec_to(endpoint: &str) -> TraceSpec {
    TraceSpec {
        endpoint: Some(endpoint.into()),
        batch_delay_ms: 20,
        ..TraceSpec::default()
    }
}

// ---------------------------------------------------------------------------------------
// An OTLP/HTTP receiver

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    request: ExportTraceServiceRequest,
}

struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_otlp(socket, sink.clone()));
            }
        });
        Collector { addr, received }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    fn exports(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Every span received, with the resource attributes of its batch.
    fn spans(&self) -> Vec<(Vec<PbKeyValue>, Span)> {
        let mut out = Vec::new();
        for export in self.exports() {
            for rs in export.request.resource_spans {
                let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        out.push((resource.clone(), span));
                    }
                }
            }
        }
        out
    }
}

/// Answers OTLP/HTTP export requests on one (keep-alive) connection.
async fn serve_otlp(mut socket: TcpStream, sink: Arc<Mutex<Vec<Received>>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let (path, headers, body_at, length) = loop {
            let parsed = {
                let mut slots = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut slots);
                match req.parse(&buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let headers: HashMap<String, String> = req
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_ascii_lowercase(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect();
                        let length = headers
                            .get("content-length")
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        Some((req.path.unwrap_or("").to_owned(), headers, n, length))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => return,
                }
            };
            if let Some(p) = parsed {
                break p;
            }
            if !read_more(&mut socket, &mut buf).await {
                return;
            }
        };
        while buf.len() < body_at + length {
            if !read_more(&mut socket, &mut buf).await {
                return;
            }
        }
        let body: Vec<u8> = buf.drain(..body_at + length).skip(body_at).collect();
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        sink.lock().unwrap().push(Received {
            path,
            headers,
            request,
        });
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if socket.write_all(answer).await.is_err() {
            return;
        }
    }
}

async fn read_more(socket: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match socket.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// A collector that accepts connections and never answers.
async fn black_hole() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

fn attr<'a>(attributes: &'a [PbKeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn string_attr(attributes: &[PbKeyValue], key: &str) -> Option<String> {
    match attr(attributes, key) {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attributes: &[PbKeyValue], key: &str) -> Option<i64> {
    match attr(attributes, key) {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Shuts telemetry down off the async runtime, as the gateway should.
async fn shutdown(t: Arc<Telemetry>, timeout: Duration) -> ShutdownReport {
    tokio::task::spawn_blocking(move || t.shutdown(timeout))
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Metrics

fn scrape(t: &Telemetry) -> prometheus_parse::Scrape {
    let text = t.render_metrics();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn sample_value(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                && s.labels.len() == labels.len()
        })
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.last().map(|b| b.count).unwrap_or(0.0)
            }
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

#[test]
fn metrics_separate_environments_and_parse_as_prometheus_text() {
    let t = telemetry(TraceSpec::default(), AccessLogSink::Disabled);
    let _in_flight = t.metrics().inflight("staging");
    for _ in 0..2 {
        t.finish(&record(&t, "staging", None));
    }
    let mut refused = record(&t, "production", None);
    refused.status = 429;
    refused.attempts.clear();
    refused.tokens = None;
    refused.cost_usd = None;
    refused.redactions.clear();
    refused.rate_limit = RateLimitOutcome::Refused {
        budget: "tokens_per_day".into(),
    };
    t.finish(&refused);
    let mut failed_closed = record(&t, "production", None);
    failed_closed.status = 503;
    failed_closed.attempts.clear();
    failed_closed.redaction_failure = Some(RedactionFailure {
        direction: Direction::Response,
        reason: "scanner_error",
    });
    failed_closed.rate_limit = RateLimitOutcome::BackendError { admitted: true };
    t.finish(&failed_closed);
    t.metrics().config_reloaded(ReloadResult::Success);
    t.metrics().set_upstream_healthy("openai", true);
    t.metrics().set_upstream_healthy("azure", false);

    let s = scrape(&t);
    let req = |env: &str, status: &str| {
        sample_value(
            &s,
            names::REQUESTS,
            &[
                ("environment", env),
                ("route", "chat"),
                ("model", "gpt-4o*"),
                ("key", "team-a"),
                ("status", status),
            ],
        )
    };
    assert_eq!(req("staging", "200"), Some(2.0));
    assert_eq!(req("production", "429"), Some(1.0));
    assert_eq!(req("production", "503"), Some(1.0));
    assert_eq!(req("production", "200"), None);

    let duration_count = sample_value(
        &s,
        names::REQUEST_DURATION,
        &[
            ("environment", "staging"),
            ("route", "chat"),
            ("model", "gpt-4o*"),
        ],
    );
    assert_eq!(duration_count, Some(2.0));
    let ttft = sample_value(
        &s,
        names::UPSTREAM_FIRST_BYTE,
        &[
            ("environment", "staging"),
            ("upstream", "openai"),
            ("stream", "true"),
        ],
    );
    assert_eq!(ttft, Some(2.0));
    assert_eq!(
        sample_value(&s, names::GATEWAY_OVERHEAD, &[("environment", "staging")]),
        Some(2.0)
    );
    let sum_of = |metric: &str| {
        s.samples
            .iter()
            .find(|x| x.metric == metric && x.labels.get("environment") == Some("staging"))
            .map(|x| match x.value {
                prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
                _ => f64::NAN,
            })
    };
    // 100 ms total, 4 + 84 ms upstream: 12 ms overhead per request.
    let overhead = sum_of("veilgate_gateway_overhead_seconds_sum").unwrap();
    assert!((overhead - 0.024).abs() < 1e-6, "{overhead}");

    let tokens = |env: &str, kind: &str| {
        sample_value(
            &s,
            names::TOKENS,
            &[
                ("environment", env),
                ("route", "chat"),
                ("model", "gpt-4o*"),
                ("key", "team-a"),
                ("kind", kind),
            ],
        )
    };
    assert_eq!(tokens("staging", "prompt"), Some(62.0));
    assert_eq!(tokens("staging", "completion"), Some(224.0));
    let cost = sample_value(
        &s,
        names::COST,
        &[
            ("environment", "staging"),
            ("route", "chat"),
            ("model", "gpt-4o*"),
            ("key", "team-a"),
        ],
    )
    .unwrap();
    assert!((cost - 0.002395).abs() < 1e-12, "{cost}");
    assert_eq!(
        sample_value(
            &s,
            names::COST,
            &[
                ("environment", "production"),
                ("route", "chat"),
                ("model", "gpt-4o*"),
                ("key", "team-a"),
            ],
        ),
        Some(0.0011975),
        "the 503 fail-closed record had a cost; the refused one had none"
    );
    assert_eq!(
        sample_value(
            &s,
            names::REDACTIONS,
            &[
                ("environment", "staging"),
                ("direction", "request"),
                ("detector", "email"),
                ("action", "mask")
            ]
        ),
        Some(4.0)
    );
    assert_eq!(
        sample_value(
            &s,
            names::RATELIMITED,
            &[
                ("environment", "production"),
                ("key", "team-a"),
                ("budget", "tokens_per_day")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample_value(
            &s,
            names::RATELIMIT_BACKEND_ERRORS,
            &[("environment", "production"), ("decision", "admitted")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample_value(
            &s,
            names::REDACTION_FAILURES,
            &[
                ("environment", "production"),
                ("direction", "response"),
                ("reason", "scanner_error")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample_value(
            &s,
            names::UPSTREAM_ERRORS,
            &[
                ("environment", "staging"),
                ("upstream", "azure"),
                ("reason", "http_503")
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample_value(&s, names::INFLIGHT, &[("environment", "staging")]),
        Some(1.0)
    );
    assert_eq!(
        sample_value(&s, names::BUILD_INFO, &[("version", "9.9.9-test")]),
        Some(1.0)
    );
    assert_eq!(
        sample_value(&s, names::CONFIG_RELOADS, &[("result", "success")]),
        Some(1.0)
    );
    assert_eq!(
        sample_value(&s, names::CONFIG_RELOADS, &[("result", "failure")]),
        Some(0.0)
    );
    assert_eq!(
        sample_value(&s, names::UPSTREAM_HEALTHY, &[("upstream", "azure")]),
        Some(0.0)
    );
    assert_eq!(sample_value(&s, names::ACCESS_LOG_DROPPED, &[]), Some(0.0));
    assert_eq!(
        sample_value(&s, names::BUFFERED_REQUEST_BYTES, &[]),
        Some(0.0)
    );

    // Every family is documented, and every request series carries its environment.
    for family in names::ALL {
        if [names::TRACE_EXPORT_DROPPED, names::TRACE_EXPORT_ERRORS].contains(family) {
            continue; // no exporter here: no series yet
        }
        assert!(s.docs.contains_key(*family), "{family} missing");
    }
    let process_level = [
        names::BUILD_INFO,
        names::CONFIG_RELOADS,
        names::UPSTREAM_HEALTHY,
        names::ACCESS_LOG_DROPPED,
        names::BUFFERED_REQUEST_BYTES,
        names::RATELIMIT_BACKEND_OPERATION_ERRORS,
        names::RATELIMIT_BACKEND_INCIDENTS,
        names::RATELIMIT_TRACKED_STATES,
    ];
    for sample in &s.samples {
        let family = names::ALL
            .iter()
            .find(|f| sample.metric.starts_with(**f))
            .unwrap_or_else(|| panic!("unknown series {}", sample.metric));
        if !process_level.contains(family) {
            assert!(
                sample.labels.get("environment").is_some(),
                "{} has no environment",
                sample.metric
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Traces

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_follow_genai_conventions_and_go_to_their_environments_exporter() {
    let default = Collector::start().await;
    let staging = Collector::start().await;
    let production = Collector::start().await;
    let json = serde_json::json!({
        "endpoint": default.endpoint(),
        "headers": {"x-api-key": DEFAULT_SECRET},
        "capture_content": false,
        "batch_delay_ms": 20,
        "environments": {
            "staging": {"endpoint": staging.endpoint(),
                        "headers": {"authorization": STAGING_SECRET},
                        "capture_content": true},
            "production": {"endpoint": production.endpoint(),
                           "headers": {"authorization": PRODUCTION_SECRET}}
        }
    });
    let spec: TraceSpec = serde_json::from_value(json).unwrap();
    let t = Arc::new(telemetry(spec, AccessLogSink::Disabled));
    assert!(t.captures_content("staging"));
    assert!(!t.captures_content("production"));
    assert!(!t.captures_content("development"));

    let staged = record(&t, "staging", Some(TRACEPARENT));
    let produced = record(&t, "production", None);
    let developed = record(&t, "development", None);
    for r in [&staged, &produced, &developed] {
        t.finish(r);
    }
    let report = shutdown(t.clone(), Duration::from_secs(5)).await;
    assert!(report.traces_flushed);

    // Each environment reached its own endpoint, with its own headers.
    for (collector, header, value) in [
        (&staging, "authorization", STAGING_SECRET),
        (&production, "authorization", PRODUCTION_SECRET),
        (&default, "x-api-key", DEFAULT_SECRET),
    ] {
        let exports = collector.exports();
        assert!(!exports.is_empty());
        for e in &exports {
            assert_eq!(e.path, "/v1/traces");
            assert_eq!(e.headers.get(header).map(String::as_str), Some(value));
            assert_eq!(
                e.headers.get("content-type").map(String::as_str),
                Some("application/x-protobuf")
            );
        }
    }
    assert!(!staging.exports()[0].headers.contains_key("x-api-key"));
    for (collector, env, r) in [
        (&staging, "staging", &staged),
        (&production, "production", &produced),
        (&default, "development", &developed),
    ] {
        let spans = collector.spans();
        assert_eq!(spans.len(), 3, "{env}: one server and two client spans");
        for (resource, span) in &spans {
            assert_eq!(
                string_attr(resource, "service.name").as_deref(),
                Some("veilgate")
            );
            assert_eq!(
                string_attr(resource, "service.version").as_deref(),
                Some("9.9.9-test")
            );
            assert_eq!(
                string_attr(resource, "deployment.environment.name").as_deref(),
                Some(env)
            );
            assert_eq!(hex(&span.trace_id), r.trace.trace_id_hex());
        }
    }

    // The staging trace in detail: continued from the caller, ids as promised upstream.
    let spans = staging.spans();
    let server = &spans
        .iter()
        .find(|(_, s)| s.kind == SpanKind::Server as i32)
        .unwrap()
        .1;
    let clients: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(clients.len(), 2);
    assert_eq!(hex(&server.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&server.parent_span_id), "b7ad6b7169203331");
    assert_eq!(server.name, "chat gpt-4o*");
    assert_eq!(
        hex(&server.span_id),
        staged.trace.traceparent()[36..52].to_owned()
    );
    for (client, attempt) in clients.iter().zip(&staged.attempts) {
        assert_eq!(client.parent_span_id, server.span_id);
        assert_eq!(
            hex(&client.span_id),
            attempt.ids.traceparent()[36..52].to_owned()
        );
        assert_eq!(client.name, format!("chat {}", attempt.model));
    }
    let duration = server.end_time_unix_nano - server.start_time_unix_nano;
    assert_eq!(duration, 100_000_000);
    assert_eq!(
        clients[1].start_time_unix_nano - server.start_time_unix_nano,
        6_000_000
    );
    assert_eq!(
        clients[1].end_time_unix_nano - clients[1].start_time_unix_nano,
        84_000_000
    );
    assert_eq!(clients[1].events.len(), 1, "first-chunk event");

    let a = &server.attributes;
    assert_eq!(
        string_attr(a, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        string_attr(a, "gen_ai.request.model").as_deref(),
        Some("gpt-4o*")
    );
    assert_eq!(
        string_attr(a, "deployment.environment.name").as_deref(),
        Some("staging")
    );
    assert_eq!(string_attr(a, "veilgate.route").as_deref(), Some("chat"));
    assert_eq!(
        string_attr(a, "veilgate.key.name").as_deref(),
        Some("team-a")
    );
    assert_eq!(int_attr(a, "http.response.status_code"), Some(200));
    assert_eq!(int_attr(a, "veilgate.redactions.request"), Some(2));
    assert_eq!(int_attr(a, "veilgate.redactions.response"), Some(1));
    assert_eq!(int_attr(a, "gen_ai.request.max_tokens"), Some(256));
    assert_eq!(
        string_attr(a, "veilgate.ratelimit.outcome").as_deref(),
        Some("allowed")
    );
    assert!(
        attr(a, "gen_ai.usage.input_tokens").is_none(),
        "usage only on the inference span"
    );

    let failed = &clients[0].attributes;
    assert_eq!(
        string_attr(failed, "error.type").as_deref(),
        Some("http_503")
    );
    assert_eq!(
        string_attr(failed, "gen_ai.provider.name").as_deref(),
        Some("azure.ai.openai")
    );
    assert_eq!(
        clients[0].status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert!(attr(failed, "gen_ai.usage.input_tokens").is_none());

    let answer = &clients[1].attributes;
    assert_eq!(
        string_attr(answer, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(
        string_attr(answer, "gen_ai.request.model").as_deref(),
        Some("gpt-4o-2024-08-06")
    );
    assert_eq!(
        string_attr(answer, "gen_ai.response.model").as_deref(),
        Some("gpt-4o-2024-08-06")
    );
    assert_eq!(
        string_attr(answer, "gen_ai.response.id").as_deref(),
        Some("chatcmpl-1")
    );
    assert_eq!(int_attr(answer, "gen_ai.usage.input_tokens"), Some(31));
    assert_eq!(int_attr(answer, "gen_ai.usage.output_tokens"), Some(112));
    assert!(matches!(
        attr(answer, "gen_ai.usage.cost"),
        Some(any_value::Value::DoubleValue(c)) if (*c - 0.0011975).abs() < 1e-12
    ));
    assert_eq!(
        int_attr(answer, "gen_ai.usage.cache_read.input_tokens"),
        Some(16)
    );
    assert!(
        attr(answer, "gen_ai.usage.reasoning.output_tokens").is_none(),
        "a detail that is 0 is left out"
    );
    assert!(attr(failed, "gen_ai.usage.cost").is_none());
    assert_eq!(int_attr(answer, "gen_ai.request.max_tokens"), Some(256));
    assert_eq!(int_attr(answer, "server.port"), Some(443));
    assert!(matches!(
        attr(answer, "gen_ai.request.temperature"),
        Some(any_value::Value::DoubleValue(t)) if (*t - 0.2).abs() < 1e-9
    ));
    match attr(answer, "gen_ai.response.finish_reasons") {
        Some(any_value::Value::ArrayValue(array)) => {
            let reasons: Vec<_> = array
                .values
                .iter()
                .filter_map(|v| match &v.value {
                    Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(reasons, ["stop"]);
        }
        other => panic!("finish reasons: {other:?}"),
    }
    // Content captured for staging only.
    assert!(string_attr(answer, "gen_ai.input.messages")
        .unwrap()
        .contains("[EMAIL]"));
    assert!(string_attr(answer, "gen_ai.output.messages").is_some());
    for (_, span) in production.spans() {
        assert!(attr(&span.attributes, "gen_ai.input.messages").is_none());
    }
    // The production trace was new: no parent.
    let prod_server = production
        .spans()
        .into_iter()
        .find(|(_, s)| s.kind == SpanKind::Server as i32)
        .unwrap()
        .1;
    assert!(prod_server.parent_span_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_is_decided_once_per_trace_and_follows_the_caller() {
    let collector = Collector::start().await;
    let spec = TraceSpec {
        sample_ratio: 0.0,
        ..spec_to(&collector.endpoint())
    };
    let t = Arc::new(telemetry(spec, AccessLogSink::Disabled));
    let new_trace = record(&t, "staging", None);
    assert!(!new_trace.trace.is_sampled());
    assert!(new_trace.attempts[0].ids.traceparent().ends_with("-00"));
    let sampled_caller = record(&t, "staging", Some(TRACEPARENT));
    assert!(sampled_caller.attempts[0]
        .ids
        .traceparent()
        .ends_with("-01"));
    let unsampled = TRACEPARENT.replace("-01", "-00");
    let unsampled_caller = record(&t, "staging", Some(&unsampled));
    for r in [&new_trace, &sampled_caller, &unsampled_caller] {
        t.finish(r);
    }
    assert!(shutdown(t, Duration::from_secs(5)).await.traces_flushed);
    let spans = collector.spans();
    assert_eq!(spans.len(), 3);
    for (_, span) in spans {
        assert_eq!(hex(&span.trace_id), "0af7651916cd43dd8448eb211c80319c");
    }

    // Ratio 1 keeps every new trace; no exporter at all samples nothing new.
    let everything = telemetry(spec_to(&collector.endpoint()), AccessLogSink::Disabled);
    assert!(everything.start_trace(None).is_sampled());
    let nothing = telemetry(TraceSpec::default(), AccessLogSink::Disabled);
    assert!(!nothing.start_trace(None).is_sampled());
    assert!(
        nothing.start_trace(Some(TRACEPARENT)).is_sampled(),
        "the caller's flag travels on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_content_is_bounded_and_spans_survive_without_it() {
    let collector = Collector::start().await;
    let spec = TraceSpec {
        capture_content: true,
        batch_delay_ms: 200,
        max_queued_content_bytes: 200, // one record's content (133 bytes), not two
        ..spec_to(&collector.endpoint())
    };
    let t = Arc::new(telemetry(spec, AccessLogSink::Disabled));
    let first = record(&t, "staging", None);
    let second = record(&t, "staging", None);
    t.finish(&first);
    t.finish(&second);
    // Once exported, the budget is free again. The collector stores the spans before it
    // answers, and the lease is given back only after the answer, so wait for both.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (collector.spans().len() < 6 || t.queued_content_bytes() > 0) && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = record(&t, "staging", None);
    t.finish(&third);
    assert!(shutdown(t, Duration::from_secs(5)).await.traces_flushed);

    let answer_of = |r: &RequestRecord| {
        let id = r.attempts[1].ids.traceparent()[36..52].to_owned();
        collector
            .spans()
            .into_iter()
            .find(|(_, s)| hex(&s.span_id) == id)
            .map(|(_, s)| s.attributes)
            .unwrap()
    };
    let with = answer_of(&first);
    assert!(string_attr(&with, "gen_ai.input.messages").is_some());
    let without = answer_of(&second);
    assert!(string_attr(&without, "gen_ai.input.messages").is_none());
    assert!(matches!(
        attr(&without, "veilgate.content.omitted"),
        Some(any_value::Value::BoolValue(true))
    ));
    assert!(string_attr(&answer_of(&third), "gen_ai.output.messages").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfiguring_switches_exporters_and_flushes_the_old_ones() {
    let first = Collector::start().await;
    let second = Collector::start().await;
    let t = Arc::new(telemetry(
        spec_to(&first.endpoint()),
        AccessLogSink::Disabled,
    ));
    t.finish(&record(&t, "staging", None));
    t.reconfigure_traces(&spec_to(&second.endpoint())).unwrap();
    t.finish(&record(&t, "staging", None));
    let bad = TraceSpec {
        sample_ratio: 2.0,
        ..spec_to(&first.endpoint())
    };
    assert!(t.reconfigure_traces(&bad).is_err());
    assert!(shutdown(t, Duration::from_secs(5)).await.traces_flushed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while first.spans().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(first.spans().len(), 3);
    assert_eq!(second.spans().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_costs_a_counter_not_latency() {
    let hole = black_hole().await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed again: connections are refused
    let json = serde_json::json!({
        "endpoint": format!("http://{hole}/v1/traces"),
        "queue_capacity": 4,
        "max_batch_spans": 6,
        "batch_delay_ms": 10,
        "export_timeout_ms": 200,
        "environments": {"production": {"endpoint": format!("http://{refused}/v1/traces")}}
    });
    let spec: TraceSpec = serde_json::from_value(json).unwrap();
    let t = Arc::new(telemetry(spec, AccessLogSink::Disabled));
    let records: Vec<_> = (0..500)
        .flat_map(|_| [record(&t, "staging", None), record(&t, "production", None)])
        .collect();

    let started = Instant::now();
    for r in &records {
        t.finish(r);
    }
    let elapsed = started.elapsed();
    // 1000 finishes in a debug build; generous for a shared machine, far below one
    // export timeout per request.
    assert!(
        elapsed < Duration::from_millis(500),
        "finish took {elapsed:?}"
    );

    let report = shutdown(t.clone(), Duration::from_secs(3)).await;
    assert!(report.traces_flushed, "{report:?}");
    let s = scrape(&t);
    for env in ["staging", "production"] {
        let dropped =
            sample_value(&s, names::TRACE_EXPORT_DROPPED, &[("environment", env)]).unwrap();
        assert_eq!(dropped, 1500.0, "{env}: every span accounted for");
        let errors = sample_value(&s, names::TRACE_EXPORT_ERRORS, &[("environment", env)]).unwrap();
        assert!(errors >= 1.0, "{env}: {errors}");
    }

    // After shutdown, finish still counts: metrics move, spans are dropped and counted.
    t.finish(&record(&t, "staging", None));
    let s = scrape(&t);
    assert_eq!(
        sample_value(
            &s,
            names::TRACE_EXPORT_DROPPED,
            &[("environment", "staging")]
        ),
        Some(1503.0)
    );
}

// ---------------------------------------------------------------------------------------
// Access log and secrets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_carry_the_request_and_no_secret() {
    let collector = Collector::start().await;
    let json = serde_json::json!({
        "endpoint": collector.endpoint(),
        "headers": {"authorization": DEFAULT_SECRET},
        "environments": {"staging": {"endpoint": collector.endpoint(),
                                     "headers": {"authorization": STAGING_SECRET}}}
    });
    let spec: TraceSpec = serde_json::from_value(json).unwrap();
    let buffer = Buffer::default();
    let t = Arc::new(telemetry(
        spec.clone(),
        AccessLogSink::Writer(Box::new(buffer.clone())),
    ));
    let mut r = record(&t, "staging", Some(TRACEPARENT));
    r.rate_limit = RateLimitOutcome::Refused {
        budget: "requests_per_minute".into(),
    };
    t.finish(&r);
    t.finish(&record(&t, "production", None));
    let report = shutdown(t.clone(), Duration::from_secs(5)).await;
    assert!(report.access_log_flushed);

    let lines = buffer.lines();
    assert_eq!(lines.len(), 2);
    let line = &lines[0];
    let time = line["time"].as_str().unwrap();
    assert_eq!(time.len(), "2026-05-04T09:12:03.118Z".len(), "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    assert_eq!(line["request_id"], "req-1");
    assert_eq!(line["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(line["environment"], "staging");
    assert_eq!(line["route"], "chat");
    assert_eq!(line["key"], "team-a");
    assert_eq!(line["model"], "gpt-4o*");
    assert_eq!(line["upstream"], "openai");
    assert_eq!(line["attempts"], 2);
    assert_eq!(line["status"], 200);
    assert_eq!(line["stream"], true);
    assert_eq!(line["duration_ms"], 100.0);
    assert_eq!(line["upstream_first_byte_ms"], 14.0);
    assert_eq!(line["upstream_first_token_ms"], 24.0);
    assert_eq!(
        line["tokens"],
        serde_json::json!({"prompt": 31, "completion": 112, "cache_read": 16}),
        "details that are 0 are left out"
    );
    assert_eq!(line["cost_usd"], 0.0011975);
    assert_eq!(
        line["redactions"][0],
        serde_json::json!({"direction": "request", "detector": "email", "action": "mask", "count": 2})
    );
    assert_eq!(line["ratelimit"], "refused");
    assert_eq!(line["ratelimit_budget"], "requests_per_minute");
    assert_eq!(lines[1]["environment"], "production");

    // Secrets: neither exporter headers nor the client's key appear anywhere.
    let debug_outputs = [
        format!("{spec:?}"),
        format!("{t:?}"),
        format!("{r:?}"),
        format!("{:?}", TelemetryBuilder::default_for_test(spec.clone())),
    ];
    for text in debug_outputs.iter().chain([&buffer.text()]) {
        for secret in [
            DEFAULT_SECRET,
            STAGING_SECRET,
            VIRTUAL_KEY_SECRET,
            "hi [EMAIL]",
        ] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
    assert!(
        debug_outputs[1].contains("authorization"),
        "{}",
        debug_outputs[1]
    );
}

impl TelemetryBuilder {
    fn default_for_test(spec: TraceSpec) -> TelemetryBuilder {
        Telemetry::builder().traces(spec)
    }
}

#[test]
fn a_stuck_access_log_writer_drops_and_counts_lines() {
    /// A writer that blocks until released.
    struct Stuck(Arc<Mutex<()>>);
    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _held = self.0.lock().unwrap();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            let _held = self.0.lock().unwrap();
            Ok(())
        }
    }
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let t = Telemetry::builder()
        .access_log(AccessLogSink::Writer(Box::new(Stuck(gate.clone()))))
        .access_log_capacity(4)
        .build()
        .unwrap();
    let r = record(&t, "staging", None);
    t.finish(&r);
    // Let the writer take that line and get stuck flushing it.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    for _ in 0..100 {
        t.finish(&r);
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    let s = scrape(&t);
    let dropped = sample_value(&s, names::ACCESS_LOG_DROPPED, &[]).unwrap();
    assert_eq!(
        dropped, 96.0,
        "4 lines wait in the queue, the rest are dropped"
    );
    // A stuck writer cannot be flushed: shutdown gives up at its deadline.
    let report = t.shutdown(Duration::from_millis(300));
    assert!(!report.access_log_flushed);
    drop(held);
}

#[test]
fn health_report_uses_the_telemetry_version() {
    let t = telemetry(TraceSpec::default(), AccessLogSink::Disabled);
    let report = t.health(
        7,
        vec![UpstreamReport {
            name: "openai".into(),
            state: UpstreamVerdict::Healthy,
            detail: None,
        }],
    );
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(v["version"], "9.9.9-test");
    assert_eq!(v["config_version"], 7);
    assert_eq!(v["status"], "ok");
    assert!(v["uptime_seconds"].as_u64().is_some());
}

// ---------------------------------------------------------------------------------------
// Ops files

/// Every `veilgate_…` metric named in `text` is one of ours (histogram suffixes allowed).
fn unknown_metrics(text: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("veilgate_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &text[start..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        if !names::ALL.contains(&base) && !names::ALL.contains(&name) {
            unknown.push(name.to_owned());
        }
        i = end;
    }
    unknown
}

#[test]
fn alert_rules_reference_existing_metrics() {
    let rules = include_str!("../../conf/alerts.yaml");
    assert_eq!(unknown_metrics(rules), Vec::<String>::new());
    for needle in [
        names::REQUESTS,
        names::REQUEST_DURATION,
        names::RATELIMITED,
        names::UPSTREAM_HEALTHY,
        names::TOKENS,
        names::COST,
        names::TRACE_EXPORT_DROPPED,
        names::CONFIG_RELOADS,
    ] {
        assert!(rules.contains(needle), "no alert uses {needle}");
    }
}

#[test]
fn dashboard_has_an_environment_variable_and_known_metrics() {
    let text = include_str!("../../conf/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(text).unwrap();
    // An `__inputs` entry makes Grafana's import ask for a data source; the panels use the
    // `$datasource` variable instead, so every entry there must be used (`${NAME}`) or absent.
    for input in dashboard["__inputs"].as_array().into_iter().flatten() {
        let name = input["name"].as_str().unwrap();
        assert!(
            text.contains(&format!("${{{name}}}")),
            "__inputs asks for {name}, which no panel uses"
        );
    }
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let environment = variables
        .iter()
        .find(|v| v["name"] == "environment")
        .expect("an environment variable");
    let query = environment["query"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| environment["query"]["query"].as_str().map(str::to_owned))
        .unwrap();
    assert_eq!(query, "label_values(veilgate_requests_total, environment)");

    let panels = dashboard["panels"].as_array().unwrap();
    let mut exprs = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            exprs.push(expr.to_owned());
        }
    }
    let all = exprs.join("\n");
    assert_eq!(unknown_metrics(&all), Vec::<String>::new());
    for family in names::ALL {
        if [
            // Header time is for diagnosing an upstream; the panels show time to first token.
            names::UPSTREAM_FIRST_BYTE,
            names::BUILD_INFO,
            names::CONFIG_RELOADS,
            names::ACCESS_LOG_DROPPED,
            names::BUFFERED_REQUEST_BYTES,
            // The limiter's own counters are for diagnosing its backend.
            names::RATELIMIT_BACKEND_OPERATION_ERRORS,
            names::RATELIMIT_BACKEND_INCIDENTS,
            names::RATELIMIT_TRACKED_STATES,
        ]
        .contains(family)
        {
            continue;
        }
        assert!(all.contains(family), "no panel shows {family}");
    }
    for expr in &exprs {
        if !expr.contains("veilgate_upstream_healthy") {
            assert!(
                expr.contains("environment=~\"$environment\""),
                "unfiltered: {expr}"
            );
        }
    }
}

#[test]
fn telemetry_is_shareable_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Telemetry>();
    shareable::<RequestRecord>();
    shareable::<EnvironmentInflightGuard>();
}
