//! Upstream health: a circuit breaker fed by every attempt (passive), optional active checks,
//! and `Retry-After` cool-downs. State is keyed by upstream name and lives outside the
//! configuration, so it survives reloads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Consecutive failures that open an upstream's circuit.
pub const FAILURE_THRESHOLD: u32 = 5;
/// How long an open circuit keeps an upstream out of rotation before one probe request.
pub const OPEN_FOR: Duration = Duration::from_secs(30);
/// Longest `Retry-After` honoured as a cool-down.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(300);

/// What ops see for one upstream (`/readyz`, `/health/detailed`, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamStatus {
    /// Taking traffic.
    Healthy,
    /// Circuit open after repeated failures; probed back in after a while.
    CircuitOpen,
    /// Its active health check fails.
    CheckFailing,
    /// Asked us to back off (`Retry-After`).
    CoolingDown,
}

impl UpstreamStatus {
    /// A short lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamStatus::Healthy => "healthy",
            UpstreamStatus::CircuitOpen => "circuit_open",
            UpstreamStatus::CheckFailing => "health_check_failing",
            UpstreamStatus::CoolingDown => "cooling_down",
        }
    }

    /// Whether the upstream counts as down for readiness.
    pub fn is_down(self) -> bool {
        matches!(
            self,
            UpstreamStatus::CircuitOpen | UpstreamStatus::CheckFailing
        )
    }
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    cooldown_until: Option<Instant>,
    check_failing: bool,
    last_failure: Option<&'static str>,
}

/// Health of every upstream, shared by all requests.
#[derive(Debug, Default)]
pub struct UpstreamHealth {
    states: Mutex<HashMap<String, State>>,
}

impl UpstreamHealth {
    fn with<R>(&self, name: &str, f: impl FnOnce(&mut State) -> R) -> R {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if !states.contains_key(name) {
            states.insert(name.to_owned(), State::default());
        }
        let state = states.get_mut(name);
        match state {
            Some(s) => f(s),
            None => f(&mut State::default()),
        }
    }

    /// Whether `name` is in rotation now. When an open circuit's time is up the upstream is
    /// back in rotation, half-open: its next failure reopens the circuit at once.
    pub fn in_rotation(&self, name: &str) -> bool {
        let now = Instant::now();
        self.with(name, |s| {
            !s.check_failing
                && s.cooldown_until.is_none_or(|t| t <= now)
                && s.open_until.is_none_or(|t| t <= now)
        })
    }

    /// What ops see for `name`.
    pub fn status(&self, name: &str) -> UpstreamStatus {
        let now = Instant::now();
        self.with(name, |s| {
            if s.check_failing {
                UpstreamStatus::CheckFailing
            } else if s.open_until.is_some_and(|t| t > now) {
                UpstreamStatus::CircuitOpen
            } else if s.cooldown_until.is_some_and(|t| t > now) {
                UpstreamStatus::CoolingDown
            } else {
                UpstreamStatus::Healthy
            }
        })
    }

    /// The last failure reason seen for `name`, if any.
    pub fn last_failure(&self, name: &str) -> Option<&'static str> {
        self.with(name, |s| s.last_failure)
    }

    /// An attempt succeeded: the circuit closes.
    pub fn record_success(&self, name: &str) {
        self.with(name, |s| {
            s.consecutive_failures = 0;
            s.open_until = None;
        });
    }

    /// An attempt failed (connect, timeout, 5xx): from [`FAILURE_THRESHOLD`] failures in a
    /// row on, each failure (re)opens the circuit for [`OPEN_FOR`]. Returns whether the
    /// upstream just left rotation.
    pub fn record_failure(&self, name: &str, reason: &'static str) -> bool {
        let now = Instant::now();
        self.with(name, |s| {
            s.last_failure = Some(reason);
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            if s.consecutive_failures >= FAILURE_THRESHOLD {
                let newly = s.open_until.is_none_or(|t| t <= now);
                s.open_until = Some(now + OPEN_FOR);
                return newly;
            }
            false
        })
    }

    /// The upstream asked to be left alone (`Retry-After`) until `now + after`.
    pub fn cool_down(&self, name: &str, after: Duration) {
        let until = Instant::now() + after.min(MAX_COOLDOWN);
        self.with(name, |s| s.cooldown_until = Some(until));
    }

    /// The upstream has no active health check (any more, after a reload): a failing verdict
    /// of an earlier check no longer holds. Returns whether one did.
    pub fn clear_check(&self, name: &str) -> bool {
        self.with(name, |s| std::mem::take(&mut s.check_failing))
    }

    /// The outcome of an active health check.
    pub fn set_check(&self, name: &str, healthy: bool) {
        self.with(name, |s| {
            s.check_failing = !healthy;
            if healthy && s.open_until.is_some() {
                // A passing check is a successful probe.
                s.open_until = None;
                s.consecutive_failures = 0;
            }
        });
    }
}

/// Parses `Retry-After` (seconds) or `retry-after-ms`; HTTP dates are not honoured.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_comes_back_half_open() {
        let h = UpstreamHealth::default();
        for _ in 0..FAILURE_THRESHOLD - 1 {
            assert!(!h.record_failure("a", "connect"));
            assert!(h.in_rotation("a"));
        }
        assert!(h.record_failure("a", "connect"));
        assert!(!h.in_rotation("a"));
        assert_eq!(h.status("a"), UpstreamStatus::CircuitOpen);
        // Time is up: back in rotation, and one more failure reopens at once.
        h.with("a", |s| s.open_until = Some(Instant::now()));
        assert!(h.in_rotation("a"));
        assert!(h.record_failure("a", "timeout"));
        assert!(!h.in_rotation("a"));
        assert_eq!(h.last_failure("a"), Some("timeout"));
        h.with("a", |s| s.open_until = Some(Instant::now()));
        h.record_success("a");
        assert!(h.in_rotation("a"));
        assert_eq!(h.status("a"), UpstreamStatus::Healthy);
    }

    #[test]
    fn success_resets_the_count() {
        let h = UpstreamHealth::default();
        for _ in 0..FAILURE_THRESHOLD - 1 {
            h.record_failure("a", "5xx");
        }
        h.record_success("a");
        h.record_failure("a", "5xx");
        assert!(h.in_rotation("a"));
    }

    #[test]
    fn cooldown_and_checks() {
        let h = UpstreamHealth::default();
        h.cool_down("a", Duration::from_secs(60));
        assert!(!h.in_rotation("a"));
        assert_eq!(h.status("a"), UpstreamStatus::CoolingDown);
        assert!(!h.status("a").is_down());
        h.set_check("b", false);
        assert!(h.status("b").is_down());
        h.set_check("b", true);
        assert!(h.in_rotation("b"));
    }

    #[test]
    fn parses_retry_after() {
        let mut m = http::HeaderMap::new();
        assert_eq!(retry_after(&m), None);
        m.insert("retry-after", http::HeaderValue::from_static("3"));
        assert_eq!(retry_after(&m), Some(Duration::from_secs(3)));
        m.insert("retry-after-ms", http::HeaderValue::from_static("250"));
        assert_eq!(retry_after(&m), Some(Duration::from_millis(250)));
    }
}
