//! Chat Completions and Completions chunks. The texts that stream in pieces are channels, per
//! choice index: the fields of [`crate::wire::chat::ChoiceText`] (`choices[].delta.{content
//! (a string, or parts with `text`), refusal, reasoning_content, audio.transcript,
//! tool_calls[].function.arguments, function_call.arguments}` and `choices[].text`); a
//! non-null `finish_reason` ends the choice's channels. Every other string of the chunk, whatever its key, is scanned whole
//! (the walker's stream mode): annotations, tool names, fields nobody has seen yet.

use serde_json::{Map, Value};

use super::{Emit, Field, Key, StreamRedactor};
use crate::redact::error::RedactError;
use crate::redact::json::{decode_str, parse, Edits};
use crate::redact::request_redaction::RequestRedaction;
use crate::redact::scanner::{Recorder, Scanner};
use crate::redact::walk;
use crate::wire::chat::{is_empty_chunk, Chunk, Piece};
use crate::wire::sse::Event;

impl StreamRedactor {
    pub(super) fn chat_event(
        &mut self,
        scanner: &Scanner,
        ev: Event,
        cx: &mut RequestRedaction,
        out: &mut Vec<Emit>,
    ) -> Result<(), RedactError> {
        let chunk: Chunk = parse(&ev.data)?;
        let mut edits = Edits::new(&ev.data);
        let mut emptied = false;
        let mut before = Vec::new();
        let mut skip = Vec::new();
        for choice in chunk.choices.iter().flatten() {
            let index = choice.index();
            let finishing = choice.finishing();
            let mut touched = Vec::new();
            let texts = choice.texts().map_err(|e| RedactError::from_json(&e))?;
            for Piece { field, inner, raw } in texts {
                let key = Key {
                    outer: index,
                    inner,
                    field: Field::Choice(field),
                };
                if !raw.get().starts_with('"') {
                    continue;
                }
                let text = decode_str(raw)?;
                skip.push((raw.get().as_ptr() as usize).saturating_sub(ev.data.as_ptr() as usize));
                let emitted = self.push_text(scanner, key, &text, finishing, cx)?;
                if emitted != text {
                    emptied |= emitted.is_empty();
                    edits.set_string(raw, &emitted)?;
                }
                touched.push(key);
            }
            if finishing {
                let which = |k: &Key| k.outer == index && !touched.contains(k);
                self.flush_where(scanner, which, cx, &mut before)?;
            }
        }
        // Everything else in the chunk; `logprobs` repeat the text token by token and are
        // cleared, as they cannot be redacted token by token.
        let edits = walk::event(
            &ev.data,
            self.family,
            scanner,
            &mut Recorder { cx, count: true },
            &skip,
            edits,
        )?;
        out.append(&mut before);
        let has_choices = chunk.choices.as_ref().is_some_and(|c| !c.is_empty());
        let data = if edits.is_empty() {
            ev.data.clone()
        } else {
            edits.apply()
        };
        if !(emptied && is_empty_chunk(&data)) {
            out.push(Emit::Event(Event {
                data: data.clone(),
                ..ev
            }));
        }
        if has_choices {
            self.envelope = Some(data);
        }
        Ok(())
    }
}

/// Writes a chunk carrying `text` for channel `key`, built on the latest chunk's envelope
/// (`id`, `object`, `created`, `model`, …).
pub(super) fn write_synthesized(
    envelope: Option<&str>,
    key: Key,
    text: &str,
    out: &mut Vec<Emit>,
) -> Result<(), RedactError> {
    let mut chunk = match envelope.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::new(),
    };
    chunk.remove("usage");
    let Field::Choice(field) = key.field else {
        return Err(RedactError::Internal(
            "a chunk for a channel that is not a choice's",
        ));
    };
    chunk.insert(
        "choices".into(),
        Value::Array(vec![field.choice(key.outer, key.inner, text)]),
    );
    let data = serde_json::to_string(&Value::Object(chunk))
        .map_err(|_| RedactError::Internal("serializing a synthesized chunk"))?;
    out.push(Emit::Event(Event {
        data,
        ..Event::default()
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesized_chunk_keeps_the_envelope() {
        let mut out = Vec::new();
        let envelope = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"x":1}}"#;
        let key = Key {
            outer: 1,
            inner: 2,
            field: Field::Choice(crate::wire::chat::ChoiceText::ToolArgs),
        };
        write_synthesized(Some(envelope), key, "{\"a\":", &mut out).unwrap();
        let mut bytes = Vec::new();
        Emit::write_all(&out, &mut bytes);
        let text = String::from_utf8(bytes).unwrap();
        let v: Value =
            serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(v["id"], "c1");
        assert_eq!(v["model"], "m");
        assert!(v.get("usage").is_none());
        assert_eq!(v["choices"][0]["index"], 1);
        assert_eq!(v["choices"][0]["delta"]["tool_calls"][0]["index"], 2);
        assert_eq!(
            v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":"
        );
    }
}
