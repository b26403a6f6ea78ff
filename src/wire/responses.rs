//! OpenAI's Responses API (`/v1/responses`): `input` items, `output` items, and streams of typed
//! events (`{"type": "response.output_text.delta", …}`). Typed events are also how streamed
//! transcriptions and any stream of an unknown API are read.

/// Members whose base64 values are binary payloads: input audio and files, encrypted
/// reasoning (`encrypted_content`), generated images (`image_generation_call.result`,
/// `partial_image_b64`).
pub const OPAQUE_KEYS: &[&str] = &[
    "audio",
    "data",
    "encrypted_content",
    "file_data",
    "partial_image_b64",
    "result",
];
