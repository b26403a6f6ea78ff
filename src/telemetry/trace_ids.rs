//! W3C trace context: continuing a caller's trace, naming our spans before they exist.
//!
//! The gateway learns a request's span ids at its *start* (it must send `traceparent`
//! upstream long before the request is over) but hands the spans to the exporter only at
//! the *end*, in [`Telemetry::finish`](super::Telemetry::finish). [`TraceIds`] is that
//! bridge: it fixes the trace id, the server span's id, the caller's span id and the
//! sampling decision once, and mints one [`AttemptIds`] per upstream attempt.
//!
//! Sampling is decided here, once per trace, so that the flag sent upstream and the spans
//! exported agree:
//!
//! * with a valid incoming `traceparent`, the caller's `sampled` flag is followed
//!   (parent-based sampling, as OpenTelemetry's `ParentBased` sampler does);
//! * otherwise a new trace id is drawn and kept when its low 63 bits fall under
//!   `sample_ratio` (the rule of OpenTelemetry's `TraceIdRatioBased`, so every service
//!   using that sampler keeps or drops the same traces).
//!
//! `tracestate` is not propagated.

use std::fmt;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

/// The ids of one request's trace: fixed at request start, used at request end.
///
/// Cheap to copy; carries no secrets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    trace_id: TraceId,
    server_span_id: SpanId,
    remote_parent: Option<SpanId>,
    sampled: bool,
}

/// The ids of one upstream attempt: its client span and the `traceparent` to send upstream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AttemptIds {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
}

impl TraceIds {
    /// Continues the caller's trace, or starts a new one.
    ///
    /// `traceparent` is the raw value of the incoming `traceparent` header, if any. A value
    /// that is not a valid W3C trace context (wrong shape, upper-case hex, all-zero ids,
    /// version `ff`) is ignored as the specification asks, and a new trace begins.
    ///
    /// `sample_ratio` (clamped to `0.0..=1.0`) applies only to new traces; a valid
    /// incoming header's `sampled` flag wins.
    pub fn start(traceparent: Option<&str>, sample_ratio: f64) -> TraceIds {
        let ids = RandomIdGenerator::default();
        let server_span_id = ids.new_span_id();
        match traceparent.and_then(parse_traceparent) {
            Some(parent) => TraceIds {
                trace_id: parent.trace_id,
                server_span_id,
                remote_parent: Some(parent.span_id),
                sampled: parent.sampled,
            },
            None => {
                let trace_id = ids.new_trace_id();
                TraceIds {
                    trace_id,
                    server_span_id,
                    remote_parent: None,
                    sampled: ratio_keeps(trace_id, sample_ratio),
                }
            }
        }
    }

    /// Ids for the next upstream attempt: a new client span, child of the server span.
    ///
    /// Call once per attempt (fallbacks and retries included) and send
    /// [`AttemptIds::traceparent`] upstream with that attempt.
    pub fn attempt(&self) -> AttemptIds {
        AttemptIds {
            trace_id: self.trace_id,
            span_id: RandomIdGenerator::default().new_span_id(),
            sampled: self.sampled,
        }
    }

    /// The trace id, 32 lower-case hex digits (as written in the access log).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The `traceparent` naming the gateway's server span (for a response header, say).
    pub fn traceparent(&self) -> String {
        format_traceparent(self.trace_id, self.server_span_id, self.sampled)
    }

    /// Whether this trace's spans are exported.
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// Whether the trace was continued from an incoming `traceparent`.
    pub fn is_continued(&self) -> bool {
        self.remote_parent.is_some()
    }

    pub(crate) fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    pub(crate) fn server_span_id(&self) -> SpanId {
        self.server_span_id
    }

    pub(crate) fn remote_parent(&self) -> Option<SpanId> {
        self.remote_parent
    }
}

impl AttemptIds {
    /// The `traceparent` header value to send with this attempt.
    pub fn traceparent(&self) -> String {
        format_traceparent(self.trace_id, self.span_id, self.sampled)
    }

    pub(crate) fn span_id(&self) -> SpanId {
        self.span_id
    }
}

impl fmt::Debug for TraceIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceIds")
            .field("trace_id", &format_args!("{:032x}", self.trace_id))
            .field(
                "server_span_id",
                &format_args!("{:016x}", self.server_span_id),
            )
            .field(
                "remote_parent",
                &self.remote_parent.map(|s| format!("{s:016x}")),
            )
            .field("sampled", &self.sampled)
            .finish()
    }
}

impl fmt::Debug for AttemptIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AttemptIds")
            .field(&self.traceparent())
            .finish()
    }
}

/// The parts of a valid `traceparent` we use.
#[derive(Debug, PartialEq, Eq)]
struct Parent {
    trace_id: TraceId,
    span_id: SpanId,
    sampled: bool,
}

/// Parses a W3C `traceparent` (`{version}-{trace-id}-{parent-id}-{flags}`).
///
/// Version `00` must be exactly 55 characters; a later version may append fields after a
/// `-`, which are ignored (W3C Trace Context §4.3 "Versioning of traceparent").
fn parse_traceparent(value: &str) -> Option<Parent> {
    let value = value.trim_matches([' ', '\t']);
    let b = value.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let (version, trace, span, flags) = (&b[0..2], &b[3..35], &b[36..52], &b[53..55]);
    if !all_hex(version) || version == b"ff" || !all_hex(trace) || !all_hex(span) {
        return None;
    }
    if !all_hex(flags) {
        return None;
    }
    match (version, b.len()) {
        (b"00", 55) => {}
        (b"00", _) => return None,
        (_, 55) => {}
        (_, _) if b[55] == b'-' => {}
        _ => return None,
    }
    let trace_id = TraceId::from_bytes(u128::from_str_radix(&value[3..35], 16).ok()?.to_be_bytes());
    let span_id = SpanId::from_bytes(u64::from_str_radix(&value[36..52], 16).ok()?.to_be_bytes());
    let flags = u8::from_str_radix(&value[53..55], 16).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 0x01 == 0x01,
    })
}

/// Lower-case hex only: W3C forbids upper case in `traceparent`.
fn all_hex(s: &[u8]) -> bool {
    s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn format_traceparent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> String {
    format!(
        "00-{:032x}-{:016x}-{}",
        trace_id,
        span_id,
        if sampled { "01" } else { "00" }
    )
}

/// OpenTelemetry's `TraceIdRatioBased` rule: keep when the trace id's low 63 bits fall
/// under `ratio × 2^63`.
fn ratio_keeps(trace_id: TraceId, ratio: f64) -> bool {
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    if ratio >= 1.0 {
        return true;
    }
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..16]);
    let rnd = u64::from_be_bytes(low) >> 1;
    // Exact for ratios above 2^-63; `as` saturates, which is what we want at the edges.
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    rnd < bound
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn continues_a_valid_traceparent() {
        let ids = TraceIds::start(Some(PARENT), 0.0);
        assert_eq!(ids.trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(
            ids.remote_parent(),
            Some(SpanId::from_bytes(0xb7ad6b7169203331u64.to_be_bytes()))
        );
        assert!(
            ids.is_sampled(),
            "the caller's sampled flag wins over ratio 0"
        );
        assert!(ids.is_continued());
        assert_ne!(ids.server_span_id(), SpanId::INVALID);

        let attempt = ids.attempt();
        let tp = attempt.traceparent();
        assert!(tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert!(tp.ends_with("-01"));
        assert_ne!(attempt.span_id(), ids.server_span_id());
        assert_ne!(ids.attempt().span_id(), attempt.span_id());
        assert_eq!(
            parse_traceparent(&tp).map(|p| p.span_id),
            Some(attempt.span_id())
        );
    }

    #[test]
    fn follows_an_unsampled_parent() {
        let unsampled = PARENT.replace("-01", "-00");
        let ids = TraceIds::start(Some(&unsampled), 1.0);
        assert!(!ids.is_sampled());
        assert!(ids.attempt().traceparent().ends_with("-00"));
    }

    #[test]
    fn rejects_malformed_traceparents() {
        let bad = [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
        ];
        for value in bad {
            assert_eq!(parse_traceparent(value), None, "{value:?}");
            let ids = TraceIds::start(Some(value), 1.0);
            assert!(!ids.is_continued(), "{value:?}");
            assert!(ids.is_sampled());
        }
    }

    #[test]
    fn accepts_future_versions_with_extra_fields() {
        let future = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-whatever";
        assert!(parse_traceparent(future).is_some());
    }

    #[test]
    fn ratio_sampling_is_a_function_of_the_trace_id() {
        let kept = (0..2000)
            .filter(|_| TraceIds::start(None, 0.25).is_sampled())
            .count();
        assert!((300..=700).contains(&kept), "kept {kept} of 2000 at 0.25");
        assert_eq!(
            (0..100)
                .filter(|_| TraceIds::start(None, 0.0).is_sampled())
                .count(),
            0
        );
        assert_eq!(
            (0..100)
                .filter(|_| TraceIds::start(None, 1.0).is_sampled())
                .count(),
            100
        );

        let low = TraceId::from_bytes(1u128.to_be_bytes());
        let high = TraceId::from_bytes(u128::MAX.to_be_bytes());
        assert!(ratio_keeps(low, 0.001));
        assert!(!ratio_keeps(high, 0.999));
        assert!(!ratio_keeps(low, f64::NAN));
    }

    #[test]
    fn debug_shows_hex_ids() {
        let ids = TraceIds::start(Some(PARENT), 1.0);
        let debug = format!("{ids:?}");
        assert!(
            debug.contains("0af7651916cd43dd8448eb211c80319c"),
            "{debug}"
        );
        assert!(debug.contains("b7ad6b7169203331"), "{debug}");
    }
}
