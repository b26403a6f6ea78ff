//! A finished request as OpenTelemetry spans, with the ids and timestamps fixed while it ran.
//!
//! One `SERVER` span for the request and one `CLIENT` span per upstream attempt, child of
//! it, named `{gen_ai.operation.name} {gen_ai.request.model}` as the GenAI semantic
//! conventions ask. The client span that produced the answer is the *inference* span of
//! the conventions and carries the response attributes, token usage and (opt-in) content;
//! the server span carries what the gateway decided. Usage is deliberately on one span
//! only, so backends that sum usage over a trace (Langfuse) count each token once.
//!
//! Spans are built as [`SpanData`] directly — the exporter's input — rather than through a
//! `Tracer`: the gateway already fixed ids, sampling and times, and nothing here may wait.

use std::borrow::Cow;
use std::time::Instant;

use opentelemetry::trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::record::{RateLimitOutcome, RequestRecord, UpstreamAttempt};
use crate::redact::Direction;

/// Attribute names used on spans.
pub mod attr {
    /// `chat`, `embeddings`… (GenAI).
    pub const OPERATION_NAME: &str = "gen_ai.operation.name";
    /// `openai`, `anthropic`… (GenAI).
    pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// Model asked for (GenAI).
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    /// `max_tokens` (GenAI, int).
    pub const REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
    /// `temperature` (GenAI, double).
    pub const REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
    /// Model that answered (GenAI).
    pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
    /// Response id (GenAI).
    pub const RESPONSE_ID: &str = "gen_ai.response.id";
    /// Finish reasons (GenAI, string[]).
    pub const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    /// Input tokens (GenAI, int).
    pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// Output tokens (GenAI, int).
    pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// Input tokens read from the provider's cache, part of the input tokens (GenAI, int).
    pub const USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
    /// Input tokens written to the provider's cache, part of the input tokens (GenAI, int).
    pub const USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
    /// Reasoning tokens, part of the output tokens (int).
    pub const USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
    /// The request's cost in USD at the gateway's price table (double; the attribute
    /// OpenLIT and Langfuse read).
    pub const USAGE_COST: &str = "gen_ai.usage.cost";
    /// Prompt after redaction (GenAI, opt-in).
    pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
    /// Completion after redaction (GenAI, opt-in).
    pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
    /// Environment (also a resource attribute).
    pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment.environment.name";
    /// HTTP status (int).
    pub const HTTP_STATUS: &str = "http.response.status_code";
    /// Error class.
    pub const ERROR_TYPE: &str = "error.type";
    /// Upstream host.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// Upstream port (int).
    pub const SERVER_PORT: &str = "server.port";
    /// Request id.
    pub const REQUEST_ID: &str = "veilgate.request_id";
    /// Route name.
    pub const ROUTE: &str = "veilgate.route";
    /// Virtual key name (never the key).
    pub const KEY_NAME: &str = "veilgate.key.name";
    /// Whether the client asked for a stream (bool).
    pub const STREAM: &str = "veilgate.stream";
    /// Upstream attempts made (int).
    pub const ATTEMPTS: &str = "veilgate.attempts";
    /// Upstream name (client spans).
    pub const UPSTREAM: &str = "veilgate.upstream";
    /// Values redacted in the request (int).
    pub const REDACTIONS_REQUEST: &str = "veilgate.redactions.request";
    /// Values redacted in the response (int).
    pub const REDACTIONS_RESPONSE: &str = "veilgate.redactions.response";
    /// `direction/detector/action=count` entries (string[]).
    pub const REDACTION_DETAIL: &str = "veilgate.redactions.detail";
    /// Why a redacting route refused (fail closed).
    pub const REDACTION_FAILURE: &str = "veilgate.redaction.failure";
    /// Rate-limit outcome.
    pub const RATELIMIT_OUTCOME: &str = "veilgate.ratelimit.outcome";
    /// Budget that refused the request.
    pub const RATELIMIT_BUDGET: &str = "veilgate.ratelimit.budget";
    /// Set when captured content was cut to `max_content_bytes` (bool).
    pub const CONTENT_TRUNCATED: &str = "veilgate.content.truncated";
    /// Set when content would have been captured but the export queue held too much
    /// already (bool).
    pub const CONTENT_OMITTED: &str = "veilgate.content.omitted";
}

/// How spans are built for one destination.
pub(crate) struct SpanOptions<'a> {
    pub capture_content: bool,
    pub content_omitted: bool,
    pub max_content_bytes: usize,
    pub scope: &'a InstrumentationScope,
}

/// The server span followed by one client span per attempt.
pub(crate) fn request_spans(record: &RequestRecord, opts: &SpanOptions<'_>) -> Vec<SpanData> {
    let end = record.end_instant();
    let mut spans = Vec::with_capacity(1 + record.attempts.len());
    spans.push(server_span(record, end, opts));
    let last = record.attempts.len().saturating_sub(1);
    let answered = record.answering_attempt().is_some();
    for (i, attempt) in record.attempts.iter().enumerate() {
        let is_answer = answered && i == last;
        spans.push(client_span(record, attempt, is_answer, end, opts));
    }
    spans
}

fn server_span(record: &RequestRecord, end: Instant, opts: &SpanOptions<'_>) -> SpanData {
    let ids = &record.trace;
    let mut a = Vec::with_capacity(20);
    a.push(KeyValue::new(attr::OPERATION_NAME, record.operation));
    let request_model = if record.request_model.is_empty() {
        &record.model
    } else {
        &record.request_model
    };
    if !request_model.is_empty() {
        a.push(KeyValue::new(attr::REQUEST_MODEL, request_model.clone()));
    }
    request_params(record, &mut a);
    a.push(KeyValue::new(
        attr::DEPLOYMENT_ENVIRONMENT,
        record.environment.clone(),
    ));
    a.push(KeyValue::new(attr::REQUEST_ID, record.request_id.clone()));
    if !record.route.is_empty() {
        a.push(KeyValue::new(attr::ROUTE, record.route.clone()));
    }
    if let Some(key) = &record.key {
        a.push(KeyValue::new(attr::KEY_NAME, key.clone()));
    }
    a.push(KeyValue::new(attr::STREAM, record.stream));
    a.push(KeyValue::new(attr::HTTP_STATUS, i64::from(record.status)));
    a.push(KeyValue::new(attr::ATTEMPTS, record.attempts.len() as i64));
    a.push(KeyValue::new(
        attr::REDACTIONS_REQUEST,
        saturating_i64(record.redactions_in(Direction::Request)),
    ));
    a.push(KeyValue::new(
        attr::REDACTIONS_RESPONSE,
        saturating_i64(record.redactions_in(Direction::Response)),
    ));
    if !record.redactions.is_empty() {
        let detail = record
            .redactions
            .iter()
            .map(|r| {
                StringValue::from(format!(
                    "{}/{}/{}={}",
                    r.direction.as_str(),
                    r.detector,
                    r.action.as_str(),
                    r.n
                ))
            })
            .collect();
        a.push(KeyValue::new(
            attr::REDACTION_DETAIL,
            Value::Array(Array::String(detail)),
        ));
    }
    if let Some(failure) = &record.redaction_failure {
        a.push(KeyValue::new(attr::REDACTION_FAILURE, failure.reason));
    }
    a.push(KeyValue::new(
        attr::RATELIMIT_OUTCOME,
        record.rate_limit.label(),
    ));
    if let RateLimitOutcome::Refused { budget } = &record.rate_limit {
        a.push(KeyValue::new(attr::RATELIMIT_BUDGET, budget.clone()));
    }
    let status = if record.status >= 500 || (record.error.is_some() && record.status >= 400) {
        let error_type: Cow<'static, str> = match record.error {
            Some(e) => e.into(),
            None => record.status.to_string().into(),
        };
        a.push(KeyValue::new(attr::ERROR_TYPE, error_type.clone()));
        if record.status >= 500 {
            Status::error(error_type)
        } else {
            Status::Unset
        }
    } else {
        Status::Unset
    };
    span(SpanParts {
        record,
        span_id: ids.server_span_id(),
        parent: ids.remote_parent(),
        parent_is_remote: true,
        kind: SpanKind::Server,
        name: span_name(
            record.operation,
            if record.request_model.is_empty() {
                &record.model
            } else {
                &record.request_model
            },
        ),
        start: record.started,
        end,
        attributes: a,
        events: SpanEvents::default(),
        status,
        scope: opts.scope,
    })
}

fn client_span(
    record: &RequestRecord,
    attempt: &UpstreamAttempt,
    is_answer: bool,
    request_end: Instant,
    opts: &SpanOptions<'_>,
) -> SpanData {
    let mut a = Vec::with_capacity(20);
    a.push(KeyValue::new(attr::OPERATION_NAME, record.operation));
    a.push(KeyValue::new(attr::PROVIDER_NAME, attempt.provider.clone()));
    a.push(KeyValue::new(attr::REQUEST_MODEL, attempt.model.clone()));
    request_params(record, &mut a);
    a.push(KeyValue::new(attr::UPSTREAM, attempt.upstream.clone()));
    if let Some(host) = &attempt.server_address {
        a.push(KeyValue::new(attr::SERVER_ADDRESS, host.clone()));
    }
    if let Some(port) = attempt.server_port {
        a.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
    }
    if let Some(status) = attempt.status {
        a.push(KeyValue::new(attr::HTTP_STATUS, i64::from(status)));
    }
    let mut status = Status::Unset;
    if let Some(reason) = attempt.error {
        let label = reason.label();
        a.push(KeyValue::new(attr::ERROR_TYPE, label.clone()));
        status = Status::error(label);
    }
    if is_answer {
        let response = &record.response;
        if let Some(model) = &response.model {
            a.push(KeyValue::new(attr::RESPONSE_MODEL, model.clone()));
        }
        if let Some(id) = &response.id {
            a.push(KeyValue::new(attr::RESPONSE_ID, id.clone()));
        }
        if !response.finish_reasons.is_empty() {
            let reasons = response
                .finish_reasons
                .iter()
                .map(|r| StringValue::from(r.clone()))
                .collect();
            a.push(KeyValue::new(
                attr::RESPONSE_FINISH_REASONS,
                Value::Array(Array::String(reasons)),
            ));
        }
        if let Some(tokens) = record.tokens {
            a.push(KeyValue::new(
                attr::USAGE_INPUT_TOKENS,
                saturating_i64(tokens.prompt),
            ));
            a.push(KeyValue::new(
                attr::USAGE_OUTPUT_TOKENS,
                saturating_i64(tokens.completion),
            ));
            for (name, n) in [
                (attr::USAGE_CACHE_READ_INPUT_TOKENS, tokens.cache_read),
                (attr::USAGE_CACHE_CREATION_INPUT_TOKENS, tokens.cache_write),
                (attr::USAGE_REASONING_OUTPUT_TOKENS, tokens.reasoning),
            ] {
                if n > 0 {
                    a.push(KeyValue::new(name, saturating_i64(n)));
                }
            }
        }
        if let Some(cost) = record.cost_usd {
            a.push(KeyValue::new(attr::USAGE_COST, cost));
        }
        if opts.capture_content {
            if let Some(content) = &record.content {
                let (input, cut_in) = truncate(&content.input, opts.max_content_bytes);
                let (output, cut_out) = truncate(&content.output, opts.max_content_bytes);
                a.push(KeyValue::new(attr::INPUT_MESSAGES, input.to_owned()));
                a.push(KeyValue::new(attr::OUTPUT_MESSAGES, output.to_owned()));
                if cut_in || cut_out {
                    a.push(KeyValue::new(attr::CONTENT_TRUNCATED, true));
                }
            }
        } else if opts.content_omitted {
            a.push(KeyValue::new(attr::CONTENT_OMITTED, true));
        }
    }
    let mut events = SpanEvents::default();
    if let Some(first) = attempt.first_token {
        events.events.push(Event::new(
            "gen_ai.first_chunk",
            record.wall_time(first),
            Vec::new(),
            0,
        ));
    }
    span(SpanParts {
        record,
        span_id: attempt.ids.span_id(),
        parent: Some(record.trace.server_span_id()),
        parent_is_remote: false,
        kind: SpanKind::Client,
        name: span_name(record.operation, &attempt.model),
        start: attempt.started,
        end: attempt.ended.unwrap_or(request_end),
        attributes: a,
        events,
        status,
        scope: opts.scope,
    })
}

fn request_params(record: &RequestRecord, a: &mut Vec<KeyValue>) {
    if let Some(max) = record.params.max_tokens {
        a.push(KeyValue::new(attr::REQUEST_MAX_TOKENS, saturating_i64(max)));
    }
    if let Some(t) = record.params.temperature {
        a.push(KeyValue::new(attr::REQUEST_TEMPERATURE, t));
    }
}

struct SpanParts<'a> {
    record: &'a RequestRecord,
    span_id: SpanId,
    parent: Option<SpanId>,
    parent_is_remote: bool,
    kind: SpanKind,
    name: String,
    start: Instant,
    end: Instant,
    attributes: Vec<KeyValue>,
    events: SpanEvents,
    status: Status,
    scope: &'a InstrumentationScope,
}

fn span(p: SpanParts<'_>) -> SpanData {
    let context = SpanContext::new(
        p.record.trace.trace_id(),
        p.span_id,
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    SpanData {
        span_context: context,
        parent_span_id: p.parent.unwrap_or(SpanId::INVALID),
        parent_span_is_remote: p.parent.is_some() && p.parent_is_remote,
        span_kind: p.kind,
        name: p.name.into(),
        start_time: p.record.wall_time(p.start),
        end_time: p.record.wall_time(p.end.max(p.start)),
        attributes: p.attributes,
        dropped_attributes_count: 0,
        events: p.events,
        links: SpanLinks::default(),
        status: p.status,
        instrumentation_scope: p.scope.clone(),
    }
}

/// `{operation} {model}`, or the operation alone when no model is known.
fn span_name(operation: &str, model: &str) -> String {
    if model.is_empty() {
        operation.to_owned()
    } else {
        format!("{operation} {model}")
    }
}

/// The bytes of content a record's spans would carry.
pub(crate) fn content_bytes(record: &RequestRecord, max_content_bytes: usize) -> usize {
    record.content.as_ref().map_or(0, |c| {
        c.input.len().min(max_content_bytes) + c.output.len().min(max_content_bytes)
    })
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    (&s[..cut], true)
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), ("h", true));
        assert_eq!(truncate("héllo", 3), ("hé", true));
        assert_eq!(truncate("hello", 10), ("hello", false));
    }

    #[test]
    fn names_follow_the_genai_pattern() {
        assert_eq!(span_name("chat", "gpt-4o"), "chat gpt-4o");
        assert_eq!(span_name("chat", ""), "chat");
    }
}
