//! End to end: what a new user and an operator meet in their first hour (issue 21) — a second
//! instance on taken ports, the start-up output, the shipped default config, `veilgate check`
//! on typos that send data to the wrong place.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::mock::MockUpstream;
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
