//! Shared end-to-end test harness: a real gateway process on ephemeral ports in front of mock
//! upstreams the tests own.
#![allow(dead_code)]

pub mod mock;
pub mod otlp;

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free loopback ports: all are held until all are picked, so that two calls in
/// a row cannot get the same port back.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// A running `veilgate` process.
pub struct GatewayProcess {
    pub port: u16,
    pub admin_port: u16,
    pub config_path: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
    pub log_path: PathBuf,
    /// The `--upgrade-sock` this process was started with (a unique path per test).
    pub upgrade_sock: PathBuf,
}

impl GatewayProcess {
    /// Starts the gateway on `config` (a YAML text without `listen`/`admin`, which are added)
    /// and waits until it accepts connections.
    pub async fn start(config: &str) -> GatewayProcess {
        Self::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> GatewayProcess {
        let dir = tempfile::tempdir().unwrap();
        let [port, admin_port] = free_ports();
        let config_path = dir.path().join("veilgate.yaml");
        let full = format!("listen: 127.0.0.1:{port}\nadmin: 127.0.0.1:{admin_port}\n{config}");
        std::fs::write(&config_path, full).unwrap();
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let upgrade_sock = dir.path().join("upgrade.sock");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_veilgate"));
        cmd.arg("--config")
            .arg(&config_path)
            .arg("--threads")
            .arg("2")
            .arg("--upgrade-sock")
            .arg(&upgrade_sock)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn veilgate");
        let mut gw = GatewayProcess {
            port,
            admin_port,
            config_path,
            child,
            _dir: dir,
            log_path,
            upgrade_sock,
        };
        gw.wait_ready().await;
        gw
    }

    /// Starts a second gateway on this one's config file with `--upgrade` and this one's
    /// `--upgrade-sock`: it waits (Pingora: ~6 s) for the listening sockets this one hands
    /// over on SIGQUIT. Returns at once; [`GatewayProcess::wait_for_log`] tells when it serves.
    /// Keep `self` alive while the new process runs (the config file lives in its directory).
    pub fn start_upgrade(&self) -> GatewayProcess {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_veilgate"))
            .arg("--config")
            .arg(&self.config_path)
            .arg("--threads")
            .arg("2")
            .arg("--upgrade")
            .arg("--upgrade-sock")
            .arg(&self.upgrade_sock)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn veilgate --upgrade");
        GatewayProcess {
            port: self.port,
            admin_port: self.admin_port,
            config_path: self.config_path.clone(),
            child,
            _dir: dir,
            log_path,
            upgrade_sock: self.upgrade_sock.clone(),
        }
    }

    /// Sends a signal (`"TERM"`, `"QUIT"`, `"HUP"`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// Waits until the process has exited, at most `within`; `None` if it still runs.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the log holds `needle`, at most `within`.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.logs().contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("veilgate exited early ({status}):\n{}", self.logs());
            }
            // Its own start-up line first: a free port handed out here can be taken by another
            // test's process before this one binds it, and a connect would then reach that one
            // (this gateway exits at once, naming the address in use).
            let own = format!("listening on 127.0.0.1:{};", self.port);
            if self.logs().contains(&own)
                && tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
                && tokio::net::TcpStream::connect(("127.0.0.1", self.admin_port))
                    .await
                    .is_ok()
            {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("veilgate exited early ({status}):\n{}", self.logs());
                }
                return;
            }
            if Instant::now() > deadline {
                panic!("veilgate did not start:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Rewrites the config file (keeping listen/admin).
    pub fn write_config(&self, config: &str) {
        let full = format!(
            "listen: 127.0.0.1:{}\nadmin: 127.0.0.1:{}\n{config}",
            self.port, self.admin_port
        );
        let mut f = std::fs::File::create(&self.config_path).unwrap();
        f.write_all(full.as_bytes()).unwrap();
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that neither retries nor pools across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Asserts OpenAI's error shape and returns the error object.
pub async fn expect_error(resp: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let text = resp.text().await.unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    let err = v["error"].clone();
    for key in ["message", "type", "param", "code"] {
        assert!(err.get(key).is_some(), "error object lacks {key}: {text}");
    }
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    err
}

/// A `redis-server` on a free loopback port, stopped on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port();
        let mut server = RedisServer { port, child: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The gateway's `/metrics` text once `ready` holds for it (the telemetry of a request is
/// recorded just after its answer is sent), or the last scrape after 5 s.
pub async fn metrics_when(gw: &GatewayProcess, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = client()
            .get(gw.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if ready(&text) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The gateway's JSON access-log lines (stdout), once `n` of them are written (the writer
/// flushes on a timer); asserts there are exactly `n` within 5 s.
pub async fn access_log(gw: &GatewayProcess, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines: Vec<serde_json::Value> = gw
            .logs()
            .lines()
            .filter_map(|l| l.find("{\"").map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("request_id").is_some() && v.get("status").is_some())
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            assert_eq!(lines.len(), n, "access log lines:\n{}", gw.logs());
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `veilgate check` on `config`: (exit success, stderr).
pub fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("veilgate.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_veilgate"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
