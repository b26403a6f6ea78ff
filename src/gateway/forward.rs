//! Forwarding a request whose body the gateway has read (and may have rewritten).
//!
//! Pingora 0.9.1 cannot forward a replaced request body through its proxy path (the only
//! replay path is the 64 KiB retry buffer, silently skipped when truncated), so requests routed
//! by their body are sent over Pingora's upstream connections ([`TransportConnector`] and its
//! HTTP/1.1 client session): an exact `Content-Length`, connections pooled per worker thread
//! ([`IdlePools`]), and the gateway's own timeouts.

use std::time::Duration;

use bytes::{Buf, Bytes};
use pingora_core::connectors::TransportConnector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::v1::client::{
    http_req_header_to_wire, HttpSession as Http1Session,
};
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::io::AsyncWriteExt;
// Pingora's timer wheel (10 ms ticks, timers shared, armed only when the future is pending):
// a tokio timer armed per read woke the runtime's driver through its eventfd each time.
use pingora_timeout::fast_timeout::fast_timeout;

use super::pool::IdlePools;
use super::resolve::{ResolveError, Resolver};
use crate::config::Upstream;
use crate::wire::ApiError;

/// Where a streamed request body comes from.
#[async_trait::async_trait]
pub trait BodySource: Send {
    /// The next piece of the body (already redacted); `None` at its end.
    async fn next_piece(&mut self) -> Result<Option<Bytes>, ApiError>;
}

/// Why a streamed request failed.
#[derive(Debug)]
pub enum UploadError {
    /// The upstream failed.
    Upstream(ForwardError),
    /// The body could not be read or was refused (its error is the client's answer).
    Body(ApiError),
}

impl From<ForwardError> for UploadError {
    fn from(e: ForwardError) -> Self {
        UploadError::Upstream(e)
    }
}

impl From<ResolveError> for UploadError {
    fn from(e: ResolveError) -> Self {
        UploadError::Upstream(e.into())
    }
}

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The upstream host name did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// No connection (refused, reset, unreachable).
    #[error("{0}")]
    Connect(String),
    /// The TLS handshake failed (certificate, protocol, or its timeout).
    #[error("{0}")]
    Tls(String),
    /// The connect attempt took longer than `connect_timeout`.
    #[error("connecting took longer than {0:?}")]
    ConnectTimeout(Duration),
    /// Writing the request failed.
    #[error("sending the request failed: {0}")]
    Send(String),
    /// No response header within `timeout`.
    #[error("no response within {0:?}")]
    FirstByteTimeout(Duration),
    /// No body bytes within `idle_timeout`.
    #[error("the response stalled for {0:?}")]
    IdleTimeout(Duration),
    /// The upstream broke HTTP or closed the connection early.
    #[error("{0}")]
    Protocol(String),
}

impl ForwardError {
    /// Why connecting failed, from Pingora's error type: a timeout, TLS, or the connection.
    pub fn connecting(e: &pingora_core::Error, connect_timeout: Duration) -> ForwardError {
        use pingora_core::ErrorType as E;
        match e.etype() {
            E::ConnectTimedout => ForwardError::ConnectTimeout(connect_timeout),
            E::TLSHandshakeFailure
            | E::TLSHandshakeTimedout
            | E::TLSWantX509Lookup
            | E::InvalidCert
            | E::HandshakeError => ForwardError::Tls(describe(e)),
            _ => ForwardError::Connect(describe(e)),
        }
    }

    /// A short, stable reason for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ForwardError::Resolve(_) => "dns",
            ForwardError::Connect(_) => "connect",
            ForwardError::Tls(_) => "tls",
            ForwardError::ConnectTimeout(_) => "connect_timeout",
            ForwardError::Send(_) => "send",
            ForwardError::FirstByteTimeout(_) => "timeout",
            ForwardError::IdleTimeout(_) => "idle_timeout",
            ForwardError::Protocol(_) => "protocol",
        }
    }

    /// Whether the failure is a timeout (504) rather than a broken upstream (502).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ForwardError::FirstByteTimeout(_) | ForwardError::IdleTimeout(_)
        ) || matches!(self, ForwardError::Resolve(ResolveError::TimedOut { .. }))
    }

    /// The answer the client gets.
    pub fn to_api_error(&self, upstream: &str) -> ApiError {
        if self.is_timeout() {
            ApiError::gateway_timeout(upstream, &self.to_string())
        } else {
            ApiError::bad_gateway(upstream, &self.to_string())
        }
    }
}

/// Pingora's error text without its source chain, which may name internal addresses twice.
fn describe(e: &pingora_core::Error) -> String {
    match &e.context {
        Some(ctx) => format!("{} ({})", e.etype().as_str(), ctx.as_str()),
        None => e.etype().as_str().to_owned(),
    }
}

/// Sends requests to upstreams over pooled connections.
pub struct Forwarder {
    connector: TransportConnector,
    idle: IdlePools,
    resolver: Resolver,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

/// An upstream answer being read: its header, then its body chunk by chunk.
pub struct Exchange {
    session: HttpSession,
    peer: HttpPeer,
    idle_timeout: Duration,
}

impl Forwarder {
    /// A forwarder with its own connection pool.
    pub fn new() -> Self {
        Forwarder {
            connector: TransportConnector::new(None),
            idle: IdlePools::new(POOL_IDLE),
            resolver: Resolver::default(),
        }
    }

    /// The peer for `upstream`: resolved address, TLS with SNI from the host name, timeouts.
    ///
    /// # Errors
    /// [`ForwardError::Resolve`] when the host does not resolve.
    pub async fn peer(&self, upstream: &Upstream) -> Result<HttpPeer, ForwardError> {
        let addr = self
            .resolver
            .resolve(&upstream.host, upstream.port, upstream.connect_timeout)
            .await?;
        let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
        peer.options.connection_timeout = Some(upstream.connect_timeout);
        peer.options.total_connection_timeout = Some(upstream.connect_timeout);
        peer.options.write_timeout = Some(upstream.timeout);
        peer.options.idle_timeout = Some(POOL_IDLE);
        Ok(peer)
    }

    /// Sends `header` and `body` to `upstream` and waits (at most `upstream.timeout`) for the
    /// response header.
    ///
    /// # Errors
    /// [`ForwardError`] when the upstream cannot be reached, the request cannot be written, or
    /// no response header arrives in time.
    pub async fn send(
        &self,
        upstream: &Upstream,
        mut header: RequestHeader,
        body: Bytes,
    ) -> Result<Exchange, ForwardError> {
        let peer = self.peer(upstream).await?;
        header
            .insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
            .map_err(|e| ForwardError::Send(describe(&e)))?;
        let wire = http_req_header_to_wire(&header)
            .ok_or_else(|| ForwardError::Send("the request line cannot be encoded".to_owned()))?
            .freeze();

        // A pooled connection may have been closed by the upstream in the meantime; such a
        // failure is retried once on a fresh connection, as the request was never seen.
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The retry never takes another pooled connection: it may be just as stale.
            let pooled = if attempt == 1 {
                self.idle.take(peer.reuse_hash())
            } else {
                None
            };
            let (mut stream, reused) = match pooled {
                Some(stream) => (stream, true),
                // Boxed: Pingora's connect future is ~8 KiB, and inline it would stay part of
                // every request's future for the whole of a stream (see `serve_model_request`).
                // A pooled connection skips the allocation.
                None => match Box::pin(self.connector.new_stream(&peer)).await {
                    Ok(stream) => (stream, false),
                    Err(e) => return Err(ForwardError::connecting(&e, upstream.connect_timeout)),
                },
            };
            // Header and body leave in one write (one `writev`, one TCP segment when they fit):
            // Pingora's client session flushes the header on its own, which cost a second
            // system call per request and woke the upstream twice (strace, benches/load.sh).
            // Its `request_written` then stays empty; the session reads it only for HEAD,
            // upgrade and `Connection: close` requests, none of which the gateway sends: model
            // endpoints are POST only, health checks GET, and hop-by-hop headers are never
            // forwarded.
            let sent = fast_timeout(upstream.timeout, async {
                let mut request = wire.clone().chain(body.clone());
                stream.write_all_buf(&mut request).await?;
                stream.flush().await
            })
            .await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    if reused && attempt == 1 {
                        continue;
                    }
                    return Err(ForwardError::Send(e.to_string()));
                }
                Err(_) => {
                    return Err(ForwardError::Send(format!(
                        "timed out after {:?}",
                        upstream.timeout
                    )))
                }
            }
            let mut session = HttpSession::H1(Http1Session::new_with_options(stream, &peer));
            match fast_timeout(upstream.timeout, session.read_response_header()).await {
                Err(_) => {
                    session.shutdown().await;
                    return Err(ForwardError::FirstByteTimeout(upstream.timeout));
                }
                Ok(Err(e)) => {
                    session.shutdown().await;
                    if reused && attempt == 1 {
                        continue;
                    }
                    return Err(ForwardError::Protocol(describe(&e)));
                }
                Ok(Ok(())) => {}
            }
            return Ok(Exchange {
                session,
                peer,
                idle_timeout: upstream.idle_timeout,
            });
        }
    }

    /// Sends a request whose body arrives in pieces (an upload streamed through redaction):
    /// `Transfer-Encoding: chunked`, on a new connection (a pooled one may be stale, and a
    /// streamed body cannot be sent twice). The body is pulled only once the connection is up,
    /// so a connect failure has consumed nothing and the caller may try another upstream.
    ///
    /// # Errors
    /// [`UploadError::Upstream`] when the upstream fails (connecting, writing, its header);
    /// [`UploadError::Body`] when the body source fails: the connection is then closed
    /// mid-body, so the upstream never takes an incomplete request for a whole one.
    pub async fn send_streaming(
        &self,
        upstream: &Upstream,
        mut header: RequestHeader,
        body: &mut dyn BodySource,
    ) -> Result<Exchange, UploadError> {
        let peer = self.peer(upstream).await?;
        header.remove_header(&http::header::CONTENT_LENGTH);
        header
            .insert_header(http::header::TRANSFER_ENCODING, "chunked")
            .map_err(|e| ForwardError::Send(describe(&e)))?;
        let wire = http_req_header_to_wire(&header)
            .ok_or_else(|| ForwardError::Send("the request line cannot be encoded".to_owned()))?
            .freeze();
        let mut stream = match Box::pin(self.connector.new_stream(&peer)).await {
            Ok(stream) => stream,
            Err(e) => return Err(ForwardError::connecting(&e, upstream.connect_timeout).into()),
        };
        let timeout = upstream.timeout;
        write_all(&mut stream, wire, timeout).await?;
        loop {
            let piece = match body.next_piece().await {
                Ok(piece) => piece,
                Err(e) => {
                    let _ = stream.shutdown().await;
                    return Err(UploadError::Body(e));
                }
            };
            let Some(piece) = piece else {
                write_all(&mut stream, Bytes::from_static(b"0\r\n\r\n"), timeout).await?;
                break;
            };
            if piece.is_empty() {
                continue;
            }
            let mut framed = Vec::with_capacity(piece.len() + 12);
            framed.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            framed.extend_from_slice(&piece);
            framed.extend_from_slice(b"\r\n");
            write_all(&mut stream, Bytes::from(framed), timeout).await?;
        }
        let mut session = HttpSession::H1(Http1Session::new_with_options(stream, &peer));
        match fast_timeout(upstream.timeout, session.read_response_header()).await {
            Err(_) => {
                session.shutdown().await;
                Err(ForwardError::FirstByteTimeout(upstream.timeout).into())
            }
            Ok(Err(e)) => {
                session.shutdown().await;
                Err(ForwardError::Protocol(describe(&e)).into())
            }
            Ok(Ok(())) => Ok(Exchange {
                session,
                peer,
                idle_timeout: upstream.idle_timeout,
            }),
        }
    }

    /// Returns the connection to this thread's pool when the response was read to its end
    /// and the upstream keeps it alive; closes it otherwise.
    pub async fn finish(&self, exchange: Exchange) {
        let Exchange {
            mut session, peer, ..
        } = exchange;
        if !session.response_done() {
            session.shutdown().await;
            return;
        }
        match session {
            HttpSession::H1(mut h1) => {
                h1.respect_keepalive();
                if let Some(stream) = h1.reuse().await {
                    self.idle.put(peer.reuse_hash(), stream);
                }
            }
            mut other => other.shutdown().await,
        }
    }

    /// Closes the idle upstream connections kept longer than the pool's idle limit (60 s).
    pub fn sweep_idle(&self) {
        self.idle.sweep();
    }
}

/// Writes and flushes `bytes` within `timeout`.
async fn write_all(
    stream: &mut pingora_core::protocols::Stream,
    mut bytes: Bytes,
    timeout: Duration,
) -> Result<(), ForwardError> {
    match fast_timeout(timeout, async {
        stream.write_all_buf(&mut bytes).await?;
        stream.flush().await
    })
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ForwardError::Send(e.to_string())),
        Err(_) => Err(ForwardError::Send(format!("timed out after {timeout:?}"))),
    }
}

impl Exchange {
    /// The upstream's response header.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.session.response_header()
    }

    /// The next body chunk; `None` at the end of the body.
    ///
    /// # Errors
    /// [`ForwardError::IdleTimeout`] when no byte arrives within `idle_timeout`,
    /// [`ForwardError::Protocol`] when the upstream breaks off.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ForwardError> {
        if self.session.response_done() {
            return Ok(None);
        }
        match fast_timeout(self.idle_timeout, self.session.read_response_body()).await {
            Err(_) => Err(ForwardError::IdleTimeout(self.idle_timeout)),
            Ok(Err(e)) => Err(ForwardError::Protocol(describe(&e))),
            Ok(Ok(chunk)) => Ok(chunk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_core::{Error, ErrorType};

    #[test]
    fn connect_failures_are_classified_by_pingoras_error_type() {
        let t = Duration::from_secs(5);
        let of = |etype| ForwardError::connecting(&Error::new(etype), t);
        assert!(
            matches!(of(ErrorType::ConnectTimedout), ForwardError::ConnectTimeout(d) if d == t)
        );
        for tls in [
            ErrorType::TLSHandshakeFailure,
            ErrorType::TLSHandshakeTimedout,
            ErrorType::InvalidCert,
            ErrorType::HandshakeError,
        ] {
            assert!(matches!(of(tls.clone()), ForwardError::Tls(_)), "{tls:?}");
        }
        assert!(matches!(
            of(ErrorType::ConnectRefused),
            ForwardError::Connect(_)
        ));
        // A TLS failure is a 502 (the upstream is broken), not a 504.
        assert!(!of(ErrorType::TLSHandshakeTimedout).is_timeout());
    }
}
