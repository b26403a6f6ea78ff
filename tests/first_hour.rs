//! End to end: what a new user and an operator meet in their first hour (issue 21) — a second
//! instance on taken ports, the start-up output, the shipped default config, `veilgate check`
//! on typos that send data to the wrong place.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::mock::{MockUpstream, Reply};
use common::{client, expect_error, GatewayProcess};
use serde_json::json;

/// Runs `veilgate` with `args` and waits at most `within` for it to exit; `None` (after killing
/// it) when it was still running.
fn run_veilgate(args: &[&str], env: &[(&str, &str)], within: Duration) -> Option<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veilgate"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn veilgate");
    let deadline = Instant::now() + within;
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config_with(upstream: &MockUpstream) -> String {
    format!(
        "environment: test\nupstreams:\n  primary:\n    url: {}\nroutes:\n  - models: [gpt-4o]\n    upstream: primary\n",
        upstream.url()
    )
}

#[tokio::test]
async fn a_second_instance_on_the_same_ports_exits_at_once_naming_the_address() {
    let upstream = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config_with(&upstream)).await;
    let started = Instant::now();
    let second = tokio::task::spawn_blocking({
        let path = gw.config_path.clone();
        move || {
            run_veilgate(
                &[
                    "--config",
                    path.to_str().unwrap(),
                    "--upgrade-sock",
                    "/tmp/veilgate-first-hour-unused.sock",
                ],
                &[("RUST_LOG", "info")],
                Duration::from_secs(10),
            )
        }
    })
    .await
    .unwrap()
    .expect("the second instance must exit, not wait for the port");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "it exits at once, took {:?}",
        started.elapsed()
    );
    assert!(!second.status.success(), "exit status {}", second.status);
    let stderr = String::from_utf8_lossy(&second.stderr);
    let stdout = String::from_utf8_lossy(&second.stdout);
    let line = format!(
        "veilgate: not started: 127.0.0.1:{} is already in use (another veilgate?)",
        gw.port
    );
    assert!(stderr.contains(&line), "stderr:\n{stderr}");
    for bad in ["listening on", "panicked", "backtrace", "will try again"] {
        assert!(
            !stderr.contains(bad) && !stdout.contains(bad),
            "{bad:?} in the output:\n{stderr}{stdout}"
        );
    }
    // The first instance still serves.
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn start_up_says_what_runs_in_one_line_and_sigterm_logs_one_grace_period() {
    let upstream = MockUpstream::start().await;
    // RUST_LOG empty: the default filter, as a user starting it by hand gets.
    let mut gw = GatewayProcess::start_with_env(&config_with(&upstream), &[("RUST_LOG", "")]).await;
    assert!(
        gw.wait_for_log("listening on", Duration::from_secs(5))
            .await,
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let summary = format!(
        "listening on 127.0.0.1:{}; config {} (routes 1, upstreams 1, keys 0); redaction: requests secrets=redact pii=off; answers secrets=redact pii=off",
        gw.port,
        gw.config_path.display()
    );
    assert!(logs.contains(&summary), "logs:\n{logs}");
    for internal in ["Bootstrap starting", "Server starting", "Starting service"] {
        assert!(!logs.contains(internal), "{internal:?} logged:\n{logs}");
    }
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(10)).await.is_some());
    let logs = gw.logs();
    let grace_lines = logs
        .lines()
        .filter(|l| l.contains("grace period") || l.contains("waiting up to"))
        .count();
    assert_eq!(grace_lines, 1, "logs:\n{logs}");
}

/// The shipped `conf/veilgate.yaml` on free ports (its `listen` and `admin` lines dropped).
fn shipped_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/veilgate.yaml");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("listen:") && !l.starts_with("admin:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_shipped_config_checks_and_answers_a_model_typo_with_404() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/veilgate.yaml");
    let check = run_veilgate(
        &["--config", path.to_str().unwrap(), "check"],
        &[],
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let gw = GatewayProcess::start(&shipped_config()).await;
    for typo in ["gpt-4o-mni", "llama3", "qwen-2.5"] {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&json!({"model": typo, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let err = expect_error(resp, 404).await;
        assert_eq!(err["code"], "model_not_found", "{typo}: {err}");
    }
}

#[tokio::test]
async fn check_reports_a_trace_environment_typo_and_an_unserved_key_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("veilgate.yaml");
    std::fs::write(
        &path,
        "environment: production\nlisten: 127.0.0.1:8080\nupstreams:\n  openai:\n    url: https://api.openai.com/v1\nroutes:\n  - models: [gpt-4o]\n    upstream: openai\nkeys:\n  - name: web\n    key: k1\n    environment: staging\n    models: [gpt-4o, gpt4o]\ntelemetry:\n  traces:\n    endpoint: http://prod:4318/v1/traces\n    environments:\n      stagign:\n        endpoint: http://staging:4318/v1/traces\n",
    )
    .unwrap();
    let out = run_veilgate(
        &["--config", path.to_str().unwrap(), "check"],
        &[],
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display();
    for expected in [
        format!("{file}:13:22: keys[0].models[1]: no route serves the model \"gpt4o\", so this key could never use it; did you mean \"gpt-4o\"?"),
        format!("{file}:19:9: telemetry.traces.environments.stagign: no traffic is labelled \"stagign\" (the labels in use are \"production\", \"staging\"); did you mean \"staging\"?"),
    ] {
        assert!(stderr.contains(&expected), "missing {expected}\nin:\n{stderr}");
    }
}

/// `veilgate check` runs a custom detector's examples: a failing one is reported at its
/// line and path, without quoting it, and the exit code is 1; fixed, the check passes.
#[tokio::test]
async fn check_runs_custom_detector_examples() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("veilgate.yaml");
    let config = |example: &str| {
        format!("environment: production\nlisten: 127.0.0.1:8080\nupstreams:\n  openai:\n    url: https://api.openai.com/v1\nroutes:\n  - models: [gpt-4o]\n    upstream: openai\nredaction:\n  detectors:\n    - name: employee_id\n      category: pii\n      pattern: 'EMP-[0-9]{{6}}'\n      examples:\n        match: ['{example}']\n        no_match: ['EMP-12345']\n")
    };
    let check = |text: String| {
        std::fs::write(&path, text).unwrap();
        run_veilgate(
            &["--config", path.to_str().unwrap(), "check"],
            &[],
            Duration::from_secs(10),
        )
        .unwrap()
    };
    let out = check(config("EMP-98765"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:11:7: redaction.detectors[0].examples.match[0]: detector `employee_id`: example match[0] is not found",
        path.display()
    );
    assert!(
        stderr.contains(&expected),
        "missing {expected}\nin:\n{stderr}"
    );
    assert!(
        !stderr.contains("EMP-98765"),
        "quotes the example:\n{stderr}"
    );
    let out = check(config("EMP-987654"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn error_counters_exist_at_zero_from_start_up_and_overhead_has_microsecond_buckets() {
    let upstream = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config_with(&upstream)).await;
    let text = client()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let zero = |family: &str, labels: &[&str]| {
        text.lines().any(|l| {
            l.starts_with(&format!("{family}{{"))
                && labels.iter().all(|want| l.contains(want))
                && l.ends_with(" 0")
        })
    };
    assert!(
        zero(
            "veilgate_upstream_errors_total",
            &[
                "environment=\"test\"",
                "upstream=\"primary\"",
                "reason=\"connect\""
            ]
        ),
        "{text}"
    );
    assert!(
        zero(
            "veilgate_redaction_failures_total",
            &[
                "environment=\"test\"",
                "direction=\"response\"",
                "reason=\"invalid_upstream_stream\""
            ]
        ),
        "{text}"
    );
    // One request, then the overhead histogram shows buckets from 10 µs.
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = common::metrics_when(&gw, |t| {
        t.contains("veilgate_gateway_overhead_seconds_bucket")
    })
    .await;
    assert!(
        text.contains(
            "veilgate_gateway_overhead_seconds_bucket{environment=\"test\",le=\"0.00001\"}"
        ),
        "{text}"
    );
}

/// The README's quick start, verbatim: `veilgate demo`, then its curl (on free ports).
#[tokio::test]
async fn the_readme_demo_shows_redaction_offline() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(readme.contains("cargo run --release -- demo"));
    let body_start = readme
        .find("-d '{\"model\": \"demo\"")
        .expect("the demo curl")
        + 4;
    let body_end = body_start + readme[body_start..].find('\'').unwrap();
    let body = &readme[body_start..body_end];
    let json_start = readme[body_end..].find("```json\n").unwrap() + body_end + 8;
    let json_end = json_start + readme[json_start..].find('\n').unwrap();
    let shown: serde_json::Value = serde_json::from_str(&readme[json_start..json_end]).unwrap();

    let [port, admin, echo] = common::free_ports();
    let mut child = Command::new(env!("CARGO_BIN_EXE_veilgate"))
        .arg("demo")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("VEILGATE_DEMO_LISTEN", format!("127.0.0.1:{port}"))
        .env("VEILGATE_DEMO_ADMIN", format!("127.0.0.1:{admin}"))
        .env("VEILGATE_DEMO_ECHO", format!("127.0.0.1:{echo}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let sent = client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await;
        if let Ok(resp) = sent {
            assert_eq!(resp.status(), 200);
            break resp.json::<serde_json::Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the demo did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer, shown);
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "You said: deploy with [REDACTED:github_token] and mail [REDACTED:email]"
    );
}

fn token() -> String {
    format!("ghp_{}", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d")
}

/// The OpenAI endpoints that carry a `model` beyond chat, embeddings and transcription are routed
/// by it and inspected like any other: moderations, speech, image generation and image edits.
#[tokio::test]
async fn moderations_speech_and_images_are_routed_by_model_and_redacted() {
    // A speech answer is binary audio; everything else answers JSON echoing what it saw.
    let audio: Vec<u8> = (0u8..=255).cycle().take(4096).collect();
    let speech = audio.clone();
    let up = MockUpstream::with_handler(move |req| {
        if req.path.ends_with("/audio/speech") {
            let mut raw = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\ncontent-length: {}\r\n\r\n",
                speech.len()
            )
            .into_bytes();
            raw.extend_from_slice(&speech);
            return Reply::Raw(raw);
        }
        Reply::Json(
            200,
            json!({"id": "x", "seen_path": req.path, "data": [{"revised_prompt": format!("a cat holding {}", token())}]}),
        )
    })
    .await;
    let gw = GatewayProcess::start(&format!(
        "environment: test\nupstreams:\n  u:\n    url: {}\nroutes:\n  - models: [omni-moderation-latest, tts-1]\n    upstream: u\n  - models: [dall-e-2]\n    upstream: u\n    model: gpt-image-1\n",
        up.url()
    ))
    .await;
    let secret = token();

    // moderations without a model: routed as OpenAI's default, the input redacted
    let resp = client()
        .post(gw.url("/v1/moderations"))
        .json(&json!({"input": format!("my token is {secret}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["seen_path"], "/v1/moderations");
    assert!(
        !answer.to_string().contains(&secret),
        "the answer is redacted too"
    );
    let sent = up.last();
    assert_eq!(
        sent.json(),
        json!({"input": "my token is [REDACTED:github_token]"})
    );

    // speech: the text redacted, the audio relayed byte for byte on a redacting route
    let resp = client()
        .post(gw.url("/v1/audio/speech"))
        .json(&json!({"model": "tts-1", "voice": "alloy", "input": format!("read {secret}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), audio.as_slice());
    assert_eq!(up.last().json()["input"], "read [REDACTED:github_token]");
    // speech names its model: without one it is a 400 in OpenAI's shape
    let resp = client()
        .post(gw.url("/v1/audio/speech"))
        .json(&json!({"voice": "alloy", "input": "hi"}))
        .send()
        .await
        .unwrap();
    let e = expect_error(resp, 400).await;
    assert_eq!(e["code"], "missing_required_parameter");

    // image generation with no model in the body: routed as OpenAI's default (dall-e-2), whose
    // route aliases it, so the upstream is told the alias
    let resp = client()
        .post(gw.url("/v1/images/generations"))
        .json(&json!({"prompt": format!("draw {secret}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last().json(),
        json!({"model": "gpt-image-1", "prompt": "draw [REDACTED:github_token]"})
    );

    // image edit as an upload: the prompt redacted, the image bytes untouched, the model routed
    let image: Vec<u8> = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe".to_vec();
    let mut body = Vec::new();
    body.extend_from_slice(b"--B0UND\r\nContent-Disposition: form-data; name=\"image\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n");
    body.extend_from_slice(&image);
    body.extend_from_slice(
        format!("\r\n--B0UND\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nadd {secret}\r\n--B0UND--\r\n").as_bytes(),
    );
    let resp = client()
        .post(gw.url("/v1/images/edits"))
        .header("content-type", "multipart/form-data; boundary=B0UND")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sent = up.last();
    assert_eq!(sent.path, "/v1/images/edits");
    let text = String::from_utf8_lossy(&sent.body);
    assert!(
        text.contains("\r\n\r\nadd [REDACTED:github_token]\r\n"),
        "{text}"
    );
    assert!(!text.contains(&secret));
    assert!(sent
        .body
        .windows(image.len())
        .any(|w| w == image.as_slice()));
    assert!(
        text.starts_with("--B0UND\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-image-1\r\n--B0UND\r\n"),
        "the form had no model: the alias is added as a field: {text}"
    );
    // an edit naming a model no route serves is model_not_found, not forwarded
    let before = up.count();
    let resp = client()
        .post(gw.url("/v1/images/edits"))
        .json(&json!({"model": "dall-e-9", "prompt": "x", "images": [{"image_url": "https://example.com/a.png"}]}))
        .send()
        .await
        .unwrap();
    let e = expect_error(resp, 404).await;
    assert_eq!(e["code"], "model_not_found");
    assert_eq!(up.count(), before);
}

/// Endpoints that carry no model say so and point to `paths:`.
#[tokio::test]
async fn an_endpoint_without_a_model_answers_404_pointing_to_paths() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config_with(&up)).await;
    for path in [
        "/v1/files",
        "/v1/batches/b_1",
        "/v1/vector_stores",
        "/v1/fine_tuning/jobs",
    ] {
        let resp = client().get(gw.url(path)).send().await.unwrap();
        let e = expect_error(resp, 404).await;
        let message = e["message"].as_str().unwrap();
        assert!(message.contains("`paths:` route"), "{path}: {message}");
        assert!(message.contains("carries no `model`"), "{path}: {message}");
    }
    let resp = client().get(gw.url("/v1/nope")).send().await.unwrap();
    let e = expect_error(resp, 404).await;
    assert!(e["message"].as_str().unwrap().contains("Check the path"));
    assert_eq!(up.count(), 0);
}

/// Models behind a glob route are retrieved and listed: the list asks the route's upstream
/// (once, cached) and keeps what the glob matches; a key sees only what it may use.
#[tokio::test]
async fn glob_routed_models_are_listed_and_retrieved() {
    let lister = MockUpstream::with_handler(|req| {
        if req.method == "GET" && req.path == "/v1/models" {
            return Reply::Json(
                200,
                json!({"object": "list", "data": [
                    {"id": "lite-chat", "object": "model", "owned_by": "x"},
                    {"id": "lite-code", "object": "model", "owned_by": "x"},
                    {"id": "heavy-chat", "object": "model", "owned_by": "x"},
                    {"id": "gpt-4o", "object": "model", "owned_by": "x"}
                ]}),
            );
        }
        common::mock::openai_like(req)
    })
    .await;
    let gw = GatewayProcess::start(&format!(
        "environment: test\nupstreams:\n  local:\n    url: {}\n    owned_by: acme\nroutes:\n  - models: [gpt-4o, \"lite-*\"]\n    upstream: local\nkeys:\n  - name: all\n    key: k-all-0123456789\n  - name: code\n    key: k-code-0123456789\n    models: [lite-code]\n",
        lister.url()
    ))
    .await;
    let list = |key: &'static str| {
        let url = gw.url("/v1/models");
        async move {
            let v: serde_json::Value = client()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap().to_owned(),
                        m["owned_by"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let acme = |id: &str| (id.to_owned(), "acme".to_owned());
    assert_eq!(
        list("k-all-0123456789").await,
        [acme("gpt-4o"), acme("lite-chat"), acme("lite-code")]
    );
    assert_eq!(list("k-code-0123456789").await, [acme("lite-code")]);
    let asked = lister
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(asked, 1, "the upstream's list is cached");

    let get = |key: &'static str, id: &str| {
        let url = gw.url(&format!("/v1/models/{id}"));
        async move { client().get(url).bearer_auth(key).send().await.unwrap() }
    };
    let one: serde_json::Value = get("k-all-0123456789", "lite-anything")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "lite-anything");
    assert_eq!(one["owned_by"], "acme");
    expect_error(get("k-code-0123456789", "lite-chat").await, 404).await;
    expect_error(get("k-all-0123456789", "heavy-chat").await, 404).await;
    expect_error(get("k-all-0123456789", "lite-*").await, 404).await;
}

/// An upstream whose url has `{model}` (Azure) can be health-checked: the check path is from
/// the host's root with the upstream's query, and a failing check takes it out of rotation.
#[tokio::test]
async fn a_model_placeholder_upstream_is_health_checked_from_the_host_root() {
    let up = MockUpstream::with_handler(|req| {
        if req.path.starts_with("/openai/models") {
            Reply::Json(503, json!({"error": "down"}))
        } else {
            common::mock::openai_like(req)
        }
    })
    .await;
    let gw = GatewayProcess::start(&format!(
        "environment: test\nupstreams:\n  az:\n    url: http://127.0.0.1:{}/openai/deployments/{{model}}\n    api_key: az-key-0123456789\n    auth_header: api-key\n    query: {{api-version: 2024-10-21}}\n    health_check: {{path: /openai/models, interval: 1s, timeout: 1s}}\nroutes:\n  - models: [gpt-4o]\n    upstream: az\n",
        up.port
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client()
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "the failing check never counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let check = up
        .requests()
        .into_iter()
        .find(|r| r.method == "GET")
        .unwrap();
    assert_eq!(check.path, "/openai/models?api-version=2024-10-21");
    assert_eq!(check.header("api-key"), Some("az-key-0123456789"));
}
