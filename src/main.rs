//! `veilgate`: run the gateway, check a configuration, or run the offline demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;

use veilgate::admin::Admin;
use veilgate::config;
use veilgate::config::RateLimitBackend;
use veilgate::gateway::adapter::ClientDeadlines;
use veilgate::gateway::forward::Forwarder;
use veilgate::gateway::health_checks::HealthChecker;
use veilgate::gateway::upstream_health::UpstreamHealth;
use veilgate::gateway::{Gateway, Shared};
use veilgate::limits::{Limiter, MemoryOptions, MonotonicClock, RedisOptions};
use veilgate::process;
use veilgate::reload::Reloader;
use veilgate::runtime;
use veilgate::shutdown::{Drain, Inflight};
use veilgate::telemetry::Telemetry;

/// mimalloc instead of glibc's allocator: a request allocates and frees many small buffers on
/// whichever worker runs it, where glibc took a large share of the gateway's CPU under load
/// (`perf`; the figure is in the README's Performance section, "Figures behind design
/// choices"), and glibc kept the memory of 1,000 finished streams instead of returning it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An OpenAI-compatible LLM gateway that redacts secrets, enforces budgets and observes every call.
#[derive(Parser, Debug)]
#[command(name = "veilgate", version, about)]
struct Cli {
    /// The configuration file [default: conf/veilgate.yaml; conf/demo.yaml for `demo`].
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Take over the listening sockets of a running veilgate (zero-downtime upgrade; send the
    /// old process SIGQUIT).
    #[arg(long)]
    upgrade: bool,
    /// The socket used to hand listening sockets over during an upgrade.
    #[arg(long, default_value = "/tmp/veilgate_upgrade.sock")]
    upgrade_sock: String,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the configuration and exit: 0 when valid, 1 with every problem listed.
    Check,
    /// Run the gateway on conf/demo.yaml with a built-in echo upstream (the upstream named
    /// `echo`): it answers with the last user message it received, after redaction. No
    /// network, no provider key.
    Demo,
}

impl Cli {
    /// `--config`, or the default of the command.
    fn config_path(&self) -> PathBuf {
        match (&self.config, &self.command) {
            (Some(path), _) => path.clone(),
            (None, Some(Command::Demo)) => PathBuf::from("conf/demo.yaml"),
            (None, _) => PathBuf::from("conf/veilgate.yaml"),
        }
    }
}

fn main() -> ExitCode {
    process::tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check) => check(&cli),
        Some(Command::Demo) => demo(&cli),
        Some(Command::Run) | None => run(&cli),
    }
}

fn check(cli: &Cli) -> ExitCode {
    let path = cli.config_path();
    match config::load_file(&path) {
        Ok(cfg) => {
            let runtime = match runtime::Runtime::build(cfg) {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("{}: the configuration does not build: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            };
            let cfg = &runtime.config;
            println!(
                "{}: OK ({} upstreams, {} routes, environment {})",
                path.display(),
                cfg.upstreams.len(),
                cfg.routes.len(),
                cfg.environment
            );
            for route in runtime.uninspected_routes() {
                eprintln!("warning: {}", uninspected(&route.name));
            }
            for (route, model) in cfg.unpriced_models() {
                eprintln!("warning: {}", unpriced(route, model));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the echo upstream named `echo` in the configuration, then runs the gateway.
fn demo(cli: &Cli) -> ExitCode {
    let path = cli.config_path();
    let echo = match config::load_file(&path) {
        Ok(cfg) => cfg
            .upstream("echo")
            .and_then(|u| format!("{}:{}", u.host, u.port).parse::<SocketAddr>().ok()),
        // run() reports the problems.
        Err(_) => return run(cli),
    };
    let Some(echo) = echo else {
        eprintln!(
            "veilgate: not started: {} has no upstream `echo` with an IP address for the demo's echo upstream (like http://127.0.0.1:8079/v1)",
            path.display()
        );
        return ExitCode::FAILURE;
    };
    if let Err(e) = veilgate::demo::spawn_echo_upstream(echo) {
        eprintln!("veilgate: not started: {e}");
        return ExitCode::FAILURE;
    }
    run(cli)
}

/// What `check` and the start-up log say of a `paths:` route on a redacting policy.
fn uninspected(route: &str) -> String {
    format!(
        "route `{route}` has `inspect: false`: its request and answer bodies are proxied without redaction although the policy redacts"
    )
}

/// What `check` and the start-up log say of a routed model without a price.
fn unpriced(route: &str, model: &str) -> String {
    format!(
        "route `{route}` sends model `{model}`, which has no price (conf/prices.yaml or `prices:`): its requests are logged without a cost and refused by any usd_per_* budget"
    )
}

/// The log filter unless `RUST_LOG` sets one: Pingora's own start-up and shutdown lines
/// (`Bootstrap starting`, `Graceful shutdown: grace period …`) only when asked for.
const DEFAULT_LOG_FILTER: &str = "info,pingora_core=warn,pingora_proxy=warn";

fn run(cli: &Cli) -> ExitCode {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
    env_logger::Builder::new().parse_filters(&filter).init();
    let path = cli.config_path();
    let cfg = match config::load_file(&path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "veilgate: not started: fix the configuration above (veilgate check --config {})",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let runtime = match runtime::Runtime::build(cfg) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("veilgate: not started: the configuration does not build: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = &runtime.config;
    // With --upgrade the running process holds the ports and hands them over.
    if !cli.upgrade {
        for addr in std::iter::once(cfg.listen).chain(cfg.admin) {
            if let Err(e) = process::check_can_listen(addr) {
                eprintln!("veilgate: not started: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    for route in runtime.uninspected_routes() {
        log::warn!("{}", uninspected(&route.name));
    }
    for (route, model) in cfg.unpriced_models() {
        log::warn!("{}", unpriced(route, model));
    }
    let summary = format!(
        "config {} (routes {}, upstreams {}, keys {}); redaction: {}",
        path.display(),
        cfg.routes.len(),
        cfg.upstreams.len(),
        cfg.keys.len(),
        cfg.redaction_summary()
    );
    let listen = cfg.listen.to_string();
    let grace = cfg.shutdown_grace;
    let cfg_rate_limit = cfg.rate_limit.clone();
    let traces = cfg.traces.clone();
    let admin = cfg.admin.map(|a| a.to_string());
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let conf = ServerConf {
        threads,
        // One single-threaded runtime per worker (nginx's model): a connection, its upstream
        // connections and their readiness events stay on one thread. With tokio's
        // work-stealing runtime, wake-ups crossed threads several times per request; under
        // load this runtime needed ~25% less CPU per request (perf, strace; the README's
        // Performance section, "Figures behind design choices").
        work_stealing: false,
        upgrade_sock: cli.upgrade_sock.clone(),
        // Pingora's own grace period is only the backstop: the Drain service exits as soon as
        // the requests in flight are done.
        grace_period_seconds: Some(grace.as_secs() + 5),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: cli.upgrade,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let telemetry = match Telemetry::builder()
        .version(env!("CARGO_PKG_VERSION"))
        .traces(traces)
        .build()
    {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("veilgate: not started: {e}");
            return ExitCode::FAILURE;
        }
    };
    let upstream_names: Vec<&str> = cfg.upstreams.keys().map(String::as_str).collect();
    telemetry
        .metrics()
        .zero_error_counters(cfg.environments(), &upstream_names);
    let limiter = match &cfg_rate_limit.backend {
        RateLimitBackend::Memory => Limiter::memory_with(
            MemoryOptions {
                on_backend_error: cfg_rate_limit.on_backend_error,
                ..MemoryOptions::default()
            },
            Arc::new(MonotonicClock::default()),
        ),
        RateLimitBackend::Redis { url } => {
            let options = RedisOptions {
                timeout: cfg_rate_limit.timeout,
                on_backend_error: cfg_rate_limit.on_backend_error,
                ..RedisOptions::default()
            };
            match Limiter::redis(url, options) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("veilgate: not started: rate_limit: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let shared = Shared {
        runtime: runtime::shared(runtime),
        forwarder: Arc::new(Forwarder::new()),
        inflight: Inflight::default(),
        health: Arc::new(UpstreamHealth::default()),
        telemetry: telemetry.clone(),
        limiter,
    };

    // Pingora's proxy, with client_timeout bounding each request's header and body reads.
    let gateway = pingora_proxy::http_proxy(&server.configuration, Gateway::new(&shared));
    let mut proxy = Service::new(
        "veilgate".to_owned(),
        ClientDeadlines::new(gateway, shared.runtime.clone(), shared.inflight.clone()),
    );
    proxy.add_listener(process::client_listener(&listen));
    server.add_service(proxy);

    if let Some(admin) = admin {
        let app = Admin::new(
            shared.runtime.clone(),
            shared.health.clone(),
            telemetry.clone(),
        )
        .with_limiter(shared.limiter.clone());
        let mut service = Service::new("veilgate admin".to_owned(), app);
        service.add_tcp(&admin);
        server.add_service(service);
        log::info!("admin listening on {admin}");
    }
    server.add_service(background_service(
        "config reload",
        Reloader::new(path.clone(), shared.runtime.clone(), telemetry.clone()),
    ));
    server.add_service(background_service(
        "health checks",
        HealthChecker::new(
            shared.runtime.clone(),
            shared.forwarder.clone(),
            shared.health.clone(),
        ),
    ));
    let flush = telemetry.clone();
    server.add_service(background_service(
        "drain",
        Drain::new(
            shared.inflight.clone(),
            grace,
            vec![Box::new(move || {
                let report = flush.shutdown(Duration::from_secs(5));
                if !report.traces_flushed {
                    log::warn!("some spans could not be exported before exit");
                }
            })],
        ),
    ));
    log::info!(
        "veilgate {} listening on {listen}; {summary}",
        env!("CARGO_PKG_VERSION")
    );
    server.run_forever()
}
