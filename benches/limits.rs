//! What a rate-limit check costs: in memory (nanoseconds), and through Redis (the round trip
//! a request gains; the bench starts its own `redis-server`, and skips that part loudly when
//! the binary is missing).
//!
//! `cargo bench --bench limits`

use std::future::Future;
use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use veilgate::limits::{
    Admission, AdmissionPlan, Budget, KeySecret, KeyStore, LimitSpec, Limiter, RedisOptions,
};

/// Budgets large enough never to refuse during a bench.
const PLENTY: u64 = 1 << 40;

/// One key's budgets as a gateway would check them: the key's requests, tokens and
/// concurrency, and the route's shared requests and tokens.
fn typical_plan() -> AdmissionPlan {
    let key = LimitSpec {
        requests_per_minute: Some(PLENTY),
        requests_per_day: Some(PLENTY),
        tokens_per_minute: Some(PLENTY),
        concurrent: Some(u32::MAX),
        ..LimitSpec::default()
    };
    let route = LimitSpec {
        requests_per_minute: Some(PLENTY),
        tokens_per_minute: Some(PLENTY),
        ..LimitSpec::default()
    };
    AdmissionPlan::new(1_000)
        .with(&budgets("key", "checkout-web", key))
        .with(&budgets("route", "gpt-4o", route))
}

fn single_plan() -> AdmissionPlan {
    let spec = LimitSpec {
        requests_per_minute: Some(PLENTY),
        ..LimitSpec::default()
    };
    AdmissionPlan::new(0).with(&budgets("key", "checkout-web", spec))
}

fn budgets(scope: &str, name: &str, spec: LimitSpec) -> Vec<Arc<Budget>> {
    spec.budgets(scope, name).expect("valid budgets")
}

/// Runs a future that completes without waiting (a memory-backend check) with no runtime,
/// so the figure is the check alone.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a memory check never waits"),
    }
}

fn admitted(admission: Admission) -> veilgate::limits::Ticket {
    match admission {
        Admission::Allowed(ticket) => ticket,
        Admission::Refused(refusal) => panic!("refused: {refusal}"),
    }
}

fn memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("limits/memory");
    let limiter = Limiter::memory();
    let single = single_plan();
    let typical = typical_plan();
    group.bench_function("admit 1 budget", |b| {
        b.iter(|| drop(admitted(ready(limiter.admit(black_box(&single))))))
    });
    group.bench_function("admit 6 budgets + reconcile", |b| {
        b.iter(|| {
            let ticket = admitted(ready(limiter.admit(black_box(&typical))));
            ready(ticket.reconcile(black_box(700)));
        })
    });
    // Contention: one budget hammered from two threads at once; the time of one check.
    group.bench_function("admit 1 shared budget, 2 threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..iters {
                            drop(admitted(ready(limiter.admit(black_box(&single)))));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    group.finish();

    let mut keys = KeyStore::new();
    for i in 0..100 {
        let name = format!("key-{i}");
        let secret = KeySecret::clear(&name, &format!("sk-live-{i:040}")).expect("key");
        keys.insert(&name, secret, i).expect("distinct keys");
    }
    let presented = format!("sk-live-{:040}", 57);
    c.bench_function("limits/keys/authenticate among 100", |b| {
        b.iter(|| keys.authenticate(black_box(&presented)))
    });
}

/// A `redis-server` on a free loopback port, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Option<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("\n!!!!! SKIPPED the Redis benches: `{binary}` cannot be run !!!!!\n");
            return None;
        };
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                eprintln!("\n!!!!! SKIPPED the Redis benches: redis-server did not start !!!!!\n");
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(server)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("redis://127.0.0.1:{}", server.port);
    let options = RedisOptions {
        timeout: Duration::from_secs(1),
        ..RedisOptions::default()
    };
    let limiter = Limiter::redis(&url, options).expect("redis limiter");
    assert!(runtime.block_on(limiter.probe_backend()), "redis answers");
    let single = single_plan();
    let typical = typical_plan();

    let mut group = c.benchmark_group("limits/redis");
    group.bench_function("PING round trip (baseline)", |b| {
        b.iter(|| runtime.block_on(limiter.probe_backend()))
    });
    group.bench_function("admit 1 budget", |b| {
        b.iter(|| {
            drop(admitted(
                runtime.block_on(limiter.admit(black_box(&single))),
            ))
        })
    });
    group.bench_function("admit 6 budgets + reconcile + release", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let ticket = admitted(limiter.admit(black_box(&typical)).await);
                ticket.reconcile(black_box(700)).await;
            })
        })
    });
    group.finish();
    assert_eq!(limiter.stats().backend_errors, 0, "no check failed");
    drop(server);
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
