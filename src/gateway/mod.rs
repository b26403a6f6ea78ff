//! The request path: Pingora's `ProxyHttp` hooks calling the stages in order.
//!
//! ```text
//! request_filter ─▶ canonical path ─▶ dispatch (path) ─▶ read body (bounded, pooled)
//!                ─▶ inspect (model) ─▶ route ─▶ rewrite (alias) ─▶ inspect query
//!                ─▶ forward (attempts, fallbacks) ─▶ relay (as it arrives)
//! logging        ─▶ telemetry (metrics, access log, spans)
//! ```
//!
//! Every request is answered inside `request_filter` (returning `Ok(true)`): Pingora 0.9.1
//! cannot forward a body it did not stream itself, see [`forward`]. Requests on `paths:`
//! routes take the same path (read body, inspect it by media type when the policy redacts,
//! attempts and fallbacks, relay), so they get the same redaction, budgets, retries, health
//! feedback and telemetry as requests routed by model.

// TODO(#17): gateway docs after the stage split
#![allow(missing_docs)]

mod admission;
pub mod attempts;
pub mod body;
pub mod canonical;
pub mod checks;
pub mod context;
pub mod discovery;
pub mod forward;
pub mod headers;
pub mod health;
pub mod observe;
pub mod pool;
pub mod query;
mod redaction;
pub mod resolve;
pub mod respond;
pub mod runtime;
pub mod scrub;
pub mod upload;
pub mod upstream;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::config::{Config, Route, RouteMatch, Upstream};
use crate::limits::Limiter;
use crate::openai::error::ErrorShape;
use crate::openai::usage::{self, Usage};
use crate::openai::{self, ApiError, Endpoint, WireFamily};
use crate::redact::Direction as RedactDirection;
use crate::shutdown::Inflight;
use crate::spend::to_micros;
use crate::telemetry::record::{CapturedContent, UpstreamAttempt, UpstreamErrorReason};
use crate::telemetry::Telemetry;

use admission::Estimate;
use attempts::Failure;
use context::RequestCtx;
use forward::{Exchange, ForwardError, Forwarder};
use health::UpstreamHealth;
use observe::StreamObserver;
use runtime::SharedRuntime;

/// Largest non-streamed JSON answer the gateway reads whole (to inspect it).
const MAX_JSON_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The gateway service.
pub struct Gateway {
    runtime: SharedRuntime,
    forwarder: Arc<Forwarder>,
    inflight: Inflight,
    health: Arc<UpstreamHealth>,
    telemetry: Arc<Telemetry>,
    limiter: Limiter,
    buffers: Arc<body::BufferPool>,
    /// The models behind glob routes, for `GET /v1/models`.
    discovery: Arc<discovery::Discovery>,
}

/// Why a request ended without the gateway writing an answer.
enum Stop {
    /// Answer with this error.
    Error(ApiError),
    /// The client went away; nothing to answer.
    ClientGone,
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        Stop::Error(e)
    }
}

/// The services a gateway shares with the admin listener and background tasks.
pub struct Shared {
    /// The configuration in force.
    pub runtime: SharedRuntime,
    /// Upstream connection pool.
    pub forwarder: Arc<Forwarder>,
    /// Requests in flight (for draining).
    pub inflight: Inflight,
    /// Upstream health.
    pub health: Arc<UpstreamHealth>,
    /// Metrics, traces, access log.
    pub telemetry: Arc<Telemetry>,
    /// Rate-limit state (memory or Redis); kept across reloads.
    pub limiter: Limiter,
}

impl Gateway {
    /// A gateway on the shared services.
    pub fn new(shared: &Shared) -> Self {
        Gateway {
            runtime: shared.runtime.clone(),
            forwarder: shared.forwarder.clone(),
            inflight: shared.inflight.clone(),
            health: shared.health.clone(),
            telemetry: shared.telemetry.clone(),
            limiter: shared.limiter.clone(),
            discovery: Arc::default(),
            buffers: body::BufferPool::new(Some(
                shared.telemetry.metrics().buffered_request_bytes(),
            )),
        }
    }

    async fn handle(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Stop> {
        let runtime = ctx.runtime.clone();
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();

        // canonical paths: nothing a server could read as another path is routed
        canonical::check_path(&path).map_err(|p| Stop::Error(p.to_api_error()))?;
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            ctx.shape = ErrorShape::Anthropic;
        }

        // authenticate: a virtual key, when keys are configured
        if runtime.requires_keys() {
            let presented = upstream::presented_key(session.req_header());
            match presented.and_then(|k| runtime.keys.authenticate(k)) {
                Some(entry) => {
                    ctx.record.key = Some(entry.key.name.clone());
                    if let Some(env) = &entry.key.environment {
                        // Known before routing, so even refusals are labelled with it.
                        ctx.record.environment = env.clone();
                    }
                    ctx.key = Some(entry.clone());
                }
                None => return Err(ApiError::invalid_api_key(presented.is_some()).into()),
            }
        }

        if path == "/v1/models" || path.starts_with("/v1/models/") {
            if method != http::Method::GET {
                return Err(ApiError::method_not_allowed(method.as_str(), &path, "GET").into());
            }
            self.serve_models(session, ctx, &path).await;
            return Ok(());
        }
        if let Some(endpoint) = Endpoint::from_path(&path) {
            if method != http::Method::POST {
                return Err(ApiError::method_not_allowed(method.as_str(), &path, "POST").into());
            }
            ctx.record.operation = endpoint.operation();
            ctx.binary_answer = endpoint.answers_binary();
            return self.serve_model_request(session, ctx, endpoint).await;
        }
        if let Some(route) = runtime.config.route_for_path(&path) {
            return self.serve_path(session, ctx, route).await;
        }
        Err(ApiError::unknown_url(method.as_str(), &path).into())
    }

    /// `GET /v1/models` and `GET /v1/models/{id}`.
    async fn serve_models(&self, session: &mut Session, ctx: &mut RequestCtx, path: &str) {
        if ctx.record.environment.is_empty() {
            ctx.record.environment = ctx.runtime.config.environment.clone();
        }
        ctx.env_inflight = Some(self.telemetry.metrics().inflight(&ctx.record.environment));
        let allowed = |id: &str| ctx.key.as_ref().is_none_or(|k| k.key.allows(id));
        // Anthropic's SDKs send `anthropic-version`: they get Anthropic's shapes.
        let anthropic = session
            .req_header()
            .headers
            .contains_key("anthropic-version");
        let (status, body) = match path.strip_prefix("/v1/models/") {
            None => {
                let discovered = self.discovery.models(&ctx.runtime, &self.forwarder).await;
                let models: Vec<openai::models::Model> = ctx
                    .runtime
                    .models
                    .iter()
                    .chain(discovered.iter())
                    .filter(|m| allowed(&m.id))
                    .cloned()
                    .collect();
                if anthropic {
                    (200, openai::models::list_json_anthropic(&models))
                } else {
                    (200, openai::models::list_json(&models))
                }
            }
            Some(id) => match ctx.runtime.model(id).filter(|m| allowed(&m.id)) {
                Some(m) if anthropic => (200, openai::models::model_json_anthropic(&m)),
                Some(m) => (200, openai::models::model_json(&m)),
                None => {
                    let err = ApiError::model_not_found(id);
                    let shape = if anthropic {
                        ErrorShape::Anthropic
                    } else {
                        ErrorShape::OpenAi
                    };
                    (err.status, err.to_json_in(shape))
                }
            },
        };
        ctx.record.status = status;
        if let Err(e) = respond::json(session, status, body, &ctx.request_id, &[]).await {
            log::debug!("request {}: client went away: {e}", ctx.request_id);
        }
    }

    /// On a route that redacts requests: the client's query string scanned value by value;
    /// what the upstream gets instead is kept in `ctx.query`.
    fn inspect_query(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        redactor: &crate::redact::Redactor,
    ) -> Result<(), ApiError> {
        let Some(q) = session.req_header().uri.query().filter(|q| !q.is_empty()) else {
            return Ok(());
        };
        if !redactor.is_active(RedactDirection::Request) {
            return Ok(());
        }
        ctx.query = query::redact(q, redactor, &mut ctx.redaction)?;
        Ok(())
    }

    /// A `paths:` route: the gateway reads the body (bounded), inspects it by its media type
    /// when the route's policy redacts (and the route does not say `inspect: false`), and
    /// forwards and relays it itself — with the route's attempts, fallbacks, health feedback,
    /// budgets, answer redaction and environment rule, exactly as for requests routed by model.
    async fn serve_path(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
    ) -> Result<(), Stop> {
        let runtime = ctx.runtime.clone();
        let config = &runtime.config;
        ctx.record.route = route.name.clone();
        ctx.record.model = route.name.clone();
        ctx.record.environment = environment_of(ctx, route, config);
        ctx.env_inflight = Some(self.telemetry.metrics().inflight(&ctx.record.environment));
        let redactor = route
            .redaction
            .clone()
            .unwrap_or_else(|| config.redaction.clone());
        let content_type = header_str(session.req_header(), http::header::CONTENT_TYPE).to_owned();
        if config.inspects(route) && redactor.is_active(RedactDirection::Request) {
            let encoding = header_str(session.req_header(), http::header::CONTENT_ENCODING);
            let identity = encoding.is_empty() || encoding.eq_ignore_ascii_case("identity");
            let media = media_of(&content_type);
            if let Some(shape) = upload::shape(session, &media).filter(|_| identity) {
                return self
                    .serve_upload(session, ctx, route, redactor, &content_type, shape)
                    .await;
            }
        }
        let body = body::read(
            session,
            body::Bounds {
                limit: config.max_body_bytes,
                timeout: config.client_timeout,
                reservation: &mut ctx.buffered,
                cap: config.max_buffered_bytes,
            },
        )
        .await?;
        let mut estimate = Estimate::known(Usage::default());
        self.admit(session, ctx, route, None, &mut estimate).await?;
        let body = if config.inspects(route) {
            let body = self.redact_pass_through(ctx, &redactor, &content_type, body, session)?;
            self.inspect_query(session, ctx, &redactor)?;
            ctx.redactor = Some(redactor);
            body
        } else {
            body
        };
        let rest = rest_of(session.req_header().uri.path()).to_owned();
        let (upstream, mut exchange) =
            Box::pin(self.forward(session, ctx, route, None, &rest, body)).await?;
        let result = self
            .relay(
                session,
                ctx,
                &upstream,
                &mut exchange,
                &mut estimate,
                WireFamily::Other,
            )
            .await;
        if let Some(attempt) = ctx.record.attempts.last_mut() {
            attempt.ended = Some(Instant::now());
        }
        Box::pin(self.forwarder.finish(exchange)).await;
        result
    }

    /// A `paths:` upload streamed through redaction (see `upload`): admitted, then sent to the
    /// first upstream that takes the connection, the body redacted piece by piece on its way;
    /// the answer is relayed like any other.
    async fn serve_upload(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
        redactor: Arc<crate::redact::Redactor>,
        content_type: &str,
        shape: upload::Shape,
    ) -> Result<(), Stop> {
        let runtime = ctx.runtime.clone();
        let config = &runtime.config;
        let mut estimate = Estimate::known(Usage::default());
        self.admit(session, ctx, route, None, &mut estimate).await?;
        self.inspect_query(session, ctx, &redactor)?;
        ctx.redactor = Some(redactor.clone());
        let rest = rest_of(session.req_header().uri.path()).to_owned();
        let candidates = attempts::plan(route, &self.health);
        let mut last_error: Option<ApiError> = None;
        let mut chosen = None;
        for (i, name) in candidates.iter().enumerate() {
            let is_last = i + 1 == candidates.len();
            let upstream = upstream_of(config, name)?.clone();
            let ids = ctx.record.trace.attempt();
            let traceparent = ids.traceparent();
            let mut attempt = UpstreamAttempt::begin(ids, name.as_str(), provider(&upstream), "");
            attempt.server_address = Some(upstream.host.clone());
            attempt.server_port = Some(upstream.port);
            let header = upstream::request_header(
                session.req_header(),
                &upstream::Target {
                    upstream: &upstream,
                    model: None,
                    rest: &rest,
                    query: ctx.query.as_deref(),
                    request_id: &ctx.request_id,
                    traceparent: Some(&traceparent),
                    strip_client_auth: runtime.requires_keys(),
                },
            )
            .map_err(|e| {
                ApiError::internal(format!(
                    "could not build the upstream request: {}",
                    e.etype().as_str()
                ))
            })?;
            let mut source = upload::Upload::new(
                session,
                shape,
                content_type,
                &redactor,
                &mut ctx.redaction,
                &mut ctx.record.redaction_failure,
                upload::Limits {
                    body: config.max_body_bytes,
                    timeout: config.client_timeout,
                    cap: config.max_buffered_bytes,
                    reservation: &mut ctx.buffered,
                },
            )?;
            let sent = self
                .forwarder
                .send_streaming(&upstream, header, &mut source)
                .await;
            let started = source.started;
            drop(source);
            match sent {
                Err(forward::UploadError::Body(e)) => {
                    attempt.ended = Some(Instant::now());
                    attempt.error = Some(UpstreamErrorReason::Closed);
                    ctx.record.attempts.push(attempt);
                    return Err(e.into());
                }
                Err(forward::UploadError::Upstream(e)) => {
                    attempt.ended = Some(Instant::now());
                    attempt.error = Some(error_reason(&e));
                    ctx.record.attempts.push(attempt);
                    let failure = if matches!(e, ForwardError::FirstByteTimeout(_)) {
                        Failure::Timeout
                    } else {
                        Failure::Connect
                    };
                    if self.health.record_failure(name, failure.as_str()) {
                        log::warn!("upstream {name} taken out of rotation after repeated failures ({failure:?})");
                    }
                    log::warn!(
                        "request {}: upstream {name} failed ({}): {e}",
                        ctx.request_id,
                        failure.as_str()
                    );
                    last_error = Some(e.to_api_error(name));
                    // A streamed body goes once: another upstream only if none of it was read.
                    if started || !failure.retryable(route.retry_on) || is_last {
                        break;
                    }
                }
                Ok(exchange) => {
                    attempt.first_byte = Some(Instant::now());
                    let status = exchange.header().map_or(502, |h| h.status.as_u16());
                    attempt.status = Some(status);
                    match Failure::from_status(status) {
                        Some(f) => {
                            attempt.error = Some(UpstreamErrorReason::Status(status));
                            if f.counts_against_health() {
                                self.health.record_failure(name, f.as_str());
                            }
                        }
                        None => self.health.record_success(name),
                    }
                    ctx.record.attempts.push(attempt);
                    chosen = Some((upstream, exchange));
                    break;
                }
            }
        }
        let Some((upstream, mut exchange)) = chosen else {
            return Err(last_error
                .unwrap_or_else(|| ApiError::bad_gateway(&route.name, "no upstream could be tried"))
                .into());
        };
        let result = self
            .relay(
                session,
                ctx,
                &upstream,
                &mut exchange,
                &mut estimate,
                WireFamily::Other,
            )
            .await;
        if let Some(attempt) = ctx.record.attempts.last_mut() {
            attempt.ended = Some(Instant::now());
        }
        Box::pin(self.forwarder.finish(exchange)).await;
        result
    }

    /// The lifecycle of a request routed by its `model`.
    async fn serve_model_request(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        endpoint: Endpoint,
    ) -> Result<(), Stop> {
        let runtime = ctx.runtime.clone();
        let config = &runtime.config;

        // read body (bounded)
        let body = body::read(
            session,
            body::Bounds {
                limit: config.max_body_bytes,
                timeout: config.client_timeout,
                reservation: &mut ctx.buffered,
                cap: config.max_buffered_bytes,
            },
        )
        .await?;
        let content_type = header_str(session.req_header(), http::header::CONTENT_TYPE).to_owned();

        // inspect: which model, streamed or not
        let multipart = endpoint.is_multipart(&content_type);
        let (model, json) = if multipart {
            let model =
                openai::multipart_model(&content_type, body.clone(), endpoint.default_model())
                    .await?;
            (model, None)
        } else {
            let request = openai::inspect_json(endpoint, &body)?;
            (request.model.clone(), Some(request))
        };
        if let Some(request) = &json {
            ctx.record.stream = request.stream;
            ctx.record.params.max_tokens = request.max_tokens;
            ctx.record.params.temperature = request.temperature;
        }

        // route
        let path = session.req_header().uri.path().to_owned();
        let (route, label) =
            select_route(config, &path, &model).ok_or_else(|| ApiError::model_not_found(&model))?;
        ctx.record.route = route.name.clone();
        ctx.record.model = label;
        ctx.record.request_model = crate::openai::error::echo(&model);
        ctx.record.environment = environment_of(ctx, route, config);
        ctx.env_inflight = Some(self.telemetry.metrics().inflight(&ctx.record.environment));
        if let Some(entry) = &ctx.key {
            if !entry.key.allows(&model) {
                return Err(ApiError::model_not_allowed(&entry.key.name, &model).into());
            }
        }
        let upstream_model = route.model.clone().unwrap_or_else(|| model.clone());

        // rewrite: model alias
        let body = match (&route.model, &json) {
            (Some(alias), Some(request)) => Bytes::from(openai::replace_model(
                &body,
                request.model_span.clone(),
                alias,
            )),
            (Some(alias), None) => {
                match openai::request::multipart_set_model(&content_type, &body, alias) {
                    Some(aliased) => Bytes::from(aliased),
                    None => body,
                }
            }
            (None, _) => body,
        };
        // The token estimate is made only when it is needed. Counting tokens is free: it
        // is admitted like any request, but reserves and is charged nothing.
        let free = endpoint == Endpoint::MessagesCountTokens;
        let mut estimate = match &json {
            Some(_) if !free => Estimate::later(endpoint, body.clone()),
            _ => Estimate::known(Usage::default()),
        };

        // admit: key and route budgets, one atomic check
        let priced_model = (!free).then_some(upstream_model.as_str());
        self.admit(session, ctx, route, priced_model, &mut estimate)
            .await?;

        // streams report their usage: ask for it when the client did not (and hide it again)
        let mut body = body;
        if json.as_ref().is_some_and(|request| request.stream) {
            if let Some(asked) = usage::request_stream_usage(endpoint, &body) {
                body = Bytes::from(asked);
                ctx.strip_usage_chunk = true;
            }
        }

        // redact the request (fail closed: what cannot be inspected is not forwarded)
        let redactor = route
            .redaction
            .clone()
            .unwrap_or_else(|| config.redaction.clone());
        let body = self.redact_request(ctx, &redactor, multipart, &content_type, body, session)?;
        // Thinking blocks the gateway sealed for the client go back as the upstream signed
        // them (after redaction: they are the upstream's own text).
        let body = if endpoint == Endpoint::Messages {
            match redactor.unseal_thinking(&body) {
                Ok(Some(restored)) => Bytes::from(restored),
                Ok(None) => body,
                Err(crate::redact::Unsealed::WrongKey) => {
                    return Err(ApiError::invalid_request(
                        "A thinking block in `messages` carries a signature this gateway sealed with another key (another instance, or a restart, without a shared `redaction.hash_key`): it cannot be restored. Send the conversation again without that block, or start a new one.",
                    )
                    .param("messages")
                    .code("invalid_thinking_signature")
                    .into())
                }
            }
        } else {
            body
        };
        self.inspect_query(session, ctx, &redactor)?;
        if self.telemetry.captures_content(&ctx.record.environment) {
            // What the upstream is sent, after redaction (GenAI `gen_ai.input.messages`).
            ctx.record.content =
                openai::content::input_messages(endpoint, &body).map(|input| CapturedContent {
                    input,
                    output: String::new(),
                });
        }
        ctx.redactor = Some(redactor);

        // forward: attempts over the route's upstreams, then its fallbacks.
        // This future is allocated for as long as the request lives, streams included, and is
        // as large as its largest phase: the phases that end before the relay (connecting,
        // sending, giving a connection back) are boxed so that an open stream holds ~4 KiB
        // instead of ~14.5 KiB (`-Zprint-type-sizes`; benches/load.sh, 1,000 open streams).
        let (upstream, mut exchange) = Box::pin(self.forward(
            session,
            ctx,
            route,
            Some(&upstream_model),
            endpoint.rest(),
            body,
        ))
        .await?;

        // relay
        let result = self
            .relay(
                session,
                ctx,
                &upstream,
                &mut exchange,
                &mut estimate,
                endpoint.family(),
            )
            .await;
        if let Some(attempt) = ctx.record.attempts.last_mut() {
            attempt.ended = Some(Instant::now());
        }
        Box::pin(self.forwarder.finish(exchange)).await;
        result
    }

    /// Tries the route's candidates in order until one answers with something other than a
    /// retryable failure. The client's disconnect cancels the attempt in progress.
    async fn forward(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
        upstream_model: Option<&str>,
        rest: &str,
        body: Bytes,
    ) -> Result<(Arc<Upstream>, Exchange), Stop> {
        let runtime = ctx.runtime.clone();
        let candidates = attempts::plan(route, &self.health);
        let mut last_error: Option<ApiError> = None;
        for (i, name) in candidates.iter().enumerate() {
            let is_last = i + 1 == candidates.len();
            if i > 0 && ctx.record.started.elapsed() > attempts::RETRY_DEADLINE {
                break;
            }
            let upstream = upstream_of(&runtime.config, name)?.clone();
            let ids = ctx.record.trace.attempt();
            let traceparent = ids.traceparent();
            let mut attempt = UpstreamAttempt::begin(
                ids,
                name.as_str(),
                provider(&upstream),
                upstream_model.unwrap_or_default(),
            );
            attempt.server_address = Some(upstream.host.clone());
            attempt.server_port = Some(upstream.port);
            let header = upstream::request_header(
                session.req_header(),
                &upstream::Target {
                    upstream: &upstream,
                    model: upstream_model,
                    rest,
                    query: ctx.query.as_deref(),
                    request_id: &ctx.request_id,
                    traceparent: Some(&traceparent),
                    strip_client_auth: runtime.requires_keys(),
                },
            )
            .map_err(|e| {
                ApiError::internal(format!(
                    "could not build the upstream request: {}",
                    e.etype().as_str()
                ))
            })?;

            let sent = tokio::select! {
                sent = self.forwarder.send(&upstream, header, body.clone()) => sent,
                () = client_gone(session) => {
                    attempt.ended = Some(Instant::now());
                    attempt.error = Some(UpstreamErrorReason::Closed);
                    ctx.record.attempts.push(attempt);
                    return Err(Stop::ClientGone);
                }
            };
            match sent {
                Err(e) => {
                    attempt.ended = Some(Instant::now());
                    attempt.error = Some(error_reason(&e));
                    ctx.record.attempts.push(attempt);
                    let failure = if matches!(e, ForwardError::FirstByteTimeout(_)) {
                        Failure::Timeout
                    } else {
                        Failure::Connect
                    };
                    if self.health.record_failure(name, failure.as_str()) {
                        log::warn!("upstream {name} taken out of rotation after repeated failures ({failure:?})");
                    }
                    log::warn!(
                        "request {}: upstream {name} failed ({}): {e}",
                        ctx.request_id,
                        failure.as_str()
                    );
                    last_error = Some(e.to_api_error(name));
                    if !failure.retryable(route.retry_on) || is_last {
                        break;
                    }
                }
                Ok(exchange) => {
                    attempt.first_byte = Some(Instant::now());
                    let (status, retry_after) = match exchange.header() {
                        Some(h) => (h.status.as_u16(), health::retry_after(&h.headers)),
                        None => (502, None),
                    };
                    attempt.status = Some(status);
                    let failure = Failure::from_status(status);
                    if let Some(after) = retry_after.filter(|_| failure.is_some()) {
                        self.health.cool_down(name, after);
                    }
                    match failure {
                        Some(f) => {
                            attempt.error = Some(UpstreamErrorReason::Status(status));
                            if f.counts_against_health() {
                                self.health.record_failure(name, f.as_str());
                            }
                            if f.retryable(route.retry_on) && !is_last {
                                attempt.ended = Some(Instant::now());
                                ctx.record.attempts.push(attempt);
                                log::warn!(
                                    "request {}: upstream {name} answered {status}; trying the next upstream",
                                    ctx.request_id
                                );
                                Box::pin(self.forwarder.finish(exchange)).await;
                                continue;
                            }
                        }
                        None => self.health.record_success(name),
                    }
                    ctx.record.attempts.push(attempt);
                    return Ok((upstream, exchange));
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| ApiError::bad_gateway(&route.name, "no upstream could be tried"))
            .into())
    }

    /// Sends the upstream answer to the client: streams as they arrive, JSON answers whole.
    async fn relay(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        upstream: &Upstream,
        exchange: &mut Exchange,
        estimate: &mut Estimate,
        kind: WireFamily,
    ) -> Result<(), Stop> {
        let Some(upstream_header) = exchange.header() else {
            return Err(ApiError::bad_gateway(&upstream.name, "no response header").into());
        };
        let status = upstream_header.status.as_u16();
        let content_type = header_str_resp(upstream_header, http::header::CONTENT_TYPE).to_owned();
        let is_sse = content_type.starts_with("text/event-stream");
        let is_json = content_type.starts_with("application/json")
            || content_type
                .split(';')
                .next()
                .is_some_and(|t| t.trim_end().ends_with("+json"));
        // JSON answers get a new length after inspection; streams are re-framed event by event
        // (redaction, the hidden usage chunk), so they always go out chunked.
        let mut header =
            upstream::response_header(upstream_header, &ctx.request_id, is_json || is_sse)
                .map_err(|_| ApiError::internal("could not relay the upstream answer"))?;
        if is_sse {
            let _ = header.insert_header(http::header::TRANSFER_ENCODING, "chunked");
        }
        for (name, value) in &ctx.rate_headers {
            let _ = header.insert_header(*name, value.as_str());
        }
        ctx.record.status = status;

        let success = (200..300).contains(&status);
        // The one answer body relayed unread: the audio `/v1/audio/speech` was asked for.
        let binary_media = ctx.binary_answer
            && success
            && (content_type.starts_with("audio/")
                || content_type.starts_with("application/octet-stream"));
        // On the Messages API a request policy alone is enough: thinking blocks it would
        // change on their way back are sealed in the answer (redact/thinking.rs).
        let redacting = !binary_media
            && ctx.redactor.as_ref().is_some_and(|r| {
                r.is_active(RedactDirection::Response)
                    || (kind == WireFamily::Messages && r.is_active(RedactDirection::Request))
            });
        // Read whole: JSON answers (to inspect them), any answer on a redacting route that is
        // not a stream (text is scanned, anything else refused), and every error answer (an
        // upstream may echo its key, or the request, in it).
        if !is_sse && (is_json || redacting || !success) {
            let body = match exchange.read_to_end(MAX_JSON_RESPONSE_BYTES).await {
                Ok(body) => body,
                Err(e) => {
                    ctx.record.status = 502;
                    return Err(e.to_api_error(&upstream.name).into());
                }
            };
            mark_first_token(ctx);
            if success && is_json {
                let seen = observe::observe_json(&body);
                self.account(ctx, &seen, estimate);
            }
            let body = scrub::KeyScrubber::new(upstream).whole(body);
            let body = match (redacting, is_json) {
                (false, _) => body,
                (true, true) => {
                    let redacted = self.redact_response(ctx, kind, body.clone(), &upstream.name)?;
                    if redacted != body && success {
                        // Traces carry the answer's model and id: as the client sees them.
                        let seen = observe::observe_json(&redacted);
                        ctx.record.response.model = seen.response_model;
                        ctx.record.response.id = seen.response_id;
                    }
                    redacted
                }
                (true, false) => self.redact_text_response(ctx, body, &upstream.name)?,
            };
            if success {
                if let Some(content) = ctx.record.content.as_mut() {
                    content.output = openai::content::output_messages(&body).unwrap_or_default();
                }
            }
            return write_whole(session, header, body).await;
        }

        if is_sse && redacting {
            let _ = header.remove_header(&http::header::CONTENT_LENGTH);
        }
        if session
            .write_response_header(Box::new(header), false)
            .await
            .is_err()
        {
            return Err(Stop::ClientGone);
        }
        let mut observer = StreamObserver::new(ctx.strip_usage_chunk);
        if ctx.record.content.is_some() {
            observer.usage.text = Some(openai::content::StreamText::default());
        }
        let mut stream_redactor = match &ctx.redactor {
            Some(r) if redacting && is_sse => Some(r.stream(kind)),
            _ => None,
        };
        // Last before the client: the upstream's own key, whatever the policy.
        let mut scrubber = scrub::KeyScrubber::new(upstream);
        loop {
            let next = tokio::select! {
                next = exchange.next_chunk() => next,
                () = client_gone(session) => {
                    self.account(ctx, &observer.usage, estimate);
                    return Err(Stop::ClientGone);
                }
            };
            match next {
                Ok(Some(chunk)) => {
                    if !is_sse || memchr::memmem::find(&chunk, b"data:").is_some() {
                        mark_first_token(ctx);
                    }
                    // One framing of the stream: the redactor's, or else the observer's.
                    let chunk = match stream_redactor.as_mut() {
                        Some(sr) => match sr.push_events(&chunk, &mut ctx.redaction) {
                            Ok(events) => Bytes::from(observer.emit(events)),
                            Err(e) => {
                                self.end_stream_on_redaction_error(session, ctx, &e).await;
                                self.account(ctx, &observer.usage, estimate);
                                return Ok(());
                            }
                        },
                        None if is_sse => Bytes::from(observer.feed(&chunk)),
                        None => chunk,
                    };
                    let chunk = scrubber.push(chunk);
                    if chunk.is_empty() {
                        continue;
                    }
                    if session
                        .write_response_body(Some(chunk), false)
                        .await
                        .is_err()
                    {
                        self.account(ctx, &observer.usage, estimate);
                        return Err(Stop::ClientGone);
                    }
                }
                Ok(None) => {
                    let mut rest = Vec::new();
                    if let Some(sr) = stream_redactor.as_mut() {
                        match sr.finish_events(&mut ctx.redaction) {
                            Ok(events) => rest = observer.emit(events),
                            Err(e) => {
                                self.end_stream_on_redaction_error(session, ctx, &e).await;
                                self.account(ctx, &observer.usage, estimate);
                                return Ok(());
                            }
                        }
                    }
                    if is_sse {
                        self.account(ctx, &observer.usage, estimate);
                        rest.extend_from_slice(&observer.finish());
                    }
                    let mut rest = scrubber.push(Bytes::from(rest)).to_vec();
                    rest.extend_from_slice(&scrubber.finish());
                    if !rest.is_empty()
                        && session
                            .write_response_body(Some(Bytes::from(rest)), false)
                            .await
                            .is_err()
                    {
                        return Err(Stop::ClientGone);
                    }
                    let _ = session.write_response_body(None, true).await;
                    return Ok(());
                }
                Err(e) => {
                    log::warn!(
                        "request {}: upstream {} broke off mid-response: {e}",
                        ctx.request_id,
                        upstream.name
                    );
                    if let Some(attempt) = ctx.record.attempts.last_mut() {
                        attempt.error = Some(error_reason(&e));
                    }
                    ctx.record.error = Some("upstream_broke_off");
                    session.set_keepalive(None);
                    // Text held back for redaction is released (redacted) before the error.
                    let mut rest = Vec::new();
                    if let Some(sr) = stream_redactor.as_mut() {
                        if let Ok(events) = sr.finish_events(&mut ctx.redaction) {
                            rest = observer.emit(events);
                        }
                    }
                    let mut rest = scrubber.push(Bytes::from(rest)).to_vec();
                    rest.extend_from_slice(&scrubber.finish());
                    if !rest.is_empty() {
                        let _ = session
                            .write_response_body(Some(Bytes::from(rest)), false)
                            .await;
                    }
                    if is_sse {
                        self.account(ctx, &observer.usage, estimate);
                        let event = e.to_api_error(&upstream.name).to_sse_event_in(ctx.shape);
                        let _ = session
                            .write_response_body(Some(Bytes::from(event)), true)
                            .await;
                    }
                    return Ok(());
                }
            }
        }
    }
}

/// The environment a request belongs to: its key's, else its route's, else the config's —
/// the same rule on every kind of route, so a key's traffic is never exported to another
/// environment's trace backend.
fn environment_of(ctx: &RequestCtx, route: &Route, config: &Config) -> String {
    ctx.key
        .as_ref()
        .and_then(|k| k.key.environment.clone())
        .or_else(|| route.environment.clone())
        .unwrap_or_else(|| config.environment.clone())
}

/// Notes when the first content of the answer arrived (once per attempt): the time to first
/// token of a stream, not of its header.
fn mark_first_token(ctx: &mut RequestCtx) {
    if let Some(attempt) = ctx.record.attempts.last_mut() {
        attempt.first_token.get_or_insert_with(Instant::now);
    }
}

/// `POST /v1/files`: a request's method and path, for log lines.
fn summary(header: &RequestHeader) -> String {
    format!(
        "{} {}",
        header.method.as_str(),
        crate::openai::error::echo(header.uri.path())
    )
}

/// Resolves when the client has closed its connection (never, while it stays open).
async fn client_gone(session: &mut Session) {
    loop {
        match session.read_body_or_idle(true).await {
            Err(_) => return,
            // Bytes of a pipelined next request: not a disconnect.
            Ok(_) => std::future::pending::<()>().await,
        }
    }
}

/// The first route, in file order, that matches: a `models:` route by the model, a `paths:`
/// route by the path. Also returns the label metrics use for the model: the pattern that
/// matched (a glob stays a glob, so clients cannot create label values).
fn select_route<'a>(config: &'a Config, path: &str, model: &str) -> Option<(&'a Route, String)> {
    let path_route = config.route_for_path(path);
    config.routes.iter().find_map(|route| match &route.matcher {
        RouteMatch::Models(patterns) => patterns
            .iter()
            .find(|p| p.matches(model))
            .map(|p| (route, p.pattern.clone())),
        RouteMatch::Paths(_) => path_route
            .filter(|p| std::ptr::eq(*p, route))
            .map(|r| (r, r.name.clone())),
    })
}

fn upstream_of<'a>(config: &'a Config, name: &str) -> Result<&'a Arc<Upstream>, ApiError> {
    config
        .upstream(name)
        .ok_or_else(|| ApiError::internal(format!("no upstream named {name}")))
}

/// The GenAI `gen_ai.provider.name` of an upstream, from its host.
fn provider(upstream: &Upstream) -> String {
    let host = upstream.host.as_str();
    let known = if upstream.api == crate::config::UpstreamApi::Anthropic {
        "anthropic"
    } else if host == "api.openai.com" {
        "openai"
    } else if host.ends_with(".openai.azure.com") {
        "azure.ai.openai"
    } else if host == "generativelanguage.googleapis.com" {
        "gcp.gemini"
    } else if host == "api.anthropic.com" {
        "anthropic"
    } else {
        return upstream.name.clone();
    };
    known.to_owned()
}

fn error_reason(e: &ForwardError) -> UpstreamErrorReason {
    match e {
        ForwardError::Resolve(_) | ForwardError::Connect(_) => {
            if e.to_string().contains("TLS") {
                UpstreamErrorReason::Tls
            } else {
                UpstreamErrorReason::Connect
            }
        }
        ForwardError::ConnectTimeout(_)
        | ForwardError::FirstByteTimeout(_)
        | ForwardError::IdleTimeout(_) => UpstreamErrorReason::Timeout,
        ForwardError::Send(_) => UpstreamErrorReason::Closed,
        ForwardError::Protocol(_) => UpstreamErrorReason::Protocol,
    }
}

/// `/v1/files/abc` → `files/abc`: the part below the SDK base URL.
/// The media type of a `Content-Type`, lower-case, without parameters.
fn media_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn rest_of(path: &str) -> &str {
    path.strip_prefix("/v1/")
        .or_else(|| path.strip_prefix('/'))
        .unwrap_or(path)
}

fn header_str(header: &RequestHeader, name: http::header::HeaderName) -> &str {
    header
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn header_str_resp(header: &ResponseHeader, name: http::header::HeaderName) -> &str {
    header
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Answers with a whole body of known length.
async fn write_whole(
    session: &mut Session,
    mut header: ResponseHeader,
    body: Bytes,
) -> Result<(), Stop> {
    header
        .insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
        .map_err(|_| ApiError::internal("could not relay the upstream answer"))?;
    if session
        .write_response_header(Box::new(header), false)
        .await
        .is_err()
        || session.write_response_body(Some(body), true).await.is_err()
    {
        return Err(Stop::ClientGone);
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let mut ctx = RequestCtx::new(self.runtime.load_full(), self.inflight.enter());
        ctx.buffered = body::Reservation::new(self.buffers.clone());
        ctx
    }

    /// What Pingora's own error lines say about a request: its method and path, never the
    /// query string (it may hold a key or a secret) nor the `Host` (Pingora's default prints
    /// the whole request target).
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        summary(session.req_header())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let headers = &session.req_header().headers;
        ctx.request_id = context::request_id(headers.get("x-request-id").map(|v| v.as_bytes()));
        let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
        ctx.begin_record(self.telemetry.start_trace(traceparent));
        match self.handle(session, ctx).await {
            Ok(()) => Ok(true),
            Err(Stop::ClientGone) => {
                ctx.record.error = Some("client_disconnected");
                if ctx.record.status == 0 {
                    ctx.record.status = 499;
                }
                session.set_keepalive(None);
                Ok(true)
            }
            Err(Stop::Error(err)) => {
                ctx.record.status = err.status;
                ctx.record.error = err.code;
                let overloaded = err.code == body::overloaded().code;
                if overloaded {
                    // Refused mid-body: the connection cannot be reused; retry soon.
                    session.set_keepalive(None);
                    ctx.rate_headers.push(("retry-after", "1".to_owned()));
                }
                if let Err(e) =
                    respond::error(session, &err, ctx.shape, &ctx.request_id, &ctx.rate_headers)
                        .await
                {
                    log::debug!(
                        "request {}: could not send the error answer: {e}",
                        ctx.request_id
                    );
                }
                if err.status == 413 || err.status == 408 || overloaded {
                    body::linger(session).await;
                }
                Ok(true)
            }
        }
    }

    /// Never called: `request_filter` answers every request itself (Pingora 0.9.1 cannot
    /// forward a body the gateway has read, see [`forward`]).
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
        ctx.record.status = code;
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
        if ctx.record.status == 0 {
            ctx.record.status = session.response_written().map_or(0, |r| r.status.as_u16());
        }
        if ctx.record.environment.is_empty() {
            ctx.record.environment = ctx.runtime.config.environment.clone();
        }
        for count in ctx.redaction.counts() {
            ctx.record.add_redactions(
                count.direction,
                &count.detector,
                count.action.as_str(),
                count.n,
            );
        }
        ctx.record.ended = Some(Instant::now());
        if let Some(ticket) = ctx.ticket.take() {
            let used = ctx.record.tokens.map_or(0, |t| t.prompt + t.completion);
            // A request that reserved dollars but whose cost is unknown (no usage: it failed
            // before an answer, or the answer was not read) is settled at $0 when nothing was
            // generated, else keeps its reservation.
            let cost = match (ctx.record.cost_usd, ctx.record.tokens) {
                (Some(cost), _) => Some(to_micros(cost)),
                (None, None) => Some(0),
                (None, Some(_)) => None,
            };
            ticket.reconcile_cost(used, cost).await;
        }
        self.telemetry.finish(&ctx.record);
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
