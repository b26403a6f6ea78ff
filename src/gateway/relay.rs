//! The answer's way back: how an upstream answer is relayed ([`decide`], a pure function of
//! its status, media type and the route's policy), then relaying it — whole answers read,
//! inspected and written with a new length; streams event by event as they arrive.

use std::time::Instant;

use bytes::Bytes;
use pingora_http::ResponseHeader;

use super::admission::Estimate;
use super::attempts::error_reason;
use super::context::RequestCtx;
use super::downstream::Downstream;
use super::observe::StreamObserver;
use super::pipeline::Pipeline;
use super::transport::{Answer, Transport};
use super::{scrub, upstream, Stop};
use crate::config::Upstream;
use crate::redact::{Direction, Redactor};
use crate::wire::usage::StreamUsage;
use crate::wire::{self, ApiError, Family};

/// Largest non-streamed answer the gateway reads whole (to inspect it).
pub const MAX_WHOLE_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// How one answer is relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    /// A server-sent event stream (`text/event-stream`).
    pub sse: bool,
    /// A JSON document (`application/json`, `*+json`).
    pub json: bool,
    /// The route's policy inspects the answer.
    pub redacting: bool,
    /// Read whole before a byte goes out (else relayed as it arrives).
    pub whole: bool,
}

/// How an answer of `status` and `content_type` is relayed under `policy` (the route's, `None`
/// when it inspects nothing). `binary_answer`: the endpoint answers with media
/// (`/v1/audio/speech`).
///
/// - Read whole: JSON answers (usage, inspection), any answer on a redacting route that is not
///   a stream (text is scanned, anything else refused), and every error answer (an upstream
///   may echo its key, or the request, in it).
/// - Relayed unread: a successful `audio/*` or `application/octet-stream` answer from an
///   endpoint that answers with media — the one body never inspected.
/// - Where answers carry signed thinking blocks ([`Family::seals_thinking`]: the Messages API)
///   a request policy alone redacts the answer: thinking blocks it would change on their way
///   back are sealed (`redact/thinking.rs`).
pub fn decide(
    status: u16,
    content_type: &str,
    binary_answer: bool,
    family: Family,
    policy: Option<&Redactor>,
) -> Relay {
    let sse = content_type.starts_with("text/event-stream");
    let json = content_type.starts_with("application/json")
        || content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim_end().ends_with("+json"));
    let success = (200..300).contains(&status);
    let binary_media = binary_answer
        && success
        && (content_type.starts_with("audio/")
            || content_type.starts_with("application/octet-stream"));
    let redacting = !binary_media
        && policy.is_some_and(|r| {
            r.is_active(Direction::Response)
                || (family.seals_thinking() && r.is_active(Direction::Request))
        });
    Relay {
        sse,
        json,
        redacting,
        whole: !sse && (json || redacting || !success),
    }
}

impl<T: Transport> Pipeline<T> {
    /// Sends the upstream answer to the client: streams as they arrive, JSON answers whole.
    pub(super) async fn relay<D: Downstream>(
        &self,
        client: &mut D,
        ctx: &mut RequestCtx,
        upstream: &Upstream,
        answer: &mut T::Answer,
        estimate: &mut Estimate,
        family: Family,
    ) -> Result<(), Stop> {
        let Some(upstream_header) = answer.header() else {
            return Err(ApiError::bad_gateway(&upstream.name, "no response header").into());
        };
        let status = upstream_header.status.as_u16();
        let content_type = upstream_header
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let how = decide(
            status,
            content_type,
            ctx.binary_answer,
            family,
            ctx.redactor.as_deref(),
        );
        let success = (200..300).contains(&status);
        // JSON answers get a new length after inspection; streams are re-framed event by event
        // (redaction, the hidden usage chunk), so they always go out chunked.
        let mut header =
            upstream::response_header(upstream_header, &ctx.request_id, how.json || how.sse)
                .map_err(|_| ApiError::internal("could not relay the upstream answer"))?;
        if how.sse {
            let _ = header.insert_header(http::header::TRANSFER_ENCODING, "chunked");
        }
        for (name, value) in &ctx.rate_headers {
            let _ = header.insert_header(*name, value.as_str());
        }

        if how.whole {
            let body = match answer.read_to_end(MAX_WHOLE_ANSWER_BYTES).await {
                Ok(body) => body,
                Err(e) => {
                    return Err(e.to_api_error(&upstream.name).into());
                }
            };
            mark_first_token(ctx);
            if success && how.json {
                let seen = StreamUsage::from_answer(family, &body);
                self.account(ctx, &seen, estimate);
            }
            let body = scrub::KeyScrubber::new(upstream).whole(body);
            let body = match (how.redacting, how.json) {
                (false, _) => body,
                (true, true) => {
                    let redacted =
                        self.redact_response(ctx, family, body.clone(), &upstream.name)?;
                    if redacted != body && success {
                        // Traces carry the answer's model and id: as the client sees them.
                        let seen = StreamUsage::from_answer(family, &redacted);
                        ctx.record.response.model = seen.response_model;
                        ctx.record.response.id = seen.response_id;
                    }
                    redacted
                }
                (true, false) => self.redact_text_response(ctx, body, &upstream.name)?,
            };
            if success {
                if let Some(content) = ctx.record.content.as_mut() {
                    content.output = wire::content::output_messages(&body).unwrap_or_default();
                }
            }
            return write_whole(client, header, body).await;
        }

        if how.sse && how.redacting {
            let _ = header.remove_header(&http::header::CONTENT_LENGTH);
        }
        if client.write_header(Box::new(header)).await.is_err() {
            return Err(Stop::ClientGone);
        }
        let mut observer = StreamObserver::new(family, ctx.strip_usage_chunk);
        if ctx.record.content.is_some() {
            observer.usage.text = Some(wire::content::StreamText::default());
        }
        let mut stream_redactor = match &ctx.redactor {
            Some(r) if how.redacting && how.sse => Some(r.stream(family)),
            _ => None,
        };
        // Last before the client: the upstream's own key, whatever the policy.
        let mut scrubber = scrub::KeyScrubber::new(upstream);
        // The request body is kept only until the stream is under way (see below).
        let mut settled = false;
        loop {
            let next = tokio::select! {
                next = answer.next_chunk() => next,
                () = client.gone() => {
                    self.account(ctx, &observer.usage, estimate);
                    return Err(Stop::ClientGone);
                }
            };
            match next {
                Ok(Some(chunk)) => {
                    if !how.sse || memchr::memmem::find(&chunk, b"data:").is_some() {
                        mark_first_token(ctx);
                    }
                    // One framing of the stream: the redactor's, or else the observer's.
                    let chunk = match stream_redactor.as_mut() {
                        Some(sr) => match sr.push_events(&chunk, &mut ctx.redaction) {
                            Ok(events) => Bytes::from(observer.emit(events)),
                            Err(e) => {
                                self.end_stream_on_redaction_error(client, ctx, &e).await;
                                self.account(ctx, &observer.usage, estimate);
                                return Ok(());
                            }
                        },
                        None if how.sse => Bytes::from(observer.feed(&chunk)),
                        None => chunk,
                    };
                    let chunk = scrubber.push(chunk);
                    if chunk.is_empty() {
                        continue;
                    }
                    if client.write_body(Some(chunk), false).await.is_err() {
                        self.account(ctx, &observer.usage, estimate);
                        return Err(Stop::ClientGone);
                    }
                    if !settled {
                        // Once the first piece is out (not before: it would delay it), the
                        // token estimate is made and the request body it was kept for goes,
                        // with its share of `max_buffered_bytes`: an open stream holds no
                        // copy of its request.
                        settled = true;
                        estimate.get();
                        ctx.buffered.release();
                    }
                }
                Ok(None) => {
                    let mut rest = Vec::new();
                    if let Some(sr) = stream_redactor.as_mut() {
                        match sr.finish_events(&mut ctx.redaction) {
                            Ok(events) => rest = observer.emit(events),
                            Err(e) => {
                                self.end_stream_on_redaction_error(client, ctx, &e).await;
                                self.account(ctx, &observer.usage, estimate);
                                return Ok(());
                            }
                        }
                    }
                    if how.sse {
                        self.account(ctx, &observer.usage, estimate);
                        rest.extend_from_slice(&observer.finish());
                    }
                    let mut rest = scrubber.push(Bytes::from(rest)).to_vec();
                    rest.extend_from_slice(&scrubber.finish());
                    if !rest.is_empty()
                        && client
                            .write_body(Some(Bytes::from(rest)), false)
                            .await
                            .is_err()
                    {
                        return Err(Stop::ClientGone);
                    }
                    let _ = client.write_body(None, true).await;
                    return Ok(());
                }
                Err(e) => {
                    log::warn!(
                        "request {}: upstream {} broke off mid-response: {e}",
                        ctx.request_id,
                        upstream.name
                    );
                    if let Some(attempt) = ctx.record.attempts.last_mut() {
                        attempt.error = Some(error_reason(&e));
                    }
                    ctx.record.error = Some("upstream_broke_off");
                    client.close_after();
                    // Text held back for redaction is released (redacted) before the error.
                    let mut rest = Vec::new();
                    if let Some(sr) = stream_redactor.as_mut() {
                        if let Ok(events) = sr.finish_events(&mut ctx.redaction) {
                            rest = observer.emit(events);
                        }
                    }
                    let mut rest = scrubber.push(Bytes::from(rest)).to_vec();
                    rest.extend_from_slice(&scrubber.finish());
                    if !rest.is_empty() {
                        let _ = client.write_body(Some(Bytes::from(rest)), false).await;
                    }
                    if how.sse {
                        self.account(ctx, &observer.usage, estimate);
                        let event = e.to_api_error(&upstream.name).to_sse_event_in(ctx.shape);
                        let _ = client.write_body(Some(Bytes::from(event)), true).await;
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// Notes when the first content of the answer arrived (once per attempt): the time to first
/// token of a stream, not of its header.
fn mark_first_token(ctx: &mut RequestCtx) {
    if let Some(attempt) = ctx.record.attempts.last_mut() {
        attempt.first_token.get_or_insert_with(Instant::now);
    }
}

/// Answers with a whole body of known length.
async fn write_whole<D: Downstream>(
    client: &mut D,
    mut header: ResponseHeader,
    body: Bytes,
) -> Result<(), Stop> {
    header
        .insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
        .map_err(|_| ApiError::internal("could not relay the upstream answer"))?;
    if client.write_header(Box::new(header)).await.is_err()
        || client.write_body(Some(body), true).await.is_err()
    {
        return Err(Stop::ClientGone);
    }
    Ok(())
}
