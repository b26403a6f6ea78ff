//! The endpoints the gateway routes by the `model` in their body, and what each one is.

use super::Family;

/// An OpenAI endpoint the gateway routes by model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/responses`
    Responses,
    /// `POST /v1/audio/transcriptions` (multipart/form-data)
    AudioTranscriptions,
    /// `POST /v1/audio/translations` (multipart/form-data)
    AudioTranslations,
    /// `POST /v1/audio/speech` (JSON in, audio out)
    AudioSpeech,
    /// `POST /v1/moderations`
    Moderations,
    /// `POST /v1/images/generations`
    ImagesGenerations,
    /// `POST /v1/images/edits` (multipart/form-data, or JSON with image URLs)
    ImagesEdits,
    /// `POST /v1/images/variations` (multipart/form-data)
    ImagesVariations,
    /// `POST /v1/messages`: Anthropic's Messages API.
    Messages,
    /// `POST /v1/messages/count_tokens`: Anthropic's token counting.
    MessagesCountTokens,
}

impl Endpoint {
    /// The endpoint served at `path` (without query string), if any.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.strip_suffix('/').unwrap_or(path);
        Some(match path {
            "/v1/chat/completions" => Endpoint::ChatCompletions,
            "/v1/completions" => Endpoint::Completions,
            "/v1/embeddings" => Endpoint::Embeddings,
            "/v1/responses" => Endpoint::Responses,
            "/v1/audio/transcriptions" => Endpoint::AudioTranscriptions,
            "/v1/audio/translations" => Endpoint::AudioTranslations,
            "/v1/audio/speech" => Endpoint::AudioSpeech,
            "/v1/moderations" => Endpoint::Moderations,
            "/v1/images/generations" => Endpoint::ImagesGenerations,
            "/v1/images/edits" => Endpoint::ImagesEdits,
            "/v1/images/variations" => Endpoint::ImagesVariations,
            "/v1/messages" => Endpoint::Messages,
            "/v1/messages/count_tokens" => Endpoint::MessagesCountTokens,
            _ => return None,
        })
    }

    /// The path below the SDK base URL, e.g. `chat/completions`.
    pub fn rest(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::AudioTranscriptions => "audio/transcriptions",
            Endpoint::AudioTranslations => "audio/translations",
            Endpoint::AudioSpeech => "audio/speech",
            Endpoint::Moderations => "moderations",
            Endpoint::ImagesGenerations => "images/generations",
            Endpoint::ImagesEdits => "images/edits",
            Endpoint::ImagesVariations => "images/variations",
            Endpoint::Messages => "messages",
            Endpoint::MessagesCountTokens => "messages/count_tokens",
        }
    }

    /// The GenAI semantic-convention operation name.
    pub fn operation(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions | Endpoint::Responses | Endpoint::Messages => "chat",
            // Not among the GenAI conventions' well-known names.
            Endpoint::MessagesCountTokens => "count_tokens",
            Endpoint::Completions => "text_completion",
            Endpoint::Embeddings => "embeddings",
            Endpoint::AudioTranscriptions => "transcription",
            Endpoint::AudioTranslations => "translation",
            // Not among the GenAI conventions' well-known names; custom names are allowed.
            Endpoint::AudioSpeech => "text_to_speech",
            Endpoint::Moderations => "moderation",
            Endpoint::ImagesGenerations => "image_generation",
            Endpoint::ImagesEdits => "image_edit",
            Endpoint::ImagesVariations => "image_variation",
        }
    }

    /// Whether the body is multipart/form-data: always on the audio uploads and image
    /// variations; on image edits when the client sends the image as a file (the API also
    /// takes JSON with image URLs there).
    pub fn is_multipart(self, content_type: &str) -> bool {
        match self {
            Endpoint::AudioTranscriptions
            | Endpoint::AudioTranslations
            | Endpoint::ImagesVariations => true,
            Endpoint::ImagesEdits => content_type
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data")),
            _ => false,
        }
    }

    /// The model OpenAI uses when a request names none, where `model` is optional: such a
    /// request is routed as if it named this one.
    pub fn default_model(self) -> Option<&'static str> {
        match self {
            Endpoint::Moderations => Some("omni-moderation-latest"),
            Endpoint::ImagesGenerations | Endpoint::ImagesEdits | Endpoint::ImagesVariations => {
                Some("dall-e-2")
            }
            _ => None,
        }
    }

    /// Whether a successful answer is binary media rather than JSON or a stream: the audio of
    /// `/v1/audio/speech`. Such an answer (`audio/*` or `application/octet-stream`) is the one
    /// kind of answer body the gateway relays without reading it.
    pub fn answers_binary(self) -> bool {
        self == Endpoint::AudioSpeech
    }

    /// The API family whose module knows its bodies, streams, usage and errors.
    pub fn family(self) -> Family {
        match self {
            Endpoint::ChatCompletions => Family::ChatCompletions,
            Endpoint::Completions => Family::Completions,
            Endpoint::Embeddings => Family::Embeddings,
            Endpoint::Responses => Family::Responses,
            Endpoint::Messages | Endpoint::MessagesCountTokens => Family::Messages,
            Endpoint::AudioTranscriptions
            | Endpoint::AudioTranslations
            | Endpoint::AudioSpeech
            | Endpoint::Moderations
            | Endpoint::ImagesGenerations
            | Endpoint::ImagesEdits
            | Endpoint::ImagesVariations => Family::Media,
        }
    }

    /// Whether a request costs nothing and is charged nothing (Anthropic's token counting):
    /// it is admitted like any other, but reserves no tokens and no dollars.
    pub fn is_free(self) -> bool {
        self == Endpoint::MessagesCountTokens
    }
}
