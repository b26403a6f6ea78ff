//! OpenAI's Responses API (`/v1/responses`): `input` items, `output` items, and streams of typed
//! events (`{"type": "response.output_text.delta", …}`). Typed events are also how streamed
//! transcriptions and any stream of an unknown API are read.
//!
//! - Opaque fields: [`OPAQUE_KEYS`].
//! - Usage: the prompt is `instructions` and the `input` items (`count_prompt`); a stream
//!   reports usage, model and status in its last event (`response.completed`, `incomplete`,
//!   `failed`), a whole answer in its top-level `usage` and `status`.
//! - Stream events: [`EventKind`] says what each event type means for the texts that stream
//!   in pieces (`redact/stream/events.rs` keeps the channels).
//! - Errors: OpenAI's shape.

use serde_json::Value;

use super::usage::{str_len, AnswerProbe, Readings, StreamUsage, Tally};

/// Members whose base64 values are binary payloads: input audio and files, encrypted
/// reasoning (`encrypted_content`), generated images (`image_generation_call.result`,
/// `partial_image_b64`).
pub const OPAQUE_KEYS: &[&str] = &[
    "audio",
    "data",
    "encrypted_content",
    "file_data",
    "partial_image_b64",
    "result",
];

/// What this module reads (see [`Family::readings`](super::Family::readings)).
pub(super) const READINGS: Readings = Readings {
    count_prompt: |_, request, tally| count_prompt(request, tally),
    observe_event,
    answer_finish,
};

/// Counts a request's prompt: `instructions`, and `input` (a string, or items whose content,
/// tool arguments and tool outputs are text).
pub(super) fn count_prompt(request: &Value, tally: &mut Tally) {
    tally.text(request.get("instructions"));
    match request.get("input") {
        Some(Value::String(s)) => tally.chars += s.chars().count() as u64,
        Some(Value::Array(items)) => {
            for item in items {
                tally.message();
                super::chat::count_parts(item.get("content"), tally);
                tally.text(item.get("arguments"));
                tally.text(item.get("output"));
            }
        }
        _ => {}
    }
}

/// Reads a typed event: text deltas, the answer's id (`response.created` and every event
/// that carries the response), and the last event's usage, model and status.
pub(super) fn observe_event(seen: &mut StreamUsage, event: &Value) {
    if seen.response_id.is_none() {
        if let Some(id) = event.pointer("/response/id").and_then(Value::as_str) {
            seen.observe_id(Some(id.to_owned()));
        }
    }
    if seen.response_model.is_none() {
        if let Some(m) = event.pointer("/response/model").and_then(Value::as_str) {
            seen.response_model = Some(m.to_owned());
        }
    }
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
    match EventKind::of(kind) {
        EventKind::Delta(stem) if !is_audio_stem(stem) => {
            seen.generated_chars += str_len(event.get("delta"))
        }
        EventKind::Last => {
            if let Some(r) = event.get("response") {
                if let Some(u) = r.get("usage").and_then(super::usage::parse_usage) {
                    seen.reported = Some(u);
                }
                if let Some(m) = r.get("model").and_then(Value::as_str) {
                    seen.response_model = Some(m.to_owned());
                }
                if let Some(status) = r.get("status").and_then(Value::as_str) {
                    seen.add_finish(status);
                }
            }
        }
        _ => {}
    }
}

/// A whole answer's finish reason: its `status`.
pub(super) fn answer_finish(probe: &AnswerProbe<'_>, out: &mut Vec<String>) {
    out.extend(super::usage::string_of(probe.status));
}

/// What a typed event's `type` means for the texts that stream in pieces. Deny by default:
/// the types are not a list — any `<stem>.delta` with a text `delta` is a text, whatever the
/// stem, and any event is scanned whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind<'t> {
    /// `<stem>.delta`: a piece of the text of `stem` (`response.output_text`,
    /// `response.mcp_call_arguments`, `transcript.text`, …).
    Delta(&'t str),
    /// `<stem>.done`: the text of `stem` is complete.
    Done(&'t str),
    /// `response.content_part.done`, `response.reasoning_summary_part.done`: a part's texts
    /// are complete.
    PartDone,
    /// `response.output_item.done`: an item's texts are complete.
    ItemDone,
    /// `response.completed`, `incomplete`, `failed`: the last event; every text is complete.
    Last,
    /// An event that repeats streamed text whole (`*.added`, `response.created`, …).
    Whole,
    /// Anything else.
    Other,
}

impl<'t> EventKind<'t> {
    /// The kind of an event `type`.
    pub fn of(kind: &'t str) -> EventKind<'t> {
        match kind {
            "response.content_part.done" | "response.reasoning_summary_part.done" => {
                return EventKind::PartDone
            }
            "response.output_item.done" => return EventKind::ItemDone,
            "response.completed" | "response.incomplete" | "response.failed" => {
                return EventKind::Last
            }
            "response.created"
            | "response.in_progress"
            | "response.queued"
            | "response.output_item.added"
            | "response.content_part.added"
            | "response.reasoning_summary_part.added" => return EventKind::Whole,
            _ => {}
        }
        if let Some(stem) = kind.strip_suffix(".delta") {
            return EventKind::Delta(stem);
        }
        if let Some(stem) = kind.strip_suffix(".done") {
            return EventKind::Done(stem);
        }
        EventKind::Other
    }
}

/// Whether the deltas of `stem` are base64 sound (`response.audio`, `response.output_audio`),
/// not text: opaque when they look like base64.
pub fn is_audio_stem(stem: &str) -> bool {
    stem.ends_with(".audio") || stem.ends_with(".output_audio")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types() {
        assert_eq!(
            EventKind::of("response.output_text.delta"),
            EventKind::Delta("response.output_text")
        );
        assert_eq!(
            EventKind::of("response.function_call_arguments.done"),
            EventKind::Done("response.function_call_arguments")
        );
        assert_eq!(
            EventKind::of("response.content_part.done"),
            EventKind::PartDone
        );
        assert_eq!(
            EventKind::of("response.output_item.added"),
            EventKind::Whole
        );
        assert_eq!(
            EventKind::of("response.output_item.done"),
            EventKind::ItemDone
        );
        assert_eq!(EventKind::of("response.completed"), EventKind::Last);
        assert_eq!(
            EventKind::of("transcript.text.delta"),
            EventKind::Delta("transcript.text")
        );
        assert_eq!(
            EventKind::of("response.mcp_call_arguments.delta"),
            EventKind::Delta("response.mcp_call_arguments")
        );
        assert_eq!(EventKind::of("error"), EventKind::Other);
        assert!(is_audio_stem("response.audio"));
        assert!(is_audio_stem("response.output_audio"));
        assert!(!is_audio_stem("response.audio_transcript"));
        assert!(!is_audio_stem("response.output_audio_transcript"));
    }
}
