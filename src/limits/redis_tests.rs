//! The limiter against a real `redis-server`, started by each test on a free loopback port.
//!
//! They fail when no `redis-server` binary can be run (`scripts/test` installs it; set
//! `REDIS_SERVER` to its path if it is not on `PATH`): a missing server is not a pass.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// A `redis-server` process owned by a test; killed when dropped.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    dir: PathBuf,
    tls: bool,
}

fn binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn scratch_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "veilgate-limits-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl RedisServer {
    /// Starts a server; panics when the binary cannot be run.
    fn start(extra: &[&str]) -> RedisServer {
        Self::start_in(scratch_dir(), extra, false)
    }

    fn start_in(dir: PathBuf, extra: &[&str], tls: bool) -> RedisServer {
        let port = free_port();
        let mut args: Vec<String> = if tls {
            vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
            ]
        } else {
            vec!["--port".into(), port.to_string()]
        };
        args.extend(
            [
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.push(dir.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = RedisServer {
            child: None,
            port,
            args,
            dir,
            tls,
        };
        if let Err(e) = server.spawn() {
            panic!(
                "`{}` cannot be run ({e}); the Redis tests need it: run scripts/test (it installs redis-server), apt install redis-server, or set REDIS_SERVER",
                binary()
            );
        }
        server
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new(binary())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn().unwrap();
    }

    async fn command<T: ::redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let client = ::redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = ::redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query_async(&mut conn).await.unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Options for tests: a generous bound (tests run side by side on busy machines), except
/// where a test is about the bound and says so.
fn options(policy: OnBackendError) -> RedisOptions {
    RedisOptions {
        on_backend_error: policy,
        timeout: Duration::from_millis(500),
        probe_interval: Duration::from_millis(100),
        ..RedisOptions::default()
    }
}

/// Options with the default 50 ms bound.
fn tight(policy: OnBackendError) -> RedisOptions {
    RedisOptions {
        timeout: RedisOptions::default().timeout,
        ..options(policy)
    }
}

fn plan(estimate: u64, spec: LimitSpec) -> AdmissionPlan {
    AdmissionPlan::new(estimate).with(&spec.budgets("key", "k").unwrap())
}

fn rpm(n: u64) -> LimitSpec {
    LimitSpec {
        requests_per_minute: Some(n),
        ..LimitSpec::default()
    }
}

fn allowed(admission: Admission) -> Ticket {
    match admission {
        Admission::Allowed(t) => t,
        Admission::Refused(r) => panic!("expected an admission, got {r}"),
    }
}

/// Waits until `f` holds, polling, for at most `limit`.
async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_exact_budget() {
    let server = RedisServer::start(&[]);
    let a = Limiter::redis(&server.url(), options(OnBackendError::Deny)).unwrap();
    let b = Limiter::redis(&server.url(), options(OnBackendError::Deny)).unwrap();
    assert!(a.probe_backend().await && b.probe_backend().await);
    let plan = Arc::new(plan(0, rpm(20)));
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
            let plan = plan.clone();
            tokio::spawn(async move { limiter.admit(&plan).await })
        })
        .collect();
    let (mut passed, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Admission::Allowed(t) => {
                assert!(!t.admitted_on_backend_error());
                passed += 1;
            }
            Admission::Refused(r) => {
                assert_eq!(r.to_string(), "key k: requests_per_minute");
                assert!(
                    r.retry_after() > Duration::from_millis(2_900),
                    "{:?}",
                    r.retry_after()
                );
                refused += 1;
            }
        }
    }
    assert_eq!((passed, refused), (20, 10));
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        (sa.admitted + sb.admitted, sa.refused + sb.refused),
        (20, 10)
    );
    assert_eq!(sa.backend_errors + sb.backend_errors, 0);
}

#[tokio::test]
async fn figures_and_all_or_nothing_in_one_script() {
    let server = RedisServer::start(&[]);
    let limiter = Limiter::redis(&server.url(), options(OnBackendError::Deny)).unwrap();
    let key = rpm(5).budgets("key", "a").unwrap();
    let route = rpm(3).budgets("route", "gpt-4o").unwrap();
    let both = AdmissionPlan::new(0).with(&key).with(&route);
    let first = allowed(limiter.admit(&both).await);
    let figures = first.headers().requests.unwrap();
    assert_eq!((figures.limit, figures.remaining), (3, 2));
    assert!(
        figures.reset > Duration::from_millis(19_900) && figures.reset <= Duration::from_secs(20)
    );
    drop(allowed(limiter.admit(&both).await));
    drop(allowed(limiter.admit(&both).await));
    let Admission::Refused(refusal) = limiter.admit(&both).await else {
        panic!()
    };
    assert_eq!(refusal.to_string(), "route gpt-4o: requests_per_minute");
    assert_eq!(refusal.headers().requests.unwrap().remaining, 0);
    // The key was charged 3, not 4.
    let key_only = AdmissionPlan::new(0).with(&key);
    drop(allowed(limiter.admit(&key_only).await));
    let last = allowed(limiter.admit(&key_only).await);
    assert_eq!(last.headers().requests.unwrap().remaining, 0);
    assert!(matches!(
        limiter.admit(&key_only).await,
        Admission::Refused(_)
    ));
}

#[tokio::test]
async fn tokens_reserve_refund_and_debt_in_redis() {
    let server = RedisServer::start(&[]);
    let limiter = Limiter::redis(&server.url(), options(OnBackendError::Deny)).unwrap();
    // Per day, so the few milliseconds between calls drain nothing visible.
    let spec = LimitSpec {
        tokens_per_day: Some(1_000),
        ..LimitSpec::default()
    };
    let ticket = allowed(limiter.admit(&plan(600, spec)).await);
    assert_eq!(ticket.headers().tokens.unwrap().remaining, 400);
    ticket.reconcile(100).await;
    let ticket = allowed(limiter.admit(&plan(800, spec)).await);
    assert_eq!(ticket.headers().tokens.unwrap().remaining, 100);
    ticket.reconcile(2_400).await;
    let Admission::Refused(refusal) = limiter.admit(&plan(0, spec)).await else {
        panic!("in debt")
    };
    // 1 500 over a budget of 1 000 a day: 36 h.
    let hours = refusal.retry_after().as_secs_f64() / 3600.0;
    assert!((35.99..=36.0).contains(&hours), "{hours}");
}

#[tokio::test]
async fn concurrency_is_shared_released_and_leases_expire() {
    let server = RedisServer::start(&[]);
    let short = RedisOptions {
        lease_ttl: Duration::from_millis(300),
        ..options(OnBackendError::Deny)
    };
    let a = Limiter::redis(&server.url(), short.clone()).unwrap();
    let b = Limiter::redis(&server.url(), short).unwrap();
    let spec = LimitSpec {
        concurrent: Some(2),
        ..LimitSpec::default()
    };
    let plan = plan(0, spec);
    let held_a = allowed(a.admit(&plan).await);
    let held_b = allowed(b.admit(&plan).await);
    let Admission::Refused(refusal) = b.admit(&plan).await else {
        panic!("full")
    };
    assert_eq!(refusal.to_string(), "key k: concurrent");

    // Held past several lease lifetimes: renewed, still counted.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(matches!(a.admit(&plan).await, Admission::Refused(_)));

    // Released on drop, by a spawned task.
    drop(held_a);
    assert!(
        eventually(Duration::from_secs(2), async || matches!(
            b.admit(&plan).await,
            Admission::Allowed(_)
        ))
        .await
    );
    drop(held_b);

    // A lease left by an instance that died expires by itself.
    let key = "veilgate:rl:key:k:concurrent";
    let _: i64 = server.command(&["DEL", key]).await;
    let time: Vec<u64> = server.command(&["TIME"]).await;
    let expiry = (time[0] * 1_000_000 + time[1] + 1_000_000).to_string(); // a second from now
    let _: i64 = server
        .command(&["ZADD", key, &expiry, "ghost-1", &expiry, "ghost-2"])
        .await;
    assert!(matches!(a.admit(&plan).await, Admission::Refused(_)));
    assert!(
        eventually(Duration::from_secs(3), async || matches!(
            a.admit(&plan).await,
            Admission::Allowed(_)
        ))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_follows_the_policy_quickly_then_recovers() {
    for policy in [OnBackendError::Allow, OnBackendError::Deny] {
        let mut server = RedisServer::start(&[]);
        let limiter = Limiter::redis(&server.url(), tight(policy)).unwrap();
        let bound = limiter.redis_options().unwrap().timeout;
        assert_eq!(bound, Duration::from_millis(50));
        assert!(
            eventually(Duration::from_secs(5), async || limiter
                .probe_backend()
                .await)
            .await
        );
        let plan = plan(0, rpm(5));
        drop(allowed(limiter.admit(&plan).await));

        server.stop();
        let started = Instant::now();
        for _ in 0..50 {
            let t = Instant::now();
            let admission = limiter.admit(&plan).await;
            let took = t.elapsed();
            assert!(
                took < bound + Duration::from_millis(100),
                "{policy}: waited {took:?}"
            );
            match (policy, admission) {
                (OnBackendError::Allow, Admission::Allowed(t)) => {
                    assert!(t.admitted_on_backend_error())
                }
                (OnBackendError::Deny, Admission::Refused(r)) => {
                    assert_eq!(r.cause(), &RefusalCause::BackendUnavailable);
                    assert_eq!(r.retry_after_secs(), 1);
                }
                (_, other) => panic!("{policy}: {other:?}"),
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{policy}: the breaker spares waits"
        );
        let stats = limiter.stats();
        assert_eq!(
            stats.backend_incidents, 1,
            "{policy}: one incident, however many requests"
        );
        let decided = stats.admitted_on_backend_error + stats.refused_on_backend_error;
        assert_eq!(decided, 50);
        assert!(!limiter.is_backend_healthy());

        server.restart();
        let recovered = eventually(Duration::from_secs(10), async || {
            matches!(limiter.admit(&plan).await, Admission::Allowed(t) if !t.admitted_on_backend_error())
        })
        .await;
        assert!(recovered, "{policy}: Redis used again after restart");
        assert!(limiter.is_backend_healthy());
        // The restarted server lost its data: a fresh budget, exact again.
        let mut passed = 1;
        for _ in 0..10 {
            passed += usize::from(matches!(limiter.admit(&plan).await, Admission::Allowed(_)));
        }
        assert_eq!(passed, 5, "{policy}");
        assert_eq!(limiter.stats().backend_incidents, 1);
    }
}

#[tokio::test]
async fn an_unanswering_server_costs_at_most_the_bound() {
    // A listener that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let limiter = Limiter::redis(&url, tight(OnBackendError::Deny)).unwrap();
    let t = Instant::now();
    assert!(matches!(
        limiter.admit(&plan(0, rpm(5))).await,
        Admission::Refused(_)
    ));
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(limiter.stats().refused_on_backend_error, 1);
    drop(listener);
}

#[tokio::test]
async fn scripts_are_loaded_again_after_a_flush() {
    let server = RedisServer::start(&[]);
    let limiter = Limiter::redis(&server.url(), options(OnBackendError::Deny)).unwrap();
    let plan = plan(
        10,
        LimitSpec {
            requests_per_minute: Some(3),
            tokens_per_day: Some(100),
            concurrent: Some(1),
            ..LimitSpec::default()
        },
    );
    allowed(limiter.admit(&plan).await).reconcile(20).await;
    let _: String = server.command(&["SCRIPT", "FLUSH"]).await;
    let ticket = allowed(limiter.admit(&plan).await);
    assert_eq!(ticket.headers().tokens.unwrap().remaining, 70);
    ticket.reconcile(5).await;
    let _: String = server.command(&["SCRIPT", "FLUSH"]).await;
    let ticket = allowed(limiter.admit(&plan).await);
    assert_eq!(ticket.headers().tokens.unwrap().remaining, 65);
    assert_eq!(limiter.stats().backend_errors, 0);
}

#[tokio::test]
async fn password_in_the_url() {
    let server = RedisServer::start(&["--requirepass", "s3cret"]);
    let good = format!("redis://:s3cret@127.0.0.1:{}/0", server.port);
    let limiter = Limiter::redis(&good, options(OnBackendError::Deny)).unwrap();
    drop(allowed(limiter.admit(&plan(0, rpm(5))).await));
    assert!(!format!("{limiter:?}").contains("s3cret"));

    let bad = format!("redis://:wrong@127.0.0.1:{}/0", server.port);
    let limiter = Limiter::redis(&bad, tight(OnBackendError::Deny)).unwrap();
    let t = Instant::now();
    assert!(matches!(
        limiter.admit(&plan(0, rpm(5))).await,
        Admission::Refused(_)
    ));
    assert!(t.elapsed() < Duration::from_millis(150));
    assert_eq!(limiter.stats().refused_on_backend_error, 1);
}

#[tokio::test]
async fn rediss_with_a_private_ca() {
    let dir = scratch_dir();
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let made = run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=veilgate test CA",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]) && {
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ])
    };
    assert!(
        made,
        "the rediss test needs the openssl command (scripts/test installs it)"
    );
    let path = |f: &str| dir.join(f).display().to_string();
    let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
    let extra = [
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ];
    let server = RedisServer::start_in(dir.clone(), &extra, true);
    let options = RedisOptions {
        tls_root_certificate: Some(std::fs::read(dir.join("ca.pem")).unwrap()),
        ..options(OnBackendError::Deny)
    };
    let limiter = Limiter::redis(&server.url(), options).unwrap();
    assert!(server.url().starts_with("rediss://"));
    let ticket = allowed(limiter.admit(&plan(0, rpm(2))).await);
    assert_eq!(ticket.headers().requests.unwrap().remaining, 1);
    assert!(!ticket.admitted_on_backend_error());

    // Without the CA the server is not trusted.
    let untrusted = Limiter::redis(
        &server.url(),
        super::redis_tests::options(OnBackendError::Deny),
    )
    .unwrap();
    assert!(
        matches!(untrusted.admit(&plan(0, rpm(2))).await, Admission::Refused(r) if r.budget().is_none())
    );
}

#[test]
fn bad_urls_are_refused_up_front() {
    for url in ["http://127.0.0.1", "not a url", ""] {
        let err = Limiter::redis(url, RedisOptions::default()).unwrap_err();
        assert!(matches!(err, LimitError::RedisUrl { .. }), "{url}: {err}");
    }
}

#[tokio::test]
async fn a_concurrency_refusal_consumes_nothing_and_reconcile_releases_at_once() {
    let server = RedisServer::start(&[]);
    let limiter = Limiter::redis(&server.url(), options(OnBackendError::Deny)).unwrap();
    let spec = LimitSpec {
        requests_per_day: Some(10),
        tokens_per_day: Some(1_000),
        concurrent: Some(1),
        ..LimitSpec::default()
    };
    let plan = plan(100, spec);
    let held = allowed(limiter.admit(&plan).await);
    for _ in 0..5 {
        let Admission::Refused(refusal) = limiter.admit(&plan).await else {
            panic!("one in flight at most")
        };
        assert_eq!(refusal.to_string(), "key k: concurrent");
        assert_eq!(refusal.headers().requests.unwrap().remaining, 9);
        assert_eq!(refusal.headers().tokens.unwrap().remaining, 900);
    }
    // Settled in the same round trip as the tokens: the next request is admitted at once.
    held.reconcile(40).await;
    let next = allowed(limiter.admit(&plan).await);
    assert_eq!(next.headers().requests.unwrap().remaining, 8);
    assert_eq!(next.headers().tokens.unwrap().remaining, 860);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usd_budgets_are_shared_settled_and_outlive_the_gateway() {
    let server = RedisServer::start(&[]);
    let a = Limiter::redis(&server.url(), options(OnBackendError::Deny)).unwrap();
    let b = Limiter::redis(&server.url(), options(OnBackendError::Deny)).unwrap();
    // Per month, so that no window ends while the test runs (but at a month's last instant).
    let spec = LimitSpec {
        usd_per_month: Some(Usd(1_000_000)),
        requests_per_day: Some(1_000),
        ..LimitSpec::default()
    };
    let budgets = spec.budgets("key", "k").unwrap();
    let mut plan = AdmissionPlan::new(0).with(&budgets);
    plan.set_estimated_micros(30_000);
    let plan = Arc::new(plan);
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
            let plan = plan.clone();
            tokio::spawn(async move { limiter.admit(&plan).await })
        })
        .collect();
    let mut tickets = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Admission::Allowed(t) => tickets.push(t),
            Admission::Refused(r) => {
                assert_eq!(r.to_string(), "key k: usd_per_month");
                assert!(r.remaining().unwrap() < 30_000);
                assert!(r.retry_after() >= Duration::from_secs(1));
            }
        }
    }
    assert_eq!(tickets.len(), 33, "$1 / $0.03, across both instances");
    let spent = |l: Limiter| {
        let budgets = budgets.clone();
        async move { l.spent(&budgets).await.unwrap() }
    };
    assert_eq!(spent(a.clone()).await, [0, 990_000]);

    // Settled with real costs: 33 × $0.01 instead of 33 × $0.03.
    for t in tickets {
        t.reconcile_cost(0, Some(10_000)).await;
    }
    assert_eq!(spent(b.clone()).await, [0, 330_000]);
    // The refusals charged no request either: 33 requests counted.
    let figures = allowed(a.admit(&AdmissionPlan::new(0).with(&budgets)).await);
    assert_eq!(figures.headers().requests.unwrap().remaining, 1_000 - 34);

    // A new gateway (both instances gone) finds the month's spend in Redis, with an expiry.
    drop((a, b, figures));
    let c = Limiter::redis(&server.url(), options(OnBackendError::Deny)).unwrap();
    assert_eq!(spent(c.clone()).await, [0, 330_000]);
    let keys: Vec<String> = server.command(&["KEYS", "*usd_per_month*"]).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = server.command(&["PTTL", &keys[0]]).await;
    assert!(
        ttl > 3_600_000 && ttl <= 32 * 86_400_000 + 3_600_000,
        "kept until the month ends, plus an hour: {ttl} ms"
    );
}
