//! Uploads on inspected `paths:` routes, streamed through redaction instead of read whole: a
//! batch file of any size goes through with bounded memory.
//!
//! A body is streamed when it is JSON Lines, text or a multipart form, and is either larger than
//! [`STREAM_ABOVE`] or of unknown length (chunked). Smaller bodies are read whole as before, so
//! the route's retries and fallbacks can send them again; a streamed body can be sent once, so
//! it gets another upstream only when connecting failed (before any of it was read). A JSON
//! document (`application/json`) is always read whole: it is walked as one value (JSON in its
//! strings, member keys as context).
//!
//! Bounds: the raw body by `max_body_bytes` (413), one JSON line by [`MAX_LINE`], and what a
//! stream holds back counts in `max_buffered_bytes` like any buffered body (503 beyond).

use super::body::{self, Reservation};
use super::downstream::{Downstream, ReadError};
use crate::redact::{BodyStream, Direction, RedactError, Redactor, RequestRedaction};
use crate::telemetry::record::RedactionFailure;
use crate::wire::ApiError;
use bytes::Bytes;
use futures_util::StreamExt;

/// Bodies larger than this (or of unknown length) are streamed.
pub const STREAM_ABOVE: usize = 1024 * 1024;

/// Longest line of a streamed JSON Lines body (one batch request).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// What the request's media type makes of it, when it is streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// JSON Lines or text.
    Plain,
    /// `multipart/form-data`.
    Form,
}

/// Whether this request's body is streamed, and how it is read.
pub fn shape<D: Downstream>(client: &D, media: &str) -> Option<Shape> {
    let shape = if media == "multipart/form-data" {
        Shape::Form
    } else if media.starts_with("text/")
        || matches!(
            media,
            "application/jsonl"
                | "application/x-ndjson"
                | "application/x-jsonlines"
                | "application/jsonlines"
        )
    {
        Shape::Plain
    } else {
        return None;
    };
    let declared = client.declared_length();
    let chunked = client
        .req_header()
        .headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let large = declared.is_some_and(|n| n > STREAM_ABOVE as u64);
    (large || (declared.is_none() && chunked)).then_some(shape)
}

/// The client's body, piece by piece, within `max_body_bytes` and the client timeout.
struct ClientBody<'a, D> {
    client: &'a mut D,
    limit: usize,
    read: usize,
    timeout: std::time::Duration,
    started: bool,
}

impl<D: Downstream> ClientBody<'_, D> {
    async fn next(&mut self) -> Result<Option<Bytes>, ApiError> {
        if !self.started {
            self.started = true;
            if self
                .client
                .declared_length()
                .is_some_and(|n| n > self.limit as u64)
            {
                return Err(ApiError::body_too_large(self.limit));
            }
            if self.client.expects_continue() {
                self.client
                    .write_continue()
                    .await
                    .map_err(|_| body::read_failed())?;
            }
            self.client.set_read_timeout(self.timeout);
        }
        match self.client.read_body().await {
            Err(ReadError::TimedOut) => Err(body::timed_out(self.timeout)),
            Err(ReadError::Failed) => Err(body::read_failed()),
            Ok(None) => Ok(None),
            Ok(Some(chunk)) => {
                self.read += chunk.len();
                if self.read > self.limit {
                    return Err(ApiError::body_too_large(self.limit));
                }
                Ok(Some(chunk))
            }
        }
    }
}

/// The error a multipart reader carries for a client body that failed.
#[derive(Debug)]
struct ClientError(ApiError);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for ClientError {}

/// How one form part's content goes through.
enum Part {
    /// Nothing of it seen yet.
    Undecided { file: bool },
    /// A file whose bytes are not text (an image, a PDF): forwarded as it is.
    Opaque,
    /// Text (or JSON Lines), redacted as it streams.
    Text(BodyStream),
}

// One per upload, never moved around: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Reader<'a, D> {
    Plain {
        client: ClientBody<'a, D>,
        redact: BodyStream,
        ended: bool,
    },
    Form {
        form: multer::Multipart<'a>,
        delimiter: String,
        part: Option<(multer::Field<'a>, Part)>,
        ended: bool,
    },
}

/// A streamed upload: the client's body, redacted, as the upstream is sent it.
pub struct Upload<'a, D> {
    reader: Reader<'a, D>,
    redactor: Redactor,
    cx: &'a mut RequestRedaction,
    failure: &'a mut Option<RedactionFailure>,
    reservation: &'a mut Reservation,
    cap: usize,
    /// Whether any of the client's body has been asked for.
    pub started: bool,
}

/// What [`Upload::new`] needs besides the client.
pub struct Limits<'a> {
    /// `max_body_bytes`.
    pub body: usize,
    /// The client timeout.
    pub timeout: std::time::Duration,
    /// `max_buffered_bytes` and this request's share of it.
    pub cap: usize,
    /// This request's share of the buffered bytes.
    pub reservation: &'a mut Reservation,
}

impl<'a, D: Downstream> Upload<'a, D> {
    /// An upload of `shape` read from `client`.
    ///
    /// # Errors
    /// A 400 when a form has no boundary.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: &'a mut D,
        shape: Shape,
        content_type: &str,
        redactor: &Redactor,
        cx: &'a mut RequestRedaction,
        failure: &'a mut Option<RedactionFailure>,
        limits: Limits<'a>,
    ) -> Result<Upload<'a, D>, ApiError> {
        let client = ClientBody {
            client,
            limit: limits.body,
            read: 0,
            timeout: limits.timeout,
            started: false,
        };
        let reader = match shape {
            Shape::Plain => Reader::Plain {
                client,
                redact: redactor.body_stream(Direction::Request, MAX_LINE),
                ended: false,
            },
            Shape::Form => {
                let boundary = multer::parse_boundary(content_type).map_err(|_| {
                    ApiError::invalid_request(
                        "A multipart/form-data upload needs a boundary in its Content-Type.",
                    )
                    .code("invalid_content_type")
                })?;
                let source = futures_util::stream::unfold(client, |mut c| async move {
                    match c.next().await {
                        Ok(Some(chunk)) => Some((Ok(chunk), c)),
                        Ok(None) => None,
                        Err(e) => Some((Err(ClientError(e)), c)),
                    }
                })
                .boxed();
                Reader::Form {
                    form: multer::Multipart::new(source, boundary.clone()),
                    delimiter: format!("--{boundary}"),
                    part: None,
                    ended: false,
                }
            }
        };
        Ok(Upload {
            reader,
            redactor: redactor.clone(),
            cx,
            failure,
            reservation: limits.reservation,
            cap: limits.cap,
            started: false,
        })
    }

    fn refuse(&mut self, e: &RedactError) -> ApiError {
        *self.failure = Some(RedactionFailure {
            direction: Direction::Request,
            reason: e.code(),
        });
        super::redaction::request_refusal(e)
    }

    /// Counts what a redactor holds back in the process-wide buffered bytes.
    fn hold(&mut self, held: usize) -> Result<(), ApiError> {
        let more = held.saturating_sub(self.reservation.bytes());
        if more > 0 && !self.reservation.grow(more, self.cap) {
            return Err(body::overloaded());
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<Option<Bytes>, ApiError> {
        self.started = true;
        loop {
            let step = match &mut self.reader {
                Reader::Plain {
                    client,
                    redact,
                    ended,
                } => {
                    if *ended {
                        return Ok(None);
                    }
                    match client.next().await? {
                        Some(chunk) => {
                            let out = redact.push(&chunk, self.cx);
                            let held = redact.held();
                            (out, held)
                        }
                        None => {
                            *ended = true;
                            (redact.finish(self.cx), 0)
                        }
                    }
                }
                Reader::Form {
                    form,
                    delimiter,
                    part,
                    ended,
                } => {
                    if *ended {
                        return Ok(None);
                    }
                    form_step(form, delimiter, part, ended, &self.redactor, self.cx).await?
                }
            };
            match step {
                (Ok(out), held) => {
                    self.hold(held)?;
                    if !out.is_empty() {
                        return Ok(Some(Bytes::from(out)));
                    }
                }
                (Err(e), _) => return Err(self.refuse(&e)),
            }
        }
    }
}

/// What a reader produced (redacted bytes, or why not) and how much it now holds back.
type Step = (Result<Vec<u8>, RedactError>, usize);

/// The next piece of a form: a part's head, a piece of its content, its end, or the form's.
async fn form_step<'r>(
    form: &mut multer::Multipart<'r>,
    delimiter: &str,
    part: &mut Option<(multer::Field<'r>, Part)>,
    ended: &mut bool,
    redactor: &Redactor,
    cx: &mut RequestRedaction,
) -> Result<Step, ApiError> {
    if let Some((field, how)) = part {
        return match field.chunk().await.map_err(multipart_error)? {
            Some(chunk) => Ok(match how {
                Part::Opaque => (Ok(chunk.to_vec()), 0),
                Part::Text(stream) => {
                    let out = stream.push(&chunk, cx);
                    (out, stream.held())
                }
                Part::Undecided { file } => {
                    let binary = std::str::from_utf8(&chunk)
                        .is_err_and(|e| e.error_len().is_some())
                        || chunk.contains(&0);
                    if binary && *file {
                        *how = Part::Opaque;
                        (Ok(chunk.to_vec()), 0)
                    } else if binary {
                        (Err(RedactError::InvalidUtf8), 0)
                    } else {
                        let mut stream = redactor.body_stream(Direction::Request, MAX_LINE);
                        let out = stream.push(&chunk, cx);
                        let held = stream.held();
                        *how = Part::Text(stream);
                        (out, held)
                    }
                }
            }),
            None => {
                let mut out = match part.take().map(|(_, how)| how) {
                    Some(Part::Text(mut stream)) => match stream.finish(cx) {
                        Ok(out) => out,
                        Err(e) => return Ok((Err(e), 0)),
                    },
                    _ => Vec::new(),
                };
                out.extend_from_slice(b"\r\n");
                Ok((Ok(out), 0))
            }
        };
    }
    match form.next_field().await.map_err(multipart_error)? {
        Some(field) => {
            let mut head = Vec::with_capacity(256);
            head.extend_from_slice(delimiter.as_bytes());
            head.extend_from_slice(b"\r\n");
            for (name, value) in field.headers() {
                head.extend_from_slice(name.as_str().as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(value.as_bytes());
                head.extend_from_slice(b"\r\n");
            }
            head.extend_from_slice(b"\r\n");
            let file = field.file_name().is_some();
            *part = Some((field, Part::Undecided { file }));
            Ok((Ok(head), 0))
        }
        None => {
            *ended = true;
            Ok((Ok(format!("{delimiter}--\r\n").into_bytes()), 0))
        }
    }
}

/// A client error behind a multipart error is the client's answer; anything else is a 400.
fn multipart_error(e: multer::Error) -> ApiError {
    if let multer::Error::StreamReadFailed(inner) = e {
        return match inner.downcast::<ClientError>() {
            Ok(client) => client.0,
            Err(other) => bad_form(&other.to_string()),
        };
    }
    bad_form(&e.to_string())
}

fn bad_form(detail: &str) -> ApiError {
    ApiError::invalid_request(format!(
        "The multipart/form-data body is malformed ({}), so it was not forwarded.",
        crate::wire::error::echo(detail)
    ))
    .code("invalid_multipart")
}

#[async_trait::async_trait]
impl<D: Downstream> super::forward::BodySource for Upload<'_, D> {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, ApiError> {
        self.next().await
    }
}
