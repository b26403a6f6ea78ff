//! The client's side of one request, as the stages see it: its header, its body read piece by
//! piece, the answer written back, and whether the client is still there.
//!
//! The one implementation the gateway runs on is Pingora's `Session` (in [`super::adapter`],
//! the only module that touches it); the stages' unit tests run on a fake
//! (`gateway::fake::Client`). The methods are generic futures, not boxed: production code is
//! compiled for `Session` alone and costs what calling `Session` directly cost.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};

/// Why a piece of the request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// No byte arrived within the read timeout.
    TimedOut,
    /// The connection broke, or the body's framing was invalid.
    Failed,
}

/// The client went away (or the connection broke) while the gateway was writing to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client connection is gone")
    }
}

/// One client request and the connection it arrived on.
pub trait Downstream: Send {
    /// The request header, as received (its path already checked canonical by the stages).
    fn req_header(&self) -> &RequestHeader;

    /// The client's IP address, when the connection is over IP.
    fn client_ip(&self) -> Option<IpAddr>;

    /// Each later [`Downstream::read_body`] waits at most this long for a byte.
    fn set_read_timeout(&mut self, timeout: Duration);

    /// The next piece of the request body; `None` at its end.
    fn read_body(&mut self) -> impl Future<Output = Result<Option<Bytes>, ReadError>> + Send;

    /// Writes `100 Continue` (the client sent `Expect: 100-continue`).
    fn write_continue(&mut self) -> impl Future<Output = Result<(), Gone>> + Send;

    /// Writes the answer's header.
    fn write_header(
        &mut self,
        header: Box<ResponseHeader>,
    ) -> impl Future<Output = Result<(), Gone>> + Send;

    /// Writes a piece of the answer's body; `end` ends the answer.
    fn write_body(
        &mut self,
        body: Option<Bytes>,
        end: bool,
    ) -> impl Future<Output = Result<(), Gone>> + Send;

    /// The connection is closed after this answer instead of kept alive.
    fn close_after(&mut self);

    /// Resolves when the client has closed its connection; never while it stays open.
    fn gone(&mut self) -> impl Future<Output = ()> + Send;

    /// The client's `Content-Length`, when it declared one that parses.
    fn declared_length(&self) -> Option<u64> {
        self.req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    }

    /// Whether the client waits for `100 Continue` before sending its body.
    fn expects_continue(&self) -> bool {
        self.req_header()
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    }

    /// A request header's value as text; empty when absent or not visible ASCII.
    fn header_str(&self, name: http::header::HeaderName) -> &str {
        self.req_header()
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}
