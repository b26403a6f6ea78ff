//! Redaction on the request path: the request body before it leaves, the answer before the
//! client sees it (whole, transcript, text or streamed), and how a failure to inspect ends.

use bytes::Bytes;

use super::context::RequestCtx;
use super::downstream::Downstream;
use super::pipeline::Pipeline;
use super::transport::Transport;
use super::Stop;
use crate::redact::{Direction as RedactDirection, RedactError, Redactor};
use crate::telemetry::record::RedactionFailure;
use crate::wire::{ApiError, Family};

impl<T: Transport> Pipeline<T> {
    /// Redacts a request body under the route's policy: every string of a JSON body, every
    /// text field of a multipart form (the file parts are binary and stay as they are).
    pub(super) fn redact_request(
        &self,
        ctx: &mut RequestCtx,
        redactor: &Redactor,
        multipart: bool,
        content_type: &str,
        body: Bytes,
        content_encoding: &str,
    ) -> Result<Bytes, ApiError> {
        if !redactor.is_active(RedactDirection::Request) {
            return Ok(body);
        }
        if !(content_encoding.is_empty() || content_encoding.eq_ignore_ascii_case("identity")) {
            return Err(unsupported_media(ctx));
        }
        if multipart {
            return self.redact_form(ctx, redactor, content_type, body);
        }
        let json_type = content_type.is_empty()
            || content_type
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !json_type {
            return Err(unsupported_media(ctx));
        }
        // Request bodies are walked alike whatever the endpoint.
        match redactor.redact_request(Family::Other, &body, &mut ctx.redaction) {
            Ok(Some(rewritten)) => Ok(Bytes::from(rewritten)),
            Ok(None) => Ok(body),
            Err(e) => {
                ctx.record.redaction_failure = Some(RedactionFailure {
                    direction: RedactDirection::Request,
                    reason: e.code(),
                });
                Err(request_refusal(&e))
            }
        }
    }

    /// The body of a request on an inspected `paths:` route, by its media type: JSON walked,
    /// a multipart form part by part, JSON Lines line by line, any other UTF-8 text scanned
    /// whole; a binary body cannot be inspected and is refused (the route can say
    /// `inspect: false`).
    pub(super) fn redact_pass_through(
        &self,
        ctx: &mut RequestCtx,
        redactor: &Redactor,
        content_type: &str,
        body: Bytes,
        content_encoding: &str,
    ) -> Result<Bytes, ApiError> {
        if body.is_empty() || !redactor.is_active(RedactDirection::Request) {
            return Ok(body);
        }
        if !(content_encoding.is_empty() || content_encoding.eq_ignore_ascii_case("identity")) {
            return Err(unsupported_media(ctx));
        }
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media == "multipart/form-data" {
            return self.redact_form(ctx, redactor, content_type, body);
        }
        let result = if media == "application/json" || media.ends_with("+json") {
            redactor
                .redact_request(Family::Other, &body, &mut ctx.redaction)
                .map(|out| out.map(Bytes::from))
        } else {
            let Ok(text) = std::str::from_utf8(&body) else {
                ctx.record.redaction_failure = Some(RedactionFailure {
                    direction: RedactDirection::Request,
                    reason: "content_type",
                });
                return Err(ApiError::new(
                    415,
                    "invalid_request_error",
                    format!(
                        "This route inspects request bodies for redaction, and this one is binary (`{}`), so it was not forwarded. To proxy such bodies unread, set `inspect: false` on the route.",
                        crate::wire::error::echo(&media)
                    ),
                )
                .code("unsupported_media_type"));
            };
            redact_text_body(redactor, RedactDirection::Request, text, &mut ctx.redaction).map(
                |out| match out {
                    std::borrow::Cow::Borrowed(_) => None,
                    std::borrow::Cow::Owned(t) => Some(Bytes::from(t)),
                },
            )
        };
        match result {
            Ok(Some(rewritten)) => Ok(rewritten),
            Ok(None) => Ok(body),
            Err(e) => {
                ctx.record.redaction_failure = Some(RedactionFailure {
                    direction: RedactDirection::Request,
                    reason: e.code(),
                });
                Err(request_refusal(&e))
            }
        }
    }

    /// The parts of a multipart form (`prompt`, `language`, … and any file whose bytes are
    /// text), scanned as text and spliced back; binary files (the audio) stay byte for byte.
    fn redact_form(
        &self,
        ctx: &mut RequestCtx,
        redactor: &Redactor,
        content_type: &str,
        body: Bytes,
    ) -> Result<Bytes, ApiError> {
        let Some(parts) = crate::wire::request::multipart_parts(content_type, &body) else {
            return Err(ApiError::invalid_request(
                "The multipart/form-data body could not be read, so it was not forwarded.",
            )
            .code("invalid_multipart"));
        };
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        for part in &parts {
            let Ok(text) = std::str::from_utf8(&body[part.value.clone()]) else {
                // A binary file (the audio) is opaque; a text field must be readable.
                if part.is_file {
                    continue;
                }
                ctx.record.redaction_failure = Some(RedactionFailure {
                    direction: RedactDirection::Request,
                    reason: "invalid_utf8",
                });
                return Err(ApiError::invalid_request(
                    "A text field of the multipart form is not UTF-8, so it could not be inspected for redaction and was not forwarded.",
                )
                .code("invalid_utf8"));
            };
            match redact_text_body(redactor, RedactDirection::Request, text, &mut ctx.redaction) {
                Ok(std::borrow::Cow::Borrowed(_)) => {}
                Ok(std::borrow::Cow::Owned(new)) => {
                    let o = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
                    o.extend_from_slice(&body[copied..part.value.start]);
                    o.extend_from_slice(new.as_bytes());
                    copied = part.value.end;
                }
                Err(e) => {
                    ctx.record.redaction_failure = Some(RedactionFailure {
                        direction: RedactDirection::Request,
                        reason: e.code(),
                    });
                    return Err(request_refusal(&e));
                }
            }
        }
        Ok(match out {
            None => body,
            Some(mut o) => {
                o.extend_from_slice(&body[copied..]);
                Bytes::from(o)
            }
        })
    }

    /// Redacts a complete JSON answer under the request's policy (and restores pseudonyms).
    pub(super) fn redact_response(
        &self,
        ctx: &mut RequestCtx,
        kind: Family,
        body: Bytes,
        upstream: &str,
    ) -> Result<Bytes, Stop> {
        let Some(redactor) = ctx.redactor.clone() else {
            return Ok(body);
        };
        let redacted = if redactor.is_active(RedactDirection::Response) {
            match redactor.redact_response(kind, &body, &mut ctx.redaction) {
                Ok(Some(rewritten)) => Bytes::from(rewritten),
                Ok(None) => body.clone(),
                Err(e) => return Err(self.response_redaction_error(ctx, &e, upstream).into()),
            }
        } else {
            body.clone()
        };
        // Signed thinking blocks (the Messages API) changed for the client, or that the request
        // policy would change on their way back, carry a sealed signature (redact/thinking.rs).
        if kind.seals_thinking() {
            match redactor.seal_thinking(&body, &redacted) {
                Ok(Some(sealed)) => return Ok(Bytes::from(sealed)),
                Ok(None) => {}
                Err(e) => return Err(self.response_redaction_error(ctx, &e, upstream).into()),
            }
        }
        Ok(redacted)
    }

    /// A non-JSON answer on a redacting route (text, an HTML error page, a transcript in SRT):
    /// any UTF-8 body is scanned whole as text; a binary one is refused.
    pub(super) fn redact_text_response(
        &self,
        ctx: &mut RequestCtx,
        body: Bytes,
        upstream: &str,
    ) -> Result<Bytes, Stop> {
        let Some(redactor) = ctx.redactor.clone() else {
            return Ok(body);
        };
        let text = match std::str::from_utf8(&body) {
            Ok(t) => t,
            Err(_) => {
                return Err(self
                    .response_redaction_error(ctx, &RedactError::InvalidUtf8, upstream)
                    .into())
            }
        };
        match redact_text_body(
            &redactor,
            RedactDirection::Response,
            text,
            &mut ctx.redaction,
        ) {
            Ok(std::borrow::Cow::Borrowed(_)) => Ok(body),
            Ok(std::borrow::Cow::Owned(t)) => Ok(Bytes::from(t)),
            Err(e) => Err(self.response_redaction_error(ctx, &e, upstream).into()),
        }
    }

    pub(super) fn response_redaction_error(
        &self,
        ctx: &mut RequestCtx,
        e: &RedactError,
        upstream: &str,
    ) -> ApiError {
        ctx.record.redaction_failure = Some(RedactionFailure {
            direction: RedactDirection::Response,
            reason: e.code(),
        });
        match e {
            RedactError::Blocked { detector, .. } => ApiError::new(
                403,
                "permission_error",
                format!("The answer was withheld by this gateway's data policy: it contained data matched by the `{detector}` detector."),
            )
            .code("content_blocked"),
            other => ApiError::new(
                502,
                "api_error",
                format!("The answer from upstream `{upstream}` could not be inspected for redaction ({other}), so it was not forwarded."),
            )
            .code(other.code()),
        }
    }

    /// Ends a stream whose next event could not be redacted (or was blocked) with an error
    /// event: nothing unredacted goes out.
    pub(super) async fn end_stream_on_redaction_error<D: Downstream>(
        &self,
        client: &mut D,
        ctx: &mut RequestCtx,
        e: &RedactError,
    ) {
        let upstream = ctx
            .record
            .attempts
            .last()
            .map(|a| a.upstream.clone())
            .unwrap_or_default();
        let err = self.response_redaction_error(ctx, e, &upstream);
        ctx.record.error = err.code;
        log::warn!(
            "request {}: stream ended by the redaction policy: {e}",
            ctx.request_id
        );
        client.close_after();
        let _ = client
            .write_body(Some(Bytes::from(err.to_sse_event_in(ctx.shape))), true)
            .await;
    }
}

fn unsupported_media(ctx: &mut RequestCtx) -> ApiError {
    ctx.record.redaction_failure = Some(RedactionFailure {
        direction: RedactDirection::Request,
        reason: "content_type",
    });
    ApiError::new(
        415,
        "invalid_request_error",
        "This route redacts requests, so it accepts only uncompressed `Content-Type: application/json` bodies (multipart/form-data on the audio and image upload endpoints).",
    )
    .code("unsupported_media_type")
}

/// A text body: JSON Lines (a batch file: every non-empty line a JSON document) walked line by
/// line like any JSON body; any other text scanned whole.
///
/// # Errors
///
/// What the redactor fails with.
fn redact_text_body<'t>(
    redactor: &Redactor,
    direction: RedactDirection,
    text: &'t str,
    cx: &mut crate::redact::RequestRedaction,
) -> Result<std::borrow::Cow<'t, str>, RedactError> {
    let jsonl = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim_start().starts_with('{'));
    if !jsonl {
        return redactor.redact_text(direction, text, cx);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        if body.trim().is_empty() {
            out.push_str(line);
            continue;
        }
        let redacted = match direction {
            RedactDirection::Request => redactor.redact_request(Family::Other, body.as_bytes(), cx),
            RedactDirection::Response => {
                redactor.redact_response(Family::Other, body.as_bytes(), cx)
            }
        };
        match redacted {
            Ok(None) => out.push_str(line),
            Ok(Some(new)) => {
                changed = true;
                out.push_str(&String::from_utf8_lossy(&new));
                out.push_str(&line[body.len()..]);
            }
            // Not JSON Lines after all: the whole text, as text.
            Err(RedactError::NotJson { .. } | RedactError::UnexpectedShape { .. }) => {
                return redactor.redact_text(direction, text, cx);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(if changed {
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(text)
    })
}

/// The client's error for a request the redactor refused.
pub(super) fn request_refusal(e: &RedactError) -> ApiError {
    match e {
        RedactError::Blocked { detector, .. } => ApiError::new(
            400,
            "invalid_request_error",
            format!(
                "The request was blocked by this gateway's data policy: it contains data matched by the `{detector}` detector. Remove it and try again."
            ),
        )
        .code("content_blocked"),
        other => ApiError::invalid_request(format!(
            "The request body could not be inspected for redaction ({other}), so it was not forwarded."
        ))
        .code(other.code()),
    }
}
