//! Span export off the request path: bounded queues, background batches, counted losses.
//!
//! ```text
//! finish() ──try_send──▶ front queue ──▶ dispatcher ──try_send──▶ lane "staging"    ──▶ OTLP/HTTP
//!  (request thread,       (bounded)      (export       (bounded)   lane "production" ──▶ OTLP/HTTP
//!   never waits)                          thread)                  lane "dev"        ──▶ default
//! ```
//!
//! Everything after the first `try_send` runs on one thread of its own (`veilgate-traces`)
//! with a single-threaded Tokio runtime, so exports never compete with requests for the
//! gateway's runtimes. Each environment has its own *lane* — a queue, a batcher and an
//! exporter whose resource names the environment — so a dead collector for one environment
//! delays no other. Every lost span is counted in
//! `veilgate_trace_export_dropped_spans_total{environment}` and every failed export call in
//! `veilgate_trace_export_errors_total{environment}`; the log line saying so appears at
//! most once a minute per environment.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::HttpClient;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::metrics::Metrics;
use super::record::RequestRecord;
use super::spans::{content_bytes, request_spans, SpanOptions};
use super::trace_spec::{endpoint_for_log, TraceSpec};
use super::TelemetryError;

/// At most this many environments get a lane; spans of further ones are dropped (and
/// counted). Environments come from the configuration, so this is a guard, not a limit
/// anyone should meet.
const MAX_LANES: usize = 64;

/// At most one log line per environment per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How long a pipeline dropped without [`TracePipeline::begin_shutdown`] (or replaced by a
/// reload) may keep flushing.
const DEFAULT_FLUSH: Duration = Duration::from_secs(5);

/// Where one environment's spans go.
struct Destination {
    endpoint: String,
    headers: BTreeMap<String, String>,
    capture_content: bool,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("endpoint", &endpoint_for_log(&self.endpoint))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("capture_content", &self.capture_content)
            .finish()
    }
}

/// One request's spans on their way to a lane.
struct Envelope {
    environment: String,
    spans: Vec<SpanData>,
    /// The captured content these spans carry, until they are exported or dropped.
    content_lease: Option<ContentLease>,
}

/// A share of the queued-content budget, returned when dropped.
struct ContentLease {
    bytes: usize,
    queued: Arc<AtomicUsize>,
}

impl ContentLease {
    /// Takes `bytes` from the budget of `limit`, or nothing when it would overflow.
    fn take(queued: &Arc<AtomicUsize>, bytes: usize, limit: usize) -> Option<ContentLease> {
        let before = queued.fetch_add(bytes, Ordering::AcqRel);
        if before.saturating_add(bytes) > limit {
            queued.fetch_sub(bytes, Ordering::AcqRel);
            return None;
        }
        Some(ContentLease {
            bytes,
            queued: queued.clone(),
        })
    }
}

impl Drop for ContentLease {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The trace exporters of one configuration: built by [`TracePipeline::start`], replaced
/// whole on reload.
pub(crate) struct TracePipeline {
    sample_ratio: f64,
    max_content_bytes: usize,
    max_queued_content_bytes: usize,
    queued_content: Arc<AtomicUsize>,
    default: Option<Arc<Destination>>,
    by_environment: HashMap<String, Arc<Destination>>,
    front: Option<mpsc::Sender<Envelope>>,
    shutdown: watch::Sender<Option<Instant>>,
    closed: AtomicBool,
    done: Mutex<Option<std_mpsc::Receiver<()>>>,
    scope: InstrumentationScope,
    shared: Arc<Shared>,
}

impl fmt::Debug for TracePipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracePipeline")
            .field("sample_ratio", &self.sample_ratio)
            .field("default", &self.default)
            .field("by_environment", &self.by_environment)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the request path and the export thread share.
struct Shared {
    metrics: Metrics,
    log: LogLimiter,
}

impl Shared {
    fn dropped(&self, environment: &str, spans: usize, why: impl FnOnce() -> String) {
        self.metrics.trace_spans_dropped(environment, spans as u64);
        if self.log.allow(environment) {
            log::warn!(
                "traces of environment {environment:?}: {}; spans are being dropped \
                 (counted in veilgate_trace_export_dropped_spans_total; next report in a minute at the earliest)",
                why()
            );
        }
    }
}

/// What the export thread needs to build lanes and export.
struct ExportContext {
    shared: Arc<Shared>,
    client: Arc<dyn HttpClient>,
    version: String,
    default: Option<Arc<Destination>>,
    by_environment: HashMap<String, Arc<Destination>>,
    lane_capacity: usize,
    max_batch: usize,
    batch_delay: Duration,
    timeout: Duration,
}

impl TracePipeline {
    /// Validates `spec` and, when it names an exporter, starts the export thread.
    ///
    /// # Errors
    ///
    /// [`TelemetryError::InvalidTraceSpec`] for a bad spec, [`TelemetryError::Start`] when
    /// the TLS configuration, the runtime or the thread cannot be created.
    pub(crate) fn start(
        spec: &TraceSpec,
        version: &str,
        metrics: Metrics,
    ) -> Result<TracePipeline, TelemetryError> {
        spec.validate()?;
        let destination = |endpoint: &str, headers: &BTreeMap<String, String>, capture| {
            Arc::new(Destination {
                endpoint: endpoint.to_owned(),
                headers: headers.clone(),
                capture_content: capture,
            })
        };
        let default = spec
            .endpoint
            .as_deref()
            .map(|e| destination(e, &spec.headers, spec.capture_content));
        let by_environment: HashMap<_, _> = spec
            .environments
            .iter()
            .map(|(env, x)| {
                let capture = x.capture_content.unwrap_or(spec.capture_content);
                (env.clone(), destination(&x.endpoint, &x.headers, capture))
            })
            .collect();
        let shared = Arc::new(Shared {
            metrics,
            log: LogLimiter::new(LOG_INTERVAL),
        });
        let (shutdown, shutdown_rx) = watch::channel(None);
        let scope = InstrumentationScope::builder("veilgate")
            .with_version(version.to_owned())
            .build();
        let mut pipeline = TracePipeline {
            sample_ratio: if spec.is_enabled() {
                spec.sample_ratio
            } else {
                0.0
            },
            max_content_bytes: spec.max_content_bytes,
            max_queued_content_bytes: spec.max_queued_content_bytes,
            queued_content: Arc::new(AtomicUsize::new(0)),
            default: default.clone(),
            by_environment: by_environment.clone(),
            front: None,
            shutdown,
            closed: AtomicBool::new(false),
            done: Mutex::new(None),
            scope,
            shared: shared.clone(),
        };
        if !spec.is_enabled() {
            return Ok(pipeline);
        }

        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| TelemetryError::Start(format!("TLS configuration: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let client: Arc<dyn HttpClient> =
            Arc::new(HyperClient::new(https, spec.export_timeout(), None));
        let context = Arc::new(ExportContext {
            shared,
            client,
            version: version.to_owned(),
            default,
            by_environment,
            lane_capacity: spec.queue_capacity,
            max_batch: spec.max_batch_spans,
            batch_delay: spec.batch_delay(),
            timeout: spec.export_timeout(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TelemetryError::Start(format!("trace export runtime: {e}")))?;
        let (front, front_rx) = mpsc::channel(spec.queue_capacity);
        let (done_tx, done_rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("veilgate-traces".into())
            .spawn(move || {
                runtime.block_on(dispatch(front_rx, shutdown_rx, context));
                let _ = done_tx.send(());
            })
            .map_err(|e| TelemetryError::Start(format!("trace export thread: {e}")))?;
        pipeline.front = Some(front);
        pipeline.done = Mutex::new(Some(done_rx));
        Ok(pipeline)
    }

    /// The ratio for new traces: 0 when nothing is exported.
    pub(crate) fn sample_ratio(&self) -> f64 {
        self.sample_ratio
    }

    /// Whether spans of `environment` would carry captured content.
    pub(crate) fn captures_content(&self, environment: &str) -> bool {
        self.destination(environment)
            .is_some_and(|d| d.capture_content)
    }

    fn destination(&self, environment: &str) -> Option<&Arc<Destination>> {
        self.by_environment
            .get(environment)
            .or(self.default.as_ref())
    }

    /// Queues the spans of a sampled request for export; never waits.
    /// Content bytes held by spans not yet exported (or dropped).
    #[cfg(test)]
    pub(crate) fn queued_content_bytes(&self) -> usize {
        self.queued_content.load(Ordering::Acquire)
    }

    pub(crate) fn submit(&self, record: &RequestRecord) {
        if !record.trace.is_sampled() {
            return;
        }
        let (Some(front), Some(destination)) = (&self.front, self.destination(&record.environment))
        else {
            return;
        };
        let spans_of_request = 1 + record.attempts.len();
        if self.closed.load(Ordering::Acquire) {
            self.shared
                .dropped(&record.environment, spans_of_request, || {
                    "the exporter is shut down".into()
                });
            return;
        }
        let wants_content = destination.capture_content && record.content.is_some();
        let lease = if wants_content {
            ContentLease::take(
                &self.queued_content,
                content_bytes(record, self.max_content_bytes),
                self.max_queued_content_bytes,
            )
        } else {
            None
        };
        let spans = request_spans(
            record,
            &SpanOptions {
                capture_content: lease.is_some(),
                content_omitted: wants_content && lease.is_none(),
                max_content_bytes: self.max_content_bytes,
                scope: &self.scope,
            },
        );
        let envelope = Envelope {
            environment: record.environment.clone(),
            spans,
            content_lease: lease,
        };
        if let Err(e) = front.try_send(envelope) {
            let full = matches!(e, mpsc::error::TrySendError::Full(_));
            let envelope = e.into_inner();
            self.shared
                .dropped(&envelope.environment, envelope.spans.len(), || {
                    if full {
                        "the export queue is full".into()
                    } else {
                        "the export thread has stopped".into()
                    }
                });
        }
    }

    /// Stops accepting spans and tells the export thread to flush what it holds, giving up
    /// at `deadline`. Returns at once.
    pub(crate) fn begin_shutdown(&self, deadline: Instant) {
        self.closed.store(true, Ordering::Release);
        self.shutdown.send_replace(Some(deadline));
    }

    /// Waits until the export thread has finished, or `deadline`. True when it finished.
    pub(crate) fn wait(&self, deadline: Instant) -> bool {
        let Ok(mut done) = self.done.lock() else {
            return false;
        };
        let Some(rx) = done.as_ref() else {
            return true;
        };
        let finished = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) | Err(std_mpsc::RecvTimeoutError::Disconnected) => true,
            Err(std_mpsc::RecvTimeoutError::Timeout) => false,
        };
        if finished {
            *done = None;
        }
        finished
    }
}

impl Drop for TracePipeline {
    /// A pipeline let go (replaced on reload, or never shut down) still flushes, briefly.
    fn drop(&mut self) {
        if !self.closed.load(Ordering::Acquire) {
            self.begin_shutdown(Instant::now() + DEFAULT_FLUSH);
        }
    }
}

/// The export thread: routes envelopes to lanes until shutdown, then lets the lanes flush.
async fn dispatch(
    mut rx: mpsc::Receiver<Envelope>,
    mut shutdown: watch::Receiver<Option<Instant>>,
    context: Arc<ExportContext>,
) {
    let mut lanes: HashMap<String, mpsc::Sender<Envelope>> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            envelope = rx.recv() => match envelope {
                Some(envelope) => context.route(envelope, &mut lanes, &mut tasks, &shutdown),
                None => break,
            },
            changed = shutdown.changed() => {
                if changed.is_err() || shutdown.borrow().is_some() {
                    break;
                }
            }
        }
    }
    rx.close();
    while let Ok(envelope) = rx.try_recv() {
        context.route(envelope, &mut lanes, &mut tasks, &shutdown);
    }
    // Closing the lanes' queues makes each export what it holds and stop.
    drop(lanes);
    let deadline = (*shutdown.borrow()).unwrap_or_else(|| Instant::now() + DEFAULT_FLUSH);
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline.into(), all_done)
        .await
        .is_err()
    {
        log::warn!("trace export: shutdown deadline reached before every span was sent");
    }
}

impl ExportContext {
    fn route(
        self: &Arc<Self>,
        envelope: Envelope,
        lanes: &mut HashMap<String, mpsc::Sender<Envelope>>,
        tasks: &mut JoinSet<()>,
        shutdown: &watch::Receiver<Option<Instant>>,
    ) {
        if !lanes.contains_key(&envelope.environment) {
            let environment = envelope.environment.as_str();
            let spans = envelope.spans.len();
            if lanes.len() >= MAX_LANES {
                self.shared.dropped(environment, spans, || {
                    format!("more than {MAX_LANES} environments are being traced")
                });
                return;
            }
            let Some(lane) = self.open_lane(environment, tasks, shutdown.clone()) else {
                self.shared.dropped(environment, spans, || {
                    "its exporter could not be created".into()
                });
                return;
            };
            lanes.insert(envelope.environment.clone(), lane);
        }
        let Some(lane) = lanes.get(&envelope.environment) else {
            return;
        };
        if let Err(e) = lane.try_send(envelope) {
            let lost = e.into_inner();
            self.shared
                .dropped(&lost.environment, lost.spans.len(), || {
                    "the export queue is full".into()
                });
        }
    }

    fn open_lane(
        self: &Arc<Self>,
        environment: &str,
        tasks: &mut JoinSet<()>,
        shutdown: watch::Receiver<Option<Instant>>,
    ) -> Option<mpsc::Sender<Envelope>> {
        let destination = self
            .by_environment
            .get(environment)
            .or(self.default.as_ref())?;
        let mut exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(destination.endpoint.clone())
            .with_timeout(self.timeout)
            .with_headers(destination.headers.clone().into_iter().collect())
            .with_shared_http_client(self.client.clone())
            .build()
        {
            Ok(exporter) => exporter,
            Err(_) => {
                // The error may quote the endpoint, user info included: name it ourselves.
                log::error!(
                    "trace exporter for environment {environment:?} ({}) could not be created",
                    endpoint_for_log(&destination.endpoint)
                );
                return None;
            }
        };
        exporter.set_resource(
            &Resource::builder()
                .with_service_name("veilgate")
                .with_attributes([
                    KeyValue::new("service.version", self.version.clone()),
                    KeyValue::new("deployment.environment.name", environment.to_owned()),
                ])
                .build(),
        );
        let (tx, rx) = mpsc::channel(self.lane_capacity);
        let lane = Lane {
            environment: environment.to_owned(),
            endpoint: endpoint_for_log(&destination.endpoint),
            exporter,
            context: self.clone(),
            shutdown,
        };
        tasks.spawn(lane.run(rx));
        Some(tx)
    }
}

/// One environment's batcher and exporter.
struct Lane {
    environment: String,
    endpoint: String,
    exporter: opentelemetry_otlp::SpanExporter,
    context: Arc<ExportContext>,
    shutdown: watch::Receiver<Option<Instant>>,
}

impl Lane {
    /// Batches until the queue closes, then exports the rest.
    async fn run(self, mut rx: mpsc::Receiver<Envelope>) {
        let max = self.context.max_batch;
        let mut batch: Vec<SpanData> = Vec::new();
        // Content budget held by the batch, given back once it is sent (or lost).
        let mut leases = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.extend(first.spans);
            leases.push(first.content_lease);
            let send_by = tokio::time::Instant::now() + self.context.batch_delay;
            while batch.len() < max {
                match tokio::time::timeout_at(send_by, rx.recv()).await {
                    Ok(Some(more)) => {
                        batch.extend(more.spans);
                        leases.push(more.content_lease);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            while batch.len() > max {
                let rest = batch.split_off(max);
                self.export(std::mem::replace(&mut batch, rest)).await;
            }
            self.export(std::mem::take(&mut batch)).await;
            leases.clear();
        }
    }

    async fn export(&self, batch: Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let spans = batch.len();
        let shutdown_at = *self.shutdown.borrow();
        let budget = match shutdown_at {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(self.context.timeout),
            None => self.context.timeout,
        };
        let shared = &self.context.shared;
        if budget.is_zero() {
            shared.dropped(&self.environment, spans, || {
                "the shutdown deadline passed before they were sent".into()
            });
            return;
        }
        let failure = match tokio::time::timeout(budget, self.exporter.export(batch)).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", budget.as_millis()),
        };
        shared.metrics.trace_export_failed(&self.environment);
        shared.dropped(&self.environment, spans, || {
            format!("export to {} failed: {failure}", self.endpoint)
        });
    }
}

/// Lets a message through at most once per interval per key; never waits for its lock.
struct LogLimiter {
    every: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl LogLimiter {
    fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// True when a line about `key` may be written now. A contended lock answers false:
    /// someone else is logging at this very moment.
    fn allow(&self, key: &str) -> bool {
        let Ok(mut last) = self.last.try_lock() else {
            return false;
        };
        let now = Instant::now();
        if last
            .get(key)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.every)
        {
            return false;
        }
        if last.len() >= 1024 {
            last.clear();
        }
        last.insert(key.to_owned(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_allows_one_line_per_interval_per_key() {
        let limiter = LogLimiter::new(Duration::from_secs(60));
        assert!(limiter.allow("staging"));
        assert!(!limiter.allow("staging"));
        assert!(limiter.allow("production"));
        let quick = LogLimiter::new(Duration::ZERO);
        assert!(quick.allow("a"));
        assert!(quick.allow("a"));
    }
}
