//! Backend health: counters for telemetry, one log line per incident, and a breaker so that
//! while the backend is failing only an occasional request waits on it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What to do with a request when the rate-limit backend cannot decide (Redis down or slow,
/// the memory backend full).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBackendError {
    /// Admit the request unchecked (fail open). The default.
    #[default]
    Allow,
    /// Refuse the request (fail closed).
    Deny,
}

impl OnBackendError {
    /// `allow` or `deny`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OnBackendError::Allow => "allow",
            OnBackendError::Deny => "deny",
        }
    }
}

impl fmt::Display for OnBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of a limiter's counters, all monotonic since the limiter was made (except
/// `tracked_states`). Read it with [`Limiter::stats`](super::Limiter::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimiterStats {
    /// Requests admitted after checking their budgets.
    pub admitted: u64,
    /// Requests refused because a budget ran out.
    pub refused: u64,
    /// Failed backend operations: checks, reconciliations, releases, lease renewals.
    pub backend_errors: u64,
    /// Times the backend went from working to failing.
    pub backend_incidents: u64,
    /// Requests admitted unchecked because the backend failed (`on_backend_error: allow`).
    pub admitted_on_backend_error: u64,
    /// Requests refused because the backend failed (`on_backend_error: deny`).
    pub refused_on_backend_error: u64,
    /// Budget states held in memory now (memory backend; 0 for Redis, whose keys expire).
    pub tracked_states: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) admitted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) admitted_on_backend_error: AtomicU64,
    pub(crate) refused_on_backend_error: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Incident tracking and the breaker.
///
/// An incident is a run of failed checks on the request path (admissions, probes). While one
/// is under way, [`BackendHealth::may_try`] lets one caller per `probe_interval` try the backend; the
/// others are decided by the policy at once. The first successful check ends the incident.
#[derive(Debug)]
pub(crate) struct BackendHealth {
    backend: &'static str,
    policy: OnBackendError,
    origin: Instant,
    probe_interval_ms: u64,
    failing: AtomicBool,
    failing_since_ms: AtomicU64,
    next_probe_ms: AtomicU64,
    errors: AtomicU64,
    incidents: AtomicU64,
    last_background_warning_ms: AtomicU64,
    pub(crate) counters: Counters,
}

impl BackendHealth {
    pub(crate) fn new(
        backend: &'static str,
        policy: OnBackendError,
        probe_interval: Duration,
    ) -> Self {
        BackendHealth {
            backend,
            policy,
            origin: Instant::now(),
            probe_interval_ms: millis(probe_interval),
            failing: AtomicBool::new(false),
            failing_since_ms: AtomicU64::new(0),
            next_probe_ms: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            incidents: AtomicU64::new(0),
            last_background_warning_ms: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    pub(crate) fn policy(&self) -> OnBackendError {
        self.policy
    }

    fn now_ms(&self) -> u64 {
        millis(self.origin.elapsed())
    }

    /// Whether this caller should ask the backend (always, unless an incident is under way).
    pub(crate) fn may_try(&self) -> bool {
        if !self.failing.load(Ordering::Acquire) {
            return true;
        }
        let now = self.now_ms();
        let next = self.next_probe_ms.load(Ordering::Acquire);
        now >= next
            && self
                .next_probe_ms
                .compare_exchange(
                    next,
                    now + self.probe_interval_ms,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Records a failed operation; the first of an incident is logged.
    pub(crate) fn failed(&self, what: &str, error: &dyn fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.failing.swap(true, Ordering::AcqRel) {
            log::debug!(
                "rate limiting: {} backend: {what} failed: {error}",
                self.backend
            );
            return;
        }
        let now = self.now_ms();
        self.failing_since_ms.store(now, Ordering::Release);
        self.next_probe_ms
            .store(now + self.probe_interval_ms, Ordering::Release);
        self.incidents.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "rate limiting: {} backend unavailable ({what}: {error}); requests are {} until it recovers",
            self.backend,
            match self.policy {
                OnBackendError::Allow => "admitted unchecked (on_backend_error: allow)",
                OnBackendError::Deny => "refused (on_backend_error: deny)",
            }
        );
    }

    /// Records a failed operation off the request path (a release, a renewal, a
    /// reconciliation): counted, logged at most once a minute, but it neither starts nor ends
    /// an incident, so it never makes requests skip the backend.
    pub(crate) fn failed_in_background(&self, what: &str, error: &dyn fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let last = self.last_background_warning_ms.load(Ordering::Acquire);
        let due = last == 0 || now.saturating_sub(last) >= 60_000;
        if due
            && self
                .last_background_warning_ms
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                "rate limiting: {} backend: {what} failed: {error}",
                self.backend
            );
        } else {
            log::debug!(
                "rate limiting: {} backend: {what} failed: {error}",
                self.backend
            );
        }
    }

    /// Records a successful operation; ends an incident if one was under way.
    pub(crate) fn succeeded(&self) {
        if self.failing.load(Ordering::Acquire) && self.failing.swap(false, Ordering::AcqRel) {
            let since = self.failing_since_ms.load(Ordering::Acquire);
            log::info!(
                "rate limiting: {} backend recovered after {:.1}s",
                self.backend,
                self.now_ms().saturating_sub(since) as f64 / 1000.0
            );
        }
    }

    /// How long the current incident has lasted, if one is under way.
    pub(crate) fn failing_for(&self) -> Option<Duration> {
        self.failing.load(Ordering::Acquire).then(|| {
            let since = self.failing_since_ms.load(Ordering::Acquire);
            Duration::from_millis(self.now_ms().saturating_sub(since))
        })
    }

    pub(crate) fn is_healthy(&self) -> bool {
        !self.failing.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self, tracked_states: u64) -> LimiterStats {
        let c = &self.counters;
        LimiterStats {
            admitted: c.admitted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            backend_errors: self.errors.load(Ordering::Relaxed),
            backend_incidents: self.incidents.load(Ordering::Relaxed),
            admitted_on_backend_error: c.admitted_on_backend_error.load(Ordering::Relaxed),
            refused_on_backend_error: c.refused_on_backend_error.load(Ordering::Relaxed),
            tracked_states,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_lets_one_probe_through_per_interval_and_closes_on_success() {
        let health = BackendHealth::new("test", OnBackendError::Deny, Duration::from_secs(3600));
        assert!(health.may_try() && health.may_try());
        health.failed("check", &"boom");
        health.failed("check", &"boom again");
        assert_eq!(health.snapshot(0).backend_incidents, 1);
        assert_eq!(health.snapshot(0).backend_errors, 2);
        assert!(!health.may_try(), "no probe before the interval");
        assert!(health.failing_for().is_some());
        health.succeeded();
        assert!(health.is_healthy() && health.may_try());
        health.failed("check", &"again");
        assert_eq!(health.snapshot(0).backend_incidents, 2);
    }

    #[test]
    fn policy_reads_from_config_words() {
        let allow: OnBackendError = serde_json::from_str("\"allow\"").unwrap();
        let deny: OnBackendError = serde_json::from_str("\"deny\"").unwrap();
        assert_eq!((allow, deny), (OnBackendError::Allow, OnBackendError::Deny));
        assert!(serde_json::from_str::<OnBackendError>("\"open\"").is_err());
    }
}
