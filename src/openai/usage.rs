//! Token accounting: estimates before a request leaves, real usage after it returns.
//!
//! Budgets reserve [`estimate`] before forwarding and reconcile with [`Usage`] afterwards, so
//! an estimate only needs to be in the right order of magnitude; it must never be zero for a
//! real prompt, and must not count base64 images or audio as text.

use serde_json::Value;

use super::request::Endpoint;

/// Tokens used by one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt: u64,
    /// Completion (output) tokens.
    pub completion: u64,
}

impl Usage {
    /// Prompt plus completion.
    pub fn total(self) -> u64 {
        self.prompt + self.completion
    }
}

/// Roughly four characters of English per token (OpenAI's rule of thumb).
const CHARS_PER_TOKEN: u64 = 4;
/// What an image part is charged before the real usage is known (a high-detail 512px tile
/// plus the base cost, per OpenAI's vision pricing).
const IMAGE_TOKENS: u64 = 255;
/// Per-message overhead in chat formats.
const MESSAGE_OVERHEAD: u64 = 4;

/// Tokens for `chars` characters of text, rounded up.
pub fn tokens_for_chars(chars: u64) -> u64 {
    chars.div_ceil(CHARS_PER_TOKEN)
}

/// An upper-bound-ish estimate of the tokens a request will use: its prompt, plus the output
/// cap it asks for (`max_tokens`, `max_completion_tokens`, `max_output_tokens`) when given.
pub fn estimate(endpoint: Endpoint, request: &Value) -> Usage {
    let mut chars = 0u64;
    let mut fixed = 0u64;
    match endpoint {
        Endpoint::ChatCompletions => {
            if let Some(messages) = request.get("messages").and_then(Value::as_array) {
                for m in messages {
                    fixed += MESSAGE_OVERHEAD;
                    count_content(m.get("content"), &mut chars, &mut fixed);
                    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                        for c in calls {
                            chars += str_len(c.pointer("/function/arguments"));
                            chars += str_len(c.pointer("/function/name"));
                        }
                    }
                }
            }
            if let Some(tools) = request.get("tools") {
                chars += tools.to_string().len() as u64;
            }
        }
        Endpoint::Completions => count_strings(request.get("prompt"), &mut chars),
        Endpoint::Embeddings => match request.get("input") {
            // Token-id arrays are exact counts.
            Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
                fixed += items.len() as u64
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_array) => {
                fixed += items
                    .iter()
                    .filter_map(Value::as_array)
                    .map(|a| a.len() as u64)
                    .sum::<u64>()
            }
            other => count_strings(other, &mut chars),
        },
        Endpoint::Responses => {
            chars += str_len(request.get("instructions"));
            match request.get("input") {
                Some(Value::String(s)) => chars += s.chars().count() as u64,
                Some(Value::Array(items)) => {
                    for item in items {
                        fixed += MESSAGE_OVERHEAD;
                        count_content(item.get("content"), &mut chars, &mut fixed);
                        chars += str_len(item.get("arguments"));
                        chars += str_len(item.get("output"));
                    }
                }
                _ => {}
            }
        }
        Endpoint::AudioTranscriptions | Endpoint::AudioTranslations => {}
    }
    let completion = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| request.get(*k).and_then(Value::as_u64))
        .unwrap_or(0);
    Usage {
        prompt: (tokens_for_chars(chars) + fixed).max(1),
        completion,
    }
}

fn str_len(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_str)
        .map_or(0, |s| s.chars().count() as u64)
}

fn count_strings(v: Option<&Value>, chars: &mut u64) {
    match v {
        Some(Value::String(s)) => *chars += s.chars().count() as u64,
        Some(Value::Array(items)) => {
            for i in items {
                count_strings(Some(i), chars);
            }
        }
        _ => {}
    }
}

/// Counts text parts as text and image/audio/file parts at a fixed cost.
fn count_content(content: Option<&Value>, chars: &mut u64, fixed: &mut u64) {
    match content {
        Some(Value::String(s)) => *chars += s.chars().count() as u64,
        Some(Value::Array(parts)) => {
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text" | "input_text" | "output_text" | "refusal") => {
                        *chars += str_len(part.get("text"));
                    }
                    Some(_) => *fixed += IMAGE_TOKENS,
                    None => count_strings(Some(part), chars),
                }
            }
        }
        _ => {}
    }
}

/// The `usage` of a complete (non-streamed) answer, if it has one.
pub fn from_response(response: &Value) -> Option<Usage> {
    response.get("usage").and_then(parse_usage)
}

/// Reads either naming scheme: `prompt_tokens`/`completion_tokens` (chat, completions,
/// embeddings) or `input_tokens`/`output_tokens` (Responses API).
pub fn parse_usage(usage: &Value) -> Option<Usage> {
    let get = |a: &str, b: &str| {
        usage
            .get(a)
            .and_then(Value::as_u64)
            .or_else(|| usage.get(b).and_then(Value::as_u64))
    };
    let prompt = get("prompt_tokens", "input_tokens");
    let completion = get("completion_tokens", "output_tokens");
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    Some(Usage {
        prompt: prompt.unwrap_or(0),
        completion: completion.unwrap_or(0),
    })
}

/// Watches the events of a streamed answer for its usage, its finish reasons, and — for a
/// Longest answer id kept for `gen_ai.response.id`.
const MAX_ID: usize = 256;

/// stream that ends early — how much text was generated.
#[derive(Debug, Default, Clone)]
pub struct StreamUsage {
    /// Usage reported by the upstream, when it reported it.
    pub reported: Option<Usage>,
    /// Characters of generated text seen so far.
    pub generated_chars: u64,
    /// Finish reasons seen, in order, deduplicated.
    pub finish_reasons: Vec<String>,
    /// The model the upstream says answered.
    pub response_model: Option<String>,
    /// The answer's `id` (a chat completion's, or a Responses `response.id`).
    pub response_id: Option<String>,
}

impl StreamUsage {
    /// Observes one event's JSON payload.
    pub fn observe(&mut self, event: &Value) {
        if self.response_model.is_none() {
            if let Some(m) = event.get("model").and_then(Value::as_str) {
                self.response_model = Some(m.to_owned());
            }
        }
        if self.response_id.is_none() {
            let id = event
                .get("id")
                .or_else(|| event.pointer("/response/id"))
                .and_then(Value::as_str);
            if let Some(id) = id.filter(|id| id.len() <= MAX_ID) {
                self.response_id = Some(id.to_owned());
            }
        }
        // Chat and completions chunks.
        if let Some(choices) = event.get("choices").and_then(Value::as_array) {
            for c in choices {
                self.generated_chars += str_len(c.pointer("/delta/content"));
                self.generated_chars += str_len(c.get("text"));
                if let Some(calls) = c.pointer("/delta/tool_calls").and_then(Value::as_array) {
                    for call in calls {
                        self.generated_chars += str_len(call.pointer("/function/arguments"));
                    }
                }
                if let Some(r) = c.get("finish_reason").and_then(Value::as_str) {
                    self.add_finish(r);
                }
            }
        }
        if let Some(u) = event.get("usage").filter(|u| !u.is_null()) {
            if let Some(u) = parse_usage(u) {
                self.reported = Some(u);
            }
        }
        // Responses API events.
        match event.get("type").and_then(Value::as_str) {
            Some("response.output_text.delta" | "response.function_call_arguments.delta") => {
                self.generated_chars += str_len(event.get("delta"));
            }
            Some("response.completed" | "response.incomplete" | "response.failed") => {
                if let Some(r) = event.get("response") {
                    if let Some(u) = r.get("usage").and_then(parse_usage) {
                        self.reported = Some(u);
                    }
                    if let Some(m) = r.get("model").and_then(Value::as_str) {
                        self.response_model = Some(m.to_owned());
                    }
                    if let Some(status) = r.get("status").and_then(Value::as_str) {
                        self.add_finish(status);
                    }
                }
            }
            _ => {}
        }
    }

    /// Learns the answer's id from a whole JSON answer (its top-level `id`).
    pub fn observe_id(&mut self, id: Option<String>) {
        if self.response_id.is_none() {
            self.response_id = id.filter(|id| id.len() <= MAX_ID);
        }
    }

    fn add_finish(&mut self, reason: &str) {
        if !self.finish_reasons.iter().any(|r| r == reason) && self.finish_reasons.len() < 16 {
            self.finish_reasons.push(reason.to_owned());
        }
    }

    /// What the stream is charged: the reported usage, or — when the stream ended before the
    /// upstream reported it — the estimated prompt and the text generated so far.
    pub fn charge(&self, estimated_prompt: u64) -> Usage {
        self.reported.unwrap_or(Usage {
            prompt: estimated_prompt,
            completion: tokens_for_chars(self.generated_chars),
        })
    }
}

/// For a streamed chat or completions request: asks the upstream to report usage
/// (`stream_options.include_usage`) when the client did not. Returns whether it changed the
/// request — then the client must not see the extra usage-only chunk.
pub fn request_stream_usage(endpoint: Endpoint, request: &mut Value) -> bool {
    if !matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Completions) {
        return false;
    }
    let Some(object) = request.as_object_mut() else {
        return false;
    };
    let options = object
        .entry("stream_options")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Some(options) = options.as_object_mut() else {
        return false;
    };
    if options.get("include_usage").and_then(Value::as_bool) == Some(true) {
        return false;
    }
    options.insert("include_usage".to_owned(), Value::Bool(true));
    true
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_estimate_counts_text_not_images() {
        let with_image = json!({"model": "m", "max_tokens": 50, "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "a".repeat(400)},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", "A".repeat(1_000_000))}}]}]});
        let u = estimate(Endpoint::ChatCompletions, &with_image);
        assert_eq!(u.completion, 50);
        assert_eq!(u.prompt, 100 + MESSAGE_OVERHEAD + IMAGE_TOKENS);
    }

    #[test]
    fn estimates_are_never_zero_and_read_every_cap() {
        assert_eq!(
            estimate(Endpoint::Embeddings, &json!({"input": ""})).prompt,
            1
        );
        assert_eq!(
            estimate(Endpoint::Embeddings, &json!({"input": [1, 2, 3]})).prompt,
            3
        );
        let r = json!({"input": "abcdefgh", "instructions": "abcd", "max_output_tokens": 7});
        assert_eq!(
            estimate(Endpoint::Responses, &r),
            Usage {
                prompt: 3,
                completion: 7
            }
        );
        let c = json!({"prompt": ["abcd", "abcd"], "max_tokens": 2});
        assert_eq!(
            estimate(Endpoint::Completions, &c),
            Usage {
                prompt: 2,
                completion: 2
            }
        );
        let m = json!({"messages": [], "max_completion_tokens": 9});
        assert_eq!(estimate(Endpoint::ChatCompletions, &m).completion, 9);
    }

    #[test]
    fn reads_both_usage_schemes() {
        let chat =
            json!({"usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}});
        assert_eq!(
            from_response(&chat),
            Some(Usage {
                prompt: 5,
                completion: 7
            })
        );
        let resp = json!({"usage": {"input_tokens": 3, "output_tokens": 4}});
        assert_eq!(
            from_response(&resp),
            Some(Usage {
                prompt: 3,
                completion: 4
            })
        );
        assert_eq!(from_response(&json!({})), None);
    }

    #[test]
    fn stream_usage_prefers_reported_and_falls_back_to_text() {
        let mut s = StreamUsage::default();
        s.observe(&json!({"model": "gpt-4o-2024", "choices": [{"index": 0, "delta": {"content": "abcdefgh"}}]}));
        assert_eq!(
            s.charge(10),
            Usage {
                prompt: 10,
                completion: 2
            }
        );
        s.observe(&json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
        let usage_chunk =
            json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}});
        assert!(is_usage_only_chunk(&usage_chunk));
        s.observe(&usage_chunk);
        assert_eq!(
            s.charge(10),
            Usage {
                prompt: 11,
                completion: 3
            }
        );
        assert_eq!(s.finish_reasons, ["stop"]);
        assert_eq!(s.response_model.as_deref(), Some("gpt-4o-2024"));
    }

    #[test]
    fn asks_for_stream_usage_only_when_missing() {
        let mut r = json!({"model": "m", "stream": true});
        assert!(request_stream_usage(Endpoint::ChatCompletions, &mut r));
        assert_eq!(r["stream_options"]["include_usage"], true);
        assert!(!request_stream_usage(Endpoint::ChatCompletions, &mut r));
        let mut e = json!({"model": "m"});
        assert!(!request_stream_usage(Endpoint::Responses, &mut e));
        let mut bad = json!({"stream_options": 3});
        assert!(!request_stream_usage(Endpoint::Completions, &mut bad));
    }

    #[test]
    fn responses_stream_usage() {
        let mut s = StreamUsage::default();
        s.observe(&json!({"type": "response.output_text.delta", "delta": "abcd"}));
        assert_eq!(s.charge(1).completion, 1);
        s.observe(&json!({"type": "response.completed", "response": {"status": "completed", "model": "m", "usage": {"input_tokens": 8, "output_tokens": 2}}}));
        assert_eq!(
            s.charge(1),
            Usage {
                prompt: 8,
                completion: 2
            }
        );
        assert!(!is_usage_only_chunk(
            &json!({"choices": [{"index": 0}], "usage": {"prompt_tokens": 1}})
        ));
    }
}
