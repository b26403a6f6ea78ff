//! What can go wrong while redacting. No variant ever carries the text being redacted.

use std::fmt;

use super::policy::Direction;
use crate::wire::sse::SseError;

/// Why a body or stream could not be redacted. The caller must not forward the original.
///
/// `Display` and `Debug` name detectors, positions and limits — never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedactError {
    /// A detector whose action is [`Block`](super::Action::Block) matched.
    #[error("{direction} blocked by redaction policy: detector `{detector}` matched")]
    Blocked {
        /// The detector's name.
        detector: String,
        /// Where it matched.
        direction: Direction,
    },
    /// The body is not UTF-8.
    #[error("body is not valid UTF-8")]
    InvalidUtf8,
    /// The body is not JSON.
    #[error("body is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The body is JSON but a field redaction reads has an unexpected type (e.g. `messages` is
    /// not an array).
    #[error("body has an unexpected shape (line {line}, column {column})")]
    UnexpectedShape {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A stream event cannot be inspected.
    #[error("stream event {event} cannot be inspected: {problem}")]
    BadEvent {
        /// 0-based index of the event in the stream.
        event: u64,
        /// What is wrong with it.
        problem: EventProblem,
    },
    /// The stream's framing is broken (an oversized event, invalid UTF-8).
    #[error("stream framing: {0}")]
    Sse(#[from] SseError),
    /// A stream opened more text channels (choices × fields) than the redactor tracks.
    #[error("stream has more than {limit} text channels")]
    TooManyChannels {
        /// The bound.
        limit: usize,
    },
    /// A line of a streamed JSON Lines body is longer than the bound.
    #[error("a line of the body is longer than {limit} bytes")]
    LineTooLong {
        /// The bound.
        limit: usize,
    },
    /// A streamed thinking block is longer than the redactor keeps to seal it.
    #[error("a thinking block is longer than {limit} bytes")]
    ThinkingTooLong {
        /// The bound.
        limit: usize,
    },
    /// The stream redactor was used after it finished or failed.
    #[error("stream redactor used after it finished or failed")]
    Finished,
    /// A bug in this crate; the body is refused rather than forwarded.
    #[error("internal redaction error: {0}")]
    Internal(&'static str),
}

/// What is wrong with a stream event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventProblem {
    /// Its data is neither JSON nor `[DONE]`.
    NotJson,
    /// Its JSON has an unexpected type in a field redaction reads.
    UnexpectedShape,
}

impl fmt::Display for EventProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventProblem::NotJson => "data is not JSON",
            EventProblem::UnexpectedShape => "unexpected JSON shape",
        })
    }
}

impl RedactError {
    /// A short machine-readable code for an OpenAI-shaped error body's `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            RedactError::Blocked { .. } => "content_blocked",
            RedactError::InvalidUtf8 => "invalid_utf8",
            RedactError::NotJson { .. } => "invalid_json",
            RedactError::UnexpectedShape { .. } => "invalid_body_shape",
            RedactError::BadEvent { .. } | RedactError::Sse(_) => "invalid_upstream_stream",
            RedactError::TooManyChannels { .. } | RedactError::ThinkingTooLong { .. } => {
                "stream_too_complex"
            }
            RedactError::LineTooLong { .. } => "line_too_long",
            RedactError::Finished | RedactError::Internal(_) => "redaction_error",
        }
    }

    /// Whether a policy decision (rather than a malformed body) caused the error.
    pub fn is_blocked(&self) -> bool {
        matches!(self, RedactError::Blocked { .. })
    }

    /// Maps a `serde_json` error without keeping its message: data errors quote values.
    pub(crate) fn from_json(e: &serde_json::Error) -> Self {
        use serde_json::error::Category as C;
        let (line, column) = (e.line(), e.column());
        match e.classify() {
            C::Syntax | C::Eof => RedactError::NotJson { line, column },
            C::Data => RedactError::UnexpectedShape { line, column },
            C::Io => RedactError::Internal("I/O error while reading JSON from memory"),
        }
    }

    /// The same error as seen in stream event `event`.
    pub(crate) fn in_event(self, event: u64) -> Self {
        match self {
            RedactError::NotJson { .. } | RedactError::InvalidUtf8 => RedactError::BadEvent {
                event,
                problem: EventProblem::NotJson,
            },
            RedactError::UnexpectedShape { .. } => RedactError::BadEvent {
                event,
                problem: EventProblem::UnexpectedShape,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_data_errors_do_not_quote_values() {
        let err = serde_json::from_str::<Vec<u8>>(r#""sk-secret-value-123""#).unwrap_err();
        assert!(
            err.to_string().contains("sk-secret-value-123"),
            "serde quotes it"
        );
        let ours = RedactError::from_json(&err);
        assert!(matches!(ours, RedactError::UnexpectedShape { .. }));
        assert!(!ours.to_string().contains("sk-secret"));
        assert!(!format!("{ours:?}").contains("sk-secret"));
    }

    #[test]
    fn syntax_errors_are_not_json() {
        let err = serde_json::from_str::<serde_json::Value>("{nope").unwrap_err();
        assert!(matches!(
            RedactError::from_json(&err),
            RedactError::NotJson { line: 1, .. }
        ));
    }

    #[test]
    fn blocked_names_detector_and_direction() {
        let e = RedactError::Blocked {
            detector: "aws_access_key".into(),
            direction: Direction::Request,
        };
        assert_eq!(
            e.to_string(),
            "request blocked by redaction policy: detector `aws_access_key` matched"
        );
        assert_eq!(e.code(), "content_blocked");
        assert!(e.is_blocked());
    }
}
