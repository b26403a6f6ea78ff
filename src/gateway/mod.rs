//! The request path: Pingora's `ProxyHttp` hooks calling the stages in order.
//!
//! ```text
//! request_filter ─▶ dispatch (path) ─▶ read body (bounded) ─▶ inspect (model) ─▶ route
//!                ─▶ rewrite (alias) ─▶ forward (Connector) ─▶ relay (chunk by chunk)
//! ```
//!
//! Requests routed by their body are answered entirely inside `request_filter` (returning
//! `Ok(true)`): Pingora 0.9.1 cannot forward a body it did not stream itself, see
//! [`forward`]. Requests on `paths:` routes need no body inspection and take Pingora's own
//! streaming proxy path through `upstream_peer`.

pub mod body;
pub mod context;
pub mod forward;
pub mod headers;
pub mod resolve;
pub mod respond;
pub mod runtime;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::config::{Config, Route, RouteMatch, Upstream};
use crate::openai::request::multipart_model_span;
use crate::openai::{self, ApiError, Endpoint};
use crate::shutdown::Inflight;

use context::{PassThrough, RequestCtx};
use forward::{Exchange, Forwarder};
use runtime::SharedRuntime;

/// Longest wait for the next piece of a request body from the client.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The gateway service.
pub struct Gateway {
    runtime: SharedRuntime,
    forwarder: Arc<Forwarder>,
    inflight: Inflight,
}

/// How `request_filter` disposed of a request.
enum Handled {
    /// The gateway wrote the whole answer.
    Answered,
    /// Pingora proxies it (a `paths:` route).
    PassThrough,
}

impl Gateway {
    /// A gateway serving the shared runtime.
    pub fn new(runtime: SharedRuntime, inflight: Inflight) -> Self {
        Gateway {
            runtime,
            forwarder: Arc::new(Forwarder::new()),
            inflight,
        }
    }

    async fn handle(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Handled, ApiError> {
        let runtime = ctx.runtime.clone();
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();

        if path == "/v1/models" || path.starts_with("/v1/models/") {
            if method != http::Method::GET {
                return Err(ApiError::method_not_allowed(method.as_str(), &path, "GET"));
            }
            self.serve_models(session, ctx, &path).await;
            return Ok(Handled::Answered);
        }
        if let Some(endpoint) = Endpoint::from_path(&path) {
            if method != http::Method::POST {
                return Err(ApiError::method_not_allowed(method.as_str(), &path, "POST"));
            }
            self.serve_model_request(session, ctx, endpoint).await?;
            return Ok(Handled::Answered);
        }
        if let Some(route) = runtime.config.route_for_path(&path) {
            let upstream = upstream_of(&runtime.config, route)?;
            let declared = session
                .req_header()
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > runtime.config.max_body_bytes as u64) {
                return Err(ApiError::body_too_large(runtime.config.max_body_bytes));
            }
            let mut path_and_query = upstream.url_for(rest_of(&path));
            if let Some(q) = session.req_header().uri.query() {
                path_and_query.push('?');
                path_and_query.push_str(q);
            }
            ctx.pass = Some(PassThrough {
                upstream: upstream.clone(),
                path_and_query,
                body_bytes: 0,
            });
            return Ok(Handled::PassThrough);
        }
        Err(ApiError::unknown_url(method.as_str(), &path))
    }

    /// `GET /v1/models` and `GET /v1/models/{id}`.
    async fn serve_models(&self, session: &mut Session, ctx: &RequestCtx, path: &str) {
        let models = &ctx.runtime.models;
        let result = match path.strip_prefix("/v1/models/") {
            None => {
                respond::json(
                    session,
                    200,
                    openai::models::list_json(models),
                    &ctx.request_id,
                )
                .await
            }
            Some(id) => match models.iter().find(|m| m.id == id) {
                Some(m) => {
                    respond::json(session, 200, openai::models::model_json(m), &ctx.request_id)
                        .await
                }
                None => {
                    respond::error(session, &ApiError::model_not_found(id), &ctx.request_id).await
                }
            },
        };
        if let Err(e) = result {
            log::debug!("request {}: client went away: {e}", ctx.request_id);
        }
    }

    /// The lifecycle of a request routed by its `model`.
    async fn serve_model_request(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        endpoint: Endpoint,
    ) -> Result<(), ApiError> {
        let runtime = ctx.runtime.clone();
        let config = &runtime.config;

        // read body (bounded)
        let body = body::read(session, config.max_body_bytes, BODY_READ_TIMEOUT).await?;
        let content_type = session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();

        // inspect: which model
        let (model, json) = if endpoint.is_json() {
            let request = openai::inspect_json(endpoint, &body)?;
            (request.model.clone(), Some(request))
        } else {
            (
                openai::multipart_model(&content_type, body.clone()).await?,
                None,
            )
        };

        // route
        let path = session.req_header().uri.path().to_owned();
        let route =
            select_route(config, &path, &model).ok_or_else(|| ApiError::model_not_found(&model))?;
        let upstream = upstream_of(config, route)?.clone();

        // rewrite: model alias
        let body = match (&route.model, &json) {
            (Some(alias), Some(request)) => Bytes::from(openai::replace_model(
                &body,
                request.model_span.clone(),
                alias,
            )),
            (Some(alias), None) => match multipart_model_span(&content_type, &body) {
                Some(span) => splice(&body, span, alias.as_bytes()),
                None => body,
            },
            (None, _) => body,
        };

        // forward
        let header = upstream_request(
            session.req_header(),
            &upstream,
            endpoint.rest(),
            &ctx.request_id,
        )?;
        let mut exchange = self
            .forwarder
            .send(&upstream, header, body)
            .await
            .map_err(|e| {
                log::warn!(
                    "request {}: upstream {} failed before answering: {e}",
                    ctx.request_id,
                    upstream.name
                );
                e.to_api_error(&upstream.name)
            })?;

        // relay
        self.relay(session, ctx, &upstream, &mut exchange).await;
        self.forwarder.finish(exchange).await;
        Ok(())
    }

    /// Streams the upstream answer to the client chunk by chunk, as it arrives.
    async fn relay(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        upstream: &Upstream,
        exchange: &mut Exchange,
    ) {
        let Some(upstream_header) = exchange.header() else {
            let err = ApiError::bad_gateway(&upstream.name, "no response header");
            let _ = respond::error(session, &err, &ctx.request_id).await;
            return;
        };
        let is_sse = upstream_header
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let header = match client_response_header(upstream_header, &ctx.request_id) {
            Ok(h) => h,
            Err(e) => {
                log::warn!(
                    "request {}: cannot build the response header: {e}",
                    ctx.request_id
                );
                let _ = respond::error(
                    session,
                    &ApiError::internal("could not relay the upstream answer"),
                    &ctx.request_id,
                )
                .await;
                return;
            }
        };
        if session
            .write_response_header(Box::new(header), false)
            .await
            .is_err()
        {
            return;
        }
        loop {
            match exchange.next_chunk().await {
                Ok(Some(chunk)) => {
                    if session
                        .write_response_body(Some(chunk), false)
                        .await
                        .is_err()
                    {
                        log::debug!("request {}: client went away mid-response", ctx.request_id);
                        return;
                    }
                }
                Ok(None) => {
                    let _ = session.write_response_body(None, true).await;
                    return;
                }
                Err(e) => {
                    log::warn!(
                        "request {}: upstream {} broke off mid-response: {e}",
                        ctx.request_id,
                        upstream.name
                    );
                    session.set_keepalive(None);
                    if is_sse {
                        let event = e.to_api_error(&upstream.name).to_sse_event();
                        let _ = session
                            .write_response_body(Some(Bytes::from(event)), true)
                            .await;
                    }
                    return;
                }
            }
        }
    }
}

/// The first route, in file order, that matches: a `models:` route by the model, a `paths:`
/// route by the path.
fn select_route<'a>(config: &'a Config, path: &str, model: &str) -> Option<&'a Route> {
    let path_route = config.route_for_path(path);
    config.routes.iter().find(|route| match &route.matcher {
        RouteMatch::Models(patterns) => patterns.iter().any(|p| p.matches(model)),
        RouteMatch::Paths(_) => path_route.is_some_and(|p| std::ptr::eq(p, *route)),
    })
}

fn upstream_of<'a>(config: &'a Config, route: &Route) -> Result<&'a Arc<Upstream>, ApiError> {
    config
        .upstream(&route.upstream)
        .ok_or_else(|| ApiError::internal(format!("route {} names no known upstream", route.name)))
}

/// `/v1/files/abc` → `files/abc`: the part below the SDK base URL.
fn rest_of(path: &str) -> &str {
    path.strip_prefix("/v1/")
        .or_else(|| path.strip_prefix('/'))
        .unwrap_or(path)
}

fn splice(body: &[u8], span: std::ops::Range<usize>, with: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + with.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&body[span.end..]);
    Bytes::from(out)
}

/// The upstream request header: the client's headers less hop-by-hop ones, the upstream's
/// host, path and credentials.
fn upstream_request(
    client: &RequestHeader,
    upstream: &Upstream,
    rest: &str,
    request_id: &str,
) -> Result<RequestHeader, ApiError> {
    let build = || -> Result<RequestHeader> {
        let mut path = upstream.url_for(rest);
        if let Some(q) = client.uri.query() {
            path.push('?');
            path.push_str(q);
        }
        let mut header = RequestHeader::build(
            client.method.clone(),
            path.as_bytes(),
            Some(client.headers.len() + 3),
        )?;
        let has_key = upstream.api_key.is_some();
        for (name, value) in client.headers.iter() {
            if headers::forward_request_header(name, has_key) {
                header.append_header(name.clone(), value.clone())?;
            }
        }
        header.insert_header(http::header::HOST, upstream.authority())?;
        if let Some(key) = &upstream.api_key {
            header.insert_header(http::header::AUTHORIZATION, format!("Bearer {key}"))?;
        }
        header.insert_header("x-request-id", request_id)?;
        Ok(header)
    };
    build().map_err(|e| {
        ApiError::internal(format!(
            "could not build the upstream request: {}",
            e.etype().as_str()
        ))
    })
}

/// The client response header: the upstream's status and headers less hop-by-hop ones.
fn client_response_header(upstream: &ResponseHeader, request_id: &str) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + 1))?;
    for (name, value) in upstream.headers.iter() {
        if headers::forward_response_header(name) {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    header.insert_header("x-request-id", request_id)?;
    Ok(header)
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.runtime.load_full(), self.inflight.enter())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.request_id = context::request_id(
            session
                .req_header()
                .headers
                .get("x-request-id")
                .map(|v| v.as_bytes()),
        );
        match self.handle(session, ctx).await {
            Ok(Handled::Answered) => Ok(true),
            Ok(Handled::PassThrough) => Ok(false),
            Err(err) => {
                if let Err(e) = respond::error(session, &err, &ctx.request_id).await {
                    log::debug!(
                        "request {}: could not send the error answer: {e}",
                        ctx.request_id
                    );
                }
                if err.status == 413 || err.status == 408 {
                    body::linger(session).await;
                }
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(pass) = &ctx.pass else {
            return Error::e_explain(ErrorType::InternalError, "no route chosen");
        };
        match self.forwarder.peer(&pass.upstream).await {
            Ok(mut peer) => {
                peer.options.read_timeout =
                    Some(pass.upstream.timeout.max(pass.upstream.idle_timeout));
                Ok(Box::new(peer))
            }
            Err(e) => {
                let mut err = Error::explain(ErrorType::ConnectNoRoute, e.to_string());
                err.esource = ErrorSource::Upstream;
                Err(err)
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(pass) = &ctx.pass else {
            return Ok(());
        };
        let uri = pass
            .path_and_query
            .parse::<http::Uri>()
            .map_err(|_| Error::explain(ErrorType::InternalError, "invalid upstream path"))?;
        upstream_request.set_uri(uri);
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "te",
            "upgrade",
            "accept-encoding",
        ] {
            upstream_request.remove_header(name);
        }
        upstream_request.insert_header(http::header::HOST, pass.upstream.authority())?;
        if let Some(key) = &pass.upstream.api_key {
            upstream_request.insert_header(http::header::AUTHORIZATION, format!("Bearer {key}"))?;
        }
        upstream_request.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let limit = ctx.runtime.config.max_body_bytes;
        if let (Some(pass), Some(chunk)) = (&mut ctx.pass, body.as_ref()) {
            pass.body_bytes += chunk.len();
            if pass.body_bytes > limit {
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "request body over max_body_bytes",
                );
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let upstream = ctx
            .pass
            .as_ref()
            .map_or("?", |p| p.upstream.name.as_str())
            .to_owned();
        let reason = match &e.context {
            Some(c) => format!("{} ({})", e.etype().as_str(), c.as_str()),
            None => e.etype().as_str().to_owned(),
        };
        let api = match e.etype() {
            ErrorType::HTTPStatus(413) => {
                ApiError::body_too_large(ctx.runtime.config.max_body_bytes)
            }
            ErrorType::HTTPStatus(code) => ApiError::new(*code, "api_error", reason.clone()),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                ApiError::gateway_timeout(&upstream, &reason)
            }
            _ => match e.esource() {
                ErrorSource::Upstream => ApiError::bad_gateway(&upstream, &reason),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                        return FailToProxy {
                            error_code: 0,
                            can_reuse_downstream: false,
                        };
                    }
                    _ => ApiError::invalid_request(format!(
                        "The request could not be read: {reason}."
                    )),
                },
                _ => ApiError::internal(format!("internal error: {reason}")),
            },
        };
        log::warn!(
            "request {}: pass-through to {upstream} failed: {reason}",
            ctx.request_id
        );
        let code = api.status;
        if session.response_written().is_none() {
            let _ = respond::error(session, &api, &ctx.request_id).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}
