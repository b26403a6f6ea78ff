//! Active upstream health checks (`health_check: {path, interval}`), in the background.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_http::RequestHeader;

use super::forward::Forwarder;
use super::transport::{Answer, Transport};
use super::upstream_health::UpstreamHealth;
use crate::config::Upstream;
use crate::runtime::SharedRuntime;

/// How often idle upstream connections past their idle limit are closed.
const IDLE_SWEEP: Duration = Duration::from_secs(5);

/// Checks each upstream that has a `health_check`, on its interval; closes stale idle
/// upstream connections.
pub struct HealthChecker {
    runtime: SharedRuntime,
    forwarder: Arc<Forwarder>,
    health: Arc<UpstreamHealth>,
}

impl HealthChecker {
    /// A checker over the runtime in force (it follows reloads).
    pub fn new(
        runtime: SharedRuntime,
        forwarder: Arc<Forwarder>,
        health: Arc<UpstreamHealth>,
    ) -> Self {
        HealthChecker {
            runtime,
            forwarder,
            health,
        }
    }

    /// One check: a GET of the check path; any 2xx within the check timeout passes.
    pub async fn check(&self, upstream: &Upstream) -> Result<(), String> {
        let (Some(check), Some(path)) = (&upstream.health_check, upstream.health_check_target())
        else {
            return Ok(());
        };
        let (status, _) = get(
            self.forwarder.as_ref(),
            upstream,
            &path,
            "veilgate-health-check",
            check.timeout,
            1024 * 1024,
        )
        .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

/// A `GET` of `path` (a request target) on `upstream` by the gateway itself, with the
/// upstream's key: its status and up to `limit` bytes of its body, within `timeout`. The error
/// names what failed, never the key.
pub(super) async fn get<T: Transport>(
    forwarder: &T,
    upstream: &Upstream,
    path: &str,
    user_agent: &str,
    timeout: Duration,
    limit: usize,
) -> Result<(u16, Bytes), String> {
    let mut header = RequestHeader::build("GET", path.as_bytes(), None)
        .map_err(|e| e.etype().as_str().to_owned())?;
    let _ = header.insert_header(http::header::HOST, upstream.authority());
    let _ = header.insert_header("user-agent", user_agent);
    let _ = super::upstream::add_credentials(&mut header, upstream);
    let attempt = async {
        let mut exchange = forwarder
            .send(upstream, header, Bytes::new())
            .await
            .map_err(|e| e.to_string())?;
        let status = exchange.header().map_or(0, |h| h.status.as_u16());
        let body = exchange.read_to_end(limit).await;
        forwarder.finish(exchange).await;
        Ok((status, body.unwrap_or_default()))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut due: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut next_sweep = Instant::now() + IDLE_SWEEP;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            if Instant::now() >= next_sweep {
                self.forwarder.sweep_idle();
                next_sweep = Instant::now() + IDLE_SWEEP;
            }
            let runtime = self.runtime.load_full();
            let now = Instant::now();
            for upstream in runtime.config.upstreams.values() {
                let Some(check) = &upstream.health_check else {
                    // No check (any more, after a reload): an earlier failing verdict no
                    // longer keeps the upstream out of rotation.
                    due.remove(&upstream.name);
                    if self.health.clear_check(&upstream.name) {
                        log::info!(
                            "upstream {}: no health check any more; back in rotation",
                            upstream.name
                        );
                    }
                    continue;
                };
                if due.get(&upstream.name).is_some_and(|t| *t > now) {
                    continue;
                }
                due.insert(upstream.name.clone(), now + check.interval);
                let was_down = self.health.status(&upstream.name).is_down();
                match self.check(upstream).await {
                    Ok(()) => {
                        if was_down {
                            log::info!("upstream {}: health check passes again", upstream.name);
                        }
                        self.health.set_check(&upstream.name, true);
                    }
                    Err(reason) => {
                        if !was_down {
                            log::warn!(
                                "upstream {}: health check failed ({reason}); out of rotation",
                                upstream.name
                            );
                        }
                        self.health.set_check(&upstream.name, false);
                    }
                }
            }
        }
    }
}
