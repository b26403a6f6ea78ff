//! The wire formats of the APIs the gateway relays: one module per API family, and what every
//! family shares (SSE framing, error answers, request inspection, the usage type).
//!
//! | family ([`Family`])                          | module           | endpoints |
//! |----------------------------------------------|------------------|-----------|
//! | `ChatCompletions`, `Completions`, `Embeddings` | [`chat`]       | `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` |
//! | `Responses`                                  | [`responses`]    | `/v1/responses` |
//! | `Media`                                      | [`media`]        | `/v1/audio/*`, `/v1/images/*`, `/v1/moderations` |
//! | `Messages` (Anthropic)                       | [`messages`]     | `/v1/messages`, `/v1/messages/count_tokens` |
//! | `Other`                                      | all of them      | `paths:` routes, answers that come from no endpoint |
//!
//! Each family module owns what the rest of the crate must not know about its API:
//!
//! - its **opaque fields** (`OPAQUE_KEYS`): the member names whose base64 values are binary
//!   payloads, the only strings the redactor's walker does not scan ([`Family::opaque_keys`]);
//!   every other string is inspected, deny by default;
//! - its **usage**: how a request's tokens are estimated (`count_prompt`), where an answer and
//!   a stream report usage and finish reasons (`observe_event`, `answer_finish`);
//! - its **stream event kinds**: which events carry text in pieces, which end it
//!   ([`Family::stream_shape`], and each module's event vocabulary);
//! - its **error rendering** ([`Family::error_shape`]).
//!
//! Redaction, limits and telemetry ask a [`Family`] (or an [`Endpoint`]) these questions and
//! never match on an endpoint themselves. [`Family::Other`] — a `paths:` route, whose API the
//! gateway does not know — answers with the union of every family: every opaque table (each
//! entry still needs the opaque shape), every usage reading, typed-event streams.

pub mod chat;
pub mod content;
pub mod endpoint;
pub mod error;
pub mod media;
pub mod members;
pub mod messages;
pub mod models;
pub mod request;
pub mod responses;
pub mod sse;
pub mod usage;

pub use endpoint::Endpoint;
pub use error::{ApiError, ErrorShape};
pub use request::{inspect_json, multipart_model, replace_model, JsonRequest};

/// An API family: the shape its JSON bodies and SSE streams take on the wire. Get it from
/// [`Endpoint::family`]; what comes from no endpoint (a `paths:` route, an upload's answer) is
/// [`Family::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Family {
    /// `POST /v1/chat/completions`: `chat.completion.chunk` streams, one text per choice and
    /// tool call.
    ChatCompletions,
    /// `POST /v1/completions`: streams read like chat completions.
    Completions,
    /// `POST /v1/embeddings` (the API does not stream them).
    Embeddings,
    /// `POST /v1/responses`: typed events, every event with a text `delta` is a channel.
    Responses,
    /// Audio, images and moderations: JSON or multipart in, JSON, media or typed-event streams
    /// (streamed transcriptions, partial images) out.
    Media,
    /// `POST /v1/messages` and `/v1/messages/count_tokens` (Anthropic): content blocks,
    /// streams of `content_block_delta` events, Anthropic's error shape.
    Messages,
    /// An API the gateway does not know (a `paths:` route): every family's rules at once.
    #[default]
    Other,
}

/// How a family's stream carries text that arrives in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamShape {
    /// Chat Completions and Completions chunks: texts per choice ([`chat`]).
    Choices,
    /// Typed events (`{"type": "….delta"}`): Responses, streamed transcriptions, and any
    /// stream of an unknown API ([`responses`]).
    Typed,
    /// Anthropic's content-block events ([`messages`]).
    Blocks,
}

impl StreamShape {
    /// The shape of a stream of an unknown API ([`Family::Other`]: a `paths:` route), read
    /// from its events until one shows it: chunks with `choices` are [`StreamShape::Choices`],
    /// an event typed as one of the Messages API's content events is [`StreamShape::Blocks`],
    /// a `….delta`, `….done` or `response.…` event is [`StreamShape::Typed`]; `None` for an
    /// event that says nothing (a `ping`, an error, an untyped object), which carries no text
    /// in pieces and is read as a typed event. Texts that stream in pieces are then followed
    /// across events as on the family's own endpoint, so a value split over two events is
    /// still redacted.
    pub fn sniff(data: &str) -> Option<StreamShape> {
        #[derive(serde::Deserialize)]
        struct Probe<'a> {
            choices: Option<serde::de::IgnoredAny>,
            #[serde(rename = "type", borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        let probe = serde_json::from_str::<Probe<'_>>(data).ok()?;
        if probe.choices.is_some() {
            return Some(StreamShape::Choices);
        }
        let kind = probe.kind?;
        match messages::EventKind::of(&kind) {
            messages::EventKind::Other | messages::EventKind::End => {}
            _ => return Some(StreamShape::Blocks),
        }
        (kind.ends_with(".delta") || kind.ends_with(".done") || kind.starts_with("response."))
            .then_some(StreamShape::Typed)
    }
}

impl Family {
    /// Every family, for tables and tests.
    pub const ALL: [Family; 7] = [
        Family::ChatCompletions,
        Family::Completions,
        Family::Embeddings,
        Family::Responses,
        Family::Media,
        Family::Messages,
        Family::Other,
    ];

    /// Member names whose values are binary payloads (base64) in this family's bodies and
    /// events: a value there of 64 or more base64 characters and nothing else is not scanned.
    /// [`Family::Other`] has every family's.
    pub fn opaque_keys(self) -> &'static [&'static str] {
        match self {
            Family::ChatCompletions | Family::Completions | Family::Embeddings => chat::OPAQUE_KEYS,
            Family::Responses => responses::OPAQUE_KEYS,
            Family::Media => media::OPAQUE_KEYS,
            Family::Messages => messages::OPAQUE_KEYS,
            Family::Other => OTHER_OPAQUE_KEYS,
        }
    }

    /// How this family's streams carry text ([`Family::Other`]'s: until its first event is
    /// read with [`StreamShape::sniff`], typed events).
    pub fn stream_shape(self) -> StreamShape {
        match self {
            Family::ChatCompletions | Family::Completions => StreamShape::Choices,
            Family::Messages => StreamShape::Blocks,
            Family::Embeddings | Family::Responses | Family::Media | Family::Other => {
                StreamShape::Typed
            }
        }
    }

    /// The error shape this family's clients parse.
    pub fn error_shape(self) -> ErrorShape {
        match self {
            Family::Messages => ErrorShape::Anthropic,
            _ => ErrorShape::OpenAi,
        }
    }

    /// Whether answers carry signed thinking blocks: the gateway seals the ones it changes for
    /// the client and restores them when they come back (`redact/thinking.rs`), so that on
    /// this family a request policy alone makes the answer go through redaction.
    pub fn seals_thinking(self) -> bool {
        self == Family::Messages
    }

    /// The family modules that read this family's requests and answers: its own, or for
    /// [`Family::Other`] every family's (chat, Responses, Messages).
    fn readings(self) -> &'static [usage::Readings] {
        match self {
            Family::ChatCompletions | Family::Completions | Family::Embeddings => &[chat::READINGS],
            Family::Responses => &[responses::READINGS],
            Family::Media => &[media::READINGS],
            Family::Messages => &[messages::READINGS],
            Family::Other => &[chat::READINGS, responses::READINGS, messages::READINGS],
        }
    }

    /// A streamed request's body rewritten to ask the upstream to report usage, when this
    /// family's streams report it only when asked (Chat Completions and Completions:
    /// [`chat::ask_for_usage`]) and the client did not; `None` otherwise. The answer then
    /// carries an event the client did not ask for: [`Family::is_added_usage_event`].
    pub fn ask_for_stream_usage(self, body: &[u8]) -> Option<Vec<u8>> {
        match self.stream_shape() {
            StreamShape::Choices => chat::ask_for_usage(body),
            StreamShape::Typed | StreamShape::Blocks => None,
        }
    }

    /// Whether `event` is the usage event that [`Family::ask_for_stream_usage`] made the
    /// upstream add, which a client that did not ask for usage must not see.
    pub fn is_added_usage_event(self, event: &serde_json::Value) -> bool {
        self.stream_shape() == StreamShape::Choices && chat::is_usage_only_chunk(event)
    }
}

/// [`Family::Other`]'s opaque table: the union of the families', sorted.
const OTHER_OPAQUE_KEYS: &[&str] = &[
    "audio",
    "b64_json",
    "data",
    "embedding",
    "encrypted_content",
    "file_data",
    "partial_image_b64",
    "result",
    "signature",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_has_every_familys_opaque_keys() {
        for family in Family::ALL {
            for key in family.opaque_keys() {
                assert!(
                    OTHER_OPAQUE_KEYS.contains(key),
                    "{family:?}'s {key} is missing from Other's table"
                );
            }
        }
        let mut all: Vec<&str> = Family::ALL
            .iter()
            .filter(|f| **f != Family::Other)
            .flat_map(|f| f.opaque_keys().iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all, OTHER_OPAQUE_KEYS, "Other holds nothing no family has");
    }

    #[test]
    fn every_endpoint_has_a_known_family() {
        use Endpoint::*;
        for (endpoint, family) in [
            (ChatCompletions, Family::ChatCompletions),
            (Completions, Family::Completions),
            (Embeddings, Family::Embeddings),
            (Responses, Family::Responses),
            (AudioTranscriptions, Family::Media),
            (AudioTranslations, Family::Media),
            (AudioSpeech, Family::Media),
            (Moderations, Family::Media),
            (ImagesGenerations, Family::Media),
            (ImagesEdits, Family::Media),
            (ImagesVariations, Family::Media),
            (Messages, Family::Messages),
            (MessagesCountTokens, Family::Messages),
        ] {
            assert_eq!(endpoint.family(), family, "{endpoint:?}");
            assert_ne!(endpoint.family(), Family::Other);
        }
        assert_eq!(Messages.family().error_shape(), ErrorShape::Anthropic);
        assert_eq!(Responses.family().error_shape(), ErrorShape::OpenAi);
        assert!(MessagesCountTokens.is_free() && !Messages.is_free());
    }

    #[test]
    fn an_unknown_apis_stream_shape_is_read_from_its_events() {
        let sniff = StreamShape::sniff;
        assert_eq!(
            sniff(r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}"#),
            Some(StreamShape::Choices)
        );
        assert_eq!(
            sniff(r#"{"type":"message_start","message":{"id":"m"}}"#),
            Some(StreamShape::Blocks)
        );
        assert_eq!(
            sniff(r#"{"type":"content_block_delta","index":0,"delta":{}}"#),
            Some(StreamShape::Blocks)
        );
        for typed in [
            r#"{"type":"response.created","response":{}}"#,
            r#"{"type":"transcript.text.delta","delta":"a"}"#,
            r#"{"type":"image_generation.done"}"#,
        ] {
            assert_eq!(sniff(typed), Some(StreamShape::Typed), "{typed}");
        }
        for says_nothing in [
            r#"{"type":"ping"}"#,
            r#"{"type":"error","error":{}}"#,
            r#"{"anything":1}"#,
            r#"[1,2]"#,
            "not json",
        ] {
            assert_eq!(sniff(says_nothing), None, "{says_nothing}");
        }
    }
}
