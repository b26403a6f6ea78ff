//! Responses API events. Deltas (`response.<field>.delta`) stream per output item and content
//! or summary index; the matching `.done` event ends the channel and carries the full text,
//! which is redacted in one go; `content_part`, `output_item` and `response.*` lifecycle events
//! carry whole texts too and are redacted the same way. Other event types pass through.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{Field, Key, StreamRedactor};
use crate::openai::sse::{self, Event};
use crate::redact::context::RequestRedaction;
use crate::redact::error::RedactError;
use crate::redact::json::{decode_str, parse, Edits, Fields, Redacting};
use crate::redact::scanner::{Env, Scanner};
use crate::redact::walk;

type Raw<'a> = &'a RawValue;

#[derive(Deserialize)]
struct ResponsesEvent<'a> {
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
    text: Option<Raw<'a>>,
    #[serde(borrow)]
    arguments: Option<Raw<'a>>,
    #[serde(borrow)]
    refusal: Option<Raw<'a>>,
    #[serde(borrow)]
    input: Option<Raw<'a>>,
    #[serde(borrow)]
    logprobs: Option<Raw<'a>>,
    #[serde(borrow)]
    item: Option<Raw<'a>>,
    #[serde(borrow)]
    part: Option<Raw<'a>>,
    #[serde(borrow)]
    response: Option<Raw<'a>>,
}

/// What an event type means for redaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delta(Field),
    Done(Field),
    Part { done: bool },
    Item { done: bool },
    Response { last: bool },
    Other,
}

fn classify(kind: &str) -> Kind {
    let Some(rest) = kind.strip_prefix("response.") else {
        return Kind::Other;
    };
    if let Some((name, suffix)) = rest.rsplit_once('.') {
        let field = match name {
            "output_text" => Some(Field::OutputText),
            "refusal" => Some(Field::RefusalText),
            "function_call_arguments" => Some(Field::Arguments),
            "custom_tool_call_input" => Some(Field::CustomInput),
            "reasoning_summary_text" => Some(Field::ReasoningSummary),
            "reasoning_text" => Some(Field::ReasoningText),
            _ => None,
        };
        return match (field, name, suffix) {
            (Some(f), _, "delta") => Kind::Delta(f),
            (Some(f), _, "done") => Kind::Done(f),
            (None, "content_part" | "reasoning_summary_part", "added" | "done") => Kind::Part {
                done: suffix == "done",
            },
            (None, "output_item", "added" | "done") => Kind::Item {
                done: suffix == "done",
            },
            _ => Kind::Other,
        };
    }
    match rest {
        "created" | "in_progress" | "queued" => Kind::Response { last: false },
        "completed" | "incomplete" | "failed" => Kind::Response { last: true },
        _ => Kind::Other,
    }
}

fn index(raw: Option<Raw<'_>>) -> u64 {
    raw.and_then(|r| r.get().parse().ok()).unwrap_or(0)
}

impl ResponsesEvent<'_> {
    fn key(&self, field: Field) -> Key {
        let inner = match field {
            Field::ReasoningSummary => index(self.summary_index),
            Field::Arguments | Field::CustomInput => 0,
            _ => index(self.content_index),
        };
        Key {
            outer: index(self.output_index),
            inner,
            field,
        }
    }

    /// The field of a `.done` event that holds the full text.
    fn full_text(&self, field: Field) -> Option<Raw<'_>> {
        match field {
            Field::RefusalText => self.refusal,
            Field::Arguments => self.arguments,
            Field::CustomInput => self.input,
            _ => self.text,
        }
    }
}

impl StreamRedactor {
    pub(super) fn responses_event(
        &mut self,
        scanner: &Scanner,
        ev: Event,
        cx: &mut RequestRedaction,
        out: &mut Vec<u8>,
    ) -> Result<(), RedactError> {
        let e: ResponsesEvent = parse(&ev.data)?;
        let kind = e.kind.as_deref().map_or(Kind::Other, classify);
        let outer = index(e.output_index);
        let whole: Option<Raw> = match kind {
            Kind::Delta(field) => {
                let key = e.key(field);
                let Some(raw) = e.delta.filter(|r| r.get().starts_with('"')) else {
                    sse::write_event(out, &ev);
                    return Ok(());
                };
                let text = decode_str(raw)?;
                let emitted = self.push_text(scanner, key, &text, false, cx)?;
                let mut edits = Edits::new(&ev.data);
                if emitted != text {
                    edits.set_string(raw, &emitted)?;
                }
                if let Some(lp) = e.logprobs {
                    // Token logprobs repeat the text; they cannot be redacted token by token.
                    edits.set_json(lp, "[]".to_owned())?;
                }
                let emptied = emitted.is_empty() && !text.is_empty();
                let event = rewritten(&ev, edits);
                let drop = emptied && droppable(&event.data);
                if let Some(channel) = self.channels.get_mut(&key) {
                    channel.template = Some(event.clone());
                }
                if !drop {
                    sse::write_event(out, &event);
                }
                return Ok(());
            }
            Kind::Done(field) => {
                let key = e.key(field);
                let counted = self.channels.contains_key(&key);
                self.flush_where(scanner, |k| *k == key, cx, out)?;
                let mut fields = batch(&ev, scanner, cx, !counted);
                if let Some(raw) = e.full_text(field) {
                    fields.text(raw)?;
                }
                if let Some(lp) = e.logprobs {
                    fields.logprobs(lp, "[]");
                }
                sse::write_event(out, &rewritten(&ev, fields.finish()?));
                return Ok(());
            }
            Kind::Part { done } => {
                if done {
                    let inner = index(e.content_index.or(e.summary_index));
                    let which = |k: &Key| {
                        k.outer == outer
                            && k.inner == inner
                            && !matches!(k.field, Field::Arguments | Field::CustomInput)
                    };
                    self.flush_where(scanner, which, cx, out)?;
                }
                e.part
            }
            Kind::Item { done } => {
                if done {
                    self.flush_where(scanner, |k| k.outer == outer, cx, out)?;
                }
                e.item
            }
            Kind::Response { last } => {
                if last {
                    self.flush_where(scanner, |_| true, cx, out)?;
                }
                e.response
            }
            Kind::Other => None,
        };
        let Some(whole) = whole else {
            sse::write_event(out, &ev);
            return Ok(());
        };
        let mut fields = batch(&ev, scanner, cx, false);
        match kind {
            Kind::Part { .. } => walk::content_part(whole.get(), &mut fields)?,
            Kind::Item { .. } => walk::responses_item(whole.get(), &mut fields)?,
            _ => walk::responses_object(whole.get(), &mut fields)?,
        }
        sse::write_event(out, &rewritten(&ev, fields.finish()?));
        Ok(())
    }
}

/// Redacts whole texts of `ev` (already counted while streaming unless `count`).
fn batch<'s, 'e>(
    ev: &'s Event,
    scanner: &'e Scanner,
    cx: &'e mut RequestRedaction,
    count: bool,
) -> Redacting<'s, 'e> {
    Redacting::new(Edits::new(&ev.data), scanner, Env { cx, count }).always_clear_logprobs()
}

fn rewritten(ev: &Event, edits: Edits<'_>) -> Event {
    let data = if edits.is_empty() {
        ev.data.clone()
    } else {
        edits.apply()
    };
    Event { data, ..ev.clone() }
}

/// Writes `template` (the channel's last delta event) with its delta replaced by `text`.
pub(super) fn write_synthesized(
    template: &Event,
    text: &str,
    out: &mut Vec<u8>,
) -> Result<(), RedactError> {
    #[derive(Deserialize)]
    struct DeltaOnly<'a> {
        #[serde(borrow)]
        delta: Option<Raw<'a>>,
    }
    let shape: DeltaOnly = parse(&template.data)?;
    let Some(delta) = shape.delta else {
        return Err(RedactError::Internal("delta template without a delta"));
    };
    let mut edits = Edits::new(&template.data);
    edits.set_string(delta, text)?;
    sse::write_event(out, &rewritten(template, edits));
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
    fn event_types() {
        assert_eq!(
            classify("response.output_text.delta"),
            Kind::Delta(Field::OutputText)
        );
        assert_eq!(
            classify("response.function_call_arguments.done"),
            Kind::Done(Field::Arguments)
        );
        assert_eq!(
            classify("response.content_part.done"),
            Kind::Part { done: true }
        );
        assert_eq!(
            classify("response.output_item.added"),
            Kind::Item { done: false }
        );
        assert_eq!(
            classify("response.completed"),
            Kind::Response { last: true }
        );
        assert_eq!(classify("response.audio.delta"), Kind::Other);
        assert_eq!(classify("error"), Kind::Other);
    }

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
