//! Building the request an upstream receives and the answer header the client receives.

use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::config::{Upstream, UpstreamAuth};

use super::headers;

/// What varies per upstream attempt.
pub struct Target<'a> {
    /// The upstream.
    pub upstream: &'a Upstream,
    /// The model name the upstream sees (for a `{model}` url).
    pub model: Option<&'a str>,
    /// The path below the SDK base url, like `chat/completions`.
    pub rest: &'a str,
    /// `x-request-id`.
    pub request_id: &'a str,
    /// W3C `traceparent` for the upstream's span, if traced.
    pub traceparent: Option<&'a str>,
    /// Drop the client's `Authorization`/`api-key` even when the upstream has no key of its
    /// own (they carry a Veilgate virtual key, which must never leave the gateway).
    pub strip_client_auth: bool,
}

/// The upstream request header: the client's headers less hop-by-hop ones, the upstream's
/// host, path, query and credentials.
///
/// # Errors
/// When a header value cannot be encoded (a configured key with invalid characters).
pub fn request_header(client: &RequestHeader, t: &Target<'_>) -> Result<RequestHeader> {
    let path = t.upstream.path_for(t.model, t.rest, client.uri.query());
    let mut header = RequestHeader::build(
        client.method.clone(),
        path.as_bytes(),
        Some(client.headers.len() + 4),
    )?;
    let strip_auth = t.strip_client_auth || t.upstream.api_key.is_some();
    for (name, value) in client.headers.iter() {
        if headers::forward_request_header(name, strip_auth)
            && !(strip_auth && name.as_str() == "api-key")
            && name.as_str() != "traceparent"
        {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    header.insert_header(http::header::HOST, t.upstream.authority())?;
    if let Some(key) = &t.upstream.api_key {
        match &t.upstream.auth {
            UpstreamAuth::Bearer => {
                header.insert_header(http::header::AUTHORIZATION, format!("Bearer {key}"))?
            }
            UpstreamAuth::Header(name) => header.insert_header(name.clone(), key.as_str())?,
        }
    }
    header.insert_header("x-request-id", t.request_id)?;
    match t.traceparent {
        Some(tp) => header.insert_header("traceparent", tp)?,
        None => {
            if let Some(tp) = client.headers.get("traceparent") {
                header.insert_header("traceparent", tp.clone())?;
            }
        }
    }
    Ok(header)
}

/// The client response header: the upstream's status and headers less hop-by-hop ones.
///
/// `drop_length` removes `Content-Length` (the body will be rewritten).
///
/// # Errors
/// When the status or a header cannot be encoded.
pub fn response_header(
    upstream: &ResponseHeader,
    request_id: &str,
    drop_length: bool,
) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + 1))?;
    for (name, value) in upstream.headers.iter() {
        if headers::forward_response_header(name)
            && !(drop_length && name == http::header::CONTENT_LENGTH)
        {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    header.insert_header("x-request-id", request_id)?;
    Ok(header)
}
