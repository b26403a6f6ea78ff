//! The one module that knows Pingora's `Session`: the `ProxyHttp` hooks that hand each
//! request to the [`Pipeline`], the [`Downstream`] the stages read and answer through, and
//! [`ClientDeadlines`], the bound on how long a client may take to send its request header.
//!
//! Every request is answered inside `request_filter` (returning `Ok(true)`): Pingora 0.9.1
//! cannot forward a body it did not stream itself (see [`super::forward`]), so Pingora's own
//! proxy path (`upstream_peer` and the filters after it) is never taken.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora_core::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora_core::protocols::http::v2::server::H2Options;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, HttpProxy, ProxyHttp, Session};
use pingora_timeout::fast_timeout::fast_sleep;

use super::context::RequestCtx;
use super::downstream::{Downstream, Gone, ReadError};
use super::forward::Forwarder;
use super::pipeline::Pipeline;
use super::{body, respond, Shared};
use crate::runtime::SharedRuntime;
use crate::shutdown::{Inflight, LATE_REQUEST_GRACE};
use crate::wire::ApiError;

/// The gateway service: Pingora's hooks around the [`Pipeline`] on the gateway's upstream
/// connections ([`Forwarder`]).
pub struct Gateway {
    pipeline: Pipeline<Forwarder>,
}

impl Gateway {
    /// A gateway on the shared services.
    pub fn new(shared: &Shared) -> Self {
        Gateway {
            pipeline: Pipeline::new(shared, shared.forwarder.clone()),
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        self.pipeline.new_ctx()
    }

    /// What Pingora's own error lines say about a request: its method and path, never the
    /// query string (it may hold a key or a secret) nor the `Host` (Pingora's default prints
    /// the whole request target).
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        summary(session.req_header())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        self.pipeline.serve(session, ctx).await;
        Ok(true)
    }

    /// Never called: `request_filter` answers every request itself (Pingora 0.9.1 cannot
    /// forward a body the gateway has read, see [`super::forward`]).
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Error::e_explain(
            ErrorType::InternalError,
            "every request is answered by request_filter",
        )
    }

    /// Failures Pingora itself meets around a request (every answer is the gateway's own,
    /// written in `request_filter`): rendered in OpenAI's shape like every other error.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let reason = match &e.context {
            Some(c) => format!("{} ({})", e.etype().as_str(), c.as_str()),
            None => e.etype().as_str().to_owned(),
        };
        let downstream = e.esource() == &ErrorSource::Downstream;
        let api = match e.etype() {
            ErrorType::HTTPStatus(413) => {
                ApiError::body_too_large(ctx.runtime.config.max_body_bytes)
            }
            ErrorType::HTTPStatus(code) => ApiError::new(*code, "api_error", reason.clone()),
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed
                if downstream =>
            {
                ctx.record.error = Some("client_disconnected");
                return FailToProxy {
                    error_code: 0,
                    can_reuse_downstream: false,
                };
            }
            ErrorType::ReadTimedout if downstream => {
                body::timed_out(ctx.runtime.config.client_timeout)
            }
            _ if downstream => {
                ApiError::invalid_request(format!("The request could not be read: {reason}."))
            }
            _ => ApiError::internal(format!("internal error: {reason}")),
        };
        log::warn!("request {}: {reason}", ctx.request_id);
        let code = api.status;
        ctx.record.error = api.code;
        if session.response_written().is_none() {
            let _ =
                respond::error(session, &api, ctx.shape, &ctx.request_id, &ctx.rate_headers).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let written = session.response_written().map(|r| r.status.as_u16());
        self.pipeline.finish(ctx, written).await;
    }
}

/// `POST /v1/files`: a request's method and path, for log lines.
fn summary(header: &RequestHeader) -> String {
    format!(
        "{} {}",
        header.method.as_str(),
        crate::wire::error::echo(header.uri.path())
    )
}

impl Downstream for Session {
    fn req_header(&self) -> &RequestHeader {
        self.as_downstream().req_header()
    }

    fn client_ip(&self) -> Option<IpAddr> {
        self.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
    }

    fn set_read_timeout(&mut self, timeout: Duration) {
        self.as_downstream_mut().set_read_timeout(Some(timeout));
    }

    async fn read_body(&mut self) -> std::result::Result<Option<Bytes>, ReadError> {
        self.read_request_body().await.map_err(|e| {
            if e.etype == ErrorType::ReadTimedout {
                ReadError::TimedOut
            } else {
                ReadError::Failed
            }
        })
    }

    async fn write_continue(&mut self) -> std::result::Result<(), Gone> {
        self.write_continue_response().await.map_err(|_| Gone)
    }

    async fn write_header(&mut self, header: Box<ResponseHeader>) -> std::result::Result<(), Gone> {
        self.write_response_header(header, false)
            .await
            .map_err(|_| Gone)
    }

    async fn write_body(
        &mut self,
        body: Option<Bytes>,
        end: bool,
    ) -> std::result::Result<(), Gone> {
        self.write_response_body(body, end).await.map_err(|_| Gone)
    }

    fn close_after(&mut self) {
        self.set_keepalive(None);
    }

    async fn gone(&mut self) {
        loop {
            match self.read_body_or_idle(true).await {
                Err(_) => return,
                // Bytes of a pipelined next request: not a disconnect.
                Ok(_) => std::future::pending::<()>().await,
            }
        }
    }
}

/// Pingora's HTTP proxy with the configured `client_timeout` around every request it reads:
///
/// - **The header**: the whole request header must arrive within `client_timeout`, counted
///   from when the gateway starts waiting for it (a new connection, or a kept-alive one after
///   its previous answer); otherwise the connection is closed without an answer (Pingora has
///   no request yet to answer). Pingora 0.9.1 alone bounds only each single read of a header,
///   by the 60 s keep-alive timeout it gives every new connection
///   (`pingora-core/src/apps/mod.rs`, `protocols/http/v1/server.rs` `read_request_buf`), so a
///   client sending a byte a minute could hold a connection for ever.
/// - **The body**: each read waits at most `client_timeout` (Pingora's downstream read
///   timeout, default 60 s), for the bodies [`body::read`] reads as for those Pingora streams on
///   `paths:` routes.
///
/// The header is known to be complete when `HeaderReceived`, a downstream module, sees it:
/// Pingora runs module header filters after reading the header and before
/// `request_filter`, inside the task this wrapper drives.
///
/// **Stopping** (SIGTERM, or SIGQUIT once the sockets are handed over): every connection
/// counts in [`Inflight`] while it is served or awaits its next request, so the drain does
/// not exit under a connection accepted just before the listeners closed whose request is
/// still arriving. Pingora drops every connection still waiting for a header at once when
/// its listeners close (`HttpProxy::http_cleanup`); this waits [`LATE_REQUEST_GRACE`]
/// first, so such a request is served instead of reset (found by a hand-over under load:
/// 1–3 resets in ~10,000 requests in about half the runs without it). Idle kept-alive
/// connections are closed after it.
pub struct ClientDeadlines<SV> {
    proxy: Arc<HttpProxy<SV>>,
    runtime: SharedRuntime,
    inflight: Inflight,
}

impl<SV: ProxyHttp> ClientDeadlines<SV> {
    /// Wraps `proxy` (from `pingora_proxy::http_proxy`, its modules initialised); the timeout
    /// is read from `runtime` for every request, so a reload changes it. Connections count
    /// in `inflight` (the drain's).
    pub fn new(mut proxy: HttpProxy<SV>, runtime: SharedRuntime, inflight: Inflight) -> Self {
        proxy
            .downstream_modules
            .add_module(Box::new(HeaderReceivedBuilder));
        ClientDeadlines {
            proxy: Arc::new(proxy),
            runtime,
            inflight,
        }
    }
}

tokio::task_local! {
    /// Set once the request header of the request this task serves has been read.
    static HEADER_RECEIVED: Cell<bool>;
}

#[async_trait]
impl<SV> HttpServerApp for ClientDeadlines<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    // Written out rather than `async fn`: an async body would keep room for the moved-in
    // `ServerSession` (over a kilobyte) in its future for the connection's whole life. Here
    // the session goes into Pingora's own future before this one is made.
    fn process_new_http<'life0, 'life1, 'async_trait>(
        self: &'life0 Arc<Self>,
        mut session: ServerSession,
        shutdown: &'life1 ShutdownWatch,
    ) -> Pin<Box<dyn Future<Output = Option<ReusedHttpStream>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let connection = self.inflight.enter();
        let timeout = self.runtime.load().config.client_timeout;
        session.set_read_timeout(Some(timeout));
        let serve = self.proxy.process_new_http(session, shutdown);
        Box::pin(HEADER_RECEIVED.scope(Cell::new(false), async move {
            let _connection = connection;
            let mut serve = serve;
            tokio::select! {
                biased;
                done = &mut serve => return done,
                () = fast_sleep(timeout) => {}
            }
            if HEADER_RECEIVED.with(Cell::get) {
                // Past the header: the request runs to its end under its own bounds.
                return serve.await;
            }
            log::debug!("no complete request header within {timeout:?}: closing the connection");
            None
        }))
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.proxy.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.proxy.server_options()
    }

    async fn http_cleanup(&self) {
        // The listeners are closed: let connections accepted just before send their request.
        tokio::time::sleep(LATE_REQUEST_GRACE).await;
        self.proxy.http_cleanup().await;
    }

    async fn process_custom_session(
        self: Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.proxy
            .clone()
            .process_custom_session(stream, shutdown)
            .await
    }
}

/// The downstream module telling [`ClientDeadlines`] that a request header has arrived.
struct HeaderReceived;

#[async_trait]
impl HttpModule for HeaderReceived {
    async fn request_header_filter(
        &mut self,
        _req: &mut RequestHeader,
    ) -> pingora_core::Result<()> {
        // Outside a ClientDeadlines task (none today) there is no deadline to lift.
        let _ = HEADER_RECEIVED.try_with(|received| received.set(true));
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

struct HeaderReceivedBuilder;

impl HttpModuleBuilder for HeaderReceivedBuilder {
    fn init(&self) -> Module {
        Box::new(HeaderReceived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_summary_has_no_query() {
        let header =
            RequestHeader::build("POST", b"/v1/files?api-key=vg-secret&q=ghp_x", None).unwrap();
        assert_eq!(summary(&header), "POST /v1/files");
    }
}
