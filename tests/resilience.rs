//! End to end: weighted routes, fallbacks, timeouts, circuit breaking, cancellation, reload,
//! graceful drain — real processes, real signals, mock upstreams that fail on command.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mock::{chat_stream, MockUpstream, Reply};
use common::{client, expect_error, free_port, GatewayProcess};
use serde_json::json;

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn server_error() -> Reply {
    Reply::Json(
        503,
        json!({"error": {"message": "overloaded", "type": "server_error", "param": null, "code": null}}),
    )
}

async fn post(gw: &GatewayProcess, body: &serde_json::Value) -> reqwest::Response {
    client()
        .post(gw.url("/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn canary_weights_split_traffic() {
    let a = MockUpstream::start().await;
    let b = MockUpstream::start().await;
    let config = format!(
        "environment: test\nupstreams:\n  a: {{url: {}}}\n  b: {{url: {}}}\nroutes:\n  - models: [m]\n    upstreams: [{{name: a, weight: 90}}, {{name: b, weight: 10}}]\n",
        a.url(),
        b.url()
    );
    let gw = GatewayProcess::start(&config).await;
    for _ in 0..300 {
        assert_eq!(post(&gw, &chat("m")).await.status(), 200);
    }
    let (na, nb) = (a.count(), b.count());
    assert_eq!(na + nb, 300);
    // 90/10 of 300: b expects 30; a 5-sigma band is 15..=47.
    assert!((15..=47).contains(&nb), "a={na} b={nb}");
}

#[tokio::test]
async fn failures_fall_back_and_429_honours_retry_after() {
    let primary = MockUpstream::with_handler(|_| server_error()).await;
    let fallback = MockUpstream::start().await;
    let config = format!(
        "environment: test\nupstreams:\n  primary: {{url: {}}}\n  fallback: {{url: {}}}\nroutes:\n  - models: [m]\n    upstream: primary\n    fallbacks: [fallback]\n  - models: [strict]\n    upstream: primary\n    fallbacks: [fallback]\n    retry_on: []\n",
        primary.url(),
        fallback.url()
    );
    let gw = GatewayProcess::start(&config).await;
    let resp = post(&gw, &chat("m")).await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock (m)");
    assert_eq!((primary.count(), fallback.count()), (1, 1));
    assert_eq!(
        fallback.last().json(),
        chat("m"),
        "the fallback gets the same body"
    );

    // retry_on: [] → the upstream's own answer, as it sent it.
    let resp = post(&gw, &chat("strict")).await;
    assert_eq!(expect_error(resp, 503).await["message"], "overloaded");
    assert_eq!(fallback.count(), 1);

    // A 429 with Retry-After: the fallback serves, and the primary rests for that long.
    primary.set_handler(|_| {
        Reply::JsonWithHeaders(429, vec![("retry-after", "30".into())], json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}))
    });
    let before = primary.count();
    assert_eq!(post(&gw, &chat("m")).await.status(), 200);
    assert_eq!(primary.count(), before + 1);
    assert_eq!(post(&gw, &chat("m")).await.status(), 200);
    assert_eq!(
        primary.count(),
        before + 1,
        "primary skipped while cooling down"
    );
}

#[tokio::test]
async fn unreachable_and_stalled_upstreams_fall_back_or_time_out() {
    let stalled = MockUpstream::with_handler(|_| Reply::Stall).await;
    let good = MockUpstream::start().await;
    let dead = free_port();
    let config = format!(
        "environment: test\nupstreams:\n  dead: {{url: 'http://127.0.0.1:{dead}/v1', connect_timeout: 1s}}\n  stalled: {{url: {}, timeout: 700ms}}\n  good: {{url: {}}}\nroutes:\n  - models: [a]\n    upstream: dead\n    fallbacks: [good]\n  - models: [b]\n    upstream: stalled\n    fallbacks: [good]\n  - models: [c]\n    upstream: stalled\n",
        stalled.url(),
        good.url()
    );
    let gw = GatewayProcess::start(&config).await;
    assert_eq!(post(&gw, &chat("a")).await.status(), 200);
    let started = Instant::now();
    assert_eq!(post(&gw, &chat("b")).await.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(good.count(), 2);
    let resp = post(&gw, &chat("c")).await;
    assert_eq!(expect_error(resp, 504).await["code"], "upstream_timeout");
}

/// Reads one HTTP/1.1 request (header and Content-Length body) from `s`; `None` at EOF.
async fn read_request(s: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                return Some(buf);
            }
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_drops_is_retried_on_a_fresh_one() {
    use tokio::io::AsyncWriteExt;
    // An upstream that answers the first request of each connection, keeping it alive, and
    // closes the connection without a word when a second request arrives on it: the race of
    // an upstream's keep-alive timeout firing just as the gateway reuses the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (c, d) = (connections.clone(), dropped.clone());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            let d = d.clone();
            tokio::spawn(async move {
                if read_request(&mut s).await.is_none() {
                    return;
                }
                let body =
                    json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fresh"},
                    "finish_reason": "stop"}]})
                    .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(answer.as_bytes()).await.unwrap();
                if read_request(&mut s).await.is_some() {
                    d.fetch_add(1, Ordering::SeqCst);
                }
                // Dropped: closed with the second request unanswered.
            });
        }
    });
    let config = format!(
        "environment: test\nupstreams:\n  flaky: {{url: 'http://127.0.0.1:{port}/v1'}}\nroutes:\n  - models: [m]\n    upstream: flaky\n    retry_on: []\n"
    );
    let gw = GatewayProcess::start(&config).await;
    // One client connection: its requests run on one gateway thread, which reuses its pooled
    // upstream connection for each next request. `retry_on: []`: no route-level retry hides
    // a failure here.
    let http = client();
    for i in 0..4 {
        let resp = http
            .post(gw.url("/v1/chat/completions"))
            .json(&chat("m"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "fresh");
    }
    // Requests 2 to 4 each went first to the pooled connection, which the upstream dropped,
    // then to a fresh one.
    assert_eq!(dropped.load(Ordering::SeqCst), 3);
    assert_eq!(connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_stream_that_stalls_ends_with_an_error_event() {
    let up = MockUpstream::with_handler(|_| Reply::StallAfterHeader).await;
    let config = format!(
        "environment: test\nupstreams:\n  u: {{url: {}, idle_timeout: 500ms}}\nroutes:\n  - models: [m]\n    upstream: u\n",
        up.url()
    );
    let gw = GatewayProcess::start(&config).await;
    let started = Instant::now();
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "m", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap_or_default();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(text.contains("upstream_timeout"), "{text}");
}

#[tokio::test]
async fn repeated_failures_open_the_circuit_and_readyz_reports_it() {
    let flaky = MockUpstream::with_handler(|_| server_error()).await;
    let good = MockUpstream::start().await;
    let config = format!(
        "environment: test\nupstreams:\n  flaky: {{url: {}}}\n  good: {{url: {}}}\nroutes:\n  - models: [m]\n    upstream: flaky\n    fallbacks: [good]\n  - models: [only-flaky]\n    upstream: flaky\n",
        flaky.url(),
        good.url()
    );
    let gw = GatewayProcess::start(&config).await;
    for _ in 0..5 {
        assert_eq!(post(&gw, &chat("m")).await.status(), 200);
    }
    assert_eq!(flaky.count(), 5);
    for _ in 0..5 {
        assert_eq!(post(&gw, &chat("m")).await.status(), 200);
    }
    assert_eq!(flaky.count(), 5, "the open circuit keeps traffic away");
    assert_eq!(good.count(), 10);
    let ready = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.unwrap();
    assert!(
        body.contains("only-flaky") && body.contains("circuit_open"),
        "{body}"
    );
    let detailed: serde_json::Value = client()
        .get(gw.admin_url("/health/detailed"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upstreams = detailed["upstreams"]
        .as_array()
        .expect("per-upstream state");
    let flaky_state = upstreams.iter().find(|u| u["name"] == "flaky").unwrap();
    assert_eq!(flaky_state["state"], "unhealthy", "{detailed}");
    assert!(
        detailed["uptime_seconds"].is_u64() && detailed["config_version"].is_u64(),
        "{detailed}"
    );
    assert!(detailed["version"].is_string(), "{detailed}");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let up = MockUpstream::with_handler(|_| Reply::StallUntilClosed).await;
    let config = format!("environment: test\nupstreams:\n  u: {{url: {}}}\nroutes:\n  - models: [m]\n    upstream: u\n", up.url());
    let gw = GatewayProcess::start(&config).await;
    let c = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(c
        .post(gw.url("/v1/chat/completions"))
        .json(&chat("m"))
        .send()
        .await
        .is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.cancelled() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(up.cancelled(), 1, "the upstream saw the request cancelled");
}

#[tokio::test]
async fn azure_style_upstreams_get_their_url_key_header_and_query() {
    let up = MockUpstream::start().await;
    let config = format!(
        "environment: test\nupstreams:\n  azure:\n    url: 'http://127.0.0.1:{}/openai/deployments/{{model}}'\n    api_key: azure-secret\n    auth_header: api-key\n    query: {{api-version: '2024-10-21'}}\nroutes:\n  - models: [fast]\n    upstream: azure\n    model: gpt-4o-mini\n",
        up.port
    );
    let gw = GatewayProcess::start(&config).await;
    let resp = client()
        .post(gw.url("/v1/chat/completions?x=1"))
        .header("authorization", "Bearer client")
        .json(&chat("fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(
        seen.path,
        "/openai/deployments/gpt-4o-mini/chat/completions?x=1&api-version=2024-10-21"
    );
    assert_eq!(seen.header("api-key"), Some("azure-secret"));
    assert_eq!(seen.header("authorization"), None);
}

fn base_config(url: &str, models: &str) -> String {
    format!("environment: test\nupstreams:\n  u: {{url: {url}}}\nroutes:\n  - models: [{models}]\n    upstream: u\n")
}

async fn wait_for_status(gw: &GatewayProcess, model: &str, status: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if post(gw, &chat(model)).await.status().as_u16() == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn config_reloads_on_change_and_on_sighup_and_keeps_the_old_one_when_invalid() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&base_config(&up.url(), "a")).await;
    assert_eq!(post(&gw, &chat("b")).await.status(), 404);

    // A change on disk is picked up.
    gw.write_config(&base_config(&up.url(), "a, b"));
    assert!(
        wait_for_status(&gw, "b", 200).await,
        "new route served after reload"
    );

    // An invalid file is refused: the old config stays, the error names file:line:col.
    gw.write_config(&format!(
        "{}    bogus_key: 1\n",
        base_config(&up.url(), "c")
    ));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(post(&gw, &chat("b")).await.status(), 200);
    assert_eq!(post(&gw, &chat("c")).await.status(), 404);
    let logs = gw.logs();
    let path = gw.config_path.display().to_string();
    assert!(
        logs.contains(&format!("{path}:9:5")) && logs.contains("bogus_key"),
        "{logs}"
    );
    let metrics = client()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("veilgate_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );

    // SIGHUP reloads too.
    std::fs::write(
        &gw.config_path,
        format!(
            "listen: 127.0.0.1:{}\nadmin: 127.0.0.1:{}\n{}",
            gw.port,
            gw.admin_port,
            base_config(&up.url(), "d")
        ),
    )
    .unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status();
    assert!(wait_for_status(&gw, "d", 200).await);
}

#[tokio::test]
async fn sigterm_lets_streams_finish_then_exits_zero() {
    let up = MockUpstream::with_handler(|_| {
        Reply::Sse(chat_stream(
            "m",
            &["a", "b", "c", "d"],
            Duration::from_millis(400),
        ))
    })
    .await;
    let mut gw = GatewayProcess::start(&base_config(&up.url(), "m")).await;
    let url = gw.url("/v1/chat/completions");
    let stream = tokio::spawn(async move {
        let resp = client()
            .post(url)
            .json(&json!({"model": "m", "stream": true, "messages": []}))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status();
    let text = stream.await.unwrap();
    let content: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "abcd", "stream cut short: {text}");
    assert!(text.contains("[DONE]"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = gw.child().try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .is_err());
}

#[tokio::test]
async fn hostile_http_is_refused_and_the_gateway_lives_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&base_config(&up.url(), "m")).await;
    for garbage in [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000)).into_bytes(),
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello".to_vec(),
    ] {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
        let _ = s.write_all(&garbage).await;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap_or(Ok(0)).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]);
        // Every one is answered, not dropped in silence: a 400, and no HTML page.
        assert!(n > 0, "no answer to a hostile request");
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(!answer.to_ascii_lowercase().contains("<html"), "{answer}");
    }
    assert_eq!(post(&gw, &chat("m")).await.status(), 200, "still serving");
    assert_eq!(up.count(), 1);
}

/// A chat request body the mock routes by `model`.
fn chat_bytes(model: &str) -> Vec<u8> {
    serde_json::to_vec(&chat(model)).unwrap()
}

/// Sends requests on new connections until `stop`, alternating `GET /v1/models` (with
/// request ids `hammer-<n>-<i>`) and the admin `/healthz`: how many got a 200, and what
/// happened to the others.
async fn hammer(
    n: usize,
    port: u16,
    admin_port: u16,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> (usize, Vec<String>) {
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (mut ok, mut failures) = (0usize, Vec::new());
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let request = if i % 2 == 0 {
            c.get(format!("http://127.0.0.1:{port}/v1/models"))
                .header("x-request-id", format!("hammer-{n}-{i}"))
        } else {
            c.get(format!("http://127.0.0.1:{admin_port}/healthz"))
        };
        match request.header("connection", "close").send().await {
            Ok(resp) if resp.status() == 200 => ok += 1,
            Ok(resp) => failures.push(format!("#{n}-{i}: status {}", resp.status())),
            Err(e) => failures.push(format!("#{n}-{i}: {e:?}")),
        }
        tokio::time::sleep(pause).await;
    }
    (ok, failures)
}

/// Upgrade as the README says: start the new binary with `--upgrade` and the same config and
/// `--upgrade-sock`, then send the old one SIGQUIT. The old one hands over every listening
/// socket (gateway and admin), keeps serving what it has, and exits 0 once drained.
#[tokio::test]
async fn sigquit_hands_the_listeners_to_an_upgraded_process_without_losing_a_request() {
    let words = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let up = MockUpstream::with_handler(move |req| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        if body["model"] == "slow" {
            // ~8 s: longer than Pingora's 5 s between handing the sockets over and closing them.
            Reply::Sse(chat_stream("slow", &words, Duration::from_secs(1)))
        } else {
            common::mock::openai_like(req)
        }
    })
    .await;
    let mut old = GatewayProcess::start(&base_config(&up.url(), "m, slow")).await;

    // A stream in flight on the old process (nothing else is listening yet).
    let url = old.url("/v1/chat/completions");
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let stream = tokio::spawn(async move {
        let mut resp = client()
            .post(url)
            .json(&json!({"model": "slow", "stream": true, "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut text = String::new();
        let mut started = Some(started_tx);
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(tx) = started.take() {
                let _ = tx.send(());
            }
        }
        text
    });
    started_rx.await.expect("the stream started");

    // New connections all along, four at a time, alternating the gateway and the admin
    // port: none may fail, not even those the old process accepts as its listeners close.
    let stop = Arc::new(AtomicBool::new(false));
    let (port, admin_port) = (old.port, old.admin_port);
    let hammers: Vec<_> = (0..4)
        .map(|n| {
            let pause = Duration::from_millis(2);
            tokio::spawn(hammer(n, port, admin_port, pause, stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The new process binds the upgrade socket and waits for the listeners...
    let mut new = old.start_upgrade();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !new.upgrade_sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the new process never waited on {}:\n{}",
            new.upgrade_sock.display(),
            new.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...which the old one sends on SIGQUIT.
    let quit_at = Instant::now();
    old.signal("QUIT");
    assert!(
        new.wait_for_log("listening on", Duration::from_secs(15))
            .await,
        "the new process did not get the sockets:\n{}\n--- old:\n{}",
        new.logs(),
        old.logs()
    );
    assert!(
        old.logs().contains("listener sockets sent"),
        "{}",
        old.logs()
    );

    // The old process finishes its stream, then exits 0.
    let status = old
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("the old process did not exit:\n{}", old.logs()));
    assert!(status.success(), "{status}:\n{}", old.logs());
    let text = stream.await.unwrap();
    let content: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, words.concat(), "stream cut short: {text}");
    assert!(text.contains("[DONE]"), "{text}");
    assert!(
        quit_at.elapsed() >= Duration::from_secs(5),
        "the stream was meant to outlast the 5 s in which both processes accept"
    );

    // Only the new process is left: it answers on the same ports, upstream calls included.
    assert_eq!(new.child().try_wait().unwrap(), None, "{}", new.logs());
    let resp = client()
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .json(&chat("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ready = client()
        .get(format!("http://127.0.0.1:{admin_port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut failures) = (0, Vec::new());
    for h in hammers {
        let (o, f) = h.await.unwrap();
        ok += o;
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the hand-over: {failures:#?}",
        failures.len(),
        ok + failures.len()
    );
    assert!(ok >= 400, "only {ok} requests during the hand-over");
    assert!(
        new.wait_for_log("\"request_id\":\"hammer-", Duration::from_secs(5))
            .await,
        "the new process served none of them:\n{}",
        new.logs()
    );
}

/// The hand-over at full speed with nothing in flight: the old process exits the moment its
/// listeners close, so a connection it accepted just before, whose request is still on its
/// way, must be served before it goes (it was reset, 1–3 times a run, before the drain
/// counted connections and Pingora's drop of waiting connections was delayed).
#[tokio::test]
async fn an_idle_gateway_hands_over_under_load_without_resetting_a_connection() {
    let up = MockUpstream::start().await;
    let mut old = GatewayProcess::start(&base_config(&up.url(), "m")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (port, admin_port) = (old.port, old.admin_port);
    let hammers: Vec<_> = (0..6)
        .map(|n| tokio::spawn(hammer(n, port, admin_port, Duration::ZERO, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new = old.start_upgrade();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !new.upgrade_sock.exists() {
        assert!(Instant::now() < deadline, "{}", new.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    old.signal("QUIT");
    let status = old
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("the old process did not exit:\n{}", old.logs()));
    assert!(status.success(), "{status}:\n{}", old.logs());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut failures) = (0, Vec::new());
    for h in hammers {
        let (o, f) = h.await.unwrap();
        ok += o;
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the hand-over: {failures:#?}",
        failures.len(),
        ok + failures.len()
    );
    assert!(ok >= 1000, "only {ok} requests during the hand-over");
}

/// Reads until the gateway closes the connection (or `within` passes): what it sent, and
/// whether it closed.
async fn read_until_closed(s: &mut tokio::net::TcpStream, within: Duration) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Status and body of one raw HTTP/1.1 answer.
fn parse_answer(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

const CLIENT_TIMEOUT_CONFIG: &str = "client_timeout: 1s\n";

#[tokio::test]
async fn a_client_stalling_in_its_request_header_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&format!(
        "{CLIENT_TIMEOUT_CONFIG}{}",
        base_config(&up.url(), "m")
    ))
    .await;
    let connect = || tokio::net::TcpStream::connect(("127.0.0.1", gw.port));

    // Half a header, then nothing: closed after client_timeout, without an answer.
    let mut s = connect().await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .await
        .unwrap();
    let stalled = Instant::now();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    let waited = stalled.elapsed();
    assert!(closed, "still open after {waited:?}");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(6),
        "closed after {waited:?}, client_timeout is 1s"
    );

    // A header dripped a byte every 200 ms: every read is quick, the whole header is not.
    // (Pingora alone allows 60 s per read here, so this would stay open for minutes.)
    let mut s = connect().await.unwrap();
    let header = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n";
    let started = Instant::now();
    let mut closed_after = None;
    for byte in header.iter().take(60) {
        if s.write_all(&[*byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let (got, closed) = read_until_closed(&mut s, Duration::from_millis(200)).await;
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        if closed {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("a dripping header was never cut off");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(6),
        "dripping header closed after {closed_after:?}"
    );
    assert_eq!(up.count(), 0, "nothing was forwarded");

    // A header in a few quick pieces is fine, and so is the next request.
    let mut s = connect().await.unwrap();
    let body = chat_bytes("m");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    for piece in request.as_bytes().chunks(request.len() / 3 + 1) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.write_all(&body).await.unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(closed);
    let (status, _, answer) = parse_answer(&got);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(post(&gw, &chat("m")).await.status(), 200);
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn a_client_stalling_in_its_body_gets_408_and_nothing_goes_upstream() {
    use tokio::io::AsyncWriteExt;
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&format!(
        "{CLIENT_TIMEOUT_CONFIG}{}",
        base_config(&up.url(), "m")
    ))
    .await;
    let body = chat_bytes("m");
    let half = &body[..body.len() / 2];

    let with_length = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    let mut chunked = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(format!("{:x}\r\n", half.len()).as_bytes());
    for (name, head) in [("content-length", with_length), ("chunked", chunked)] {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .unwrap();
        s.write_all(&head).await.unwrap();
        s.write_all(half).await.unwrap();
        let stalled = Instant::now();
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(15)).await;
        let waited = stalled.elapsed();
        assert!(closed, "{name}: still open after {waited:?}");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
            "{name}: answered and closed after {waited:?}, client_timeout is 1s"
        );
        let (status, head, answer) = parse_answer(&got);
        assert_eq!(status, 408, "{name}: {answer}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("connection: close"), "{name}: {head}");
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            v,
            json!({"error": {
                "message": "The request body did not arrive in time (no data for 1s).",
                "type": "invalid_request_error", "param": null, "code": "request_timeout"}}),
            "{name}"
        );
    }
    assert_eq!(up.count(), 0, "nothing was forwarded");

    // A body that keeps coming, each piece well within client_timeout, is never cut off,
    // though the whole takes longer than client_timeout.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for piece in body.chunks(body.len() / 5 + 1) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(1));
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    let (status, _, answer) = parse_answer(&got);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(up.count(), 1);
    assert_eq!(up.last().body, body, "the upstream got the whole body");

    // And the gateway goes on serving.
    assert_eq!(post(&gw, &chat("m")).await.status(), 200);
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn a_client_stalling_in_a_body_pingora_streams_gets_408_too() {
    use tokio::io::AsyncWriteExt;
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&format!(
        "{CLIENT_TIMEOUT_CONFIG}environment: test\nupstreams:\n  u: {{url: {}}}\nroutes:\n  - paths: [/v1/files]\n    upstream: u\n",
        up.url()
    ))
    .await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    s.write_all(b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\nhalf a body")
        .await
        .unwrap();
    let stalled = Instant::now();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(15)).await;
    let waited = stalled.elapsed();
    assert!(closed, "still open after {waited:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "answered after {waited:?}, client_timeout is 1s"
    );
    let (status, _, answer) = parse_answer(&got);
    assert_eq!(status, 408, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["error"]["code"], "request_timeout", "{answer}");
    assert_eq!(up.count(), 0, "no complete request reached the upstream");
}

async fn metrics(gw: &GatewayProcess) -> String {
    client()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A reload that adds a trace endpoint starts exporting to it at once; one that changes what
/// only a restart applies (the rate-limit backend, the grace period) is applied in part and
/// says so — in the log, naming the settings, and in the metric — never as a success.
#[tokio::test]
async fn a_reload_applies_traces_and_says_partial_for_what_needs_a_restart() {
    let up = MockUpstream::start().await;
    let otlp = common::otlp::OtlpReceiver::start().await;
    let gw = GatewayProcess::start(&base_config(&up.url(), "m")).await;
    assert_eq!(post(&gw, &chat("m")).await.status(), 200);

    let traced = format!(
        "{}telemetry:\n  traces:\n    endpoint: {}\n    sample_ratio: 1.0\n    batch_delay_ms: 100\n",
        base_config(&up.url(), "m"),
        otlp.url("/v1/traces")
    );
    gw.write_config(&traced);
    assert!(
        gw.wait_for_log("config reloaded (file changed)", Duration::from_secs(10))
            .await
    );
    assert_eq!(post(&gw, &chat("m")).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while otlp.exports().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no span reached the trace endpoint added by the reload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metrics(&gw)
        .await
        .contains("veilgate_config_reloads_total{result=\"success\"} 1"));

    // A Redis backend with `deny` and a new grace period: only a restart applies them.
    gw.write_config(&format!(
        "{traced}shutdown_grace: 7s\nrate_limit:\n  backend: redis\n  url: redis://127.0.0.1:9/0\n  on_backend_error: deny\n"
    ));
    assert!(
        gw.wait_for_log("config reloaded in part", Duration::from_secs(10))
            .await,
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("config reloaded in part"))
        .unwrap();
    assert!(
        line.contains("rate_limit") && line.contains("shutdown_grace") && line.contains("restart"),
        "{line}"
    );
    let text = metrics(&gw).await;
    assert!(
        text.contains("veilgate_config_reloads_total{result=\"partial\"} 1")
            && text.contains("veilgate_config_reloads_total{result=\"success\"} 1"),
        "{text}"
    );
    // The old (memory) backend is still the one in force: requests are admitted.
    assert_eq!(post(&gw, &chat("m")).await.status(), 200);
}

/// An upstream whose active health check fails leaves rotation (`/readyz` 503); removing the
/// check in a reload puts it back at once instead of leaving it failing until a restart.
#[tokio::test]
async fn active_health_checks_take_an_upstream_out_and_removing_them_puts_it_back() {
    let up = MockUpstream::with_handler(|req| {
        if req.path.ends_with("/health") {
            Reply::Json(500, serde_json::json!({"error": "down"}))
        } else {
            common::mock::openai_like(req)
        }
    })
    .await;
    let checked = format!(
        "environment: test\nupstreams:\n  u: {{url: {}, health_check: {{path: /health, interval: 1s, timeout: 1s}}}}\nroutes:\n  - models: [m]\n    upstream: u\n",
        up.url()
    );
    let gw = GatewayProcess::start(&checked).await;
    let ready = || async {
        client()
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready().await != 503 {
        assert!(Instant::now() < deadline, "the failing check never counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detailed = client()
        .get(gw.admin_url("/health/detailed"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(detailed.contains("health_check_failing"), "{detailed}");

    gw.write_config(&base_config(&up.url(), "m"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready().await != 200 {
        assert!(
            Instant::now() < deadline,
            "still out of rotation after its check was removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(post(&gw, &chat("m")).await.status(), 200);
}

/// `shutdown_grace` bounds the drain: on SIGTERM a stream still open when the grace period
/// ends is cut and the process exits 0 — after the grace period, not Pingora's default.
#[tokio::test]
async fn shutdown_grace_bounds_the_drain() {
    let up = MockUpstream::with_handler(|_| Reply::StallAfterHeader).await;
    let mut gw = GatewayProcess::start(&format!(
        "{}shutdown_grace: 2s\n",
        base_config(&up.url(), "m")
    ))
    .await;
    let url = gw.url("/v1/chat/completions");
    let stream = tokio::spawn(async move {
        let resp = client()
            .post(url)
            .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let _ = resp.text().await;
        status
    });
    // The stream is open (its header came through) before the signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.count() == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    gw.signal("TERM");
    let status = gw
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exits after the grace period");
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(9),
        "exited {took:?} after SIGTERM with a 2 s grace period"
    );
    assert_eq!(stream.await.unwrap(), 200);
}

/// SIGQUIT with no new process waiting for the sockets: the old one says so, stops listening
/// after Pingora's overlap, finishes and exits 0 instead of hanging.
#[tokio::test]
async fn sigquit_without_a_new_process_says_so_and_exits() {
    let up = MockUpstream::start().await;
    let mut gw = GatewayProcess::start(&base_config(&up.url(), "m")).await;
    assert_eq!(post(&gw, &chat("m")).await.status(), 200);
    gw.signal("QUIT");
    let status = gw
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("exits without a new process");
    assert!(status.success(), "{status:?}");
    let logs = gw.logs();
    assert!(logs.contains("Unable to send listener sockets"), "{logs}");
}
