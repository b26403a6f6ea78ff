//! OpenAI's Chat Completions (`/v1/chat/completions`), Completions (`/v1/completions`) and
//! Embeddings (`/v1/embeddings`): messages with content parts, answers as `choices`, streams of
//! `chat.completion.chunk`s.
//!
//! - Opaque fields: [`OPAQUE_KEYS`].
//! - Usage: the prompt is the messages' text (`count_prompt`); answers and chunks report
//!   `usage` at the top level, finish reasons per choice; a stream reports usage only when
//!   asked ([`ask_for_usage`]), and the chunk that answers is hidden from a client that did not
//!   ask ([`is_usage_only_chunk`]).
//! - Stream events: chunks whose choices carry text in pieces (`redact/stream/chat.rs` keeps
//!   one channel per choice and field).
//! - Errors: OpenAI's shape.

use std::ops::Range;

use serde_json::Value;

use super::members::{body_start, is_empty_object, members, Member};
use super::usage::{str_len, AnswerProbe, StreamUsage, Tally};
use super::Endpoint;

/// Members whose base64 values are binary payloads: input and output audio
/// (`input_audio.data`, `message.audio.data`), files (`file.file_data`), base64 embeddings
/// (`encoding_format: "base64"`).
pub const OPAQUE_KEYS: &[&str] = &["audio", "data", "embedding", "file_data"];

/// Counts a request's prompt: chat messages (text parts as text, other parts at a fixed cost,
/// tool calls and tool definitions by their text), a completion's `prompt`, the `input` to
/// embed (token-id arrays are exact counts).
pub(super) fn count_prompt(endpoint: Endpoint, request: &Value, tally: &mut Tally) {
    match endpoint {
        Endpoint::Completions => tally.strings(request.get("prompt")),
        Endpoint::Embeddings => match request.get("input") {
            Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
                tally.fixed += items.len() as u64
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_array) => {
                tally.fixed += items
                    .iter()
                    .filter_map(Value::as_array)
                    .map(|a| a.len() as u64)
                    .sum::<u64>()
            }
            other => tally.strings(other),
        },
        _ => {
            if let Some(messages) = request.get("messages").and_then(Value::as_array) {
                for m in messages {
                    tally.message();
                    count_parts(m.get("content"), tally);
                    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                        for c in calls {
                            tally.text(c.pointer("/function/arguments"));
                            tally.text(c.pointer("/function/name"));
                        }
                    }
                }
            }
            if let Some(tools) = request.get("tools") {
                tally.json(Some(tools));
            }
        }
    }
}

/// Counts OpenAI content (Chat Completions and Responses): a string, or parts — text parts as
/// text, image, audio and file parts at a fixed cost.
pub(super) fn count_parts(content: Option<&Value>, tally: &mut Tally) {
    match content {
        Some(Value::String(s)) => tally.chars += s.chars().count() as u64,
        Some(Value::Array(parts)) => {
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text" | "input_text" | "output_text" | "refusal") => {
                        tally.text(part.get("text"));
                    }
                    Some(_) => tally.media(),
                    None => tally.strings(Some(part)),
                }
            }
        }
        _ => {}
    }
}

/// Reads a chunk: the text generated per choice (content, completion text, tool arguments)
/// and the finish reasons.
pub(super) fn observe_event(seen: &mut StreamUsage, event: &Value) {
    let Some(choices) = event.get("choices").and_then(Value::as_array) else {
        return;
    };
    for c in choices {
        seen.generated_chars += str_len(c.pointer("/delta/content"));
        seen.generated_chars += str_len(c.get("text"));
        if let Some(calls) = c.pointer("/delta/tool_calls").and_then(Value::as_array) {
            for call in calls {
                seen.generated_chars += str_len(call.pointer("/function/arguments"));
            }
        }
        if let Some(r) = c.get("finish_reason").and_then(Value::as_str) {
            seen.add_finish(r);
        }
    }
}

/// A whole answer's finish reasons: each choice's `finish_reason`.
pub(super) fn answer_finish(probe: &AnswerProbe<'_>, out: &mut Vec<String>) {
    #[derive(serde::Deserialize)]
    struct ChoiceProbe<'a> {
        #[serde(borrow)]
        finish_reason: Option<&'a serde_json::value::RawValue>,
    }
    let Some(choices) = probe.choices else {
        return;
    };
    let reasons: Vec<Option<String>> =
        match serde_json::from_str::<Vec<ChoiceProbe<'_>>>(choices.get()) {
            Ok(all) => all
                .into_iter()
                .map(|c| super::usage::string_of(c.finish_reason))
                .collect(),
            // An element that is not an object: each one separately, so that one odd choice
            // does not hide the others.
            Err(_) => serde_json::from_str::<Vec<&serde_json::value::RawValue>>(choices.get())
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    serde_json::from_str::<ChoiceProbe<'_>>(c.get())
                        .ok()
                        .and_then(|c| super::usage::string_of(c.finish_reason))
                })
                .collect(),
        };
    out.extend(reasons.into_iter().flatten());
}

/// For a streamed chat or completions request: asks the upstream to report usage
/// (`stream_options.include_usage: true`) when the client did not. Returns the rewritten body,
/// or `None` when it already asks. When it is rewritten the
/// client must not see the extra usage-only chunk.
///
/// The body is edited in place, not re-serialized, so a body serde_json's tree refuses (a lone
/// surrogate escape, a number out of `f64` range) still gets it (see [`super::members`]):
///
/// - no `stream_options` member: `"stream_options":{"include_usage":true}` is inserted first;
/// - an object: `"include_usage":true` is inserted first in it, or every `include_usage`
///   that is not `true` is set to `true`; every `stream_options` member is edited (an object
///   with duplicate keys is read differently by different parsers);
/// - `null`: replaced by `{"include_usage":true}`; any other value is left to the upstream to
///   refuse;
/// - a top level whose keys cannot be read: the member is inserted when the text holds no
///   `stream_options` at all.
pub fn ask_for_usage(body: &[u8]) -> Option<Vec<u8>> {
    const MEMBER: &[u8] = br#""stream_options":{"include_usage":true}"#;
    let start = body_start(body)?;
    let insert_member = || {
        let separator: &[u8] = if is_empty_object(body) { b"" } else { b"," };
        Some(splice_all(
            body,
            vec![(start..start, [MEMBER, separator].concat())],
        ))
    };
    let Some(top) = members(body) else {
        return if contains(body, b"stream_options") {
            None
        } else {
            insert_member()
        };
    };
    let options: Vec<&Member<'_>> = top
        .iter()
        .filter(|m| &*m.key == b"stream_options")
        .collect();
    if options.is_empty() {
        return insert_member();
    }
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    for option in options {
        let text = option.value.get().as_bytes();
        if text == b"null" {
            edits.push((option.span.clone(), br#"{"include_usage":true}"#.to_vec()));
            continue;
        }
        let Some(inner) = members(text) else {
            continue;
        };
        let flags: Vec<&Member<'_>> = inner
            .iter()
            .filter(|m| &*m.key == b"include_usage")
            .collect();
        if flags.is_empty() {
            let at = option.span.start + body_start(text).unwrap_or(1);
            let separator: &[u8] = if inner.is_empty() { b"" } else { b"," };
            edits.push((
                at..at,
                [&br#""include_usage":true"#[..], separator].concat(),
            ));
        }
        for flag in flags.into_iter().filter(|f| f.value.get() != "true") {
            let at = option.span.start + flag.span.start;
            edits.push((at..at + flag.span.len(), b"true".to_vec()));
        }
    }
    (!edits.is_empty()).then(|| splice_all(body, edits))
}

/// `body` with each range replaced (the ranges do not overlap).
fn splice_all(body: &[u8], mut edits: Vec<(Range<usize>, Vec<u8>)>) -> Vec<u8> {
    edits.sort_by_key(|(range, _)| range.start);
    let extra: usize = edits.iter().map(|(_, with)| with.len()).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut copied = 0;
    for (range, with) in edits {
        out.extend_from_slice(&body[copied..range.start]);
        out.extend_from_slice(&with);
        copied = range.end;
    }
    out.extend_from_slice(&body[copied..]);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether a chat chunk is the usage-only chunk the gateway asked for (`choices: []`, usage
/// set), which a client that did not ask for usage must not see.
pub fn is_usage_only_chunk(event: &Value) -> bool {
    event
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|c| c.is_empty())
        && event.get("usage").is_some_and(|u| !u.is_null())
}
