//! Which upstreams a request tries, in which order.
//!
//! The first attempt goes to a weighted random choice among the route's `upstreams`; on a
//! failure listed in `retry_on` the others follow (again by weight), then the `fallbacks` in
//! file order. Upstreams out of rotation (open circuit, failing health check, `Retry-After`)
//! move to the end: tried only when everything else failed, rather than failing outright.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::context::RequestCtx;
use super::downstream::Downstream;
use super::forward::{ForwardError, UploadError};
use super::transport::{Answer, Transport};
use super::upstream_health::{self, UpstreamHealth};
use super::{upload, upstream, Stop};
use crate::config::{RetryOn, Route, Upstream, UpstreamApi};
use crate::redact::Redactor;
use crate::telemetry::record::{UpstreamAttempt, UpstreamErrorReason};
use crate::wire::ApiError;

/// At most this many attempts per request.
pub const MAX_ATTEMPTS: usize = 5;
/// No new attempt starts this long after the request began.
pub const RETRY_DEADLINE: Duration = Duration::from_secs(120);

/// Why an attempt failed, as `retry_on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection, or it broke before a response.
    Connect,
    /// No response header within the upstream's `timeout`.
    Timeout,
    /// The upstream answered 429.
    TooManyRequests,
    /// The upstream answered 5xx.
    ServerError,
}

impl Failure {
    /// Whether `retry_on` allows trying the next candidate after this failure.
    pub fn retryable(self, retry_on: RetryOn) -> bool {
        match self {
            Failure::Connect => retry_on.connect,
            Failure::Timeout => retry_on.timeout,
            Failure::TooManyRequests => retry_on.too_many_requests,
            Failure::ServerError => retry_on.server_error,
        }
    }

    /// Whether it counts against the upstream's health (a 429 is back-pressure, not an outage).
    pub fn counts_against_health(self) -> bool {
        !matches!(self, Failure::TooManyRequests)
    }

    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::TooManyRequests => "429",
            Failure::ServerError => "5xx",
        }
    }

    /// The failure an upstream status code represents, if any.
    pub fn from_status(status: u16) -> Option<Failure> {
        match status {
            429 => Some(Failure::TooManyRequests),
            500..=599 => Some(Failure::ServerError),
            _ => None,
        }
    }
}

/// The candidate upstream names for one request, in the order they are tried.
pub fn plan(route: &Route, health: &UpstreamHealth) -> Vec<String> {
    let mut weighted: Vec<(&str, u32)> = route
        .targets
        .iter()
        .map(|t| (t.upstream.as_str(), t.weight))
        .collect();
    let mut order: Vec<&str> = Vec::with_capacity(weighted.len() + route.fallbacks.len());
    // Weighted draws without replacement; zero-weight targets go last, in file order.
    while weighted.iter().any(|(_, w)| *w > 0) {
        let total: u64 = weighted.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut pick = fastrand::u64(0..total);
        let idx = weighted
            .iter()
            .position(|(_, w)| {
                let w = u64::from(*w);
                if pick < w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        order.push(weighted.remove(idx).0);
    }
    order.extend(weighted.iter().map(|(n, _)| *n));
    order.extend(route.fallbacks.iter().map(String::as_str));

    let (mut ready, resting): (Vec<&str>, Vec<&str>) =
        order.into_iter().partition(|name| health.in_rotation(name));
    ready.extend(resting);
    ready.truncate(MAX_ATTEMPTS);
    ready.into_iter().map(str::to_owned).collect()
}

/// The body an attempt sends.
pub enum RequestBody {
    /// Read whole (and rewritten): every attempt sends it again.
    Whole(Bytes),
    /// Streamed from the client through redaction as it is sent: it goes once, so another
    /// upstream is tried only when none of it had been read.
    Streamed {
        /// How the body is read.
        shape: upload::Shape,
        /// The client's `Content-Type`.
        content_type: String,
        /// The route's policy.
        redactor: Arc<Redactor>,
    },
}

/// Where on the upstream a request goes.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The model the upstream is asked for (a route's alias applied), for `{model}` URLs.
    pub model: Option<&'a str>,
    /// The path below the SDK base URL (`chat/completions`, `files/abc`).
    pub rest: &'a str,
}

/// What one send gave.
enum Sent<A> {
    Answer(A),
    /// The upstream failed; `resendable`: the body can go to another upstream.
    Failed {
        error: ForwardError,
        resendable: bool,
    },
}

/// Tries the route's candidates ([`plan`]) in order until one answers with something other
/// than a retryable failure, recording each attempt and feeding upstream health. The client's
/// disconnect cancels the attempt in progress.
///
/// # Errors
/// The last upstream failure as the client's 502/504; a body the client failed to send (or
/// that redaction refused) as its own error; [`Stop::ClientGone`].
pub async fn forward<T: Transport, D: Downstream>(
    transport: &T,
    health: &UpstreamHealth,
    client: &mut D,
    ctx: &mut RequestCtx,
    route: &Route,
    to: Destination<'_>,
    body: &RequestBody,
) -> Result<(Arc<Upstream>, T::Answer), Stop> {
    let runtime = ctx.runtime.clone();
    let config = &runtime.config;
    let candidates = plan(route, health);
    let mut last_error: Option<ApiError> = None;
    for (i, name) in candidates.iter().enumerate() {
        let is_last = i + 1 == candidates.len();
        if i > 0 && ctx.record.started.elapsed() > RETRY_DEADLINE {
            break;
        }
        let upstream = config
            .upstream(name)
            .ok_or_else(|| ApiError::internal(format!("no upstream named {name}")))?
            .clone();
        let ids = ctx.record.trace.attempt();
        let traceparent = ids.traceparent();
        let mut attempt = UpstreamAttempt::begin(
            ids,
            name.as_str(),
            provider(&upstream),
            to.model.unwrap_or_default(),
        );
        attempt.server_address = Some(upstream.host.clone());
        attempt.server_port = Some(upstream.port);
        let header = upstream::request_header(
            client.req_header(),
            &upstream::Outbound {
                upstream: &upstream,
                model: to.model,
                rest: to.rest,
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

        let sent = match body {
            RequestBody::Whole(bytes) => {
                tokio::select! {
                    sent = transport.send(&upstream, header, bytes.clone()) => match sent {
                        Ok(answer) => Sent::Answer(answer),
                        Err(error) => Sent::Failed { error, resendable: true },
                    },
                    () = client.gone() => {
                        attempt.ended = Some(Instant::now());
                        attempt.error = Some(UpstreamErrorReason::Closed);
                        ctx.record.attempts.push(attempt);
                        return Err(Stop::ClientGone);
                    }
                }
            }
            RequestBody::Streamed {
                shape,
                content_type,
                redactor,
            } => {
                let mut source = upload::Upload::new(
                    &mut *client,
                    *shape,
                    content_type,
                    redactor,
                    &mut ctx.redaction,
                    &mut ctx.record.redaction_failure,
                    upload::Limits {
                        body: config.max_body_bytes,
                        timeout: config.client_timeout,
                        cap: config.max_buffered_bytes,
                        reservation: &mut ctx.buffered,
                    },
                )?;
                let sent = transport
                    .send_streaming(&upstream, header, &mut source)
                    .await;
                let resendable = !source.started;
                drop(source);
                match sent {
                    Ok(answer) => Sent::Answer(answer),
                    Err(UploadError::Upstream(error)) => Sent::Failed { error, resendable },
                    Err(UploadError::Body(e)) => {
                        attempt.ended = Some(Instant::now());
                        attempt.error = Some(UpstreamErrorReason::Closed);
                        ctx.record.attempts.push(attempt);
                        return Err(e.into());
                    }
                }
            }
        };
        match sent {
            Sent::Failed { error, resendable } => {
                attempt.ended = Some(Instant::now());
                attempt.error = Some(error_reason(&error));
                ctx.record.attempts.push(attempt);
                let failure = if matches!(error, ForwardError::FirstByteTimeout(_)) {
                    Failure::Timeout
                } else {
                    Failure::Connect
                };
                if health.record_failure(name, failure.as_str()) {
                    log::warn!(
                        "upstream {name} taken out of rotation after repeated failures ({failure:?})"
                    );
                }
                log::warn!(
                    "request {}: upstream {name} failed ({}): {error}",
                    ctx.request_id,
                    failure.as_str()
                );
                last_error = Some(error.to_api_error(name));
                if !resendable || !failure.retryable(route.retry_on) || is_last {
                    break;
                }
            }
            Sent::Answer(answer) => {
                attempt.first_byte = Some(Instant::now());
                let (status, retry_after) = match answer.header() {
                    Some(h) => (h.status.as_u16(), upstream_health::retry_after(&h.headers)),
                    None => (502, None),
                };
                attempt.status = Some(status);
                let failure = Failure::from_status(status);
                if let Some(after) = retry_after.filter(|_| failure.is_some()) {
                    health.cool_down(name, after);
                }
                match failure {
                    Some(f) => {
                        attempt.error = Some(UpstreamErrorReason::Status(status));
                        if f.counts_against_health() {
                            health.record_failure(name, f.as_str());
                        }
                        let resendable = matches!(body, RequestBody::Whole(_));
                        if resendable && f.retryable(route.retry_on) && !is_last {
                            attempt.ended = Some(Instant::now());
                            ctx.record.attempts.push(attempt);
                            log::warn!(
                                "request {}: upstream {name} answered {status}; trying the next upstream",
                                ctx.request_id
                            );
                            Box::pin(transport.finish(answer)).await;
                            continue;
                        }
                    }
                    None => health.record_success(name),
                }
                ctx.record.attempts.push(attempt);
                return Ok((upstream, answer));
            }
        }
    }
    Err(last_error
        .unwrap_or_else(|| ApiError::bad_gateway(&route.name, "no upstream could be tried"))
        .into())
}

/// The GenAI `gen_ai.provider.name` of an upstream, from its API and host; else its name.
pub fn provider(upstream: &Upstream) -> String {
    let host = upstream.host.as_str();
    let known = if upstream.api == UpstreamApi::Anthropic {
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

/// How a failed exchange is reported on its attempt (metrics, traces).
pub fn error_reason(e: &ForwardError) -> UpstreamErrorReason {
    match e {
        ForwardError::Resolve(_) | ForwardError::Connect(_) => UpstreamErrorReason::Connect,
        ForwardError::Tls(_) => UpstreamErrorReason::Tls,
        ForwardError::ConnectTimeout(_)
        | ForwardError::FirstByteTimeout(_)
        | ForwardError::IdleTimeout(_) => UpstreamErrorReason::Timeout,
        ForwardError::Send(_) => UpstreamErrorReason::Closed,
        ForwardError::Protocol(_) => UpstreamErrorReason::Protocol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RouteMatch, Target};

    fn route(targets: &[(&str, u32)], fallbacks: &[&str]) -> Route {
        Route {
            name: "r".into(),
            matcher: RouteMatch::Paths(vec!["/x".into()]),
            targets: targets
                .iter()
                .map(|(n, w)| Target {
                    upstream: (*n).into(),
                    weight: *w,
                })
                .collect(),
            fallbacks: fallbacks.iter().map(|s| (*s).to_owned()).collect(),
            retry_on: RetryOn::default(),
            model: None,
            environment: None,
            limits: crate::limits::LimitSpec::default(),
            redaction: None,
            inspect: true,
        }
    }

    #[test]
    fn weights_split_first_choices() {
        let r = route(&[("a", 90), ("b", 10)], &["c"]);
        let h = UpstreamHealth::default();
        let mut first_a = 0;
        for _ in 0..2000 {
            let p = plan(&r, &h);
            assert_eq!(p.len(), 3);
            assert_eq!(p[2], "c");
            if p[0] == "a" {
                first_a += 1;
            }
        }
        assert!((1700..=1900).contains(&first_a), "{first_a} of 2000");
    }

    #[test]
    fn resting_upstreams_go_last_and_zero_weight_is_never_first() {
        let r = route(&[("a", 1), ("z", 0)], &["c"]);
        let h = UpstreamHealth::default();
        assert_eq!(plan(&r, &h), ["a", "z", "c"]);
        h.cool_down("a", Duration::from_secs(60));
        assert_eq!(plan(&r, &h), ["z", "c", "a"]);
    }

    #[test]
    fn attempts_are_bounded() {
        let names: Vec<(String, u32)> = (0..10).map(|i| (format!("u{i}"), 1)).collect();
        let refs: Vec<(&str, u32)> = names.iter().map(|(n, w)| (n.as_str(), *w)).collect();
        assert_eq!(
            plan(&route(&refs, &[]), &UpstreamHealth::default()).len(),
            MAX_ATTEMPTS
        );
    }

    #[test]
    fn retry_on_decides() {
        let none = RetryOn::NONE;
        assert!(!Failure::Connect.retryable(none));
        assert!(Failure::ServerError.retryable(RetryOn::default()));
        assert_eq!(Failure::from_status(503), Some(Failure::ServerError));
        assert_eq!(Failure::from_status(429), Some(Failure::TooManyRequests));
        assert_eq!(Failure::from_status(404), None);
    }
}
