//! The floor: Pingora 0.9.1's own proxy path with no policy at all (no body read, no
//! redaction, no limits, no telemetry, no access log). `benches/load.sh` runs it beside nginx
//! and the gateway to show what Pingora itself costs per request on the machine.
//!
//! `cargo run --release --example plain_pingora -- THREADS LISTEN=UPSTREAM [LISTEN=UPSTREAM…]`
//! e.g. `… -- 2 127.0.0.1:8090=127.0.0.1:8091`: each listener proxies to its upstream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use async_trait::async_trait;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_proxy::{ProxyHttp, Session};

/// As the gateway runs: mimalloc (see src/main.rs).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Plain {
    /// Listener port → upstream.
    upstreams: HashMap<u16, SocketAddr>,
}

#[async_trait]
impl ProxyHttp for Plain {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let port = s
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(SocketAddr::port);
        let upstream = port
            .and_then(|p| self.upstreams.get(&p))
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream for listener"))?;
        Ok(Box::new(HttpPeer::new(*upstream, false, String::new())))
    }
}

fn parse(args: &[String]) -> Option<(usize, Vec<(SocketAddr, SocketAddr)>)> {
    let (threads, pairs) = args.split_first()?;
    let pairs = pairs
        .iter()
        .map(|p| {
            let (listen, upstream) = p.split_once('=')?;
            Some((listen.parse().ok()?, upstream.parse().ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    (!pairs.is_empty()).then_some((threads.parse().ok()?, pairs))
}

fn main() -> ExitCode {
    // As the gateway runs: the same allocator settings and client socket buffers.
    veilgate::process::tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((threads, pairs)) = parse(&args) else {
        eprintln!("usage: plain_pingora THREADS LISTEN=UPSTREAM [LISTEN=UPSTREAM…] (IP:port each)");
        return ExitCode::from(2);
    };
    let conf = ServerConf {
        threads,
        // As the gateway runs: one runtime per thread.
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let upstreams = pairs.iter().map(|(l, u)| (l.port(), *u)).collect();
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Plain { upstreams });
    for (listen, _) in &pairs {
        proxy.add_listener(veilgate::process::client_listener(&listen.to_string()));
    }
    server.add_service(proxy);
    server.run_forever()
}
