//! OpenAI's audio (`/v1/audio/transcriptions`, `translations`, `speech`), images
//! (`/v1/images/generations`, `edits`, `variations`) and moderations (`/v1/moderations`):
//! multipart uploads or short JSON requests; JSON, media, or typed-event streams
//! (`transcript.text.delta`, `image_generation.partial_image`) in return.
//!
//! - Opaque fields: [`OPAQUE_KEYS`].
//! - Usage: the prompt is the text to speak, moderate or draw (`count_prompt`); uploads count
//!   nothing before the answer's usage (transcriptions report `input_tokens`).
//! - Stream events: typed events, read as the Responses API's ([`super::responses`]).
//! - Errors: OpenAI's shape.

use serde_json::Value;

use super::usage::{Readings, Tally};
use super::Endpoint;

/// Members whose base64 values are binary payloads: generated images (`b64_json`,
/// `partial_image_b64`) and audio data.
pub const OPAQUE_KEYS: &[&str] = &["b64_json", "data", "partial_image_b64"];

/// What this module reads (see [`Family::readings`](super::Family::readings)): its own
/// prompts; answers and streams as the Responses API's (typed events, `status`).
pub(super) const READINGS: Readings = Readings {
    count_prompt,
    ..super::responses::READINGS
};

/// Counts a request's prompt: the `input` (and `instructions`) of speech and moderations, the
/// `prompt` of an image; an upload (transcriptions, translations, variations) counts nothing.
pub(super) fn count_prompt(endpoint: Endpoint, request: &Value, tally: &mut Tally) {
    match endpoint {
        Endpoint::Moderations | Endpoint::AudioSpeech => {
            tally.strings(request.get("input"));
            tally.text(request.get("instructions"));
        }
        Endpoint::ImagesGenerations | Endpoint::ImagesEdits => tally.strings(request.get("prompt")),
        _ => {}
    }
}
