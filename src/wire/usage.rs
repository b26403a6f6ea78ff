//! Token accounting: estimates before a request leaves, real usage after it returns.
//!
//! Budgets reserve [`estimate`] before forwarding and reconcile with [`Usage`] afterwards, so
//! an estimate only needs to be in the right order of magnitude; it must never be zero for a
//! real prompt, and must not count base64 images or audio as text.

use serde_json::Value;

use serde_json::value::RawValue;

use super::members::members;
use super::{Endpoint, Family};

/// Tokens used by one request, as OpenAI counts them: `prompt` includes the cached, cache
/// write, audio and image input tokens, `completion` the reasoning and audio output tokens.
/// (Anthropic's `input_tokens` leaves cache reads and writes out; [`parse_usage`] adds them.)
///
/// The request record carries it to telemetry: the access log writes the details only when
/// they are not 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt: u64,
    /// Completion (output) tokens.
    pub completion: u64,
    /// Of `prompt`: read from the provider's prompt cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_read: u64,
    /// Of `prompt`: written to the prompt cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_write: u64,
    /// Of `prompt`: audio input.
    #[serde(skip_serializing_if = "is_zero")]
    pub audio_input: u64,
    /// Of `prompt`: image input.
    #[serde(skip_serializing_if = "is_zero")]
    pub image_input: u64,
    /// Of `completion`: reasoning.
    #[serde(skip_serializing_if = "is_zero")]
    pub reasoning: u64,
    /// Of `completion`: audio output.
    #[serde(skip_serializing_if = "is_zero")]
    pub audio_output: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Prompt and completion tokens, without details.
    pub const fn new(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt,
            completion,
            cache_read: 0,
            cache_write: 0,
            audio_input: 0,
            image_input: 0,
            reasoning: 0,
            audio_output: 0,
        }
    }

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
/// cap it asks for (`max_tokens`, `max_completion_tokens`, `max_output_tokens`) when given,
/// once for each answer it asks for ([`choices`]).
pub fn estimate(endpoint: Endpoint, request: &Value) -> Usage {
    let mut tally = Tally::default();
    for readings in endpoint.family().readings() {
        (readings.count_prompt)(endpoint, request, &mut tally);
    }
    let Tally { chars, fixed } = tally;
    let completion = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| request.get(*k).and_then(Value::as_u64))
        .unwrap_or(0);
    Usage::new(
        (tokens_for_chars(chars) + fixed).max(1),
        completion.saturating_mul(choices(request)),
    )
}

/// How many answers a request has generated, each up to the output cap: the larger of `n`
/// (chat, completions, images) and `best_of` (completions: generated and billed although only
/// `n` are returned), at least 1.
pub fn choices(request: &Value) -> u64 {
    ["n", "best_of"]
        .iter()
        .filter_map(|k| request.get(*k).and_then(Value::as_u64))
        .max()
        .unwrap_or(1)
        .max(1)
}

/// [`choices`] of a body serde_json's tree cannot read, from its top-level members.
pub fn choices_from_text(body: &[u8]) -> u64 {
    members(body)
        .and_then(|members| {
            members
                .iter()
                .filter(|m| &*m.key == b"n" || &*m.key == b"best_of")
                .filter_map(|m| m.value.get().parse::<u64>().ok())
                .max()
        })
        .unwrap_or(1)
        .max(1)
}

pub(super) fn str_len(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_str)
        .map_or(0, |s| s.chars().count() as u64)
}

/// What a family's module reads of requests and answers: the table behind
/// [`Family::readings`], so that a family is dispatched to in one place.
#[derive(Debug, Clone, Copy)]
pub(super) struct Readings {
    /// Counts a request's prompt.
    pub count_prompt: fn(Endpoint, &Value, &mut Tally),
    /// Reads one stream event (text generated, finish reasons, the usage it reports).
    pub observe_event: fn(&mut StreamUsage, &Value),
    /// Reads a whole answer's finish reasons.
    pub answer_finish: fn(&AnswerProbe<'_>, &mut Vec<String>),
}

/// What a request's prompt is counted as, by its family's `count_prompt`: characters of text,
/// and tokens at a fixed cost (message overheads, images, token-id arrays).
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Characters of text.
    pub chars: u64,
    /// Tokens counted directly.
    pub fixed: u64,
}

impl Tally {
    /// One message's overhead in a chat format.
    pub fn message(&mut self) {
        self.fixed += MESSAGE_OVERHEAD;
    }

    /// An image, audio or file part, before its real usage is known.
    pub fn media(&mut self) {
        self.fixed += IMAGE_TOKENS;
    }

    /// A string, counted as text; anything else, nothing.
    pub fn text(&mut self, v: Option<&Value>) {
        self.chars += str_len(v);
    }

    /// Every string of a string or a (nested) array of strings.
    pub fn strings(&mut self, v: Option<&Value>) {
        match v {
            Some(Value::String(s)) => self.chars += s.chars().count() as u64,
            Some(Value::Array(items)) => {
                for i in items {
                    self.strings(Some(i));
                }
            }
            _ => {}
        }
    }

    /// A JSON value (tool definitions, a tool's input) by the length of its text.
    pub fn json(&mut self, v: Option<&Value>) {
        self.chars += v.map_or(0, |v| v.to_string().len() as u64);
    }
}

/// The `usage` of a complete (non-streamed) answer, if it has one.
pub fn from_response(response: &Value) -> Option<Usage> {
    response.get("usage").and_then(parse_usage)
}

/// Reads either naming scheme: `prompt_tokens`/`completion_tokens` (chat, completions,
/// embeddings) or `input_tokens`/`output_tokens` (Responses API, images, transcriptions,
/// Anthropic), with their details: cached tokens (`prompt_tokens_details.cached_tokens`,
/// `input_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`), cache writes
/// (`cache_creation_input_tokens`), reasoning, audio and image tokens.
///
/// Anthropic reports `input_tokens` without the cache reads and writes; they are added, so
/// that `prompt` means the same for every provider.
pub fn parse_usage(usage: &Value) -> Option<Usage> {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64);
    let get = |a: &str, b: &str| n(usage.get(a)).or_else(|| n(usage.get(b)));
    let detail = |objects: &[&str], field: &str| {
        objects
            .iter()
            .find_map(|o| n(usage.get(*o).and_then(|d| d.get(field))))
    };
    let fields = UsageFields {
        prompt: get("prompt_tokens", "input_tokens"),
        completion: get("completion_tokens", "output_tokens"),
        cached: detail(INPUT_DETAILS, "cached_tokens"),
        audio_input: detail(INPUT_DETAILS, "audio_tokens"),
        image_input: detail(INPUT_DETAILS, "image_tokens"),
        reasoning: detail(OUTPUT_DETAILS, "reasoning_tokens"),
        audio_output: detail(OUTPUT_DETAILS, "audio_tokens"),
        cache_read: n(usage.get("cache_read_input_tokens")),
        cache_creation: n(usage.get("cache_creation_input_tokens")),
    };
    fields.usage()
}

/// Where input details are: chat's `prompt_tokens_details`, the Responses API's
/// `input_tokens_details`, transcriptions' `input_token_details`.
const INPUT_DETAILS: &[&str] = &[
    "prompt_tokens_details",
    "input_tokens_details",
    "input_token_details",
];
/// Where output details are.
const OUTPUT_DETAILS: &[&str] = &["completion_tokens_details", "output_tokens_details"];

/// The numbers of a `usage` object, as read by either parser.
#[derive(Debug, Default)]
struct UsageFields {
    prompt: Option<u64>,
    completion: Option<u64>,
    cached: Option<u64>,
    audio_input: Option<u64>,
    image_input: Option<u64>,
    reasoning: Option<u64>,
    audio_output: Option<u64>,
    /// Anthropic's, not part of its `input_tokens`.
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
}

impl UsageFields {
    fn usage(&self) -> Option<Usage> {
        let anthropic = self.cache_read.is_some() || self.cache_creation.is_some();
        if self.prompt.is_none() && self.completion.is_none() && !anthropic {
            return None;
        }
        let cache_read = self.cache_read.unwrap_or(0);
        let cache_write = self.cache_creation.unwrap_or(0);
        let prompt = self
            .prompt
            .unwrap_or(0)
            .saturating_add(cache_read)
            .saturating_add(cache_write);
        Some(Usage {
            prompt,
            completion: self.completion.unwrap_or(0),
            cache_read: if anthropic {
                cache_read
            } else {
                self.cached.unwrap_or(0)
            },
            cache_write,
            audio_input: self.audio_input.unwrap_or(0),
            image_input: self.image_input.unwrap_or(0),
            reasoning: self.reasoning.unwrap_or(0),
            audio_output: self.audio_output.unwrap_or(0),
        })
    }
}

/// [`parse_usage`] of a `usage` object given as JSON text, without building a [`Value`] (its
/// keys and nested objects would be allocated for a few numbers): the same answer for every
/// input, by falling back to [`parse_usage`] where the quick reading cannot decide (a key
/// given twice, a number that is not a whole one).
pub fn parse_usage_json(json: &str) -> Option<Usage> {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Details {
        cached_tokens: Option<u64>,
        audio_tokens: Option<u64>,
        image_tokens: Option<u64>,
        reasoning_tokens: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        prompt_tokens_details: Option<Details>,
        input_tokens_details: Option<Details>,
        input_token_details: Option<Details>,
        completion_tokens_details: Option<Details>,
        output_tokens_details: Option<Details>,
        cache_read_input_tokens: Option<u64>,
        cache_creation_input_tokens: Option<u64>,
    }
    let slow = || {
        serde_json::from_str::<Value>(json)
            .ok()
            .and_then(|v| parse_usage(&v))
    };
    // Only an object (serde would also fill the probe from an array).
    if !json.trim_start().starts_with('{') {
        return slow();
    }
    let Ok(p) = serde_json::from_str::<Probe>(json) else {
        return slow();
    };
    let first = |objects: [&Option<Details>; 3], pick: fn(&Details) -> Option<u64>| {
        objects.into_iter().flatten().find_map(pick)
    };
    let inputs = [
        &p.prompt_tokens_details,
        &p.input_tokens_details,
        &p.input_token_details,
    ];
    let outputs = [
        &p.completion_tokens_details,
        &p.output_tokens_details,
        &None,
    ];
    UsageFields {
        prompt: p.prompt_tokens.or(p.input_tokens),
        completion: p.completion_tokens.or(p.output_tokens),
        cached: first(inputs, |d| d.cached_tokens),
        audio_input: first(inputs, |d| d.audio_tokens),
        image_input: first(inputs, |d| d.image_tokens),
        reasoning: first(outputs, |d| d.reasoning_tokens),
        audio_output: first(outputs, |d| d.audio_tokens),
        cache_read: p.cache_read_input_tokens,
        cache_creation: p.cache_creation_input_tokens,
    }
    .usage()
}

/// Watches the events of a streamed answer for its usage, its finish reasons, and — for a
/// Longest answer id kept for `gen_ai.response.id`.
const MAX_ID: usize = 256;

/// stream that ends early — how much text was generated.
#[derive(Debug, Default, Clone)]
pub struct StreamUsage {
    /// Usage reported by the upstream, when it reported it.
    pub reported: Option<Usage>,
    /// `reported` is only a Messages stream's `message_start` (input known, output not yet):
    /// a stream cut short before its `message_delta` is charged the output seen.
    pub output_pending: bool,
    /// Characters of generated text seen so far.
    pub generated_chars: u64,
    /// Finish reasons seen, in order, deduplicated.
    pub finish_reasons: Vec<String>,
    /// The model the upstream says answered.
    pub response_model: Option<String>,
    /// The answer's `id` (a chat completion's, or a Responses `response.id`).
    pub response_id: Option<String>,
    /// The streamed text, gathered for traces when the environment captures content.
    pub text: Option<super::content::StreamText>,
    /// The API family of the answer: whose events and fields are read.
    pub family: Family,
}

impl StreamUsage {
    /// Nothing seen yet, of an answer of `family`.
    pub fn new(family: Family) -> Self {
        StreamUsage {
            family,
            ..StreamUsage::default()
        }
    }

    /// Observes one event's JSON payload: what every family's events share (the model, the
    /// answer id, a top-level `usage`), then what the family's module reads in its events.
    pub fn observe(&mut self, event: &Value) {
        if let Some(text) = self.text.as_mut() {
            text.observe(event);
        }
        if self.response_model.is_none() {
            if let Some(m) = event.get("model").and_then(Value::as_str) {
                self.response_model = Some(m.to_owned());
            }
        }
        if self.response_id.is_none() {
            if let Some(id) = event.get("id").and_then(Value::as_str) {
                self.observe_id(Some(id.to_owned()));
            }
        }
        let cumulative = matches!(self.family, Family::Messages | Family::Other)
            && super::messages::is_usage_delta(event);
        if let Some(u) = event.get("usage").filter(|u| !u.is_null()) {
            if cumulative {
                self.anthropic_delta(u);
                self.output_pending = false;
            } else if let Some(u) = parse_usage(u) {
                self.reported = Some(u);
                self.output_pending = false;
            }
        }
        for readings in self.family.readings() {
            (readings.observe_event)(self, event);
        }
    }

    /// What a complete JSON answer says about usage, model and finish reasons. Lenient: a
    /// field of an unexpected type is ignored, not the whole answer.
    pub fn from_answer(family: Family, body: &[u8]) -> StreamUsage {
        let mut seen = StreamUsage::new(family);
        let Ok(probe) = serde_json::from_slice::<AnswerProbe<'_>>(body) else {
            return seen;
        };
        seen.reported = probe.usage.and_then(|raw| parse_usage_json(raw.get()));
        seen.response_model = string_of(probe.model);
        seen.observe_id(string_of(probe.id));
        let mut reasons = Vec::new();
        for readings in family.readings() {
            (readings.answer_finish)(&probe, &mut reasons);
        }
        for r in reasons {
            seen.add_finish(&r);
        }
        seen
    }

    /// Learns the answer's id from a whole JSON answer (its top-level `id`).
    pub fn observe_id(&mut self, id: Option<String>) {
        if self.response_id.is_none() {
            self.response_id = id.filter(|id| id.len() <= MAX_ID);
        }
    }

    /// A `message_delta`'s usage: its `output_tokens` are the answer's so far (cumulative);
    /// input and cache figures, when it repeats them, replace those of `message_start`.
    fn anthropic_delta(&mut self, u: &Value) {
        let Some(delta) = parse_usage(u) else {
            return;
        };
        let mut merged = self.reported.unwrap_or_default();
        if u.get("input_tokens").is_some() {
            merged = Usage {
                completion: merged.completion,
                reasoning: merged.reasoning,
                audio_output: merged.audio_output,
                ..delta
            };
        }
        merged.completion = delta.completion;
        self.reported = Some(merged);
    }

    pub(super) fn add_finish(&mut self, reason: &str) {
        if !self.finish_reasons.iter().any(|r| r == reason) && self.finish_reasons.len() < 16 {
            self.finish_reasons.push(reason.to_owned());
        }
    }

    /// What the stream is charged: the reported usage, or — when the stream ended before the
    /// upstream reported it — the estimated prompt and the text generated so far.
    pub fn charge(&self, estimated_prompt: u64) -> Usage {
        let generated = tokens_for_chars(self.generated_chars);
        match self.reported {
            // A Messages stream cut after `message_start`: its input is known, its output is
            // what was seen.
            Some(u) if self.output_pending => Usage {
                completion: u.completion.max(generated),
                ..u
            },
            Some(u) => u,
            None => Usage::new(estimated_prompt, generated),
        }
    }
}

/// The top-level fields of a whole answer that matter here; everything else (the generated
/// text above all) is skipped without being copied or allocated.
#[derive(serde::Deserialize)]
pub(super) struct AnswerProbe<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
    /// Chat Completions, Completions.
    #[serde(borrow)]
    pub choices: Option<&'a RawValue>,
    /// The Responses API.
    #[serde(borrow)]
    pub status: Option<&'a RawValue>,
    /// Anthropic's Messages API.
    #[serde(borrow)]
    pub stop_reason: Option<&'a RawValue>,
}

/// A JSON string's value; `None` for any other JSON type.
pub(super) fn string_of(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// The estimate for a JSON request body [`estimate`] cannot read (serde_json's tree refuses a
/// lone surrogate escape such as `"\ud800"` or a number such as `1e400`): a budget must not be
/// bypassed by such a body, so it is charged by its size.
///
/// The rule: the prompt is the body's length in bytes divided by the characters per token
/// (4), rounded up, at least 1; the completion is the first output cap the top level states
/// (`max_completion_tokens`, `max_tokens`, `max_output_tokens`, as in [`estimate`]) times the
/// answers asked for ([`choices_from_text`]), else 0.
/// Every character of text [`estimate`] counts takes at least one byte of the body, and the
/// JSON around the text counts too, so this is never less than the text part of the exact
/// estimate. Real usage replaces it when the answer reports it.
pub fn estimate_from_size(body: &[u8]) -> Usage {
    let completion = members(body)
        .and_then(|members| {
            ["max_completion_tokens", "max_tokens", "max_output_tokens"]
                .iter()
                .find_map(|cap| {
                    members
                        .iter()
                        .find(|m| &*m.key == cap.as_bytes())
                        .and_then(|m| m.value.get().parse::<u64>().ok())
                })
        })
        .unwrap_or(0);
    Usage::new(
        tokens_for_chars(body.len() as u64).max(1),
        completion.saturating_mul(choices_from_text(body)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_from_json_text_reads_like_the_value() {
        for json in [
            r#"{"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12, "prompt_tokens_details": {"cached_tokens": 0}}"#,
            r#"{"input_tokens": 9, "output_tokens": 3, "input_tokens_details": {"cached_tokens": 1}}"#,
            r#"{"prompt_tokens": 2.5, "input_tokens": 7, "completion_tokens": null, "output_tokens": 1}"#,
            r#"{"prompt_tokens": -1, "completion_tokens": "3"}"#,
            r#"{"prompt_tokens": 1e2, "completion_tokens": 18446744073709551615}"#,
            r#"{"prompt_tokens": 1, "prompt_tokens": 4}"#,
            r#"{"total_tokens": 3}"#,
            r#"[1, 2]"#,
            r#"[1, 2, 3, 4]"#,
            r#"7"#,
            r#"{}"#,
        ] {
            let by_value = serde_json::from_str::<Value>(json)
                .ok()
                .and_then(|v| parse_usage(&v));
            assert_eq!(parse_usage_json(json), by_value, "{json}");
        }
    }
    use serde_json::json;

    #[test]
    fn details_are_read_for_every_provider_shape() {
        // Chat completions: cached, audio input; reasoning, audio output.
        let chat = json!({"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 6},
            "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 4,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}});
        let u = parse_usage(&chat).unwrap();
        assert_eq!((u.prompt, u.completion), (2006, 300));
        assert_eq!((u.cache_read, u.cache_write), (1920, 0));
        assert_eq!((u.audio_input, u.reasoning, u.audio_output), (6, 256, 4));
        // Responses API.
        let responses = json!({"input_tokens": 1500, "output_tokens": 700, "total_tokens": 2200,
            "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens_details": {"reasoning_tokens": 512}});
        let u = parse_usage(&responses).unwrap();
        assert_eq!(
            (u.prompt, u.completion, u.cache_read, u.reasoning),
            (1500, 700, 1024, 512)
        );
        // Transcriptions: `input_token_details` (singular), audio and text input.
        let transcription = json!({"type": "tokens", "input_tokens": 14, "output_tokens": 45,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 14}});
        assert_eq!(parse_usage(&transcription).unwrap().audio_input, 14);
        // Anthropic: input_tokens excludes cache reads and writes; prompt includes them.
        let anthropic = json!({"input_tokens": 50, "output_tokens": 20,
            "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200});
        let u = parse_usage(&anthropic).unwrap();
        assert_eq!((u.prompt, u.cache_read, u.cache_write), (1250, 1000, 200));
        // An Anthropic stream's message_start carries cache fields before any output.
        let start = json!({"input_tokens": 10, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "output_tokens": 1});
        assert_eq!(parse_usage(&start).unwrap(), Usage::new(10, 1));
        for v in [chat, responses, transcription, anthropic, start] {
            assert_eq!(parse_usage_json(&v.to_string()), parse_usage(&v), "{v}");
        }
    }

    proptest::proptest! {
        /// The quick reading agrees with the `Value` one on any object built of usage keys,
        /// detail objects and odd values.
        #[test]
        fn usage_json_agrees_with_the_value(
            fields in proptest::collection::vec((0usize..11, 0usize..8), 0..8),
            details in proptest::collection::vec((0usize..5, 0usize..4, 0usize..8), 0..5),
        ) {
            const TOP: [&str; 11] = ["prompt_tokens", "completion_tokens", "input_tokens",
                "output_tokens", "total_tokens", "cache_read_input_tokens",
                "cache_creation_input_tokens", "prompt_tokens", "model", "x", "input_tokens"];
            const OBJ: [&str; 5] = ["prompt_tokens_details", "input_tokens_details",
                "input_token_details", "completion_tokens_details", "output_tokens_details"];
            const IN: [&str; 4] = ["cached_tokens", "audio_tokens", "image_tokens", "reasoning_tokens"];
            const VAL: [&str; 8] = ["0", "7", "123456", "2.5", "-1", "\"3\"", "null", "18446744073709551615"];
            let mut parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("\"{}\": {}", TOP[*k], VAL[*v]))
                .collect();
            for (o, f, v) in &details {
                parts.push(format!("\"{}\": {{\"{}\": {}}}", OBJ[*o], IN[*f], VAL[*v]));
            }
            let json = format!("{{{}}}", parts.join(", "));
            let by_value = serde_json::from_str::<Value>(&json).ok().and_then(|v| parse_usage(&v));
            proptest::prop_assert_eq!(parse_usage_json(&json), by_value, "{}", json);
        }
    }

    #[test]
    fn messages_stream_usage_merges_start_and_delta() {
        let mut s = StreamUsage::new(Family::Other);
        s.observe(
            &json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}}}),
        );
        s.observe(&json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "a".repeat(400)}}));
        // Cut here: the input as reported, the output as seen.
        let cut = s.charge(5);
        assert_eq!((cut.prompt, cut.cache_read, cut.completion), (100, 90, 100));
        s.observe(
            &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 120}}),
        );
        let done = s.charge(5);
        assert_eq!(
            (done.prompt, done.cache_read, done.completion),
            (100, 90, 120)
        );
        assert_eq!(s.finish_reasons, ["end_turn"]);
        assert_eq!(s.response_model.as_deref(), Some("claude-x"));
        assert_eq!(s.response_id.as_deref(), Some("msg_1"));
        // A message_delta that repeats the input figures (newer API versions) replaces them.
        s.observe(&json!({"type": "message_delta", "delta": {},
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 0, "output_tokens": 130}}));
        assert_eq!(s.charge(5), Usage::new(12, 130));
    }

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
        assert_eq!(estimate(Endpoint::Responses, &r), Usage::new(3, 7));
        let c = json!({"prompt": ["abcd", "abcd"], "max_tokens": 2});
        assert_eq!(estimate(Endpoint::Completions, &c), Usage::new(2, 2));
        let m = json!({"messages": [], "max_completion_tokens": 9});
        assert_eq!(estimate(Endpoint::ChatCompletions, &m).completion, 9);
        // Every answer asked for can reach the cap.
        let n = json!({"messages": [], "max_tokens": 9, "n": 3});
        assert_eq!(estimate(Endpoint::ChatCompletions, &n).completion, 27);
        let best_of = json!({"prompt": "x", "max_tokens": 9, "n": 2, "best_of": 5});
        assert_eq!(estimate(Endpoint::Completions, &best_of).completion, 45);
        for odd in [
            json!({"n": 0}),
            json!({"n": -2}),
            json!({"n": "4"}),
            json!({"n": 2.5}),
        ] {
            assert_eq!(choices(&odd), 1, "{odd}");
        }
        let text = br#"{"model":"m","user":"\ud800","max_tokens":10,"n":4,"messages":[]}"#;
        assert_eq!(choices_from_text(text), 4);
        assert_eq!(estimate_from_size(text).completion, 40);
    }

    #[test]
    fn reads_both_usage_schemes() {
        let chat =
            json!({"usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}});
        assert_eq!(from_response(&chat), Some(Usage::new(5, 7)));
        let resp = json!({"usage": {"input_tokens": 3, "output_tokens": 4}});
        assert_eq!(from_response(&resp), Some(Usage::new(3, 4)));
        assert_eq!(from_response(&json!({})), None);
    }

    #[test]
    fn stream_usage_prefers_reported_and_falls_back_to_text() {
        let mut s = StreamUsage::new(Family::Other);
        s.observe(&json!({"model": "gpt-4o-2024", "choices": [{"index": 0, "delta": {"content": "abcdefgh"}}]}));
        assert_eq!(s.charge(10), Usage::new(10, 2));
        s.observe(&json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
        let usage_chunk =
            json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}});
        assert!(super::super::chat::is_usage_only_chunk(&usage_chunk));
        s.observe(&usage_chunk);
        assert_eq!(s.charge(10), Usage::new(11, 3));
        assert_eq!(s.finish_reasons, ["stop"]);
        assert_eq!(s.response_model.as_deref(), Some("gpt-4o-2024"));
    }

    fn asks(body: &str) -> Option<String> {
        Family::ChatCompletions
            .ask_for_stream_usage(body.as_bytes())
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn asks_for_stream_usage_only_when_missing() {
        let r = asks(r#"{"model": "m", "stream": true}"#).unwrap();
        assert_eq!(
            r,
            r#"{"stream_options":{"include_usage":true},"model": "m", "stream": true}"#
        );
        let v: Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(asks(&r), None);
        assert_eq!(
            Family::Responses.ask_for_stream_usage(br#"{"model": "m"}"#),
            None
        );
        assert_eq!(asks(r#"{"stream_options": 3}"#), None);
        assert_eq!(
            asks("{}").as_deref(),
            Some(r#"{"stream_options":{"include_usage":true}}"#)
        );
    }

    #[test]
    fn stream_options_are_edited_in_place() {
        assert_eq!(
            asks(r#"{"stream_options": {}, "model": "m"}"#).as_deref(),
            Some(r#"{"stream_options": {"include_usage":true}, "model": "m"}"#)
        );
        assert_eq!(
            asks(r#"{"stream_options": {"x": 1}}"#).as_deref(),
            Some(r#"{"stream_options": {"include_usage":true,"x": 1}}"#)
        );
        assert_eq!(
            asks(r#"{"stream_options": {"include_usage": false}}"#).as_deref(),
            Some(r#"{"stream_options": {"include_usage": true}}"#)
        );
        assert_eq!(
            asks(r#"{"stream_options": null}"#).as_deref(),
            Some(r#"{"stream_options": {"include_usage":true}}"#)
        );
        assert_eq!(asks(r#"{"stream_options": {"include_usage": true}}"#), None);
        // Duplicates: every one is set, whichever a parser keeps.
        let twice = asks(
            r#"{"stream_options": {"include_usage": true}, "stream_options": {"include_usage": 0}}"#,
        )
        .unwrap();
        assert_eq!(
            twice,
            r#"{"stream_options": {"include_usage": true}, "stream_options": {"include_usage": true}}"#
        );
    }

    #[test]
    fn bodies_serde_json_refuses_still_ask_for_usage() {
        for body in [
            r#"{"model":"m","stream":true,"user":"\ud800","messages":[]}"#,
            r#"{"model":"m","stream":true,"temperature":1e400,"messages":[]}"#,
            r#"{"model":"m","stream":true,"\udc00":1,"messages":[]}"#,
        ] {
            assert!(serde_json::from_str::<Value>(body).is_err());
            let out = asks(body).unwrap_or_else(|| panic!("{body}"));
            assert!(
                out.starts_with(r#"{"stream_options":{"include_usage":true},"model""#),
                "{out}"
            );
            assert!(out.ends_with(&body[1..]), "the rest is unchanged: {out}");
        }
        let edited = asks(r#"{"user":"\ud800","stream_options":{"include_usage":false}}"#);
        assert_eq!(
            edited.as_deref(),
            Some(r#"{"user":"\ud800","stream_options":{"include_usage":true}}"#)
        );
    }

    #[test]
    fn unreadable_bodies_are_charged_by_size() {
        let body = format!(
            r#"{{"model":"m","user":"\ud800","max_tokens":7,"messages":[{{"role":"user","content":"{}"}}]}}"#,
            "a".repeat(400)
        );
        assert!(serde_json::from_str::<Value>(&body).is_err());
        let u = estimate_from_size(body.as_bytes());
        assert_eq!(u.prompt, (body.len() as u64).div_ceil(4));
        assert_eq!(u.completion, 7);
        // Never below the exact estimate of the same text.
        let readable = body.replace(r"\ud800", "x");
        let exact = estimate(
            Endpoint::ChatCompletions,
            &serde_json::from_str(&readable).unwrap(),
        );
        assert!(u.prompt >= exact.prompt, "{u:?} {exact:?}");
        assert_eq!(estimate_from_size(b"").prompt, 1);
        assert_eq!(estimate_from_size(br#"{"max_tokens":1e400}"#).completion, 0);
    }

    #[test]
    fn responses_stream_usage() {
        let mut s = StreamUsage::new(Family::Other);
        s.observe(&json!({"type": "response.output_text.delta", "delta": "abcd"}));
        assert_eq!(s.charge(1).completion, 1);
        s.observe(&json!({"type": "response.completed", "response": {"status": "completed", "model": "m", "usage": {"input_tokens": 8, "output_tokens": 2}}}));
        assert_eq!(s.charge(1), Usage::new(8, 2));
        assert!(!super::super::chat::is_usage_only_chunk(
            &json!({"choices": [{"index": 0}], "usage": {"prompt_tokens": 1}})
        ));
    }

    #[test]
    fn json_answers() {
        let seen = StreamUsage::from_answer(Family::Other, br#"{"model":"x","choices":[{"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#);
        assert_eq!(seen.reported, Some(Usage::new(1, 2)));
        assert_eq!(seen.finish_reasons, ["length"]);
    }

    #[test]
    fn json_answers_with_odd_fields_keep_what_is_readable() {
        // A choice that is not an object, a finish reason that is not a string, a number
        // for a model: each is ignored, the rest still read.
        let seen = StreamUsage::from_answer(
            Family::Other,
            br#"{"id":"x","model":7,"choices":[3,{"finish_reason":null},{"finish_reason":"stop","message":{"content":"a \"quoted\" [text]"}},{"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":"many"}}"#,
        );
        assert_eq!(seen.response_model, None);
        assert_eq!(seen.finish_reasons, ["stop"]);
        assert_eq!(seen.reported, Some(Usage::new(5, 0)));
        // Responses API: `status` is the finish reason, input/output token names.
        let seen = StreamUsage::from_answer(
            Family::Other,
            br#"{"object":"response","model":"gpt-4o","status":"completed","output":[],"usage":{"input_tokens":3,"output_tokens":4}}"#,
        );
        assert_eq!(seen.response_model.as_deref(), Some("gpt-4o"));
        assert_eq!(seen.finish_reasons, ["completed"]);
        assert_eq!(seen.reported, Some(Usage::new(3, 4)));
        // Not JSON: nothing learned, no panic.
        let seen = StreamUsage::from_answer(Family::Other, b"<html>");
        assert!(seen.reported.is_none() && seen.finish_reasons.is_empty());
    }
}
