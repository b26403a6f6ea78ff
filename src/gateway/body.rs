//! Reading a request body, bounded in size and time.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora_proxy::Session;

use crate::openai::ApiError;

/// Reads the whole request body: at most `limit` bytes, each read within `timeout`.
///
/// A declared `Content-Length` over the limit is refused before a byte is read.
///
/// # Errors
/// 413 past `limit`, 408 when the client stalls, 400 when the body cannot be read.
pub async fn read(
    session: &mut Session,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session
            .write_continue_response()
            .await
            .map_err(|_| read_failed())?;
    }

    let capacity = declared.map_or(8 * 1024, |n| n as usize);
    let mut body = BytesMut::with_capacity(capacity);
    loop {
        let chunk = match tokio::time::timeout(timeout, session.read_request_body()).await {
            Err(_) => return Err(timed_out(timeout)),
            Ok(Err(_)) => return Err(read_failed()),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        if body.len() + chunk.len() > limit {
            return Err(ApiError::body_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn read_failed() -> ApiError {
    ApiError::invalid_request("The request body could not be read (the connection broke off).")
        .code("body_read_failed")
}

fn timed_out(timeout: Duration) -> ApiError {
    ApiError::new(
        408,
        "invalid_request_error",
        format!(
            "The request body did not arrive in time (no data for {}s).",
            timeout.as_secs()
        ),
    )
    .code("request_timeout")
}

/// Bytes read and thrown away after refusing a body, so the client can finish sending and
/// read the refusal instead of hitting a reset connection (what nginx calls lingering close).
const LINGER_BYTES: usize = 4 * 1024 * 1024;
/// Longest time spent lingering.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// After a refusal written mid-body: reads and discards what the client is still sending,
/// bounded by [`LINGER_BYTES`] and [`LINGER_TIME`]. The connection is not reused afterwards.
pub async fn linger(session: &mut Session) {
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut drained = 0usize;
    while drained < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => drained += chunk.len(),
            _ => break,
        }
    }
}
