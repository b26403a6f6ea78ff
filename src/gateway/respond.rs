//! Writing the gateway's own answers (errors, model lists) to the client.

use bytes::Bytes;
use pingora_http::ResponseHeader;

use super::downstream::{Downstream, Gone};
use crate::wire::error::ErrorShape;
use crate::wire::ApiError;

/// Writes a complete JSON answer.
///
/// # Errors
/// When the client connection is gone.
pub async fn json<D: Downstream>(
    client: &mut D,
    status: u16,
    body: Vec<u8>,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Result<(), Gone> {
    let header = json_header(status, body.len(), request_id, extra).ok_or(Gone)?;
    client.write_header(Box::new(header)).await?;
    client.write_body(Some(Bytes::from(body)), true).await
}

/// The header of a JSON answer of `len` bytes; `None` only if a header value is not valid
/// (the gateway's own values always are).
fn json_header(
    status: u16,
    len: usize,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Option<ResponseHeader> {
    let mut header = ResponseHeader::build_no_case(status, Some(4 + extra.len())).ok()?;
    for (name, value) in extra {
        header.insert_header(*name, value.as_str()).ok()?;
    }
    header
        .insert_header(http::header::CONTENT_TYPE, "application/json")
        .ok()?;
    header
        .insert_header(http::header::CONTENT_LENGTH, len.to_string())
        .ok()?;
    header.insert_header("x-request-id", request_id).ok()?;
    Some(header)
}

/// Writes an error answer in the client's API's shape.
///
/// # Errors
/// When the client connection is gone.
pub async fn error<D: Downstream>(
    client: &mut D,
    err: &ApiError,
    shape: ErrorShape,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Result<(), Gone> {
    if err.status == 413 || err.status == 408 {
        // The rest of the request body is not read: the connection cannot be reused.
        client.close_after();
    }
    json(client, err.status, err.to_json_in(shape), request_id, extra).await
}
