//! `limits:` blocks of keys and routes, and `rate_limit:` (where their counters live).

use std::time::Duration;

use super::Checker;
use crate::config::model::{RateLimitBackend, RateLimitConfig};
use crate::config::schema::RawRateLimit;
use crate::limits::{LimitSpec, OnBackendError};

impl Checker<'_> {
    /// A `limits:` block: every figure above 0.
    pub(super) fn limits(
        &mut self,
        spec: Option<LimitSpec>,
        scope: &str,
        name: &str,
        path: &str,
    ) -> Option<LimitSpec> {
        let spec = spec.unwrap_or_default();
        match spec.budgets(scope, name) {
            Ok(_) => Some(spec),
            // A budget of the wrong type was reported, and read as 0: not a second message.
            Err(_) if self.problems.is_quiet_within(path) => None,
            Err(e) => {
                self.report(
                    path,
                    format!(
                        "{e}; every limit must be at least 1 (leave a window out for no limit)"
                    ),
                );
                None
            }
        }
    }

    pub(super) fn rate_limit(&mut self, raw: Option<RawRateLimit>) -> Option<RateLimitConfig> {
        let Some(raw) = raw else {
            return Some(RateLimitConfig::default());
        };
        let backend = match raw.backend.as_deref().map(str::trim) {
            None | Some("memory") => {
                if raw.url.is_some() && raw.backend.is_none() {
                    self.report(
                        "rate_limit.url",
                        "a url is used only with backend: redis; add backend: redis",
                    );
                    None
                } else {
                    Some(RateLimitBackend::Memory)
                }
            }
            Some("redis") => match raw.url.as_deref().map(str::trim) {
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    Some(RateLimitBackend::Redis {
                        url: url.to_owned(),
                    })
                }
                Some(_) => {
                    self.report("rate_limit.url", "expected redis://host:port or rediss://host:port (the value is not shown: it may hold a password)");
                    None
                }
                None => {
                    self.report("rate_limit.url", "missing required key `url` for backend: redis; like redis://127.0.0.1:6379");
                    None
                }
            },
            Some(other) => {
                let message = format!(
                    "unknown backend {}; expected memory or redis",
                    self.show("rate_limit.backend", other)
                );
                self.report("rate_limit.backend", message);
                None
            }
        };
        let on_backend_error = match raw.on_backend_error.as_deref().map(str::trim) {
            None | Some("allow") => Some(OnBackendError::Allow),
            Some("deny") => Some(OnBackendError::Deny),
            Some(other) => {
                let message = format!(
                    "expected allow or deny, found {}",
                    self.show("rate_limit.on_backend_error", other)
                );
                self.report("rate_limit.on_backend_error", message);
                None
            }
        };
        let timeout = self.duration(raw.timeout, "rate_limit.timeout", Duration::from_millis(50));
        Some(RateLimitConfig {
            backend: backend?,
            on_backend_error: on_backend_error?,
            timeout: timeout?,
        })
    }
}
