//! Which upstreams a request tries, in which order.
//!
//! The first attempt goes to a weighted random choice among the route's `upstreams`; on a
//! failure listed in `retry_on` the others follow (again by weight), then the `fallbacks` in
//! file order. Upstreams out of rotation (open circuit, failing health check, `Retry-After`)
//! move to the end: tried only when everything else failed, rather than failing outright.

use std::time::Duration;

use crate::config::{RetryOn, Route};

use super::health::UpstreamHealth;

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
