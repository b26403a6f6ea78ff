//! The admin listener: `/healthz`, `/readyz`, `/health/detailed` and `/metrics`.
//!
//! Kept off the public listener so probes and scrapes never compete with, or leak into,
//! client traffic.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use crate::gateway::health::UpstreamHealth;
use crate::gateway::runtime::SharedRuntime;
use crate::limits::Limiter;
use crate::telemetry::{self, Telemetry, UpstreamState};

/// Answers health probes and scrapes from the shared state.
pub struct Admin {
    runtime: SharedRuntime,
    health: Arc<UpstreamHealth>,
    telemetry: Arc<Telemetry>,
    limiter: Option<Limiter>,
}

impl Admin {
    /// An admin app over the runtime in force.
    pub fn new(
        runtime: SharedRuntime,
        health: Arc<UpstreamHealth>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Admin {
            runtime,
            health,
            telemetry,
            limiter: None,
        }
    }

    /// Exports `limiter`'s own counters with every scrape.
    pub fn with_limiter(mut self, limiter: Limiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// `/readyz`: every route has an upstream not known to be down.
    fn readiness(&self) -> (StatusCode, String) {
        let rt = self.runtime.load();
        let mut problems = Vec::new();
        for route in &rt.config.routes {
            let names: Vec<&str> = route.upstream_names().collect();
            if names.iter().all(|n| self.health.status(n).is_down()) {
                let states: Vec<String> = names
                    .iter()
                    .map(|n| format!("{n}: {}", self.health.status(n).as_str()))
                    .collect();
                problems.push(format!(
                    "route {} has no upstream in rotation ({})",
                    route.name,
                    states.join(", ")
                ));
            }
        }
        if problems.is_empty() {
            let body = serde_json::json!({"status": "ready", "config_version": rt.version});
            (StatusCode::OK, body.to_string())
        } else {
            let body = serde_json::json!({
                "status": "not_ready", "config_version": rt.version, "reasons": problems,
            });
            (StatusCode::SERVICE_UNAVAILABLE, body.to_string())
        }
    }

    fn detailed(&self) -> (StatusCode, String) {
        let rt = self.runtime.load();
        let upstreams = rt
            .config
            .upstreams
            .keys()
            .map(|name| {
                let status = self.health.status(name);
                telemetry::UpstreamHealth {
                    name: name.clone(),
                    state: if status.is_down() {
                        UpstreamState::Unhealthy
                    } else {
                        UpstreamState::Healthy
                    },
                    detail: Some(match self.health.last_failure(name) {
                        Some(reason) => format!("{}; last failure: {reason}", status.as_str()),
                        None => status.as_str().to_owned(),
                    }),
                }
            })
            .collect();
        let report = self.telemetry.health(rt.version, upstreams);
        let status = StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::OK);
        (status, report.to_json())
    }

    fn answer(&self, path: &str) -> (StatusCode, &'static str, String) {
        const JSON: &str = "application/json";
        match path {
            "/healthz" => (StatusCode::OK, JSON, r#"{"status":"ok"}"#.to_owned()),
            "/readyz" => {
                let (s, b) = self.readiness();
                (s, JSON, b)
            }
            "/health/detailed" => {
                let (s, b) = self.detailed();
                (s, JSON, b)
            }
            "/metrics" => {
                self.refresh_health_gauges();
                if let Some(limiter) = &self.limiter {
                    self.telemetry.metrics().set_limiter_stats(&limiter.stats());
                }
                (
                    StatusCode::OK,
                    telemetry::METRICS_CONTENT_TYPE,
                    self.telemetry.render_metrics(),
                )
            }
            _ => (
                StatusCode::NOT_FOUND,
                JSON,
                r#"{"error":{"message":"Unknown admin path; try /healthz, /readyz, /health/detailed or /metrics.","type":"invalid_request_error","param":null,"code":"unknown_url"}}"#.to_owned(),
            ),
        }
    }

    fn refresh_health_gauges(&self) {
        let rt = self.runtime.load();
        let states: Vec<(String, bool)> = rt
            .config
            .upstreams
            .keys()
            .map(|n| (n.clone(), !self.health.status(n).is_down()))
            .collect();
        self.telemetry
            .metrics()
            .replace_upstream_health(states.iter().map(|(n, h)| (n.as_str(), *h)));
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, content_type, body) = self.answer(session.req_header().uri.path());
        let body = body.into_bytes();
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}
