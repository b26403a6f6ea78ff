//! OpenAI's Chat Completions (`/v1/chat/completions`), Completions (`/v1/completions`) and
//! Embeddings (`/v1/embeddings`): messages with content parts, answers as `choices`, streams of
//! `chat.completion.chunk`s.

/// Members whose base64 values are binary payloads: input and output audio
/// (`input_audio.data`, `message.audio.data`), files (`file.file_data`), base64 embeddings
/// (`encoding_format: "base64"`).
pub const OPAQUE_KEYS: &[&str] = &["audio", "data", "embedding", "file_data"];
