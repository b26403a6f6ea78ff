//! Typed events (`{"type": …}`): the Responses API, streamed transcriptions, and any other
//! stream that is not Chat Completions. Deny by default: the event types are not a list.
//! What each type means is [`crate::wire::responses::EventKind`]; this module keeps the
//! channels.
//!
//! - An event whose `type` ends in `.delta` and whose `delta` is text is a **channel**, keyed
//!   by its type (less the suffix) and its `output_index` and `content_index` or
//!   `summary_index`: `response.output_text.delta`, `response.mcp_call_arguments.delta`,
//!   `response.code_interpreter_call_code.delta`, `transcript.text.delta`, and any type that
//!   comes next. Deltas of audio (`response.audio.delta`, `response.output_audio.delta`) are
//!   base64 and opaque when they look like it.
//! - The matching `.done` event ends the channel; `content_part.done` and
//!   `reasoning_summary_part.done` end the channels of their part, `output_item.done` those of
//!   its item, `response.completed`/`incomplete`/`failed` all of them.
//! - **Every string** of every event, the channel's own delta aside, is scanned as plain text
//!   (the walker's stream mode): `.done` events, whole items, whole responses, annotations,
//!   errors, events of types nobody has seen yet. Whole texts that repeat streamed deltas are
//!   scanned without being counted again.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{Emit, Field, Key, StreamRedactor, MAX_STEMS};
use crate::redact::error::RedactError;
use crate::redact::json::{decode_str, parse, Edits};
use crate::redact::request_redaction::RequestRedaction;
use crate::redact::scanner::{Recorder, Scanner};
use crate::redact::walk;
use crate::wire::responses::{is_audio_stem, EventKind as Kind};
use crate::wire::sse::Event;

type Raw<'a> = &'a RawValue;

#[derive(Deserialize)]
struct TypedEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    output_index: Option<Raw<'a>>,
    #[serde(borrow)]
    content_index: Option<Raw<'a>>,
    #[serde(borrow)]
    summary_index: Option<Raw<'a>>,
    #[serde(borrow)]
    delta: Option<Raw<'a>>,
    #[serde(borrow)]
    sequence_number: Option<Raw<'a>>,
}

/// `sequence_number` of the next event written, given the upstream's own number (kept when the
/// stream has not been renumbered yet): events the gateway drops or adds would otherwise leave
/// gaps or repeats, which clients that check the order report as lost events.
fn next_number(next: Option<u64>, raw: Raw<'_>) -> Option<u64> {
    next.or_else(|| raw.get().parse().ok())
}

fn index(raw: Option<Raw<'_>>) -> u64 {
    raw.and_then(|r| r.get().parse().ok()).unwrap_or(0)
}

/// Where a string value sits in `src` (it borrows from it).
pub(super) fn offset(src: &str, raw: Raw<'_>) -> usize {
    (raw.get().as_ptr() as usize).saturating_sub(src.as_ptr() as usize)
}

impl StreamRedactor {
    /// The number of a channel's event type, interned.
    fn stem(&mut self, stem: &str) -> Result<u32, RedactError> {
        if let Some(i) = self.stems.iter().position(|s| s == stem) {
            return Ok(i as u32);
        }
        if self.stems.len() >= MAX_STEMS {
            return Err(RedactError::TooManyChannels { limit: MAX_STEMS });
        }
        self.stems.push(stem.to_owned());
        Ok((self.stems.len() - 1) as u32)
    }

    pub(super) fn typed_event(
        &mut self,
        scanner: &Scanner,
        ev: Event,
        cx: &mut RequestRedaction,
        out: &mut Vec<Emit>,
    ) -> Result<(), RedactError> {
        let e: TypedEvent = parse(&ev.data)?;
        let kind = e.kind.as_deref().map_or(Kind::Other, Kind::of);
        let outer = index(e.output_index);
        let inner = index(e.summary_index.or(e.content_index));
        let text_delta = e.delta.filter(|r| r.get().starts_with('"'));
        let repeats = self.streamed;
        let count = match kind {
            Kind::Delta(_) | Kind::Other => true,
            Kind::Done(stem) => {
                let field = self.stems.iter().position(|s| s == stem);
                let key = field.map(|f| Key {
                    outer,
                    inner,
                    field: Field::Named(f as u32),
                });
                let counted = key.is_some_and(|k| self.channels.contains_key(&k));
                if let Some(key) = key {
                    self.flush_where(scanner, |k| *k == key, cx, out)?;
                }
                !counted
            }
            Kind::PartDone => {
                let which = |k: &Key| k.outer == outer && k.inner == inner;
                self.flush_where(scanner, which, cx, out)?;
                !repeats
            }
            Kind::ItemDone => {
                self.flush_where(scanner, |k| k.outer == outer, cx, out)?;
                !repeats
            }
            Kind::Last => {
                self.flush_where(scanner, |_| true, cx, out)?;
                !repeats
            }
            Kind::Whole => !repeats,
        };
        let mut edits = Edits::new(&ev.data);
        let mut skip = Vec::new();
        let mut channel = None;
        if let (Kind::Delta(stem), Some(raw)) = (kind, text_delta) {
            let text = decode_str(raw)?;
            skip.push(offset(&ev.data, raw));
            let opaque = is_audio_stem(stem) && walk::is_base64(&text);
            if !opaque {
                let key = Key {
                    outer,
                    inner,
                    field: Field::Named(self.stem(stem)?),
                };
                let emitted = self.push_text(scanner, key, &text, false, cx)?;
                if emitted != text {
                    edits.set_string(raw, &emitted)?;
                }
                channel = Some((key, emitted.is_empty() && !text.is_empty()));
            }
        }
        let mut edits = walk::event(
            &ev.data,
            self.family,
            scanner,
            &mut Recorder { cx, count },
            &skip,
            edits,
        )?;
        let number = e
            .sequence_number
            .and_then(|raw| Some((raw, next_number(self.next_sequence, raw)?)));
        if let Some((raw, n)) = number {
            if raw.get() != n.to_string() {
                edits.set_json(raw, n.to_string())?;
            }
        }
        let event = rewritten(&ev, edits);
        if let Some((key, emptied)) = channel {
            if let Some(c) = self.channels.get_mut(&key) {
                c.template = Some(event.clone());
            }
            if emptied && droppable(&event.data) {
                // Dropped: its number goes to the next event.
                if let Some((_, n)) = number {
                    self.next_sequence = Some(n);
                }
                return Ok(());
            }
        }
        if let Some((_, n)) = number {
            self.next_sequence = Some(n + 1);
        }
        out.push(Emit::Event(event));
        Ok(())
    }
}

pub(super) fn rewritten(ev: &Event, edits: Edits<'_>) -> Event {
    let data = if edits.is_empty() {
        ev.data.clone()
    } else {
        edits.apply()
    };
    Event { data, ..ev.clone() }
}

/// Writes `template` (the channel's last delta event) with its delta replaced by `text`, and
/// the stream's next `sequence_number` when it has one.
pub(super) fn write_synthesized(
    template: &Event,
    text: &str,
    next_sequence: &mut Option<u64>,
    out: &mut Vec<Emit>,
) -> Result<(), RedactError> {
    #[derive(Deserialize)]
    struct DeltaOnly<'a> {
        #[serde(borrow)]
        delta: Option<Raw<'a>>,
        #[serde(borrow)]
        sequence_number: Option<Raw<'a>>,
    }
    let shape: DeltaOnly = parse(&template.data)?;
    let Some(delta) = shape.delta else {
        return Err(RedactError::Internal("delta template without a delta"));
    };
    let mut edits = Edits::new(&template.data);
    edits.set_string(delta, text)?;
    if let Some(raw) = shape.sequence_number {
        if let Some(n) = next_number(*next_sequence, raw) {
            edits.set_json(raw, n.to_string())?;
            *next_sequence = Some(n + 1);
        }
    }
    out.push(Emit::Event(rewritten(template, edits)));
    Ok(())
}

/// Whether a rewritten delta event carries nothing but an empty delta.
fn droppable(data: &str) -> bool {
    const KEYS: [&str; 9] = [
        "type",
        "item_id",
        "output_index",
        "content_index",
        "summary_index",
        "delta",
        "sequence_number",
        "logprobs",
        "obfuscation",
    ];
    let Ok(Value::Object(event)) = serde_json::from_str::<Value>(data) else {
        return false;
    };
    event.iter().all(|(k, v)| match k.as_str() {
        "delta" => v.as_str() == Some(""),
        "logprobs" => v.as_array().is_some_and(Vec::is_empty),
        other => KEYS.contains(&other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn droppable_deltas() {
        assert!(droppable(
            r#"{"type":"response.output_text.delta","item_id":"m","output_index":0,"content_index":0,"delta":"","sequence_number":4,"logprobs":[]}"#
        ));
        assert!(!droppable(
            r#"{"type":"response.output_text.delta","delta":"x"}"#
        ));
        assert!(!droppable(
            r#"{"type":"response.output_text.delta","delta":"","extra":1}"#
        ));
    }
}
