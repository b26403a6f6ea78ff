//! The request path. Pingora's `Session` is touched by [`adapter`] alone; [`pipeline`] is the
//! lifecycle as a list of stages, each stage its own module with typed inputs and outputs:
//!
//! | stage | module | what it decides |
//! |---|---|---|
//! | canonical path | [`canonical`] | nothing a server could read as another path is routed |
//! | authenticate, dispatch, route, environment | [`routing`] | which key, which endpoint or `paths:` route, which route serves the model |
//! | read the body | [`body`], [`upload`] | bounded in size, time and the process's buffers |
//! | admit | `admission` | the key's and route's budgets, one atomic check |
//! | redact the request | `redaction`, [`query`] | fail closed: what cannot be inspected is not sent |
//! | forward | [`attempts`], [`upstream`], [`transport`] | which upstreams, in which order; the header that leaves (no virtual key) |
//! | relay | [`relay`], [`observe`], [`scrub`] | whole or streamed; usage; the upstream's key never reaches the client |
//! | finish | [`pipeline::Pipeline::finish`] | redaction counts, budget reconcile, telemetry |
//!
//! Every request is answered by the gateway itself: Pingora 0.9.1 cannot forward a body it
//! did not stream itself, see [`forward`]. Requests on `paths:` routes take the same stages
//! (read or stream the body, inspect it by media type when the policy redacts, attempts and
//! fallbacks, relay), so they get the same redaction, budgets, retries, health feedback and
//! telemetry as requests routed by model.

pub mod adapter;
mod admission;
pub mod attempts;
pub mod body;
pub mod canonical;
pub mod context;
pub mod discovery;
pub mod downstream;
#[cfg(test)]
mod fake;
pub mod forward;
pub mod headers;
pub mod health_checks;
pub mod observe;
pub mod pipeline;
pub mod pool;
pub mod query;
mod redaction;
pub mod relay;
pub mod resolve;
pub mod respond;
pub mod routing;
pub mod scrub;
#[cfg(test)]
mod tests;
pub mod transport;
pub mod upload;
pub mod upstream;
pub mod upstream_health;

use std::sync::Arc;

use crate::limits::Limiter;
use crate::shutdown::Inflight;
use crate::telemetry::Telemetry;
use crate::wire::ApiError;

use crate::runtime::SharedRuntime;
pub use adapter::Gateway;
use forward::Forwarder;
use upstream_health::UpstreamHealth;

/// Why a request ended without the gateway writing an answer.
pub enum Stop {
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
