//! Writing the gateway's own answers (errors, model lists) to the client.

use bytes::Bytes;
use pingora_core::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use crate::openai::error::ErrorShape;
use crate::openai::ApiError;

/// Writes a complete JSON answer.
///
/// # Errors
/// When the client connection is gone.
pub async fn json(
    session: &mut Session,
    status: u16,
    body: Vec<u8>,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Result<()> {
    let mut header = ResponseHeader::build(status, Some(4 + extra.len()))?;
    for (name, value) in extra {
        header.insert_header(*name, value.as_str())?;
    }
    header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    header.insert_header("x-request-id", request_id)?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}

/// Writes an error answer in the client's API's shape.
///
/// # Errors
/// When the client connection is gone.
pub async fn error(
    session: &mut Session,
    err: &ApiError,
    shape: ErrorShape,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Result<()> {
    if err.status == 413 || err.status == 408 {
        // The rest of the request body is not read: the connection cannot be reused.
        session.set_keepalive(None);
    }
    json(
        session,
        err.status,
        err.to_json_in(shape),
        request_id,
        extra,
    )
    .await
}
