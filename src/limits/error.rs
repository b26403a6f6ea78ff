//! Errors from building budgets, key stores and limiters.
//!
//! Decisions are never errors: a refused request is an [`Admission::Refused`](super::Admission),
//! and a backend failure on the request path is decided by [`OnBackendError`](super::OnBackendError).

use thiserror::Error;

/// What went wrong while setting rate limiting up. No variant carries a key or a password.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// A budget of 0 was configured.
    #[error("{budget}: a limit must be at least 1")]
    ZeroLimit {
        /// The budget, as `key checkout-web: requests_per_minute`.
        budget: String,
    },
    /// A USD budget of 0 (or below a micro-dollar).
    #[error("{budget}: a dollar limit must be at least $0.000001")]
    ZeroSpend {
        /// The budget, as `key checkout-web: usd_per_day`.
        budget: String,
    },
    /// A `concurrent` budget above `u32::MAX`.
    #[error("{budget}: the limit is too large")]
    LimitTooLarge {
        /// The budget, as `key checkout-web: concurrent`.
        budget: String,
    },
    /// A `key_sha256` that is not 64 hexadecimal digits.
    #[error("key {name}: key_sha256 must be 64 hexadecimal digits (a SHA-256 digest)")]
    BadKeyDigest {
        /// The key's configured name.
        name: String,
    },
    /// An empty clear key.
    #[error("key {name}: the key is empty")]
    EmptyKey {
        /// The key's configured name.
        name: String,
    },
    /// Two entries of a key store have the same key.
    #[error("keys {first} and {second} are the same key")]
    DuplicateKey {
        /// The name of the entry added first.
        first: String,
        /// The name of the entry added second.
        second: String,
    },
    /// The Redis URL could not be used. The URL itself is left out: it may hold a password.
    #[error("rate_limit.url: {reason}")]
    RedisUrl {
        /// Why, without the URL.
        reason: String,
    },
    /// The TLS root certificate for Redis could not be read.
    #[error("rate_limit: Redis TLS root certificate: {reason}")]
    RedisTls {
        /// Why.
        reason: String,
    },
}
