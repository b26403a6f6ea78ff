//! The admin listener: `/healthz`, `/readyz`, `/health/detailed`, `/metrics` and `/usage`.
//!
//! Kept off the public listener so probes and scrapes never compete with, or leak into,
//! client traffic.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::gateway::upstream_health::UpstreamHealth;
use crate::limits::{Budget, LimitSpec, Limiter};
use crate::runtime::SharedRuntime;
use crate::spend::{LedgerEntry, Tally};
use crate::telemetry::{self, rfc3339, Telemetry, UpstreamVerdict};

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
                telemetry::UpstreamReport {
                    name: name.clone(),
                    state: if status.is_down() {
                        UpstreamVerdict::Unhealthy
                    } else {
                        UpstreamVerdict::Healthy
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
                r#"{"error":{"message":"Unknown admin path; try /healthz, /readyz, /health/detailed, /metrics or /usage.","type":"invalid_request_error","param":null,"code":"unknown_url"}}"#.to_owned(),
            ),
        }
    }

    /// `/usage`: per key and per route, requests, tokens and dollars in the current hour, day
    /// and month (UTC) and since start (this instance's traffic), and every budget with what
    /// its USD budgets have spent in their current window and what remains (all instances,
    /// when the budgets are in Redis).
    async fn usage(&self) -> (StatusCode, String) {
        let rt = self.runtime.load();
        let config = &rt.config;
        let now = SystemTime::now();
        let owners: Vec<(&str, &str, LimitSpec)> = config
            .keys
            .iter()
            .map(|k| ("key", k.name.as_str(), k.limits))
            .chain(
                config
                    .routes
                    .iter()
                    .map(|r| ("route", r.name.as_str(), r.limits)),
            )
            .collect();
        let budgets: Vec<Vec<Budget>> = owners
            .iter()
            .map(|(scope, name, spec)| {
                spec.budgets(scope, name)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| (*b).clone())
                    .collect()
            })
            .collect();
        let spend: Vec<std::sync::Arc<Budget>> = budgets
            .iter()
            .flatten()
            .filter(|b| b.kind().period().is_some())
            .cloned()
            .map(std::sync::Arc::new)
            .collect();
        let spent = match (&self.limiter, spend.is_empty()) {
            (_, true) => Some(Vec::new()),
            (Some(limiter), false) => limiter.spent(&spend).await,
            (None, false) => None,
        };
        let (key_ledger, route_ledger) = self.telemetry.ledger().snapshot(now);
        let mut spent_of = spend.iter().zip(spent.iter().flatten().copied());
        let mut keys = Vec::new();
        let mut routes = Vec::new();
        for ((scope, name, _), budgets) in owners.iter().zip(&budgets) {
            let ledger = if *scope == "key" {
                &key_ledger
            } else {
                &route_ledger
            };
            let mut entry = Map::new();
            entry.insert("name".into(), json!(name));
            match ledger.iter().find(|e| e.name == *name) {
                Some(found) => add_tallies(&mut entry, found),
                None => add_tallies(&mut entry, &empty_entry(name, now)),
            }
            let mut listed = Vec::new();
            for budget in budgets {
                let mut b = Map::new();
                b.insert("budget".into(), json!(budget.name()));
                match budget.kind().period() {
                    Some(period) => {
                        let used = if spent.is_some() {
                            spent_of.next().map(|(_, used)| used)
                        } else {
                            None
                        };
                        let (start, end) = period.window(unix(now));
                        b.insert("limit_usd".into(), json!(usd(budget.limit())));
                        b.insert("window_start".into(), json!(rfc3339(at(start))));
                        b.insert("resets_at".into(), json!(rfc3339(at(end))));
                        match used {
                            Some(used) => {
                                b.insert("spent_usd".into(), json!(usd(used)));
                                b.insert(
                                    "remaining_usd".into(),
                                    json!(usd(budget.limit().saturating_sub(used))),
                                );
                            }
                            None => {
                                b.insert(
                                    "error".into(),
                                    json!("the rate-limit backend could not be read"),
                                );
                            }
                        }
                    }
                    None => {
                        b.insert("limit".into(), json!(budget.limit()));
                    }
                }
                listed.push(Value::Object(b));
            }
            entry.insert("budgets".into(), Value::Array(listed));
            if *scope == "key" {
                keys.push(Value::Object(entry));
            } else {
                routes.push(Value::Object(entry));
            }
        }
        let body = json!({
            "as_of": rfc3339(now),
            "counting_since": rfc3339(self.telemetry.ledger().started()),
            "budget_backend": self.limiter.as_ref().map_or("memory", Limiter::backend_name),
            "prices_taken": config.prices.builtin_taken(),
            "keys": keys,
            "routes": routes,
        });
        let status = if spent.is_some() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, body.to_string())
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
        let path = session.req_header().uri.path();
        let (status, content_type, body) = if path == "/usage" {
            let (status, body) = self.usage().await;
            (status, "application/json", body)
        } else {
            self.answer(path)
        };
        let body = body.into_bytes();
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Micro-dollars as dollars.
fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

fn empty_entry(name: &str, now: SystemTime) -> LedgerEntry {
    LedgerEntry {
        name: name.to_owned(),
        windows: crate::spend::Period::ALL
            .into_iter()
            .map(|p| (p, p.window(unix(now)).0, Tally::default()))
            .collect(),
        since_start: Tally::default(),
    }
}

/// `hour`, `day`, `month` and `since_start` of an account into `entry`.
fn add_tallies(entry: &mut Map<String, Value>, account: &LedgerEntry) {
    for (period, start, tally) in &account.windows {
        let mut value = serde_json::to_value(tally).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut value {
            fields.insert("start".into(), json!(rfc3339(at(*start))));
        }
        entry.insert(period.as_str().into(), value);
    }
    entry.insert(
        "since_start".into(),
        serde_json::to_value(account.since_start).unwrap_or(Value::Null),
    );
}
