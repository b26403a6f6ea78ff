//! Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`): `system` and
//! `messages` of content blocks, streams of content-block events, and Anthropic's own error
//! shape.

/// Members whose base64 values are binary payloads: image and document sources
/// (`source.data`), redacted thinking (`redacted_thinking.data`), thinking signatures.
pub const OPAQUE_KEYS: &[&str] = &["data", "signature"];

use serde::Serialize;

use super::ApiError;

/// The SSE event name of an error in a Messages stream (`event: error`).
pub const ERROR_EVENT: &str = "error";

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// `error` in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.
pub fn error_json(error: &ApiError) -> Vec<u8> {
    let envelope = ErrorEnvelope {
        kind: "error",
        error: ErrorBody {
            kind: error_type(error.status),
            message: &error.message,
        },
    };
    serde_json::to_vec(&envelope).unwrap_or_else(|_| {
        br#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#.to_vec()
    })
}
