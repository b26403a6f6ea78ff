//! Redaction on the request path: the request body before it leaves, the answer before the
//! client sees it (whole, transcript, text or streamed), and how a failure to inspect ends.

use bytes::Bytes;
use pingora_proxy::Session;

use super::context::RequestCtx;
use super::{header_str, Gateway, Stop};
use crate::openai::{ApiError, Endpoint};
use crate::redact::{
    Direction as RedactDirection, Endpoint as RedactEndpoint, RedactError, Redactor,
};
use crate::telemetry::record::{Direction as TelemetryDirection, RedactionFailure};

impl Gateway {
    /// Redacts a JSON request body under the route's policy.
    pub(super) fn redact_request(
        &self,
        ctx: &mut RequestCtx,
        redactor: &Redactor,
        endpoint: Endpoint,
        content_type: &str,
        body: Bytes,
        session: &Session,
    ) -> Result<Bytes, ApiError> {
        let Some(kind) = redact_endpoint(endpoint) else {
            return Ok(body);
        };
        if !redactor.is_active(RedactDirection::Request) {
            return Ok(body);
        }
        let encoding = header_str(session.req_header(), http::header::CONTENT_ENCODING);
        let json_type = content_type.is_empty()
            || content_type
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !json_type || !(encoding.is_empty() || encoding.eq_ignore_ascii_case("identity")) {
            ctx.record.redaction_failure = Some(RedactionFailure {
                direction: TelemetryDirection::Request,
                reason: "content_type",
            });
            return Err(ApiError::new(
                415,
                "invalid_request_error",
                "This route redacts requests, so it accepts only uncompressed `Content-Type: application/json` bodies.",
            )
            .code("unsupported_media_type"));
        }
        match redactor.redact_request(kind, &body, &mut ctx.redaction) {
            Ok(Some(rewritten)) => Ok(Bytes::from(rewritten)),
            Ok(None) => Ok(body),
            Err(e) => {
                ctx.record.redaction_failure = Some(RedactionFailure {
                    direction: TelemetryDirection::Request,
                    reason: e.code(),
                });
                Err(match &e {
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
                })
            }
        }
    }

    /// Redacts a complete JSON answer under the request's policy (and restores pseudonyms).
    pub(super) fn redact_response(
        &self,
        ctx: &mut RequestCtx,
        endpoint: Endpoint,
        body: Bytes,
        upstream: &str,
    ) -> Result<Bytes, Stop> {
        let Some(redactor) = ctx.redactor.clone() else {
            return Ok(body);
        };
        if !redactor.is_active(RedactDirection::Response) {
            return Ok(body);
        }
        let Some(kind) = redact_endpoint(endpoint) else {
            return self.redact_transcript(ctx, &redactor, body, upstream);
        };
        match redactor.redact_response(kind, &body, &mut ctx.redaction) {
            Ok(Some(rewritten)) => Ok(Bytes::from(rewritten)),
            Ok(None) => Ok(body),
            Err(e) => Err(self.response_redaction_error(ctx, &e, upstream).into()),
        }
    }

    /// A transcription or translation in JSON (`text`, and `segments[].text` in
    /// `verbose_json`): its text fields are redacted like any answer.
    pub(super) fn redact_transcript(
        &self,
        ctx: &mut RequestCtx,
        redactor: &Redactor,
        body: Bytes,
        upstream: &str,
    ) -> Result<Bytes, Stop> {
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return Err(self
                .response_redaction_error(ctx, &RedactError::InvalidUtf8, upstream)
                .into());
        };
        let mut changed = false;
        let mut fields: Vec<&mut serde_json::Value> = Vec::new();
        if let Some(obj) = value.as_object_mut() {
            for (key, v) in obj.iter_mut() {
                match (key.as_str(), v) {
                    ("text", v) => fields.push(v),
                    ("segments", serde_json::Value::Array(segments)) => {
                        fields.extend(segments.iter_mut().filter_map(|s| s.get_mut("text")));
                    }
                    _ => {}
                }
            }
        }
        for field in fields {
            if let Some(text) = field.as_str() {
                match redactor.redact_text(RedactDirection::Response, text, &mut ctx.redaction) {
                    Ok(std::borrow::Cow::Owned(t)) => {
                        *field = serde_json::Value::String(t);
                        changed = true;
                    }
                    Ok(std::borrow::Cow::Borrowed(_)) => {}
                    Err(e) => return Err(self.response_redaction_error(ctx, &e, upstream).into()),
                }
            }
        }
        if !changed {
            return Ok(body);
        }
        serde_json::to_vec(&value)
            .map(Bytes::from)
            .map_err(|_| ApiError::internal("could not re-encode the transcript").into())
    }

    /// A non-JSON answer on a redacting route: plain text is scanned whole, anything else is
    /// refused.
    pub(super) fn redact_text_response(
        &self,
        ctx: &mut RequestCtx,
        is_text: bool,
        body: Bytes,
        upstream: &str,
    ) -> Result<Bytes, Stop> {
        let Some(redactor) = ctx.redactor.clone() else {
            return Ok(body);
        };
        let text = match std::str::from_utf8(&body) {
            Ok(t) if is_text => t,
            _ => {
                return Err(self
                    .response_redaction_error(ctx, &RedactError::InvalidUtf8, upstream)
                    .into())
            }
        };
        match redactor.redact_text(RedactDirection::Response, text, &mut ctx.redaction) {
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
            direction: TelemetryDirection::Response,
            reason: e.code(),
        });
        ctx.record.status = if e.is_blocked() { 403 } else { 502 };
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
    pub(super) async fn end_stream_on_redaction_error(
        &self,
        session: &mut Session,
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
        ctx.record.status = 200;
        ctx.record.error = err.code;
        log::warn!(
            "request {}: stream ended by the redaction policy: {e}",
            ctx.request_id
        );
        session.set_keepalive(None);
        let _ = session
            .write_response_body(Some(Bytes::from(err.to_sse_event())), true)
            .await;
    }
}

/// The redactor's view of an endpoint; `None` for bodies it does not walk (audio uploads).
pub(super) fn redact_endpoint(endpoint: Endpoint) -> Option<RedactEndpoint> {
    Some(match endpoint {
        Endpoint::ChatCompletions => RedactEndpoint::ChatCompletions,
        Endpoint::Completions => RedactEndpoint::Completions,
        Endpoint::Embeddings => RedactEndpoint::Embeddings,
        Endpoint::Responses => RedactEndpoint::Responses,
        Endpoint::AudioTranscriptions | Endpoint::AudioTranslations => return None,
    })
}
