//! Chat Completions and Completions chunks. The texts that stream in pieces are channels, per
//! choice index: `choices[].delta.{content (a string, or parts with `text`), refusal,
//! reasoning_content, audio.transcript, tool_calls[].function.arguments,
//! function_call.arguments}` and `choices[].text`; a non-null `finish_reason` ends the
//! choice's channels. Every other string of the chunk, whatever its key, is scanned whole
//! (the walker's stream mode): annotations, tool names, fields nobody has seen yet.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Emit, Field, Key, StreamRedactor};
use crate::redact::error::RedactError;
use crate::redact::json::{decode_str, parse, Edits};
use crate::redact::request_redaction::RequestRedaction;
use crate::redact::scanner::{Recorder, Scanner};
use crate::redact::walk;
use crate::wire::sse::Event;

type Raw<'a> = &'a RawValue;

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    choices: Option<Vec<Choice<'a>>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    text: Option<Raw<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Raw<'a>>,
    #[serde(borrow)]
    refusal: Option<Raw<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Raw<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
    #[serde(borrow)]
    function_call: Option<FunctionDelta<'a>>,
    #[serde(borrow)]
    audio: Option<AudioDelta<'a>>,
}

#[derive(Deserialize)]
struct AudioDelta<'a> {
    #[serde(borrow)]
    transcript: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct PartDelta<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    text: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow)]
    arguments: Option<Raw<'a>>,
}

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
            let index = choice.index.unwrap_or(0);
            let finishing = choice.finish_reason.is_some();
            let mut touched = Vec::new();
            for (key, raw) in texts(index, choice)? {
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
        if !(emptied && droppable(&data)) {
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

/// The text fields of one choice with their channel keys.
fn texts<'a>(index: u64, choice: &Choice<'a>) -> Result<Vec<(Key, Raw<'a>)>, RedactError> {
    let key = |field, inner| Key {
        outer: index,
        inner,
        field,
    };
    let mut out = Vec::new();
    if let Some(t) = choice.text {
        out.push((key(Field::Text, 0), t));
    }
    let Some(d) = &choice.delta else {
        return Ok(out);
    };
    match d.content {
        Some(parts) if parts.get().starts_with('[') => {
            let parts: Vec<PartDelta> = parse(parts.get())?;
            for (position, part) in parts.iter().enumerate() {
                if let Some(text) = part.text {
                    let inner = part.index.unwrap_or(position as u64);
                    out.push((key(Field::ContentPart, inner), text));
                }
            }
        }
        Some(text) => out.push((key(Field::Content, 0), text)),
        None => {}
    }
    let simple = [
        (Field::Refusal, d.refusal),
        (Field::Reasoning, d.reasoning_content),
        (
            Field::AudioTranscript,
            d.audio.as_ref().and_then(|a| a.transcript),
        ),
    ];
    out.extend(
        simple
            .into_iter()
            .filter_map(|(f, raw)| Some((key(f, 0), raw?))),
    );
    for (position, call) in d.tool_calls.iter().flatten().enumerate() {
        let inner = call.index.unwrap_or(position as u64);
        if let Some(args) = call.function.as_ref().and_then(|f| f.arguments) {
            out.push((key(Field::ToolArgs, inner), args));
        }
    }
    if let Some(args) = d.function_call.as_ref().and_then(|f| f.arguments) {
        out.push((key(Field::FunctionArgs, 0), args));
    }
    Ok(out)
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
    let text = Value::from(text);
    let mut choice = Map::new();
    choice.insert("index".into(), Value::from(key.outer));
    if key.field == Field::Text {
        choice.insert("text".into(), text);
        choice.insert("logprobs".into(), Value::Null);
    } else {
        let delta = match key.field {
            Field::Refusal => object([("refusal", text)]),
            Field::Reasoning => object([("reasoning_content", text)]),
            Field::AudioTranscript => object([("audio", object([("transcript", text)]))]),
            Field::ContentPart => object([(
                "content",
                Value::Array(vec![object([
                    ("index", Value::from(key.inner)),
                    ("type", Value::from("text")),
                    ("text", text),
                ])]),
            )]),
            Field::ToolArgs => object([(
                "tool_calls",
                Value::Array(vec![object([
                    ("index", Value::from(key.inner)),
                    ("function", object([("arguments", text)])),
                ])]),
            )]),
            Field::FunctionArgs => object([("function_call", object([("arguments", text)]))]),
            _ => object([("content", text)]),
        };
        choice.insert("delta".into(), delta);
    }
    choice.insert("finish_reason".into(), Value::Null);
    chunk.insert("choices".into(), Value::Array(vec![Value::Object(choice)]));
    let data = serde_json::to_string(&Value::Object(chunk))
        .map_err(|_| RedactError::Internal("serializing a synthesized chunk"))?;
    out.push(Emit::Event(Event {
        data,
        ..Event::default()
    }));
    Ok(())
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Whether a rewritten chunk carries nothing but empty text: no role, no finish reason, no
/// tool-call id or name, no usage.
fn droppable(data: &str) -> bool {
    let Ok(Value::Object(chunk)) = serde_json::from_str::<Value>(data) else {
        return false;
    };
    let no_usage = chunk.get("usage").is_none_or(Value::is_null);
    let Some(Value::Array(choices)) = chunk.get("choices") else {
        return false;
    };
    no_usage && !choices.is_empty() && choices.iter().all(empty_choice)
}

fn empty_choice(choice: &Value) -> bool {
    let Value::Object(c) = choice else {
        return false;
    };
    c.iter().all(|(k, v)| match k.as_str() {
        "index" => true,
        "finish_reason" | "logprobs" => v.is_null(),
        "text" => is_empty_text(v),
        "delta" => only(
            v,
            &[
                "content",
                "refusal",
                "reasoning_content",
                "tool_calls",
                "function_call",
            ],
            |k, v| match k {
                "tool_calls" => v.as_array().is_some_and(|calls| {
                    calls.iter().all(|c| {
                        only(c, &["index", "function"], |k, v| {
                            k == "index" || empty_arguments(v)
                        })
                    })
                }),
                "function_call" => empty_arguments(v),
                _ => is_empty_text(v),
            },
        ),
        _ => false,
    })
}

fn empty_arguments(v: &Value) -> bool {
    only(v, &["arguments"], |_, v| is_empty_text(v))
}

fn is_empty_text(v: &Value) -> bool {
    v.is_null() || v.as_str() == Some("")
}

/// `v` is an object whose keys are all in `keys` and whose values satisfy `ok`.
fn only(v: &Value, keys: &[&str], ok: impl Fn(&str, &Value) -> bool) -> bool {
    v.as_object().is_some_and(|m| {
        m.iter()
            .all(|(k, v)| keys.contains(&k.as_str()) && ok(k, v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn droppable_chunks() {
        assert!(droppable(
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}"#
        ));
        assert!(droppable(
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":""}}]}}]}"#
        ));
        assert!(droppable(
            r#"{"choices":[{"index":0,"text":"","finish_reason":null,"logprobs":null}]}"#
        ));
        assert!(!droppable(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
        ));
        assert!(!droppable(
            r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}]}"#
        ));
        assert!(!droppable(
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}}]}"#
        ));
        assert!(!droppable(
            r#"{"choices":[{"index":0,"delta":{"content":""}}],"usage":{"total_tokens":3}}"#
        ));
        assert!(!droppable(r#"{"choices":[]}"#));
    }

    #[test]
    fn synthesized_chunk_keeps_the_envelope() {
        let mut out = Vec::new();
        let envelope = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"x":1}}"#;
        let key = Key {
            outer: 1,
            inner: 2,
            field: Field::ToolArgs,
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
