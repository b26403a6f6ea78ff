//! What the gateway knows about a request once it is over: the input of
//! [`Telemetry::finish`](super::Telemetry::finish).
//!
//! A [`RequestRecord`] is plain data. The gateway creates it when a request arrives
//! ([`RequestRecord::begin`]), fills it in stage by stage, and hands it over at the end;
//! metrics, the access-log line and the spans are all derived from it, so they cannot
//! disagree.
//!
//! # Label values come from the configuration
//!
//! Every `String` field documented as a *configured name* becomes a Prometheus label value
//! and must be a name written in the configuration: a route name, a virtual key's name, an
//! upstream name, a detector name, a budget name, the environment. The model label is the
//! configured model name, or — when the request matched a glob such as `gpt-4o*` — the
//! glob itself, never the client's string. This keeps the number of series bounded by the
//! configuration, whatever clients send. Free text (what the upstream said its model was,
//! the response id) goes only into traces.

use std::time::{Duration, Instant, SystemTime};

use super::trace_ids::{AttemptIds, TraceIds};
use crate::redact::{Count, Direction};
use crate::wire::usage::Usage;

/// Well-known `gen_ai.operation.name` values (OpenTelemetry GenAI semantic conventions).
pub mod operation {
    /// Chat completions and the Responses API.
    pub const CHAT: &str = "chat";
    /// The legacy completions API.
    pub const TEXT_COMPLETION: &str = "text_completion";
    /// Embeddings.
    pub const EMBEDDINGS: &str = "embeddings";
    /// Multimodal content generation.
    pub const GENERATE_CONTENT: &str = "generate_content";
}

/// Everything telemetry needs to know about one finished request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// The ids fixed at request start by [`Telemetry::start_trace`](super::Telemetry::start_trace)
    /// or [`TraceIds::start`].
    pub trace: TraceIds,
    /// When the request arrived (monotonic).
    pub started: Instant,
    /// When the request arrived (wall clock): timestamps of spans and the access log.
    pub started_at: SystemTime,
    /// When the last byte was written to the client; `None` means "now", at `finish`.
    pub ended: Option<Instant>,
    /// Configured name: the environment chosen by the gateway (the key's, else the route's,
    /// else the top-level one).
    pub environment: String,
    /// Configured name: the route, or empty when no route matched.
    pub route: String,
    /// Configured name: the virtual key's *name* — never the key itself. `None` when the
    /// request was not authenticated.
    pub key: Option<String>,
    /// Configured name: the model label (the configured model, or the glob it matched).
    /// Empty when the request named no model (e.g. it was refused before routing).
    pub model: String,
    /// The model the client asked for, as sent: `gen_ai.request.model` of the server span
    /// (traces are not limited to configured names the way metric labels are). Falls back to
    /// `model` when empty.
    pub request_model: String,
    /// `gen_ai.operation.name`, one of [`operation`]'s values.
    pub operation: &'static str,
    /// Whether the client asked for a streamed response.
    pub stream: bool,
    /// The HTTP status the client got; 499 when it went away before an answer.
    pub status: u16,
    /// A short, low-cardinality reason when the gateway answered with an error of its own
    /// (`"upstream_timeout"`, `"body_too_large"`…): `error.type` on the server span.
    pub error: Option<&'static str>,
    /// Request parameters recorded on spans.
    pub params: RequestParams,
    /// Upstream attempts in order; the last one answered (or failed last).
    pub attempts: Vec<UpstreamAttempt>,
    /// Token usage as reported by the upstream (streams included); `None` when unknown.
    pub tokens: Option<Usage>,
    /// What the response said about itself (traces only; free text).
    pub response: ResponseInfo,
    /// Redactions made, one entry per (direction, detector, action).
    pub redactions: Vec<Count>,
    /// Set when a redacting route refused the request because redaction itself failed
    /// (fail closed).
    pub redaction_failure: Option<RedactionFailure>,
    /// What the rate limiter decided.
    pub rate_limit: RateLimitOutcome,
    /// What the request cost in USD at the price table's prices, from its real usage; `None`
    /// when no price applies or no usage is known.
    pub cost_usd: Option<f64>,
    /// Prompt and completion after redaction; exported only when the environment's
    /// `capture_content` is on (see [`Telemetry::captures_content`](super::Telemetry::captures_content)).
    pub content: Option<CapturedContent>,
}

/// Request parameters worth a span attribute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestParams {
    /// `max_tokens` / `max_completion_tokens` / `max_output_tokens`.
    pub max_tokens: Option<u64>,
    /// `temperature`.
    pub temperature: Option<f64>,
}

/// What the upstream's response said about itself. Free text: traces only, never labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseInfo {
    /// The `model` field of the response (`gen_ai.response.model`).
    pub model: Option<String>,
    /// The `id` field of the response (`gen_ai.response.id`).
    pub id: Option<String>,
    /// Finish reasons, one per choice (`gen_ai.response.finish_reasons`).
    pub finish_reasons: Vec<String>,
}

/// One try at an upstream: a client span, and the upstream metrics.
#[derive(Debug, Clone)]
pub struct UpstreamAttempt {
    /// The ids minted for this attempt by [`TraceIds::attempt`].
    pub ids: AttemptIds,
    /// Configured name: the upstream.
    pub upstream: String,
    /// `gen_ai.provider.name` of the upstream: `"openai"`, `"azure.ai.openai"`,
    /// `"anthropic"`…
    pub provider: String,
    /// The model sent upstream (after aliasing): `gen_ai.request.model` of the client span.
    pub model: String,
    /// The upstream's host (`server.address`).
    pub server_address: Option<String>,
    /// The upstream's port (`server.port`).
    pub server_port: Option<u16>,
    /// When the request to the upstream began.
    pub started: Instant,
    /// When the upstream's response header arrived.
    pub first_byte: Option<Instant>,
    /// When the first content of the answer arrived: the first stream event with data (time
    /// to first token), or the whole body of an answer read at once.
    pub first_token: Option<Instant>,
    /// When the attempt ended (last byte read, or failure); `None` means "when the request
    /// ended".
    pub ended: Option<Instant>,
    /// The upstream's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why the attempt failed, if it did. Leave `None` for answers relayed as they are
    /// (a 400 the client caused is not an upstream error).
    pub error: Option<UpstreamErrorReason>,
}

impl UpstreamAttempt {
    /// An attempt starting now, to be completed by the gateway.
    pub fn begin(
        ids: AttemptIds,
        upstream: impl Into<String>,
        provider: impl Into<String>,
        model: impl Into<String>,
    ) -> UpstreamAttempt {
        UpstreamAttempt {
            ids,
            upstream: upstream.into(),
            provider: provider.into(),
            model: model.into(),
            server_address: None,
            server_port: None,
            started: Instant::now(),
            first_byte: None,
            first_token: None,
            ended: None,
            status: None,
            error: None,
        }
    }
}

/// Why an upstream attempt failed: the `reason` label of `veilgate_upstream_errors_total`
/// and `error.type` on the client span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorReason {
    /// Could not connect (refused, unreachable, DNS).
    Connect,
    /// TLS handshake failed.
    Tls,
    /// No answer, or no next byte, in time.
    Timeout,
    /// The connection closed before the response was complete.
    Closed,
    /// The response was not valid HTTP / JSON / SSE.
    Protocol,
    /// The upstream answered with an error status the gateway treats as a failure
    /// (429, 5xx).
    Status(u16),
}

impl UpstreamErrorReason {
    /// The label value: `connect`, `tls`, `timeout`, `closed`, `protocol`, `http_503`…
    pub fn label(self) -> std::borrow::Cow<'static, str> {
        match self {
            UpstreamErrorReason::Connect => "connect".into(),
            UpstreamErrorReason::Tls => "tls".into(),
            UpstreamErrorReason::Timeout => "timeout".into(),
            UpstreamErrorReason::Closed => "closed".into(),
            UpstreamErrorReason::Protocol => "protocol".into(),
            UpstreamErrorReason::Status(code @ 100..=599) => format!("http_{code}").into(),
            UpstreamErrorReason::Status(_) => "http_invalid".into(),
        }
    }
}

/// A fail-closed refusal: redaction could not be done, so the request was not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionFailure {
    /// Where redaction failed.
    pub direction: Direction,
    /// A short, fixed reason (`"unparsable_body"`, `"scanner_error"`…).
    pub reason: &'static str,
}

/// What the rate limiter decided for a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RateLimitOutcome {
    /// No limit applied to this request.
    #[default]
    Unlimited,
    /// Limits were checked and the request was admitted.
    Allowed,
    /// The request was refused because a budget was exhausted.
    Refused {
        /// Configured name: the budget (`requests_per_minute`, `tokens_per_day`…).
        budget: String,
    },
    /// The limiter's backend failed; the route's policy decided.
    BackendError {
        /// Whether the request was let through (fail open) or refused (fail closed).
        admitted: bool,
    },
}

impl RateLimitOutcome {
    /// The access-log and span value: `unlimited`, `allowed`, `refused`,
    /// `backend_error_admitted`, `backend_error_refused`.
    pub fn label(&self) -> &'static str {
        match self {
            RateLimitOutcome::Unlimited => "unlimited",
            RateLimitOutcome::Allowed => "allowed",
            RateLimitOutcome::Refused { .. } => "refused",
            RateLimitOutcome::BackendError { admitted: true } => "backend_error_admitted",
            RateLimitOutcome::BackendError { admitted: false } => "backend_error_refused",
        }
    }
}

/// Prompt and completion, already redacted, as JSON text in the shape of the GenAI
/// conventions' `gen_ai.input.messages` / `gen_ai.output.messages` (plain text is
/// accepted too). Truncated to the configured `max_content_bytes` on export.
///
/// `Debug` shows only the sizes: user content stays out of logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CapturedContent {
    /// What was sent upstream, after redaction.
    pub input: String,
    /// What was returned to the client, after redaction.
    pub output: String,
}

impl std::fmt::Debug for CapturedContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturedContent")
            .field("input_bytes", &self.input.len())
            .field("output_bytes", &self.output.len())
            .finish()
    }
}

impl RequestRecord {
    /// A record for a request arriving now, with `trace` from
    /// [`Telemetry::start_trace`](super::Telemetry::start_trace). Fields other than the
    /// clocks, the request id and the ids start empty; `status` starts at 0, which the
    /// gateway must overwrite.
    pub fn begin(request_id: impl Into<String>, trace: TraceIds) -> RequestRecord {
        RequestRecord {
            request_id: request_id.into(),
            trace,
            started: Instant::now(),
            started_at: SystemTime::now(),
            ended: None,
            environment: String::new(),
            route: String::new(),
            key: None,
            model: String::new(),
            request_model: String::new(),
            operation: operation::CHAT,
            stream: false,
            status: 0,
            error: None,
            params: RequestParams::default(),
            // Almost every request makes one attempt: no room for four from the first push.
            attempts: Vec::with_capacity(1),
            tokens: None,
            response: ResponseInfo::default(),
            redactions: Vec::new(),
            redaction_failure: None,
            rate_limit: RateLimitOutcome::Unlimited,
            cost_usd: None,
            content: None,
        }
    }

    /// Total redactions in one direction.
    pub fn redactions_in(&self, direction: Direction) -> u64 {
        self.redactions
            .iter()
            .filter(|r| r.direction == direction)
            .map(|r| r.n)
            .sum()
    }

    /// The end instant: `ended`, or now.
    pub(crate) fn end_instant(&self) -> Instant {
        self.ended.unwrap_or_else(Instant::now)
    }

    /// The wall-clock time of a monotonic instant of this request.
    pub(crate) fn wall_time(&self, at: Instant) -> SystemTime {
        self.started_at + at.saturating_duration_since(self.started)
    }

    /// Whole-request duration.
    pub(crate) fn duration(&self, end: Instant) -> Duration {
        end.saturating_duration_since(self.started)
    }

    /// The attempt that produced the answer: the last one, when it got a response.
    pub(crate) fn answering_attempt(&self) -> Option<&UpstreamAttempt> {
        self.attempts
            .last()
            .filter(|a| a.error.is_none() && a.status.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Action;

    #[test]
    fn redactions_are_summed_by_direction() {
        let mut r = RequestRecord::begin("r1", TraceIds::start(None, 0.0));
        let count = |direction, detector: &str, action, n| Count {
            detector: detector.into(),
            direction,
            action,
            n,
        };
        r.redactions = vec![
            count(Direction::Request, "email", Action::Mask, 3),
            count(Direction::Request, "email", Action::Block, 1),
            count(Direction::Response, "email", Action::Mask, 4),
        ];
        assert_eq!(r.redactions_in(Direction::Request), 4);
        assert_eq!(r.redactions_in(Direction::Response), 4);
    }

    #[test]
    fn upstream_error_labels_are_bounded() {
        assert_eq!(UpstreamErrorReason::Status(503).label(), "http_503");
        assert_eq!(UpstreamErrorReason::Status(42).label(), "http_invalid");
        assert_eq!(UpstreamErrorReason::Timeout.label(), "timeout");
    }
}
