//! Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`): `system` and
//! `messages` of content blocks, streams of content-block events, and Anthropic's own error
//! shape.
//!
//! - Opaque fields: [`OPAQUE_KEYS`].
//! - Usage: the prompt is `system` and the content blocks (`count_prompt`); a stream reports
//!   input usage in `message_start` and cumulative output usage in `message_delta`
//!   ([`is_usage_delta`]); a whole answer its `usage` and `stop_reason`. Anthropic's
//!   `input_tokens` leave the cache out (`usage::parse_usage` adds it).
//! - Stream events: [`EventKind`] and [`DeltaKind`] (`redact/stream/messages.rs` keeps one
//!   channel per content block and text field).
//! - Errors: Anthropic's shape ([`error_json`], [`ERROR_EVENT`]).

use serde::Serialize;
use serde_json::Value;

use super::usage::{str_len, AnswerProbe, Readings, StreamUsage, Tally};
use super::ApiError;

/// Members whose base64 values are binary payloads: image and document sources
/// (`source.data`), redacted thinking (`redacted_thinking.data`), thinking signatures.
pub const OPAQUE_KEYS: &[&str] = &["data", "signature"];

/// The SSE event name of an error in a Messages stream (`event: error`).
pub const ERROR_EVENT: &str = "error";

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// `error` in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.
pub fn error_json(error: &ApiError) -> Vec<u8> {
    let envelope = ErrorEnvelope {
        kind: "error",
        error: ErrorBody {
            kind: error_type(error.status),
            message: &error.message,
        },
    };
    serde_json::to_vec(&envelope).unwrap_or_else(|_| {
        br#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#.to_vec()
    })
}

/// What this module reads (see [`Family::readings`](super::Family::readings)).
pub(super) const READINGS: Readings = Readings {
    count_prompt: |_, request, tally| count_prompt(request, tally),
    observe_event,
    answer_finish,
};

/// Counts a request's prompt: `system` and every message's content blocks.
pub(super) fn count_prompt(request: &Value, tally: &mut Tally) {
    count_blocks(request.get("system"), tally);
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        for m in messages {
            tally.message();
            count_blocks(m.get("content"), tally);
        }
    }
    if let Some(tools) = request.get("tools") {
        tally.json(Some(tools));
    }
}

/// Counts content: a string, or blocks — text and thinking as text, tool inputs and results by
/// their JSON, images and documents at a fixed cost.
fn count_blocks(content: Option<&Value>, tally: &mut Tally) {
    match content {
        Some(Value::String(s)) => tally.chars += s.chars().count() as u64,
        Some(Value::Array(blocks)) => {
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => tally.text(block.get("text")),
                    Some("thinking") => tally.text(block.get("thinking")),
                    Some("tool_use" | "server_tool_use") => tally.json(block.get("input")),
                    Some("tool_result") => count_blocks(block.get("content"), tally),
                    Some("image" | "document") => tally.media(),
                    _ => tally.strings(Some(block)),
                }
            }
        }
        _ => {}
    }
}

/// Whether an event's `usage` is cumulative output so far (`message_delta`), not a whole
/// usage.
pub fn is_usage_delta(event: &Value) -> bool {
    event.get("type").and_then(Value::as_str) == Some("message_delta")
}

/// Reads a Messages event: `message_start`'s model, id and input usage (the output still to
/// come), text deltas, `message_delta`'s stop reason.
pub(super) fn observe_event(seen: &mut StreamUsage, event: &Value) {
    match EventKind::of(event.get("type").and_then(Value::as_str).unwrap_or("")) {
        EventKind::MessageStart => {
            if seen.response_model.is_none() {
                if let Some(m) = event.pointer("/message/model").and_then(Value::as_str) {
                    seen.response_model = Some(m.to_owned());
                }
            }
            if seen.response_id.is_none() {
                if let Some(id) = event.pointer("/message/id").and_then(Value::as_str) {
                    seen.observe_id(Some(id.to_owned()));
                }
            }
            if let Some(u) = event
                .pointer("/message/usage")
                .and_then(super::usage::parse_usage)
            {
                seen.reported = Some(u);
                seen.output_pending = true;
            }
        }
        EventKind::BlockDelta => {
            if let Some(d) = event.get("delta") {
                seen.generated_chars += str_len(d.get("text"))
                    + str_len(d.get("partial_json"))
                    + str_len(d.get("thinking"));
            }
        }
        EventKind::MessageDelta => {
            if let Some(r) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                seen.add_finish(r);
            }
        }
        _ => {}
    }
}

/// A whole answer's finish reason: its `stop_reason`.
pub(super) fn answer_finish(probe: &AnswerProbe<'_>, out: &mut Vec<String>) {
    out.extend(super::usage::string_of(probe.stop_reason));
}

/// What a Messages stream event's `type` means. Deny by default: a type not listed here is
/// [`EventKind::Other`], and its strings are scanned like every other event's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `message_start`: the message's id, model and input usage.
    MessageStart,
    /// `content_block_delta`: a piece of a block ([`DeltaKind`]).
    BlockDelta,
    /// `content_block_stop`: the block at `index` is complete.
    BlockStop,
    /// `message_delta`: the stop reason and the output usage so far; every block is complete.
    MessageDelta,
    /// `message_stop`, `error`: the stream ends; every block is complete.
    End,
    /// Anything else (`content_block_start`, `ping`, types not seen yet).
    Other,
}

impl EventKind {
    /// The kind of an event `type`.
    pub fn of(kind: &str) -> EventKind {
        match kind {
            "message_start" => EventKind::MessageStart,
            "content_block_delta" => EventKind::BlockDelta,
            "content_block_stop" => EventKind::BlockStop,
            "message_delta" => EventKind::MessageDelta,
            "message_stop" | "error" => EventKind::End,
            _ => EventKind::Other,
        }
    }

    /// Whether this event completes every block of the message.
    pub fn ends_all_blocks(self) -> bool {
        matches!(self, EventKind::MessageDelta | EventKind::End)
    }
}

/// Which text a `content_block_delta` carries, by its delta's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaKind {
    /// `text_delta`: `text`.
    Text,
    /// `input_json_delta`: `partial_json`, a tool's input as partial JSON.
    InputJson,
    /// `thinking_delta`: `thinking`.
    Thinking,
    /// `signature_delta`: `signature`, the thinking block's (opaque, base64) signature.
    Signature,
    /// Any other delta type (`citations_delta`, types not seen yet): scanned whole.
    Other,
}

impl DeltaKind {
    /// The kind of a delta `type`.
    pub fn of(kind: &str) -> DeltaKind {
        match kind {
            "text_delta" => DeltaKind::Text,
            "input_json_delta" => DeltaKind::InputJson,
            "thinking_delta" => DeltaKind::Thinking,
            "signature_delta" => DeltaKind::Signature,
            _ => DeltaKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_and_delta_kinds() {
        assert_eq!(EventKind::of("content_block_delta"), EventKind::BlockDelta);
        assert_eq!(EventKind::of("content_block_stop"), EventKind::BlockStop);
        for end in ["message_delta", "message_stop", "error"] {
            assert!(EventKind::of(end).ends_all_blocks(), "{end}");
        }
        for other in ["content_block_start", "ping", "message_start", "brand_new"] {
            assert!(!EventKind::of(other).ends_all_blocks(), "{other}");
        }
        assert_eq!(EventKind::of("brand_new"), EventKind::Other);
        assert_eq!(DeltaKind::of("thinking_delta"), DeltaKind::Thinking);
        assert_eq!(DeltaKind::of("signature_delta"), DeltaKind::Signature);
        assert_eq!(DeltaKind::of("citations_delta"), DeltaKind::Other);
    }

    #[test]
    fn errors_in_anthropics_shape() {
        let e = ApiError::new(429, "rate_limit_error", "slow down");
        let v: Value = serde_json::from_slice(&error_json(&e)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
        assert_eq!(error_type(529), "overloaded_error");
        assert_eq!(error_type(502), "api_error");
        assert_eq!(error_type(400), "invalid_request_error");
    }
}
