//! Virtual keys and rate limits: who a request is, and whether its budgets let it through.
//!
//! # Keys
//!
//! A [`KeyStore`] authenticates the key a client presents (see [`presented_key`]) against the
//! configured keys, given in the clear or as SHA-256 digests; it keeps only digests and
//! compares in constant time.
//!
//! # Budgets
//!
//! A `limits:` block ([`LimitSpec`]) becomes [`Budget`]s with stable ids
//! (`key:checkout-web:requests_per_minute`). Requests and tokens are budgeted per second,
//! minute, hour or day with GCRA: a budget of `N` per window admits exactly `N` at once, then
//! refills evenly, with no burst at window boundaries. `concurrent` counts requests in flight.
//!
//! # Admission
//!
//! For each request the gateway lists the budgets that apply — the key's, the route's — with
//! a token estimate in an [`AdmissionPlan`], and calls [`Limiter::admit`]. Every budget is
//! checked and charged together, or none is:
//!
//! ```
//! # use std::sync::Arc;
//! use veilgate::limits::{Admission, AdmissionPlan, LimitSpec, Limiter};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), veilgate::limits::LimitError> {
//! let limiter = Limiter::memory();
//! let spec = LimitSpec { requests_per_minute: Some(2), tokens_per_minute: Some(10_000), ..Default::default() };
//! let budgets = spec.budgets("key", "checkout-web")?;
//!
//! let plan = AdmissionPlan::new(700).with(&budgets);
//! for _ in 0..2 {
//!     let Admission::Allowed(ticket) = limiter.admit(&plan).await else { panic!() };
//!     // … forward, read the usage from the response …
//!     ticket.reconcile(512).await;
//! }
//! match limiter.admit(&plan).await {
//!     Admission::Refused(refusal) => {
//!         assert_eq!(refusal.to_string(), "key checkout-web: requests_per_minute");
//!         assert_eq!(refusal.retry_after_secs(), 30);
//!     }
//!     Admission::Allowed(_) => unreachable!(),
//! }
//! # Ok(()) }
//! ```
//!
//! An admitted request holds a [`Ticket`]: [`Ticket::reconcile`] settles its token
//! reservation with the real usage, and dropping it releases its concurrency. Every decision
//! carries the figures of OpenAI's `x-ratelimit-*` headers ([`RateLimitHeaders`]).
//!
//! # Backends
//!
//! [`Limiter::memory`] keeps state in the process, bounded ([`MemoryOptions`]).
//! [`Limiter::redis`] shares it between gateway instances: one atomic Lua call per check,
//! bounded waits, and [`OnBackendError`] deciding while Redis is away ([`RedisOptions`]).
//! [`Limiter::stats`] exposes counters for telemetry.

mod backend_health;
mod budget;
mod clock;
mod error;
mod gcra;
mod keys;
mod limiter;
mod memory;
mod rate_limit_headers;
mod redis;

#[cfg(test)]
mod redis_tests;
#[cfg(test)]
mod tests;

pub use self::redis::RedisOptions;
pub use backend_health::{LimiterStats, OnBackendError};
pub use budget::{Budget, BudgetKind, LimitSpec, Period, Usd, Window};
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use error::LimitError;
pub use keys::{presented_key, KeySecret, KeyStore};
pub use limiter::{Admission, AdmissionPlan, Limiter, Refusal, RefusalCause, Ticket};
pub use memory::MemoryOptions;
pub use rate_limit_headers::{format_reset, HeaderFigures, RateLimitHeaders};
