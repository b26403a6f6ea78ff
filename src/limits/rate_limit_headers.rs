//! The figures behind OpenAI's rate-limit response headers.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Budget, BudgetKind};

/// One budget's figures, as the `x-ratelimit-*` headers show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFigures {
    /// The budget's limit per window.
    pub limit: u64,
    /// What is left now (after this request, when it was admitted).
    pub remaining: u64,
    /// How long until the budget is back to its full limit.
    pub reset: Duration,
}

/// The `x-ratelimit-*` figures of a decision: for requests and for tokens, those of the
/// tightest budget of the kind (least remaining; on a tie, the longest reset). `None` when no
/// budget of that kind applied, or the backend could not be asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `x-ratelimit-{limit,remaining,reset}-requests`.
    pub requests: Option<HeaderFigures>,
    /// `x-ratelimit-{limit,remaining,reset}-tokens`.
    pub tokens: Option<HeaderFigures>,
}

impl RateLimitHeaders {
    /// Folds one budget's figures in, keeping the tightest of each kind.
    pub(crate) fn consider(&mut self, budget: &Budget, figures: HeaderFigures) {
        let slot = match budget.kind() {
            BudgetKind::Requests(_) => &mut self.requests,
            BudgetKind::Tokens(_) => &mut self.tokens,
            BudgetKind::Concurrent | BudgetKind::Spend(_) => return,
        };
        let tighter = match slot {
            None => true,
            Some(current) => {
                (figures.remaining, std::cmp::Reverse(figures.reset))
                    < (current.remaining, std::cmp::Reverse(current.reset))
            }
        };
        if tighter {
            *slot = Some(figures);
        }
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    /// The headers to send, as `(name, value)`: up to six, in OpenAI's order, resets written as
    /// OpenAI writes them (`1s`, `6m0s`, `20ms`).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::with_capacity(6);
        let kinds = [
            (
                self.requests,
                [
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ],
            ),
            (
                self.tokens,
                [
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ],
            ),
        ];
        for (figures, [limit, remaining, reset]) in kinds {
            if let Some(f) = figures {
                pairs.push((limit, f.limit.to_string()));
                pairs.push((remaining, f.remaining.to_string()));
                pairs.push((reset, format_reset(f.reset)));
            }
        }
        pairs
    }
}

/// A duration as OpenAI writes `x-ratelimit-reset-*` (Go's duration format, to the
/// millisecond): `0s`, `20ms`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn format_reset(d: Duration) -> String {
    // Rounded up to the millisecond: a client waiting that long finds the budget reset.
    let ms = d.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1_000, rest % 1_000);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{s}");
    if frac > 0 {
        let digits = format!("{frac:03}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Window;

    #[test]
    fn resets_are_written_like_openai() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ms"),
            (Duration::from_millis(20), "20ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(17_250), "17.25s"),
            (Duration::from_secs(360), "6m0s"),
            (Duration::from_secs(3_723), "1h2m3s"),
            (Duration::from_secs(86_400), "24h0m0s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_reset(d), want, "{d:?}");
        }
    }

    #[test]
    fn tightest_budget_of_each_kind_wins() {
        let rpm = Budget::new("key", "k", BudgetKind::Requests(Window::Minute), 100).unwrap();
        let rpd = Budget::new("key", "k", BudgetKind::Requests(Window::Day), 1000).unwrap();
        let conc = Budget::new("key", "k", BudgetKind::Concurrent, 1).unwrap();
        let fig = |limit, remaining, reset| HeaderFigures {
            limit,
            remaining,
            reset: Duration::from_secs(reset),
        };
        let mut h = RateLimitHeaders::default();
        h.consider(&rpm, fig(100, 40, 30));
        h.consider(&rpd, fig(1000, 10, 3600));
        h.consider(&conc, fig(1, 0, 0));
        assert_eq!(h.requests, Some(fig(1000, 10, 3600)));
        assert_eq!(h.tokens, None);
        let pairs = h.to_pairs();
        assert_eq!(
            pairs,
            [
                ("x-ratelimit-limit-requests", "1000".to_string()),
                ("x-ratelimit-remaining-requests", "10".to_string()),
                ("x-ratelimit-reset-requests", "1h0m0s".to_string()),
            ]
        );
    }
}
