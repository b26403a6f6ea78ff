//! OpenAI's Chat Completions (`/v1/chat/completions`), Completions (`/v1/completions`) and
//! Embeddings (`/v1/embeddings`): messages with content parts, answers as `choices`, streams of
//! `chat.completion.chunk`s.
//!
//! - Opaque fields: [`OPAQUE_KEYS`].
//! - Usage: the prompt is the messages' text (`count_prompt`); answers and chunks report
//!   `usage` at the top level, finish reasons per choice; a stream reports usage only when
//!   asked ([`ask_for_usage`]), and the chunk that answers is hidden from a client that did not
//!   ask ([`is_usage_only_chunk`]).
//! - Stream events: every chunk is of one kind; its choices carry texts in pieces
//!   ([`Chunk`], [`ChoiceText`]: the table of a choice's streamed text fields), and a chunk
//!   left with only empty texts may be dropped ([`is_empty_chunk`]). `redact/stream/chat.rs`
//!   keeps one channel per choice and text.
//! - Errors: OpenAI's shape.

use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::members::{body_start, is_empty_object, members, Member};
use super::usage::{str_len, AnswerProbe, Readings, StreamUsage, Tally};
use super::Endpoint;

/// Members whose base64 values are binary payloads: input and output audio
/// (`input_audio.data`, `message.audio.data`), files (`file.file_data`), base64 embeddings
/// (`encoding_format: "base64"`).
pub const OPAQUE_KEYS: &[&str] = &["audio", "data", "embedding", "file_data"];

/// What this module reads (see [`Family::readings`](super::Family::readings)).
pub(super) const READINGS: Readings = Readings {
    count_prompt,
    observe_event,
    answer_finish,
};

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
        finish_reason: Option<&'a RawValue>,
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
            Err(_) => serde_json::from_str::<Vec<&RawValue>>(choices.get())
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

/// A streamed chunk, as far as its texts go: everything else of it is left as it is.
#[derive(Debug, Deserialize)]
pub struct Chunk<'a> {
    /// Its choices.
    #[serde(borrow)]
    pub choices: Option<Vec<Choice<'a>>>,
}

/// One choice of a chunk.
#[derive(Debug, Deserialize)]
pub struct Choice<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
    #[serde(borrow)]
    function_call: Option<FunctionDelta<'a>>,
    #[serde(borrow)]
    audio: Option<AudioDelta<'a>>,
}

#[derive(Debug, Deserialize)]
struct AudioDelta<'a> {
    #[serde(borrow)]
    transcript: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct PartDelta<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct ToolDelta<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Debug, Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// A text of a choice that streams in pieces: the table of a chunk's text fields. Every other
/// string of a chunk is scanned whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChoiceText {
    /// `delta.content` (a string).
    Content,
    /// `delta.content[].text` (content given as parts), per part.
    ContentPart,
    /// `delta.refusal`.
    Refusal,
    /// `delta.reasoning_content` (OpenAI-compatible reasoning servers).
    Reasoning,
    /// `delta.audio.transcript` (audio output).
    AudioTranscript,
    /// `delta.tool_calls[].function.arguments`, per tool call.
    ToolArgs,
    /// `delta.function_call.arguments` (legacy).
    FunctionArgs,
    /// A completion's `choices[].text`.
    Text,
}

/// One streamed text of a choice: which one, its part or tool call (`inner`), and the JSON
/// value in the chunk (a string, or something else the caller leaves to the scan).
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    /// Which text.
    pub field: ChoiceText,
    /// The content part or tool call it belongs to (0 for the others).
    pub inner: u64,
    /// Its value, borrowed from the chunk.
    pub raw: &'a RawValue,
}

impl<'a> Choice<'a> {
    /// The choice's `index` (0 when absent).
    pub fn index(&self) -> u64 {
        self.index.unwrap_or(0)
    }

    /// Whether the choice has a `finish_reason` (its texts are complete).
    pub fn finishing(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// The choice's streamed texts, in the chunk's order.
    ///
    /// # Errors
    ///
    /// When `delta.content` is an array that is not a list of parts.
    pub fn texts(&self) -> Result<Vec<Piece<'a>>, serde_json::Error> {
        let piece = |field, inner, raw| Piece { field, inner, raw };
        let mut out = Vec::new();
        if let Some(t) = self.text {
            out.push(piece(ChoiceText::Text, 0, t));
        }
        let Some(d) = &self.delta else {
            return Ok(out);
        };
        match d.content {
            Some(parts) if parts.get().starts_with('[') => {
                let parts: Vec<PartDelta<'a>> = serde_json::from_str(parts.get())?;
                for (position, part) in parts.iter().enumerate() {
                    if let Some(text) = part.text {
                        let inner = part.index.unwrap_or(position as u64);
                        out.push(piece(ChoiceText::ContentPart, inner, text));
                    }
                }
            }
            Some(text) => out.push(piece(ChoiceText::Content, 0, text)),
            None => {}
        }
        let simple = [
            (ChoiceText::Refusal, d.refusal),
            (ChoiceText::Reasoning, d.reasoning_content),
            (
                ChoiceText::AudioTranscript,
                d.audio.as_ref().and_then(|a| a.transcript),
            ),
        ];
        out.extend(
            simple
                .into_iter()
                .filter_map(|(f, raw)| Some(piece(f, 0, raw?))),
        );
        for (position, call) in d.tool_calls.iter().flatten().enumerate() {
            let inner = call.index.unwrap_or(position as u64);
            if let Some(args) = call.function.as_ref().and_then(|f| f.arguments) {
                out.push(piece(ChoiceText::ToolArgs, inner, args));
            }
        }
        if let Some(args) = d.function_call.as_ref().and_then(|f| f.arguments) {
            out.push(piece(ChoiceText::FunctionArgs, 0, args));
        }
        Ok(out)
    }
}

impl ChoiceText {
    /// A choice carrying `text` as this field (of part or tool call `inner`): the `choices[]`
    /// element of a chunk the gateway writes itself, to send held-back text.
    pub fn choice(self, index: u64, inner: u64, text: &str) -> Value {
        let text = Value::from(text);
        let mut choice = Map::new();
        choice.insert("index".into(), Value::from(index));
        if self == ChoiceText::Text {
            choice.insert("text".into(), text);
            choice.insert("logprobs".into(), Value::Null);
        } else {
            let delta = match self {
                ChoiceText::Refusal => object([("refusal", text)]),
                ChoiceText::Reasoning => object([("reasoning_content", text)]),
                ChoiceText::AudioTranscript => object([("audio", object([("transcript", text)]))]),
                ChoiceText::ContentPart => object([(
                    "content",
                    Value::Array(vec![object([
                        ("index", Value::from(inner)),
                        ("type", Value::from("text")),
                        ("text", text),
                    ])]),
                )]),
                ChoiceText::ToolArgs => object([(
                    "tool_calls",
                    Value::Array(vec![object([
                        ("index", Value::from(inner)),
                        ("function", object([("arguments", text)])),
                    ])]),
                )]),
                ChoiceText::FunctionArgs => {
                    object([("function_call", object([("arguments", text)]))])
                }
                ChoiceText::Content | ChoiceText::Text => object([("content", text)]),
            };
            choice.insert("delta".into(), delta);
        }
        choice.insert("finish_reason".into(), Value::Null);
        Value::Object(choice)
    }
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Whether a chunk carries nothing but empty texts: no role, no finish reason, no tool-call
/// id or name, no usage. Such a chunk, once its text is held back, need not be sent.
pub fn is_empty_chunk(data: &str) -> bool {
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
    fn empty_chunks() {
        assert!(is_empty_chunk(
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}"#
        ));
        assert!(is_empty_chunk(
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":""}}]}}]}"#
        ));
        assert!(is_empty_chunk(
            r#"{"choices":[{"index":0,"text":"","finish_reason":null,"logprobs":null}]}"#
        ));
        assert!(!is_empty_chunk(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
        ));
        assert!(!is_empty_chunk(
            r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}]}"#
        ));
        assert!(!is_empty_chunk(
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}}]}"#
        ));
        assert!(!is_empty_chunk(
            r#"{"choices":[{"index":0,"delta":{"content":""}}],"usage":{"total_tokens":3}}"#
        ));
        assert!(!is_empty_chunk(r#"{"choices":[]}"#));
    }

    #[test]
    fn a_choices_texts_in_order() {
        let data = r#"{"choices":[{"index":2,"text":"t","delta":{"content":[{"type":"text","text":"p0"},{"index":5,"type":"text","text":"p5"}],"refusal":"r","reasoning_content":"why","audio":{"transcript":"said"},"tool_calls":[{"index":1,"function":{"arguments":"{"}}],"function_call":{"arguments":"}"}},"finish_reason":"stop"}]}"#;
        let chunk: Chunk = serde_json::from_str(data).unwrap();
        let choice = &chunk.choices.as_ref().unwrap()[0];
        assert_eq!((choice.index(), choice.finishing()), (2, true));
        let texts: Vec<(ChoiceText, u64, &str)> = choice
            .texts()
            .unwrap()
            .iter()
            .map(|p| (p.field, p.inner, p.raw.get()))
            .collect();
        use ChoiceText::*;
        assert_eq!(
            texts,
            [
                (Text, 0, "\"t\""),
                (ContentPart, 0, "\"p0\""),
                (ContentPart, 5, "\"p5\""),
                (Refusal, 0, "\"r\""),
                (Reasoning, 0, "\"why\""),
                (AudioTranscript, 0, "\"said\""),
                (ToolArgs, 1, "\"{\""),
                (FunctionArgs, 0, "\"}\""),
            ]
        );
        // Each field written back is read back as the same field.
        for (field, inner, _) in texts {
            let chunk = serde_json::json!({"choices": [field.choice(3, inner, "x")]}).to_string();
            let read: Chunk = serde_json::from_str(&chunk).unwrap();
            let pieces = read.choices.as_ref().unwrap()[0].texts().unwrap();
            assert_eq!(pieces.len(), 1, "{chunk}");
            assert_eq!(
                (pieces[0].field, pieces[0].inner),
                (field, inner),
                "{chunk}"
            );
            assert_eq!(pieces[0].raw.get(), "\"x\"");
        }
    }
}
