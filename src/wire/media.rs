//! OpenAI's audio (`/v1/audio/transcriptions`, `translations`, `speech`), images
//! (`/v1/images/generations`, `edits`, `variations`) and moderations (`/v1/moderations`):
//! multipart uploads or short JSON requests; JSON, media, or typed-event streams
//! (`transcript.text.delta`, `image_generation.partial_image`) in return.

/// Members whose base64 values are binary payloads: generated images (`b64_json`,
/// `partial_image_b64`) and audio data.
pub const OPAQUE_KEYS: &[&str] = &["b64_json", "data", "partial_image_b64"];
