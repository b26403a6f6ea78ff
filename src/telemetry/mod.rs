//! Telemetry: Prometheus metrics, OpenTelemetry traces (OTLP over HTTP), the access log and
//! the detailed health document — every one of them labelled with the request's
//! *environment*.
//!
//! # Lifecycle of a request
//!
//! ```text
//! arrival      ids = telemetry.start_trace(traceparent header)   // continue or start a trace
//!              record = RequestRecord::begin(request_id, ids)
//! routed       record.environment / route / key / model = configured names
//!              guard = telemetry.metrics().inflight(&record.environment)
//! each attempt a = ids.attempt(); send a.traceparent() upstream;
//!              record.attempts.push(UpstreamAttempt::begin(a, …)) and complete it
//! answered     record.status, tokens, redactions, rate_limit, response… filled in
//! end          telemetry.finish(&record)                           // never waits
//! ```
//!
//! ```
//! use veilgate::telemetry::{AccessLogSink, RequestRecord, Telemetry, TraceSpec, UpstreamAttempt};
//!
//! let telemetry = Telemetry::builder()
//!     .traces(TraceSpec::default()) // from `telemetry.traces`; default: no exporter
//!     .access_log(AccessLogSink::Disabled)
//!     .build()?;
//!
//! let ids = telemetry.start_trace(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
//! let mut record = RequestRecord::begin("req-1", ids);
//! record.environment = "staging".into();
//! record.route = "chat".into();
//! record.key = Some("team-a".into()); // the key's name, never the key
//! record.model = "gpt-4o*".into(); // the configured glob the model matched
//! let _in_flight = telemetry.metrics().inflight(&record.environment);
//!
//! let attempt = ids.attempt();
//! let traceparent = attempt.traceparent(); // send with the upstream request
//! assert!(traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
//! let mut upstream = UpstreamAttempt::begin(attempt, "openai", "openai", "gpt-4o");
//! upstream.status = Some(200);
//! record.attempts.push(upstream);
//! record.status = 200;
//!
//! telemetry.finish(&record);
//! assert!(telemetry.render_metrics().contains(r#"environment="staging""#));
//! telemetry.shutdown(std::time::Duration::from_secs(5));
//! # Ok::<(), veilgate::telemetry::TelemetryError>(())
//! ```
//!
//! [`Telemetry::finish`] derives everything from the [`RequestRecord`]: it updates the
//! metrics, queues the access-log line and queues the spans, whose ids and timestamps were
//! fixed while the request ran. Queues are bounded; what does not fit is dropped and
//! counted, so a slow disk or a dead collector never slows a request.
//!
//! # Environments
//!
//! The gateway decides a request's environment (the key's, else the route's, else the
//! top-level one) and writes it in [`RequestRecord::environment`]. It labels every series
//! of the request, appears in the access log, is the `deployment.environment.name` of the
//! spans and of their resource, and selects the trace exporter (see [`TraceSpec`]).
//!
//! # Label values
//!
//! Metric labels take configured names only (route, key, upstream, detector, budget,
//! model label — a glob when the model matched one); see [`record`] for the rule and why.

mod access_log;
mod export;
mod health_report;
pub mod metrics;
pub mod record;
pub mod spans;
mod trace_ids;
mod trace_spec;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

pub(crate) use access_log::rfc3339;
pub use access_log::AccessLogSink;
pub use health_report::{HealthReport, OverallStatus, UpstreamReport, UpstreamVerdict};
pub use metrics::{EnvironmentInflightGuard, Metrics, ReloadResult, METRICS_CONTENT_TYPE};
pub use record::{
    operation, CapturedContent, RateLimitOutcome, RedactionFailure, RequestParams, RequestRecord,
    ResponseInfo, UpstreamAttempt, UpstreamErrorReason,
};
pub use trace_ids::{AttemptIds, TraceIds};
pub use trace_spec::{EnvironmentExporter, TraceSpec};

use access_log::AccessLog;
use export::TracePipeline;

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A field of the `telemetry.traces` section is wrong. Never quotes a header value.
    #[error("{field}: {problem}")]
    InvalidTraceSpec {
        /// The field's path, e.g. `telemetry.traces.environments.staging.endpoint`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A thread, runtime or TLS configuration could not be created.
    #[error("telemetry could not start: {0}")]
    Start(String),
    /// A metric family could not be created or registered.
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// What [`Telemetry::shutdown`] managed before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every queued span was exported, or given up on and counted, in time.
    pub traces_flushed: bool,
    /// Every queued access-log line was written and flushed in time.
    pub access_log_flushed: bool,
}

/// The gateway's telemetry: one per process, shared by reference (`Arc<Telemetry>`).
pub struct Telemetry {
    version: String,
    started: Instant,
    metrics: Metrics,
    access_log: AccessLog,
    traces: RwLock<Arc<TracePipeline>>,
    ledger: crate::spend::Ledger,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("version", &self.version)
            .field("traces", &self.pipeline())
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Telemetry`] beyond the trace spec; the defaults suit production.
#[derive(Debug)]
pub struct TelemetryBuilder {
    version: String,
    traces: TraceSpec,
    access_log: AccessLogSink,
    access_log_capacity: usize,
}

impl TelemetryBuilder {
    /// The version reported by `veilgate_build_info`, `service.version` and the health
    /// document. Default: this crate's version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The trace exporters. Default: none.
    pub fn traces(mut self, spec: TraceSpec) -> Self {
        self.traces = spec;
        self
    }

    /// Where access-log lines go. Default: stdout.
    pub fn access_log(mut self, sink: AccessLogSink) -> Self {
        self.access_log = sink;
        self
    }

    /// Lines that may wait for the writer before new ones are dropped. Default: 8192.
    pub fn access_log_capacity(mut self, lines: usize) -> Self {
        self.access_log_capacity = lines;
        self
    }

    /// Registers the metrics and starts the writer and exporter threads.
    ///
    /// # Errors
    ///
    /// [`TelemetryError::InvalidTraceSpec`] for a bad trace spec; [`TelemetryError::Start`]
    /// or [`TelemetryError::Metrics`] when a thread, runtime or metric cannot be created.
    pub fn build(self) -> Result<Telemetry, TelemetryError> {
        let metrics = Metrics::new(&self.version)?;
        let pipeline = TracePipeline::start(&self.traces, &self.version, metrics.clone())?;
        let access_log =
            AccessLog::start(self.access_log, self.access_log_capacity, metrics.clone())?;
        Ok(Telemetry {
            version: self.version,
            started: Instant::now(),
            metrics,
            access_log,
            traces: RwLock::new(Arc::new(pipeline)),
            ledger: crate::spend::Ledger::new(),
        })
    }
}

impl Telemetry {
    /// Telemetry with the given trace exporters, the access log on stdout and this crate's
    /// version.
    ///
    /// # Errors
    ///
    /// As [`TelemetryBuilder::build`].
    pub fn new(traces: TraceSpec) -> Result<Telemetry, TelemetryError> {
        Telemetry::builder().traces(traces).build()
    }

    /// A builder, for a version, an access-log sink or capacity of one's own.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            traces: TraceSpec::default(),
            access_log: AccessLogSink::Stdout,
            access_log_capacity: 8192,
        }
    }

    /// Trace ids for a request arriving now: continues `traceparent` (the incoming header's
    /// value) or starts a trace sampled at the configured `sample_ratio` (0 when no exporter
    /// is configured). See [`TraceIds::start`].
    pub fn start_trace(&self, traceparent: Option<&str>) -> TraceIds {
        TraceIds::start(traceparent, self.pipeline().sample_ratio())
    }

    /// Whether content captured for `environment` would be exported: when false, leave
    /// [`RequestRecord::content`] empty and skip building it.
    pub fn captures_content(&self, environment: &str) -> bool {
        self.pipeline().captures_content(environment)
    }

    /// Records a finished request: metrics, the access-log line, and (when sampled and an
    /// exporter serves its environment) its spans. Never blocks: the line and the spans are
    /// queued, and dropped and counted when their queue is full.
    ///
    /// Call exactly once per request, whatever its outcome (refusals included).
    pub fn finish(&self, record: &RequestRecord) {
        self.metrics.observe(record);
        self.ledger.record(
            record.key.as_deref(),
            &record.route,
            record.started_at,
            record.tokens.as_ref(),
            record.cost_usd,
        );
        self.access_log.write(record);
        self.pipeline().submit(record);
    }

    /// The metric families, for series that are not per request (reloads, upstream health,
    /// in-flight guards).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Requests, tokens and spend per key and per route (`GET /usage`).
    pub fn ledger(&self) -> &crate::spend::Ledger {
        &self.ledger
    }

    /// The `/metrics` body, Prometheus text format (serve as [`METRICS_CONTENT_TYPE`]).
    pub fn render_metrics(&self) -> String {
        self.metrics.render()
    }

    /// The `/health/detailed` document for the given facts; version and uptime are this
    /// telemetry's.
    pub fn health(&self, config_version: u64, upstreams: Vec<UpstreamReport>) -> HealthReport {
        HealthReport::new(
            &self.version,
            self.started.elapsed(),
            config_version,
            upstreams,
        )
    }

    /// Replaces the trace exporters (configuration reload). The old exporters flush in the
    /// background for up to 5 s; requests already finished keep their place in the old
    /// queues.
    ///
    /// # Errors
    ///
    /// As [`TelemetryBuilder::build`]; on error the exporters in force stay.
    pub fn reconfigure_traces(&self, spec: &TraceSpec) -> Result<(), TelemetryError> {
        let pipeline = Arc::new(TracePipeline::start(
            spec,
            &self.version,
            self.metrics.clone(),
        )?);
        let old = {
            let mut slot = self.traces.write().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *slot, pipeline)
        };
        // Dropping the last reference starts its bounded flush.
        drop(old);
        Ok(())
    }

    /// Flushes and stops the exporters and the access-log writer, waiting at most
    /// `timeout` in all. Call once, on SIGTERM, after the last request finished; later
    /// `finish` calls still update metrics but their lines and spans are dropped and
    /// counted.
    ///
    /// Blocks the calling thread: from async code, call it in `spawn_blocking`.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let deadline = Instant::now() + timeout;
        let pipeline = self.pipeline();
        pipeline.begin_shutdown(deadline);
        self.access_log.begin_shutdown();
        ShutdownReport {
            traces_flushed: pipeline.wait(deadline),
            access_log_flushed: self.access_log.wait(deadline),
        }
    }

    /// The build version.
    pub fn version(&self) -> &str {
        &self.version
    }

    #[cfg(test)]
    pub(crate) fn queued_content_bytes(&self) -> usize {
        self.pipeline().queued_content_bytes()
    }

    fn pipeline(&self) -> Arc<TracePipeline> {
        self.traces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
