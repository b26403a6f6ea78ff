//! The upstream side of an attempt, as the stages see it: send a request (its body whole or
//! streamed), read the answer, give the connection back.
//!
//! The gateway runs on [`Forwarder`] (Pingora's connectors, pooled per thread); the attempt
//! loop's unit tests run on a fake that answers from a script (`gateway::fake::Upstreams`).
//! Generic futures, not boxed: production code is compiled for `Forwarder` alone.

use std::future::Future;

use bytes::{Bytes, BytesMut};
use pingora_http::{RequestHeader, ResponseHeader};

use super::forward::{BodySource, Exchange, ForwardError, Forwarder, UploadError};
use crate::config::Upstream;

/// An upstream's answer being read.
pub trait Answer: Send {
    /// Its response header (`None` only if the exchange broke before one was read).
    fn header(&self) -> Option<&ResponseHeader>;

    /// The next piece of its body; `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, ForwardError>> + Send;

    /// The rest of its body, at most `limit` bytes.
    ///
    /// # Errors
    /// As [`Answer::next_chunk`], and [`ForwardError::Protocol`] past `limit`.
    fn read_to_end(
        &mut self,
        limit: usize,
    ) -> impl Future<Output = Result<Bytes, ForwardError>> + Send {
        async move {
            let mut body = BytesMut::new();
            while let Some(chunk) = self.next_chunk().await? {
                if body.len() + chunk.len() > limit {
                    return Err(ForwardError::Protocol(format!(
                        "response body larger than {limit} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        }
    }
}

/// Sends requests to upstreams.
pub trait Transport: Send + Sync + 'static {
    /// An answer being read.
    type Answer: Answer;

    /// Sends `header` and a whole `body`; resolves with the answer once its header arrived.
    fn send(
        &self,
        upstream: &Upstream,
        header: RequestHeader,
        body: Bytes,
    ) -> impl Future<Output = Result<Self::Answer, ForwardError>> + Send;

    /// Sends `header` and a body streamed from `body` (chunked).
    fn send_streaming(
        &self,
        upstream: &Upstream,
        header: RequestHeader,
        body: &mut dyn BodySource,
    ) -> impl Future<Output = Result<Self::Answer, UploadError>> + Send;

    /// Done with `answer`: its connection is kept for reuse when that is safe, closed otherwise.
    fn finish(&self, answer: Self::Answer) -> impl Future<Output = ()> + Send;
}

impl Answer for Exchange {
    fn header(&self) -> Option<&ResponseHeader> {
        Exchange::header(self)
    }

    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, ForwardError>> + Send {
        Exchange::next_chunk(self)
    }
}

impl Transport for Forwarder {
    type Answer = Exchange;

    fn send(
        &self,
        upstream: &Upstream,
        header: RequestHeader,
        body: Bytes,
    ) -> impl Future<Output = Result<Exchange, ForwardError>> + Send {
        Forwarder::send(self, upstream, header, body)
    }

    fn send_streaming(
        &self,
        upstream: &Upstream,
        header: RequestHeader,
        body: &mut dyn BodySource,
    ) -> impl Future<Output = Result<Exchange, UploadError>> + Send {
        Forwarder::send_streaming(self, upstream, header, body)
    }

    fn finish(&self, answer: Exchange) -> impl Future<Output = ()> + Send {
        Forwarder::finish(self, answer)
    }
}
