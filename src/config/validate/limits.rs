//! `limits:` blocks of keys and routes, and `rate_limit:` (where their counters live).

use std::time::Duration;

use super::Checker;
use crate::config::located::Located;
use crate::config::model::{RateLimitBackend, RateLimitConfig};
use crate::config::schema::RawRateLimit;
use crate::limits::{LimitSpec, OnBackendError};

impl Checker<'_> {
    /// A `limits:` block: every figure above 0.
    pub(super) fn limits(
        &mut self,
        spec: Option<Located<LimitSpec>>,
        scope: &str,
        name: &str,
        path: &str,
    ) -> Option<LimitSpec> {
        let Some(spec) = spec else {
            return Some(LimitSpec::default());
        };
        match spec.value.budgets(scope, name) {
            Ok(_) => Some(spec.value),
            // A budget of the wrong type was reported, and read as 0: not a second message.
            Err(_) if self.problems.is_quiet_within(path) => None,
            Err(e) => {
                self.report(
                    &spec,
                    path,
                    format!(
                        "{e}; every limit must be at least 1 (leave a window out for no limit)"
                    ),
                );
                None
            }
        }
    }

    /// `rate_limit:`: the backend that keeps the counters (memory, or redis at a url), what to
    /// do when it fails, and how long to wait for it.
    pub(super) fn rate_limit(
        &mut self,
        raw: Option<Located<RawRateLimit>>,
    ) -> Option<RateLimitConfig> {
        let Some(raw) = raw else {
            return Some(RateLimitConfig::default());
        };
        let block = raw.at();
        let raw = raw.value;
        const URL: &str = "rate_limit.url";
        // A url written empty is reported where it is written, an absent one at the block.
        let url_at = raw.url.as_ref().map_or_else(|| block.clone(), Located::at);
        let url = raw.url.and_then(Located::transpose);
        let backend = match &raw.backend {
            None => match &url {
                Some(url) => {
                    let message = "a url is used only with backend: redis; add backend: redis";
                    self.report(url, URL, message);
                    None
                }
                None => Some(RateLimitBackend::Memory),
            },
            Some(backend) => match backend.value.trim() {
                "memory" => Some(RateLimitBackend::Memory),
                "redis" => match url.as_ref().map(|u| (u, u.value.trim())) {
                    Some((_, text))
                        if text.starts_with("redis://") || text.starts_with("rediss://") =>
                    {
                        Some(RateLimitBackend::Redis {
                            url: text.to_owned(),
                        })
                    }
                    Some((url, _)) => {
                        self.report(url, URL, "expected redis://host:port or rediss://host:port (the value is not shown: it may hold a password)");
                        None
                    }
                    None => {
                        self.report(&url_at, URL, "missing required key `url` for backend: redis; like redis://127.0.0.1:6379");
                        None
                    }
                },
                other => {
                    let message = format!(
                        "unknown backend {}; expected memory or redis",
                        backend.show(other)
                    );
                    self.report(backend, "rate_limit.backend", message);
                    None
                }
            },
        };
        let on_backend_error = match &raw.on_backend_error {
            None => Some(OnBackendError::Allow),
            Some(choice) => match choice.value.trim() {
                "allow" => Some(OnBackendError::Allow),
                "deny" => Some(OnBackendError::Deny),
                other => {
                    let message = format!("expected allow or deny, found {}", choice.show(other));
                    self.report(choice, "rate_limit.on_backend_error", message);
                    None
                }
            },
        };
        let timeout = self.duration(raw.timeout, "rate_limit.timeout", Duration::from_millis(50));
        Some(RateLimitConfig {
            backend: backend?,
            on_backend_error: on_backend_error?,
            timeout: timeout?,
        })
    }
}
