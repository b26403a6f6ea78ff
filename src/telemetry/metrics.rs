//! Prometheus metrics on a registry of their own.
//!
//! Every series a request produces carries its `environment` label; the other label
//! values are configured names (see [`record`](super::record)). Series that describe the
//! process rather than a request (build info, reloads, upstream health, exporter and
//! access-log losses) have no request labels.
//!
//! A dedicated [`Registry`] (not the `prometheus` crate's global one) means tests, and a
//! process embedding two gateways, can hold several independent sets.

use std::time::Duration;

use prometheus::core::{Collector, GenericCounterVec, GenericGaugeVec};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::record::{RateLimitOutcome, RequestRecord};
use super::TelemetryError;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metric names, for dashboards, alert rules and tests.
pub mod names {
    /// Requests by `environment`, `route`, `model`, `key`, `status`.
    pub const REQUESTS: &str = "veilgate_requests_total";
    /// Whole-request duration by `environment`, `route`, `model`.
    pub const REQUEST_DURATION: &str = "veilgate_request_duration_seconds";
    /// Upstream time to first byte (time to first token for streams) by `environment`,
    /// `upstream`, `stream`.
    pub const UPSTREAM_FIRST_BYTE: &str = "veilgate_upstream_first_byte_seconds";
    /// Upstream time to the first content of the answer (time to first token for streams).
    pub const UPSTREAM_FIRST_TOKEN: &str = "veilgate_upstream_first_token_seconds";
    /// Time spent in the gateway itself by `environment`.
    pub const GATEWAY_OVERHEAD: &str = "veilgate_gateway_overhead_seconds";
    /// Tokens by `environment`, `route`, `model`, `key`, `kind`.
    pub const TOKENS: &str = "veilgate_tokens_total";
    /// Spend in USD by `environment`, `route`, `model`, `key`.
    pub const COST: &str = "veilgate_cost_usd_total";
    /// Redacted values by `environment`, `direction`, `detector`, `action`.
    pub const REDACTIONS: &str = "veilgate_redactions_total";
    /// Fail-closed refusals by `environment`, `direction`, `reason`.
    pub const REDACTION_FAILURES: &str = "veilgate_redaction_failures_total";
    /// Rate-limit refusals by `environment`, `key`, `budget`.
    pub const RATELIMITED: &str = "veilgate_ratelimited_total";
    /// Rate-limit backend failures by `environment`, `decision`.
    pub const RATELIMIT_BACKEND_ERRORS: &str = "veilgate_ratelimit_backend_errors_total";
    /// Failed upstream attempts by `environment`, `upstream`, `reason`.
    pub const UPSTREAM_ERRORS: &str = "veilgate_upstream_errors_total";
    /// Requests in flight by `environment`.
    pub const INFLIGHT: &str = "veilgate_inflight_requests";
    /// Always 1, labelled with the `version`.
    pub const BUILD_INFO: &str = "veilgate_build_info";
    /// Configuration reloads by `result`.
    pub const CONFIG_RELOADS: &str = "veilgate_config_reloads_total";
    /// 1 when an `upstream` is healthy, 0 when not.
    pub const UPSTREAM_HEALTHY: &str = "veilgate_upstream_healthy";
    /// Spans never delivered, by `environment`.
    pub const TRACE_EXPORT_DROPPED: &str = "veilgate_trace_export_dropped_spans_total";
    /// Failed export calls, by `environment`.
    pub const TRACE_EXPORT_ERRORS: &str = "veilgate_trace_export_errors_total";
    /// Access-log lines dropped because the writer fell behind.
    pub const ACCESS_LOG_DROPPED: &str = "veilgate_access_log_dropped_lines_total";
    /// Request body bytes buffered at once, by all requests together.
    pub const BUFFERED_REQUEST_BYTES: &str = "veilgate_buffered_request_bytes";
    /// Failed operations on the rate-limit backend (checks, reconciliations, renewals).
    pub const RATELIMIT_BACKEND_OPERATION_ERRORS: &str =
        "veilgate_ratelimit_backend_operation_errors_total";
    /// Times the rate-limit backend went from working to failing.
    pub const RATELIMIT_BACKEND_INCIDENTS: &str = "veilgate_ratelimit_backend_incidents_total";
    /// Budget states the memory backend holds now.
    pub const RATELIMIT_TRACKED_STATES: &str = "veilgate_ratelimit_tracked_states";

    /// Every family above.
    pub const ALL: &[&str] = &[
        REQUESTS,
        REQUEST_DURATION,
        UPSTREAM_FIRST_BYTE,
        UPSTREAM_FIRST_TOKEN,
        GATEWAY_OVERHEAD,
        TOKENS,
        COST,
        REDACTIONS,
        REDACTION_FAILURES,
        RATELIMITED,
        RATELIMIT_BACKEND_ERRORS,
        UPSTREAM_ERRORS,
        INFLIGHT,
        BUILD_INFO,
        CONFIG_RELOADS,
        UPSTREAM_HEALTHY,
        TRACE_EXPORT_DROPPED,
        TRACE_EXPORT_ERRORS,
        ACCESS_LOG_DROPPED,
        BUFFERED_REQUEST_BYTES,
        RATELIMIT_BACKEND_OPERATION_ERRORS,
        RATELIMIT_BACKEND_INCIDENTS,
        RATELIMIT_TRACKED_STATES,
    ];
}

/// Whole requests: 50 ms to 5 min (long generations stream for minutes).
const REQUEST_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];
/// Time to first byte / token: 25 ms to 30 s.
const FIRST_BYTE_BUCKETS: &[f64] = &[
    0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
];
/// Gateway overhead: 10 µs to 1 s. The gateway's own time is typically well under a
/// millisecond (the added latency in `benches/RESULTS.md`), so the small buckets are µs-scale.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 1.0,
];

/// The `reason` of an upstream error that does not depend on the upstream's answer (the
/// `http_<status>` reasons are created when they happen).
const UPSTREAM_ERROR_REASONS: [&str; 5] = ["connect", "tls", "timeout", "closed", "protocol"];

/// Every `reason` of `veilgate_redaction_failures_total`: the redaction error codes, and
/// `content_type` (a body the gateway cannot read as JSON).
const REDACTION_FAILURE_REASONS: [&str; 8] = [
    "content_blocked",
    "invalid_utf8",
    "invalid_json",
    "invalid_body_shape",
    "invalid_upstream_stream",
    "stream_too_complex",
    "redaction_error",
    "content_type",
];

/// The gateway's metric families, registered on their own [`Registry`].
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_first_byte: HistogramVec,
    upstream_first_token: HistogramVec,
    gateway_overhead: HistogramVec,
    tokens: IntCounterVec,
    cost: prometheus::CounterVec,
    redactions: IntCounterVec,
    redaction_failures: IntCounterVec,
    ratelimited: IntCounterVec,
    ratelimit_backend_errors: IntCounterVec,
    upstream_errors: IntCounterVec,
    inflight: IntGaugeVec,
    config_reloads: IntCounterVec,
    upstream_healthy: IntGaugeVec,
    trace_export_dropped: IntCounterVec,
    trace_export_errors: IntCounterVec,
    access_log_dropped: IntCounterVec,
    buffered_request_bytes: prometheus::IntGauge,
    limiter_operation_errors: prometheus::IntCounter,
    limiter_incidents: prometheus::IntCounter,
    limiter_tracked_states: prometheus::IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Result of a configuration reload, for [`Metrics::config_reloaded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new configuration is in force.
    Success,
    /// The new configuration was rejected; the old one stays.
    Failure,
    /// The new configuration is in force except for settings that only a restart applies
    /// (named in the log line).
    Partial,
}

impl Metrics {
    /// A fresh registry with every family registered, `veilgate_build_info{version}` set
    /// to 1 and the reload counters at 0.
    ///
    /// # Errors
    ///
    /// [`TelemetryError::Metrics`] if a family cannot be created or registered (only
    /// possible through a programming error in this module: names are constants).
    pub fn new(version: &str) -> Result<Metrics, TelemetryError> {
        let registry = Registry::new();
        let metrics = Metrics {
            requests: counter(
                &registry,
                names::REQUESTS,
                "Requests answered, by HTTP status sent to the client; key is the virtual key's configured name (empty when the gateway runs open or the request was not authenticated).",
                &["environment", "route", "model", "key", "status"],
            )?,
            request_duration: histogram(
                &registry,
                names::REQUEST_DURATION,
                "Whole-request duration, from arrival to the last byte sent.",
                &["environment", "route", "model"],
                REQUEST_BUCKETS,
            )?,
            upstream_first_byte: histogram(
                &registry,
                names::UPSTREAM_FIRST_BYTE,
                "Upstream time to its response header (an upstream may send it long before any content).",
                &["environment", "upstream", "stream"],
                FIRST_BYTE_BUCKETS,
            )?,
            upstream_first_token: histogram(
                &registry,
                names::UPSTREAM_FIRST_TOKEN,
                "Upstream time to the first content of the answer: the first stream event when stream=\"true\" (time to first token), the whole body otherwise.",
                &["environment", "upstream", "stream"],
                FIRST_BYTE_BUCKETS,
            )?,
            gateway_overhead: histogram(
                &registry,
                names::GATEWAY_OVERHEAD,
                "Time spent in the gateway itself: request duration minus time spent in upstream attempts.",
                &["environment"],
                OVERHEAD_BUCKETS,
            )?,
            tokens: counter(
                &registry,
                names::TOKENS,
                "Tokens reported by upstreams (streams included), by kind=prompt|completion.",
                &["environment", "route", "model", "key", "kind"],
            )?,
            cost: register(
                &registry,
                prometheus::CounterVec::new(
                    Opts::new(
                        names::COST,
                        "What requests cost in USD at the gateway's price table, from the upstreams' real usage (cached, reasoning and audio tokens at their own prices).",
                    ),
                    &["environment", "route", "model", "key"],
                )?,
            )?,
            redactions: counter(
                &registry,
                names::REDACTIONS,
                "Values redacted, by direction, detector and action.",
                &["environment", "direction", "detector", "action"],
            )?,
            redaction_failures: counter(
                &registry,
                names::REDACTION_FAILURES,
                "Requests refused because redaction failed (fail closed).",
                &["environment", "direction", "reason"],
            )?,
            ratelimited: counter(
                &registry,
                names::RATELIMITED,
                "Requests refused by a rate limit or budget.",
                &["environment", "key", "budget"],
            )?,
            ratelimit_backend_errors: counter(
                &registry,
                names::RATELIMIT_BACKEND_ERRORS,
                "Rate-limit backend failures, by what was decided (admitted = failed open).",
                &["environment", "decision"],
            )?,
            upstream_errors: counter(
                &registry,
                names::UPSTREAM_ERRORS,
                "Failed upstream attempts, by reason.",
                &["environment", "upstream", "reason"],
            )?,
            inflight: gauge(
                &registry,
                names::INFLIGHT,
                "Requests being served.",
                &["environment"],
            )?,
            config_reloads: counter(
                &registry,
                names::CONFIG_RELOADS,
                "Configuration reloads, by result=success|failure.",
                &["result"],
            )?,
            upstream_healthy: gauge(
                &registry,
                names::UPSTREAM_HEALTHY,
                "1 when the upstream is considered healthy, 0 when not.",
                &["upstream"],
            )?,
            trace_export_dropped: counter(
                &registry,
                names::TRACE_EXPORT_DROPPED,
                "Spans never delivered: queue full, export failed or timed out, shutdown.",
                &["environment"],
            )?,
            trace_export_errors: counter(
                &registry,
                names::TRACE_EXPORT_ERRORS,
                "Failed trace export calls.",
                &["environment"],
            )?,
            access_log_dropped: counter(
                &registry,
                names::ACCESS_LOG_DROPPED,
                "Access-log lines dropped because the writer fell behind or was shut down.",
                &[],
            )?,
            buffered_request_bytes: register(
                &registry,
                prometheus::IntGauge::new(
                    names::BUFFERED_REQUEST_BYTES,
                    "Request body bytes buffered at once, by all requests together (bounded by max_buffered_bytes).",
                )?,
            )?,
            limiter_operation_errors: register(
                &registry,
                prometheus::IntCounter::new(
                    names::RATELIMIT_BACKEND_OPERATION_ERRORS,
                    "Failed operations on the rate-limit backend: checks, reconciliations, releases, lease renewals.",
                )?,
            )?,
            limiter_incidents: register(
                &registry,
                prometheus::IntCounter::new(
                    names::RATELIMIT_BACKEND_INCIDENTS,
                    "Times the rate-limit backend went from working to failing.",
                )?,
            )?,
            limiter_tracked_states: register(
                &registry,
                prometheus::IntGauge::new(
                    names::RATELIMIT_TRACKED_STATES,
                    "Budget states the memory backend holds now (0 with Redis, whose keys expire).",
                )?,
            )?,
            registry,
        };
        let build_info = gauge(
            &metrics.registry,
            names::BUILD_INFO,
            "Always 1; the version label names the running build.",
            &["version"],
        )?;
        set(&build_info, &[version], 1);
        for result in ["success", "partial", "failure"] {
            add(&metrics.config_reloads, &[result], 0);
        }
        add(&metrics.access_log_dropped, &[], 0);
        Ok(metrics)
    }

    /// The registry, to add families of one's own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every family (serve with
    /// [`METRICS_CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            log::error!("rendering metrics failed: {e}");
        }
        out
    }

    /// Updates every request series from a finished request.
    pub fn observe(&self, record: &RequestRecord) {
        let env = record.environment.as_str();
        let (route, model) = (record.route.as_str(), record.model.as_str());
        let end = record.end_instant();
        let total = record.duration(end);

        let key = record.key.as_deref().unwrap_or("");
        let status = StatusLabel::new(record.status);
        add(
            &self.requests,
            &[env, route, model, key, status.as_str()],
            1,
        );
        observe(&self.request_duration, &[env, route, model], total);

        let mut upstream_time = Duration::ZERO;
        let stream = if record.stream { "true" } else { "false" };
        for attempt in &record.attempts {
            let attempt_end = attempt.ended.unwrap_or(end);
            upstream_time += attempt_end.saturating_duration_since(attempt.started);
            if let Some(first) = attempt.first_byte {
                observe(
                    &self.upstream_first_byte,
                    &[env, &attempt.upstream, stream],
                    first.saturating_duration_since(attempt.started),
                );
            }
            if let Some(first) = attempt.first_token {
                observe(
                    &self.upstream_first_token,
                    &[env, &attempt.upstream, stream],
                    first.saturating_duration_since(attempt.started),
                );
            }
            if let Some(reason) = attempt.error {
                add(
                    &self.upstream_errors,
                    &[env, &attempt.upstream, &reason.label()],
                    1,
                );
            }
        }
        observe(
            &self.gateway_overhead,
            &[env],
            total.saturating_sub(upstream_time),
        );

        if let Some(tokens) = record.tokens {
            add(
                &self.tokens,
                &[env, route, model, key, "prompt"],
                tokens.prompt,
            );
            add(
                &self.tokens,
                &[env, route, model, key, "completion"],
                tokens.completion,
            );
        }
        if let Some(cost) = record.cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
            if let Ok(counter) = self
                .cost
                .get_metric_with_label_values(&[env, route, model, key])
            {
                counter.inc_by(cost);
            }
        }
        for r in &record.redactions {
            add(
                &self.redactions,
                &[env, r.direction.as_str(), &r.detector, r.action.as_str()],
                r.n,
            );
        }
        if let Some(failure) = &record.redaction_failure {
            add(
                &self.redaction_failures,
                &[env, failure.direction.as_str(), failure.reason],
                1,
            );
        }
        match &record.rate_limit {
            RateLimitOutcome::Refused { budget } => {
                add(&self.ratelimited, &[env, key, budget], 1);
            }
            RateLimitOutcome::BackendError { admitted } => {
                let decision = if *admitted { "admitted" } else { "refused" };
                add(&self.ratelimit_backend_errors, &[env, decision], 1);
            }
            RateLimitOutcome::Unlimited | RateLimitOutcome::Allowed => {}
        }
    }

    /// Creates the error counters at 0 for the labels known up front (`environments` × the
    /// fixed reasons, × `upstreams` for upstream errors), so that `rate()` and alerts on them
    /// work from start-up instead of from the first error.
    pub fn zero_error_counters<'a>(
        &self,
        environments: impl IntoIterator<Item = &'a str>,
        upstreams: &[&str],
    ) {
        for env in environments {
            for upstream in upstreams {
                for reason in UPSTREAM_ERROR_REASONS {
                    add(&self.upstream_errors, &[env, upstream, reason], 0);
                }
            }
            for direction in ["request", "response"] {
                for reason in REDACTION_FAILURE_REASONS {
                    add(&self.redaction_failures, &[env, direction, reason], 0);
                }
            }
            for decision in ["admitted", "refused"] {
                add(&self.ratelimit_backend_errors, &[env, decision], 0);
            }
        }
    }

    /// Counts a request as in flight in `environment` until the guard drops.
    ///
    /// Take it as soon as the environment is known and keep it in the request context, so
    /// that early returns and panics still decrement.
    pub fn inflight(&self, environment: &str) -> EnvironmentInflightGuard {
        let gauge = self
            .inflight
            .get_metric_with_label_values(&[environment])
            .ok();
        if let Some(g) = &gauge {
            g.inc();
        }
        EnvironmentInflightGuard { gauge }
    }

    /// Mirrors the limiter's own counters (read at scrape time).
    pub fn set_limiter_stats(&self, stats: &crate::limits::LimiterStats) {
        let catch_up = |c: &prometheus::IntCounter, to: u64| {
            let now = c.get();
            if to > now {
                c.inc_by(to - now);
            }
        };
        catch_up(&self.limiter_operation_errors, stats.backend_errors);
        catch_up(&self.limiter_incidents, stats.backend_incidents);
        self.limiter_tracked_states
            .set(i64::try_from(stats.tracked_states).unwrap_or(i64::MAX));
    }

    /// The gauge of request body bytes buffered at once (see `gateway::body::BufferPool`).
    pub fn buffered_request_bytes(&self) -> prometheus::IntGauge {
        self.buffered_request_bytes.clone()
    }

    /// Counts a configuration reload.
    pub fn config_reloaded(&self, result: ReloadResult) {
        let label = match result {
            ReloadResult::Success => "success",
            ReloadResult::Failure => "failure",
            ReloadResult::Partial => "partial",
        };
        add(&self.config_reloads, &[label], 1);
    }

    /// Sets one upstream's health gauge.
    pub fn set_upstream_healthy(&self, upstream: &str, healthy: bool) {
        set(&self.upstream_healthy, &[upstream], i64::from(healthy));
    }

    /// Replaces the whole set of upstream health gauges: upstreams removed by a reload
    /// disappear instead of staying at their last value (and keeping an alert firing).
    pub fn replace_upstream_health<'a>(&self, states: impl IntoIterator<Item = (&'a str, bool)>) {
        self.upstream_healthy.reset();
        for (upstream, healthy) in states {
            self.set_upstream_healthy(upstream, healthy);
        }
    }

    pub(crate) fn trace_spans_dropped(&self, environment: &str, spans: u64) {
        add(&self.trace_export_dropped, &[environment], spans);
    }

    pub(crate) fn trace_export_failed(&self, environment: &str) {
        add(&self.trace_export_errors, &[environment], 1);
    }

    pub(crate) fn access_log_dropped(&self) {
        add(&self.access_log_dropped, &[], 1);
    }
}

/// Keeps a request counted in its environment's `veilgate_inflight_requests` gauge while
/// alive. (The process-wide count that graceful shutdown waits for is
/// [`shutdown::InflightGuard`](crate::shutdown::InflightGuard), a different thing.)
#[derive(Debug)]
#[must_use = "the request stops counting as in flight when the guard drops"]
pub struct EnvironmentInflightGuard {
    gauge: Option<prometheus::IntGauge>,
}

impl Drop for EnvironmentInflightGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

/// An HTTP status as a label without allocating.
struct StatusLabel {
    digits: [u8; 3],
}

impl StatusLabel {
    fn new(status: u16) -> StatusLabel {
        let s = if (100..=999).contains(&status) {
            status
        } else {
            0
        };
        let digits = [
            b'0' + (s / 100) as u8,
            b'0' + (s / 10 % 10) as u8,
            b'0' + (s % 10) as u8,
        ];
        StatusLabel { digits }
    }

    fn as_str(&self) -> &str {
        // Three ASCII digits.
        std::str::from_utf8(&self.digits).unwrap_or("000")
    }
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, TelemetryError> {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, TelemetryError> {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, TelemetryError> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(registry, HistogramVec::new(opts, labels)?)
}

fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> Result<C, TelemetryError> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

// The label arity at every call site matches the family's definition above; these helpers
// use the non-panicking lookups anyway, so a mistake loses a sample instead of a request.

fn add(vec: &GenericCounterVec<prometheus::core::AtomicU64>, labels: &[&str], by: u64) {
    if let Ok(c) = vec.get_metric_with_label_values(labels) {
        c.inc_by(by);
    }
}

fn set(vec: &GenericGaugeVec<prometheus::core::AtomicI64>, labels: &[&str], value: i64) {
    if let Ok(g) = vec.get_metric_with_label_values(labels) {
        g.set(value);
    }
}

fn observe(vec: &HistogramVec, labels: &[&str], value: Duration) {
    if let Ok(h) = vec.get_metric_with_label_values(labels) {
        h.observe(value.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels() {
        assert_eq!(StatusLabel::new(200).as_str(), "200");
        assert_eq!(StatusLabel::new(503).as_str(), "503");
        assert_eq!(StatusLabel::new(0).as_str(), "000");
        assert_eq!(StatusLabel::new(1000).as_str(), "000");
    }

    #[test]
    fn registries_are_independent() {
        let a = Metrics::new("1.0.0").unwrap();
        let b = Metrics::new("1.0.0").unwrap();
        a.config_reloaded(ReloadResult::Failure);
        assert!(a
            .render()
            .contains("veilgate_config_reloads_total{result=\"failure\"} 1"));
        assert!(b
            .render()
            .contains("veilgate_config_reloads_total{result=\"failure\"} 0"));
    }

    #[test]
    fn inflight_guard_decrements() {
        let m = Metrics::new("t").unwrap();
        let g1 = m.inflight("staging");
        let g2 = m.inflight("staging");
        assert!(m
            .render()
            .contains("veilgate_inflight_requests{environment=\"staging\"} 2"));
        drop(g1);
        drop(g2);
        assert!(m
            .render()
            .contains("veilgate_inflight_requests{environment=\"staging\"} 0"));
    }

    #[test]
    fn replacing_upstream_health_forgets_removed_upstreams() {
        let m = Metrics::new("t").unwrap();
        m.set_upstream_healthy("old", false);
        m.replace_upstream_health([("openai", true)]);
        let text = m.render();
        assert!(!text.contains("upstream=\"old\""), "{text}");
        assert!(text.contains("veilgate_upstream_healthy{upstream=\"openai\"} 1"));
    }
}
