//! The lifecycle of one request, as the list of its stages. Nothing here knows Pingora's
//! `Session`: the client is a [`Downstream`], the upstreams a [`Transport`].
//!
//! ```text
//! serve ─▶ canonical path ─▶ authenticate ─▶ dispatch (method, path)
//!       ─▶ models listing                                  (GET /v1/models…)
//!       ─▶ read body ─▶ inspect (model) ─▶ route ─▶ rewrite (alias)      (by model)
//!       ─▶ admit (budgets) ─▶ redact request ─▶ forward (attempts) ─▶ relay
//!       ─▶ paths: read or stream body ─▶ admit ─▶ redact ─▶ forward ─▶ relay   (by path)
//!       ─▶ answer the error, if any (the client's API's shape)
//! finish ─▶ redaction counts, budget reconcile, telemetry (metrics, access log, spans)
//! ```

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::admission::Estimate;
use super::attempts::{self, Destination, RequestBody};
use super::body::{self, BufferPool};
use super::context::RequestCtx;
use super::downstream::Downstream;
use super::routing::{self, Dispatch};
use super::transport::Transport;
use super::upstream_health::UpstreamHealth;
use super::{canonical, discovery, query, respond, upload, Shared, Stop};
use crate::config::Route;
use crate::limits::Limiter;
use crate::redact::{Direction, Redactor};
use crate::runtime::SharedRuntime;
use crate::shutdown::Inflight;
use crate::spend::to_micros;
use crate::telemetry::record::CapturedContent;
use crate::telemetry::Telemetry;
use crate::wire::error::ErrorShape;
use crate::wire::usage::Usage;
use crate::wire::{self, ApiError, Endpoint, Family};

/// The whole request body, within the configuration's bounds (`max_body_bytes`,
/// `client_timeout`, `max_buffered_bytes`), its bytes counted in the request's reservation.
async fn read_body<D: Downstream>(client: &mut D, ctx: &mut RequestCtx) -> Result<Bytes, ApiError> {
    let config = &ctx.runtime.config;
    body::read(
        client,
        body::Bounds {
            limit: config.max_body_bytes,
            timeout: config.client_timeout,
            reservation: &mut ctx.buffered,
            cap: config.max_buffered_bytes,
        },
    )
    .await
}

/// The request path, on transport `T` (the gateway's: [`super::forward::Forwarder`]).
pub struct Pipeline<T> {
    runtime: SharedRuntime,
    pub(super) transport: Arc<T>,
    inflight: Inflight,
    pub(super) health: Arc<UpstreamHealth>,
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) limiter: Limiter,
    buffers: Arc<BufferPool>,
    /// The models behind glob routes, for `GET /v1/models`.
    discovery: Arc<discovery::Discovery>,
}

impl<T: Transport> Pipeline<T> {
    /// A pipeline on the shared services, sending over `transport`.
    pub fn new(shared: &Shared, transport: Arc<T>) -> Self {
        Pipeline {
            runtime: shared.runtime.clone(),
            transport,
            inflight: shared.inflight.clone(),
            health: shared.health.clone(),
            telemetry: shared.telemetry.clone(),
            limiter: shared.limiter.clone(),
            discovery: Arc::default(),
            buffers: BufferPool::new(Some(shared.telemetry.metrics().buffered_request_bytes())),
        }
    }

    /// The context of a new request, on the configuration in force now.
    pub fn new_ctx(&self) -> RequestCtx {
        let mut ctx = RequestCtx::new(self.runtime.load_full(), self.inflight.enter());
        ctx.buffered = body::Reservation::new(self.buffers.clone());
        ctx
    }

    /// Serves one request to its end: the answer, or the error in the client's API's shape.
    pub async fn serve<D: Downstream>(&self, client: &mut D, ctx: &mut RequestCtx) {
        let headers = &client.req_header().headers;
        ctx.request_id =
            super::context::request_id(headers.get("x-request-id").map(|v| v.as_bytes()));
        let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
        ctx.begin_record(self.telemetry.start_trace(traceparent));
        match self.handle(client, ctx).await {
            Ok(()) => {}
            Err(Stop::ClientGone) => {
                ctx.record.error = Some("client_disconnected");
                client.close_after();
            }
            Err(Stop::Error(err)) => {
                ctx.record.error = err.code;
                let overloaded = err.code == body::overloaded().code;
                if overloaded {
                    // Refused mid-body: the connection cannot be reused; retry soon.
                    client.close_after();
                    ctx.rate_headers.push(("retry-after", "1".to_owned()));
                }
                if let Err(e) =
                    respond::error(client, &err, ctx.shape, &ctx.request_id, &ctx.rate_headers)
                        .await
                {
                    log::debug!(
                        "request {}: could not send the error answer: {e}",
                        ctx.request_id
                    );
                }
                if err.status == 413 || err.status == 408 || overloaded {
                    body::linger(client).await;
                }
            }
        }
    }

    /// The stages every request goes through, then those of its kind.
    async fn handle<D: Downstream>(
        &self,
        client: &mut D,
        ctx: &mut RequestCtx,
    ) -> Result<(), Stop> {
        let runtime = ctx.runtime.clone();
        let method = client.req_header().method.clone();
        let path = client.req_header().uri.path().to_owned();

        // canonical paths: nothing a server could read as another path is routed
        canonical::check_path(&path).map_err(|p| Stop::Error(p.to_api_error()))?;
        ctx.shape = ErrorShape::of_path(&path);

        // authenticate: a virtual key, when keys are configured
        ctx.key = routing::authenticate(&runtime, client.req_header())?;
        if let Some(entry) = &ctx.key {
            ctx.record.key = Some(entry.key.name.clone());
        }
        // Known before routing, so that even refusals are labelled with it.
        ctx.record.environment = routing::environment_of(ctx.key.as_deref(), None, &runtime.config);

        match routing::dispatch(&runtime.config, &method, &path)? {
            Dispatch::Models(id) => {
                self.serve_models(client, ctx, id).await;
                Ok(())
            }
            Dispatch::Model(endpoint) => {
                ctx.record.operation = endpoint.operation();
                ctx.binary_answer = endpoint.answers_binary();
                self.serve_model_request(client, ctx, endpoint).await
            }
            Dispatch::Path(route) => self.serve_path(client, ctx, route).await,
        }
    }

    /// `GET /v1/models` (`id` `None`) and `GET /v1/models/{id}`.
    async fn serve_models<D: Downstream>(
        &self,
        client: &mut D,
        ctx: &mut RequestCtx,
        id: Option<&str>,
    ) {
        ctx.env_inflight = Some(self.telemetry.metrics().inflight(&ctx.record.environment));
        let allowed = |id: &str| ctx.key.as_ref().is_none_or(|k| k.key.allows(id));
        // Anthropic's SDKs send `anthropic-version`: they get Anthropic's shapes.
        let anthropic = client
            .req_header()
            .headers
            .contains_key("anthropic-version");
        let (status, body) = match id {
            None => {
                let discovered = self
                    .discovery
                    .models(&ctx.runtime, self.transport.as_ref())
                    .await;
                let models: Vec<wire::models::Model> = ctx
                    .runtime
                    .models
                    .iter()
                    .chain(discovered.iter())
                    .filter(|m| allowed(&m.id))
                    .cloned()
                    .collect();
                if anthropic {
                    (200, wire::models::list_json_anthropic(&models))
                } else {
                    (200, wire::models::list_json(&models))
                }
            }
            Some(id) => match ctx.runtime.model(id).filter(|m| allowed(&m.id)) {
                Some(m) if anthropic => (200, wire::models::model_json_anthropic(&m)),
                Some(m) => (200, wire::models::model_json(&m)),
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
        if let Err(e) = respond::json(client, status, body, &ctx.request_id, &[]).await {
            log::debug!("request {}: client went away: {e}", ctx.request_id);
        }
    }

    /// On a route that redacts requests: the client's query string scanned value by value;
    /// what the upstream gets instead is kept in `ctx.query`.
    fn inspect_query<D: Downstream>(
        &self,
        client: &D,
        ctx: &mut RequestCtx,
        redactor: &Redactor,
    ) -> Result<(), ApiError> {
        let Some(q) = client.req_header().uri.query().filter(|q| !q.is_empty()) else {
            return Ok(());
        };
        if !redactor.is_active(Direction::Request) {
            return Ok(());
        }
        ctx.query = query::redact(q, redactor, &mut ctx.redaction)?;
        Ok(())
    }

    /// A `paths:` route: the gateway reads the body (bounded), inspects it by its media type
    /// when the route's policy redacts (and the route does not say `inspect: false`), and
    /// forwards and relays it itself — with the route's attempts, fallbacks, health feedback,
    /// budgets, answer redaction and environment rule, exactly as for requests routed by model.
    /// A large or chunked text, JSON Lines or form upload is streamed through redaction
    /// instead of read whole (see [`upload`]).
    async fn serve_path<D: Downstream>(
        &self,
        client: &mut D,
        ctx: &mut RequestCtx,
        route: &Route,
    ) -> Result<(), Stop> {
        let runtime = ctx.runtime.clone();
        let config = &runtime.config;
        ctx.record.route = route.name.clone();
        ctx.record.model = route.name.clone();
        ctx.record.environment = routing::environment_of(ctx.key.as_deref(), Some(route), config);
        ctx.env_inflight = Some(self.telemetry.metrics().inflight(&ctx.record.environment));
        let redactor = runtime.redactor(route).clone();
        let content_type = client.header_str(http::header::CONTENT_TYPE).to_owned();
        let content_encoding = client.header_str(http::header::CONTENT_ENCODING).to_owned();
        let inspects = runtime.inspects(route);
        let identity =
            content_encoding.is_empty() || content_encoding.eq_ignore_ascii_case("identity");
        let streamed = if inspects && redactor.is_active(Direction::Request) && identity {
            upload::shape(client, &routing::media_of(&content_type))
        } else {
            None
        };
        let mut estimate = Estimate::known(Usage::default());
        let body = match streamed {
            Some(shape) => {
                self.admit(client.client_ip(), ctx, route, None, &mut estimate)
                    .await?;
                self.inspect_query(client, ctx, &redactor)?;
                ctx.redactor = Some(redactor.clone());
                RequestBody::Streamed {
                    shape,
                    content_type,
                    redactor,
                }
            }
            None => {
                let body = read_body(client, ctx).await?;
                self.admit(client.client_ip(), ctx, route, None, &mut estimate)
                    .await?;
                let body = if inspects {
                    let body = self.redact_pass_through(
                        ctx,
                        &redactor,
                        &content_type,
                        body,
                        &content_encoding,
                    )?;
                    self.inspect_query(client, ctx, &redactor)?;
                    ctx.redactor = Some(redactor);
                    body
                } else {
                    body
                };
                RequestBody::Whole(body)
            }
        };
        let rest = routing::rest_of(client.req_header().uri.path()).to_owned();
        let to = Destination {
            model: None,
            rest: &rest,
        };
        self.forward_and_relay(client, ctx, route, to, body, &mut estimate, Family::Other)
            .await
    }

    /// The lifecycle of a request routed by its `model`.
    async fn serve_model_request<D: Downstream>(
        &self,
        client: &mut D,
        ctx: &mut RequestCtx,
        endpoint: Endpoint,
    ) -> Result<(), Stop> {
        let runtime = ctx.runtime.clone();
        let config = &runtime.config;

        // read body (bounded)
        let body = read_body(client, ctx).await?;
        let content_type = client.header_str(http::header::CONTENT_TYPE).to_owned();

        // inspect: which model, streamed or not
        let multipart = endpoint.is_multipart(&content_type);
        let (model, json) = if multipart {
            let model =
                wire::multipart_model(&content_type, body.clone(), endpoint.default_model())
                    .await?;
            (model, None)
        } else {
            let request = wire::inspect_json(endpoint, &body)?;
            (request.model.clone(), Some(request))
        };
        if let Some(request) = &json {
            ctx.record.stream = request.stream;
            ctx.record.params.max_tokens = request.max_tokens;
            ctx.record.params.temperature = request.temperature;
        }

        // route
        let path = client.req_header().uri.path().to_owned();
        let (route, label) = routing::select_route(config, &path, &model)
            .ok_or_else(|| ApiError::model_not_found(&model))?;
        ctx.record.route = route.name.clone();
        ctx.record.model = label;
        ctx.record.request_model = crate::wire::error::echo(&model);
        ctx.record.environment = routing::environment_of(ctx.key.as_deref(), Some(route), config);
        ctx.env_inflight = Some(self.telemetry.metrics().inflight(&ctx.record.environment));
        if let Some(entry) = &ctx.key {
            if !entry.key.allows(&model) {
                return Err(ApiError::model_not_allowed(&entry.key.name, &model).into());
            }
        }
        let upstream_model = route.model.clone().unwrap_or_else(|| model.clone());

        // rewrite: model alias
        let body = match (&route.model, &json) {
            (Some(alias), Some(request)) => Bytes::from(wire::replace_model(
                &body,
                request.model_span.clone(),
                alias,
            )),
            (Some(alias), None) => {
                match wire::request::multipart_set_model(&content_type, &body, alias) {
                    Some(aliased) => Bytes::from(aliased),
                    None => body,
                }
            }
            (None, _) => body,
        };
        // The token estimate is made only when it is needed. Counting tokens is free: it
        // is admitted like any request, but reserves and is charged nothing.
        let free = endpoint.is_free();
        let mut estimate = match &json {
            Some(_) if !free => Estimate::later(endpoint, body.clone()),
            _ => Estimate::known(Usage::default()),
        };

        // admit: key and route budgets, one atomic check
        let priced_model = (!free).then_some(upstream_model.as_str());
        self.admit(client.client_ip(), ctx, route, priced_model, &mut estimate)
            .await?;

        // streams report their usage: ask for it when the client did not (and hide it again)
        let mut body = body;
        if json.as_ref().is_some_and(|request| request.stream) {
            if let Some(asked) = endpoint.family().ask_for_stream_usage(&body) {
                body = Bytes::from(asked);
                ctx.strip_usage_chunk = true;
            }
        }

        // redact the request (fail closed: what cannot be inspected is not forwarded)
        let redactor = runtime.redactor(route).clone();
        let content_encoding = client.header_str(http::header::CONTENT_ENCODING);
        let body = self.redact_request(
            ctx,
            &redactor,
            multipart,
            &content_type,
            body,
            content_encoding,
        )?;
        // Thinking blocks the gateway sealed for the client go back as the upstream signed
        // them (after redaction: they are the upstream's own text).
        let body = if endpoint.family().seals_thinking() {
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
        self.inspect_query(client, ctx, &redactor)?;
        if self.telemetry.captures_content(&ctx.record.environment) {
            // What the upstream is sent, after redaction (GenAI `gen_ai.input.messages`).
            ctx.record.content =
                wire::content::input_messages(endpoint, &body).map(|input| CapturedContent {
                    input,
                    output: String::new(),
                });
        }
        ctx.redactor = Some(redactor);

        let to = Destination {
            model: Some(&upstream_model),
            rest: endpoint.rest(),
        };
        self.forward_and_relay(
            client,
            ctx,
            route,
            to,
            RequestBody::Whole(body),
            &mut estimate,
            endpoint.family(),
        )
        .await
    }

    /// Forward (attempts over the route's upstreams, then its fallbacks), relay the answer,
    /// give the connection back.
    #[allow(clippy::too_many_arguments)]
    async fn forward_and_relay<D: Downstream>(
        &self,
        client: &mut D,
        ctx: &mut RequestCtx,
        route: &Route,
        to: Destination<'_>,
        body: RequestBody,
        estimate: &mut Estimate,
        family: Family,
    ) -> Result<(), Stop> {
        // This future is allocated for as long as the request lives, streams included, and is
        // as large as its largest phase: the phases that end before the relay (connecting,
        // sending, giving a connection back) are boxed so that an open stream holds ~4 KiB
        // instead of ~14.5 KiB (`-Zprint-type-sizes`; benches/load.sh, 1,000 open streams).
        let (upstream, mut answer) = Box::pin(attempts::forward(
            self.transport.as_ref(),
            &self.health,
            client,
            ctx,
            route,
            to,
            &body,
        ))
        .await?;
        // Sent: what is left of the body is not kept for as long as the answer streams.
        drop(body);
        let result = self
            .relay(client, ctx, &upstream, &mut answer, estimate, family)
            .await;
        if let Some(attempt) = ctx.record.attempts.last_mut() {
            attempt.ended = Some(Instant::now());
        }
        Box::pin(self.transport.finish(answer)).await;
        result
    }

    /// The request has ended; `written` is the status of the answer the client got, if it
    /// got one. Fills in the outcome — the status is the one the client saw, or 499 when it
    /// went away before an answer — then the redaction counts, the budget reconcile and
    /// telemetry, once.
    pub async fn finish(&self, ctx: &mut RequestCtx, written: Option<u16>) {
        ctx.record.status = match written {
            Some(status) => status,
            None => {
                ctx.record.error.get_or_insert("client_disconnected");
                499
            }
        };
        if ctx.record.environment.is_empty() {
            ctx.record.environment = ctx.runtime.config.environment.clone();
        }
        ctx.record.redactions = ctx.redaction.counts().to_vec();
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
