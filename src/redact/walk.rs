//! Where the text is: the fields of OpenAI request and response bodies that carry user or model
//! text, per endpoint. Everything else — model, parameters, images, audio, file data, token-id
//! arrays — is never looked at.
//!
//! The shapes are borrowed views: unknown fields are skipped (but still validated as JSON), a
//! known field with an unexpected type is an error, and duplicate known fields are an error
//! (an upstream might read the other copy).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::RedactError;
use super::json::{parse, Fields};
use super::Endpoint;

type Raw<'a> = &'a RawValue;

/// Visits the text fields of a request body.
///
/// # Errors
///
/// Syntax and shape errors, and whatever `fields` fails with.
pub(crate) fn request<'a>(
    endpoint: Endpoint,
    src: &'a str,
    fields: &mut impl Fields<'a>,
) -> Result<(), RedactError> {
    match endpoint {
        Endpoint::ChatCompletions => {
            let body: ChatRequest = parse(src)?;
            for m in body.messages.iter().flatten() {
                message(m, fields)?;
            }
        }
        Endpoint::Completions => {
            let body: CompletionsRequest = parse(src)?;
            strings(body.prompt, fields)?;
        }
        Endpoint::Embeddings => {
            let body: EmbeddingsRequest = parse(src)?;
            strings(body.input, fields)?;
        }
        Endpoint::Responses => {
            let body: ResponsesRequest = parse(src)?;
            fields_text(body.instructions, fields)?;
            if let Some(input) = body.input {
                if input.get().starts_with('[') {
                    let items: Vec<Item> = parse(input.get())?;
                    for i in &items {
                        item(i, fields)?;
                    }
                } else {
                    fields.text(input)?;
                }
            }
        }
    }
    Ok(())
}

/// Visits the text fields of a (non-streamed) response body.
///
/// # Errors
///
/// Syntax and shape errors, and whatever `fields` fails with.
pub(crate) fn response<'a>(
    endpoint: Endpoint,
    src: &'a str,
    fields: &mut impl Fields<'a>,
) -> Result<(), RedactError> {
    match endpoint {
        Endpoint::ChatCompletions => {
            let body: ChatCompletion = parse(src)?;
            for c in body.choices.iter().flatten() {
                if let Some(m) = &c.message {
                    message(m, fields)?;
                }
                if let Some(lp) = c.logprobs {
                    fields.logprobs(lp, "null");
                }
            }
        }
        Endpoint::Completions => {
            let body: Completion = parse(src)?;
            for c in body.choices.iter().flatten() {
                fields_text(c.text, fields)?;
                if let Some(lp) = c.logprobs {
                    fields.logprobs(lp, "null");
                }
            }
        }
        Endpoint::Embeddings => {
            parse::<serde::de::IgnoredAny>(src)?;
        }
        Endpoint::Responses => responses_object(src, fields)?,
    }
    Ok(())
}

/// Visits a Responses API response object (also the `response` of stream events).
///
/// # Errors
///
/// Syntax and shape errors, and whatever `fields` fails with.
pub(crate) fn responses_object<'a>(
    src: &'a str,
    fields: &mut impl Fields<'a>,
) -> Result<(), RedactError> {
    let body: ResponseObject = parse(src)?;
    for i in body.output.iter().flatten() {
        item(i, fields)?;
    }
    Ok(())
}

/// Visits one Responses API item given as JSON text (an `output_item` event's `item`).
///
/// # Errors
///
/// Syntax and shape errors, and whatever `fields` fails with.
pub(crate) fn responses_item<'a>(
    src: &'a str,
    fields: &mut impl Fields<'a>,
) -> Result<(), RedactError> {
    let i: Item = parse(src)?;
    item(&i, fields)
}

/// Visits one content part given as JSON text (a `content_part` event's `part`).
///
/// # Errors
///
/// Syntax and shape errors, and whatever `fields` fails with.
pub(crate) fn content_part<'a>(
    src: &'a str,
    fields: &mut impl Fields<'a>,
) -> Result<(), RedactError> {
    let p: Part = parse(src)?;
    part(&p, fields)
}

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    messages: Option<Vec<Message<'a>>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    content: Option<Raw<'a>>,
    #[serde(borrow)]
    refusal: Option<Raw<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Raw<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(borrow)]
    function_call: Option<FunctionCall<'a>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    function: Option<FunctionCall<'a>>,
}

#[derive(Deserialize)]
struct FunctionCall<'a> {
    #[serde(borrow)]
    arguments: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct CompletionsRequest<'a> {
    #[serde(borrow)]
    prompt: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct EmbeddingsRequest<'a> {
    #[serde(borrow)]
    input: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ResponsesRequest<'a> {
    #[serde(borrow)]
    input: Option<Raw<'a>>,
    #[serde(borrow)]
    instructions: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ChatCompletion<'a> {
    #[serde(borrow)]
    choices: Option<Vec<ChatChoice<'a>>>,
}

#[derive(Deserialize)]
struct ChatChoice<'a> {
    #[serde(borrow)]
    message: Option<Message<'a>>,
    #[serde(borrow)]
    logprobs: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(borrow)]
    choices: Option<Vec<TextChoice<'a>>>,
}

#[derive(Deserialize)]
struct TextChoice<'a> {
    #[serde(borrow)]
    text: Option<Raw<'a>>,
    #[serde(borrow)]
    logprobs: Option<Raw<'a>>,
}

#[derive(Deserialize)]
struct ResponseObject<'a> {
    #[serde(borrow)]
    output: Option<Vec<Item<'a>>>,
}

/// A Responses API item (input or output).
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Raw<'a>>,
    #[serde(borrow)]
    summary: Option<Raw<'a>>,
    #[serde(borrow)]
    arguments: Option<Raw<'a>>,
    #[serde(borrow)]
    output: Option<Raw<'a>>,
    #[serde(borrow)]
    input: Option<Raw<'a>>,
}

/// A content part: chat `text`, Responses `input_text`/`output_text`/`refusal`, reasoning
/// `summary_text`/`reasoning_text`. Image, audio and file parts are skipped.
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Raw<'a>>,
    #[serde(borrow)]
    refusal: Option<Raw<'a>>,
    #[serde(borrow)]
    logprobs: Option<Raw<'a>>,
}

fn message<'a>(m: &Message<'a>, fields: &mut impl Fields<'a>) -> Result<(), RedactError> {
    content(m.content, fields)?;
    fields_text(m.refusal, fields)?;
    fields_text(m.reasoning_content, fields)?;
    for call in m.tool_calls.iter().flatten() {
        if let Some(f) = &call.function {
            fields_text(f.arguments, fields)?;
        }
    }
    if let Some(f) = &m.function_call {
        fields_text(f.arguments, fields)?;
    }
    Ok(())
}

fn item<'a>(i: &Item<'a>, fields: &mut impl Fields<'a>) -> Result<(), RedactError> {
    match i.kind.as_deref() {
        None | Some("message") => content(i.content, fields),
        Some("function_call") => fields_text(i.arguments, fields),
        Some("custom_tool_call") => fields_text(i.input, fields),
        Some("function_call_output" | "custom_tool_call_output") => content(i.output, fields),
        Some("reasoning") => {
            content(i.summary, fields)?;
            content(i.content, fields)
        }
        Some(_) => Ok(()),
    }
}

/// A string, or an array of content parts.
fn content<'a>(raw: Option<Raw<'a>>, fields: &mut impl Fields<'a>) -> Result<(), RedactError> {
    let Some(raw) = raw else { return Ok(()) };
    match raw.get().as_bytes().first() {
        Some(b'"') => fields.text(raw),
        Some(b'[') => {
            let parts: Vec<Part> = parse(raw.get())?;
            for p in &parts {
                part(p, fields)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn part<'a>(p: &Part<'a>, fields: &mut impl Fields<'a>) -> Result<(), RedactError> {
    match p.kind.as_deref() {
        Some("text" | "input_text" | "output_text" | "summary_text" | "reasoning_text") => {
            fields_text(p.text, fields)?;
            if let Some(lp) = p.logprobs {
                fields.logprobs(lp, "[]");
            }
            Ok(())
        }
        Some("refusal") => fields_text(p.refusal, fields),
        _ => Ok(()),
    }
}

/// A string, or an array whose string elements are texts (token-id arrays are skipped).
fn strings<'a>(raw: Option<Raw<'a>>, fields: &mut impl Fields<'a>) -> Result<(), RedactError> {
    let Some(raw) = raw else { return Ok(()) };
    match raw.get().as_bytes().first() {
        Some(b'"') => fields.text(raw),
        Some(b'[') => {
            let items: Vec<Raw> = parse(raw.get())?;
            for i in items {
                if i.get().starts_with('"') {
                    fields.text(i)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn fields_text<'a>(raw: Option<Raw<'a>>, fields: &mut impl Fields<'a>) -> Result<(), RedactError> {
    match raw {
        Some(raw) => fields.text(raw),
        None => Ok(()),
    }
}
