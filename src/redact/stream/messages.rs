//! Anthropic's Messages API streams: `message_start`, `content_block_start`,
//! `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`, `ping`,
//! `error`, and whatever types come next (what each means is
//! [`crate::wire::messages::EventKind`] and [`DeltaKind`]; this module keeps the channels).
//! Deny by default, as for typed events:
//!
//! - A `content_block_delta` whose delta carries text — `text_delta.text`,
//!   `input_json_delta.partial_json` (a tool's input as partial JSON), `thinking_delta.thinking`
//!   — feeds a **channel** keyed by the block's `index` and the delta's field, redacted exactly
//!   across events. Any other delta type (`citations_delta`, types not seen yet) is scanned
//!   whole.
//! - `content_block_stop` ends the block's channels (held text goes out in a synthesized delta
//!   just before it); `message_delta`, `message_stop` and `error` end all of them.
//! - **Every other string** of every event is scanned as plain text (the walker's stream
//!   mode), the channel's own text aside.
//! - A thinking block's `signature_delta` is opaque (base64). When the block's text was changed
//!   for the client — or would be changed by the request policy when the client sends it back —
//!   the signature is replaced by a sealed one that carries the original text (see
//!   `redact/thinking.rs`), so the next turn can restore the block the upstream signed.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::events::{offset, rewritten};
use super::{Emit, Field, Key, StreamRedactor};
use crate::redact::error::RedactError;
use crate::redact::json::{decode_str, parse, Edits};
use crate::redact::request_redaction::RequestRedaction;
use crate::redact::scanner::{Recorder, Scanner};
use crate::redact::walk;
use crate::wire::messages::{DeltaKind, EventKind};
use crate::wire::sse::Event;

type Raw<'a> = &'a RawValue;

/// The most thinking text kept at once in one stream (all open blocks together) for the
/// seals; a stream that goes over fails closed.
pub const MAX_THINKING_BYTES: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
struct MessagesEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Raw<'a>>,
    #[serde(borrow)]
    partial_json: Option<Raw<'a>>,
    #[serde(borrow)]
    thinking: Option<Raw<'a>>,
    #[serde(borrow)]
    signature: Option<Raw<'a>>,
}

/// A thinking block as the upstream sent it and as the client got it, for its seal.
#[derive(Debug, Default)]
pub(super) struct Thinking {
    original: String,
    emitted: String,
}

impl StreamRedactor {
    pub(super) fn messages_event(
        &mut self,
        scanner: &Scanner,
        ev: Event,
        cx: &mut RequestRedaction,
        out: &mut Vec<Emit>,
    ) -> Result<(), RedactError> {
        let e: MessagesEvent = parse(&ev.data)?;
        let index = e.index.unwrap_or(0);
        let kind = EventKind::of(e.kind.as_deref().unwrap_or(""));
        if kind == EventKind::BlockStop {
            self.flush_where(scanner, |k| k.outer == index, cx, out)?;
            self.thinking.remove(&index);
        } else if kind.ends_all_blocks() {
            self.flush_where(scanner, |_| true, cx, out)?;
        }
        let mut edits = Edits::new(&ev.data);
        let mut skip = Vec::new();
        let mut emptied = false;
        if let (EventKind::BlockDelta, Some(delta)) = (kind, &e.delta) {
            let delta_kind = DeltaKind::of(delta.kind.as_deref().unwrap_or(""));
            let channel = match delta_kind {
                DeltaKind::Text => delta.text.map(|r| (r, Field::BlockText)),
                DeltaKind::InputJson => delta.partial_json.map(|r| (r, Field::BlockJson)),
                DeltaKind::Thinking => delta.thinking.map(|r| (r, Field::BlockThinking)),
                DeltaKind::Signature | DeltaKind::Other => None,
            };
            if let Some((raw, field)) = channel.filter(|(r, _)| r.get().starts_with('"')) {
                let text = decode_str(raw)?;
                skip.push(offset(&ev.data, raw));
                let key = Key {
                    outer: index,
                    inner: 0,
                    field,
                };
                let emitted = self.push_text(scanner, key, &text, false, cx)?;
                if field == Field::BlockThinking {
                    self.keep_thinking(index, &text, &emitted)?;
                }
                if emitted != text {
                    emptied = emitted.is_empty();
                    edits.set_string(raw, &emitted)?;
                }
                if let Some(c) = self.channels.get_mut(&key) {
                    c.template = Some(ev.clone());
                }
            }
            if let (DeltaKind::Signature, Some(raw)) = (delta_kind, delta.signature) {
                // The thinking text before it is complete: out with what is held, then seal.
                let key = Key {
                    outer: index,
                    inner: 0,
                    field: Field::BlockThinking,
                };
                self.flush_where(scanner, |k| *k == key, cx, out)?;
                if let Some(sealed) = self.seal_thinking(index, raw)? {
                    skip.push(offset(&ev.data, raw));
                    edits.set_string(raw, &sealed)?;
                }
            }
        }
        let edits = walk::event(
            &ev.data,
            self.family,
            scanner,
            &mut Recorder { cx, count: true },
            &skip,
            edits,
        )?;
        let event = rewritten(&ev, edits);
        if emptied && droppable(&event.data) {
            return Ok(());
        }
        out.push(Emit::Event(event));
        Ok(())
    }

    /// Records a thinking delta as received and as sent (bounded).
    fn keep_thinking(&mut self, index: u64, text: &str, emitted: &str) -> Result<(), RedactError> {
        if !self.thinking.contains_key(&index) && self.thinking.len() >= super::MAX_CHANNELS {
            return Err(RedactError::TooManyChannels {
                limit: super::MAX_CHANNELS,
            });
        }
        let kept: usize = self.thinking.values().map(|b| b.original.len()).sum();
        let block = self.thinking.entry(index).or_default();
        if kept + text.len() > MAX_THINKING_BYTES {
            return Err(RedactError::ThinkingTooLong {
                limit: MAX_THINKING_BYTES,
            });
        }
        block.original.push_str(text);
        block.emitted.push_str(emitted);
        Ok(())
    }

    /// Text emitted for a thinking channel outside its deltas (held text flushed).
    pub(super) fn thinking_flushed(&mut self, index: u64, text: &str) {
        if let Some(block) = self.thinking.get_mut(&index) {
            block.emitted.push_str(text);
        }
    }

    /// The sealed signature for block `index`, when its text was changed for the client or
    /// would be changed by the request policy on its way back.
    fn seal_thinking(&mut self, index: u64, raw: Raw<'_>) -> Result<Option<String>, RedactError> {
        let Some(block) = self.thinking.remove(&index) else {
            return Ok(None);
        };
        let signature = decode_str(raw)?;
        let changed =
            block.emitted != block.original || self.inner.request.would_change(&block.original)?;
        Ok(changed.then(|| self.inner.seal.seal(&block.original, &signature)))
    }
}

/// Writes `template` (the channel's last delta event) with its text replaced by `text`.
pub(super) fn write_synthesized(
    template: &Event,
    field: Field,
    text: &str,
    out: &mut Vec<Emit>,
) -> Result<(), RedactError> {
    let e: MessagesEvent = parse(&template.data)?;
    let raw = e.delta.and_then(|d| match field {
        Field::BlockText => d.text,
        Field::BlockJson => d.partial_json,
        Field::BlockThinking => d.thinking,
        _ => None,
    });
    let Some(raw) = raw else {
        return Err(RedactError::Internal("delta template without its text"));
    };
    let mut edits = Edits::new(&template.data);
    edits.set_string(raw, text)?;
    out.push(Emit::Event(rewritten(template, edits)));
    Ok(())
}

/// Whether a rewritten delta event carries nothing but an empty text.
fn droppable(data: &str) -> bool {
    let Ok(Value::Object(event)) = serde_json::from_str::<Value>(data) else {
        return false;
    };
    event.iter().all(|(k, v)| match k.as_str() {
        "type" | "index" => true,
        "delta" => v.as_object().is_some_and(|d| {
            d.iter().all(|(k, v)| match k.as_str() {
                "type" => true,
                "text" | "partial_json" | "thinking" => v.as_str() == Some(""),
                _ => false,
            })
        }),
        _ => false,
    })
}
