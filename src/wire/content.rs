//! Prompt and completion in the shape of the OpenTelemetry GenAI conventions
//! (`gen_ai.input.messages`, `gen_ai.output.messages`), for traces whose environment has
//! `capture_content: true`. Built from the bodies *after* redaction: what the upstream was sent
//! and what the client was given.
//!
//! ```json
//! [{"role":"user","parts":[{"type":"text","content":"Hello"}]}]
//! [{"role":"assistant","parts":[{"type":"text","content":"Hi!"}],"finish_reason":"stop"}]
//! ```
//!
//! Texts are cut at [`MAX_CAPTURE`] bytes each while they are gathered (the exporter then cuts
//! the whole attribute to `max_content_bytes`), so a long stream costs bounded memory.

use serde_json::{json, Value};

use super::Endpoint;

/// The most text gathered for one side of one request.
pub const MAX_CAPTURE: usize = 64 * 1024;

/// The request's messages as `gen_ai.input.messages` JSON; `None` for a body that is not JSON
/// (an audio upload).
pub fn input_messages(endpoint: Endpoint, body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let mut out = Vec::new();
    let mut budget = MAX_CAPTURE;
    match endpoint {
        Endpoint::ChatCompletions => {
            for m in v.get("messages")?.as_array()? {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                out.push(message(role, texts(m.get("content")), &mut budget));
            }
        }
        Endpoint::Responses => {
            if let Some(text) = v.get("instructions").and_then(Value::as_str) {
                out.push(message("system", vec![text.to_owned()], &mut budget));
            }
            match v.get("input") {
                Some(Value::String(text)) => {
                    out.push(message("user", vec![text.clone()], &mut budget));
                }
                Some(Value::Array(items)) => {
                    for item in items {
                        let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
                        out.push(message(role, texts(item.get("content")), &mut budget));
                    }
                }
                _ => {}
            }
        }
        Endpoint::Completions => {
            out.push(message("user", texts(v.get("prompt")), &mut budget));
        }
        Endpoint::Embeddings | Endpoint::Moderations | Endpoint::AudioSpeech => {
            out.push(message("user", texts(v.get("input")), &mut budget));
        }
        Endpoint::ImagesGenerations | Endpoint::ImagesEdits => {
            out.push(message("user", texts(v.get("prompt")), &mut budget));
        }
        Endpoint::Messages => {
            if let Some(system @ (Value::String(_) | Value::Array(_))) = v.get("system") {
                out.push(message("system", texts(Some(system)), &mut budget));
            }
            for m in v.get("messages")?.as_array()? {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                out.push(message(role, texts(m.get("content")), &mut budget));
            }
        }
        Endpoint::AudioTranscriptions
        | Endpoint::AudioTranslations
        | Endpoint::ImagesVariations
        | Endpoint::MessagesCountTokens => return None,
    }
    serde_json::to_string(&out).ok()
}

/// A whole answer's output as `gen_ai.output.messages` JSON.
pub fn output_messages(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let mut budget = MAX_CAPTURE;
    let mut out = Vec::new();
    if let Some(choices) = v.get("choices").and_then(Value::as_array) {
        for c in choices {
            let text = c
                .pointer("/message/content")
                .or_else(|| c.get("text"))
                .map(|t| texts(Some(t)))
                .unwrap_or_default();
            let mut m = message("assistant", text, &mut budget);
            if let Some(reason) = c.get("finish_reason").and_then(Value::as_str) {
                m["finish_reason"] = reason.into();
            }
            out.push(m);
        }
    } else if let Some(items) = v.get("output").and_then(Value::as_array) {
        let text: Vec<String> = items
            .iter()
            .filter(|i| i.get("type").and_then(Value::as_str) == Some("message"))
            .flat_map(|i| texts(i.get("content")))
            .collect();
        out.push(message("assistant", text, &mut budget));
    } else if v.get("type").and_then(Value::as_str) == Some("message") {
        // Anthropic's Messages API.
        let mut m = message("assistant", texts(v.get("content")), &mut budget);
        if let Some(reason) = v.get("stop_reason").and_then(Value::as_str) {
            m["finish_reason"] = reason.into();
        }
        out.push(m);
    } else if let Some(text) = v.get("text").and_then(Value::as_str) {
        out.push(message("assistant", vec![text.to_owned()], &mut budget));
    } else {
        return None;
    }
    serde_json::to_string(&out).ok()
}

/// The text of a streamed answer, gathered event by event (bounded).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamText {
    text: String,
    finish_reason: Option<String>,
}

impl StreamText {
    /// Takes the text an event carries: a chat delta's `content`, a completion's `text`, a
    /// Responses `response.output_text.delta`.
    pub fn observe(&mut self, event: &Value) {
        if let Some(choices) = event.get("choices").and_then(Value::as_array) {
            for c in choices {
                if let Some(t) = c
                    .pointer("/delta/content")
                    .or_else(|| c.get("text"))
                    .and_then(Value::as_str)
                {
                    self.push(t);
                }
                if let Some(r) = c.get("finish_reason").and_then(Value::as_str) {
                    self.finish_reason = Some(r.to_owned());
                }
            }
        }
        match event.get("type").and_then(Value::as_str) {
            Some("response.output_text.delta") => {
                if let Some(t) = event.get("delta").and_then(Value::as_str) {
                    self.push(t);
                }
            }
            // Anthropic's Messages API.
            Some("content_block_delta") => {
                if let Some(t) = event.pointer("/delta/text").and_then(Value::as_str) {
                    self.push(t);
                }
            }
            Some("message_delta") => {
                if let Some(r) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish_reason = Some(r.to_owned());
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, t: &str) {
        let room = MAX_CAPTURE.saturating_sub(self.text.len());
        self.text.push_str(cut(t, room));
    }

    /// The gathered answer as `gen_ai.output.messages` JSON.
    pub fn messages(&self) -> String {
        let mut budget = MAX_CAPTURE;
        let mut m = message("assistant", vec![self.text.clone()], &mut budget);
        if let Some(r) = &self.finish_reason {
            m["finish_reason"] = r.as_str().into();
        }
        Value::Array(vec![m]).to_string()
    }
}

/// The texts of a content value: a string, or the `text` of each part.
fn texts(content: Option<&Value>) -> Vec<String> {
    match content {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.clone()),
                _ => p.get("text").and_then(Value::as_str).map(str::to_owned),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One message, its texts cut to what is left of `budget`.
fn message(role: &str, texts: Vec<String>, budget: &mut usize) -> Value {
    let parts: Vec<Value> = texts
        .iter()
        .map(|t| {
            let kept = cut(t, *budget);
            *budget -= kept.len();
            json!({"type": "text", "content": kept})
        })
        .collect();
    json!({"role": role, "parts": parts})
}

/// `t` cut to at most `max` bytes, on a character boundary.
fn cut(t: &str, max: usize) -> &str {
    if t.len() <= max {
        return t;
    }
    let mut end = max;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    &t[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_input_and_output_follow_the_conventions() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"data:x"}}]}]}"#;
        let input: Value =
            serde_json::from_str(&input_messages(Endpoint::ChatCompletions, body).unwrap())
                .unwrap();
        assert_eq!(
            input,
            json!([
                {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}
            ])
        );
        let answer = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}"#;
        let output: Value = serde_json::from_str(&output_messages(answer).unwrap()).unwrap();
        assert_eq!(
            output,
            json!([{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}], "finish_reason": "stop"}])
        );
    }

    #[test]
    fn streams_are_gathered_and_bounded() {
        let mut s = StreamText::default();
        s.observe(&json!({"choices": [{"delta": {"content": "Hel"}}]}));
        s.observe(&json!({"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]}));
        let v: Value = serde_json::from_str(&s.messages()).unwrap();
        assert_eq!(v[0]["parts"][0]["content"], "Hello");
        assert_eq!(v[0]["finish_reason"], "stop");
        let big = "é".repeat(MAX_CAPTURE);
        s.observe(&json!({"type": "response.output_text.delta", "delta": big}));
        assert!(s.text.len() <= MAX_CAPTURE);
    }
}
