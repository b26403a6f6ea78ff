//! What a budget is: the `limits:` block as written ([`LimitSpec`]) and the validated,
//! identified budgets it turns into ([`Budget`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::LimitError;

/// The span of time a rate budget refills over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (86 400 s; not a calendar day).
    Day,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 4] = [Window::Second, Window::Minute, Window::Hour, Window::Day];

    /// The window's length.
    pub const fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3_600,
            Window::Day => 86_400,
        })
    }

    /// `second`, `minute`, `hour` or `day`: the suffix in `requests_per_<window>`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Window::Second => "second",
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetKind {
    /// Requests per window: each admitted request costs 1.
    Requests(Window),
    /// Tokens per window: a request reserves its estimate, then is reconciled with its usage.
    Tokens(Window),
    /// Requests in flight at once.
    Concurrent,
}

impl BudgetKind {
    /// The budget's name as written in the configuration: `requests_per_minute`,
    /// `tokens_per_day`, `concurrent`…
    pub const fn name(self) -> &'static str {
        use Window::*;
        match self {
            BudgetKind::Requests(Second) => "requests_per_second",
            BudgetKind::Requests(Minute) => "requests_per_minute",
            BudgetKind::Requests(Hour) => "requests_per_hour",
            BudgetKind::Requests(Day) => "requests_per_day",
            BudgetKind::Tokens(Second) => "tokens_per_second",
            BudgetKind::Tokens(Minute) => "tokens_per_minute",
            BudgetKind::Tokens(Hour) => "tokens_per_hour",
            BudgetKind::Tokens(Day) => "tokens_per_day",
            BudgetKind::Concurrent => "concurrent",
        }
    }

    /// The refill window; `None` for [`BudgetKind::Concurrent`].
    pub const fn window(self) -> Option<Window> {
        match self {
            BudgetKind::Requests(w) | BudgetKind::Tokens(w) => Some(w),
            BudgetKind::Concurrent => None,
        }
    }
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `limits:` block as written in the configuration: every budget optional.
///
/// ```yaml
/// limits: {requests_per_minute: 600, tokens_per_minute: 200000, concurrent: 20}
/// ```
///
/// Turn it into budgets with [`LimitSpec::budgets`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Requests per second.
    pub requests_per_second: Option<u64>,
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Requests per hour.
    pub requests_per_hour: Option<u64>,
    /// Requests per day.
    pub requests_per_day: Option<u64>,
    /// Tokens (prompt + completion) per second.
    pub tokens_per_second: Option<u64>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Tokens per hour.
    pub tokens_per_hour: Option<u64>,
    /// Tokens per day.
    pub tokens_per_day: Option<u64>,
    /// Requests in flight at once.
    pub concurrent: Option<u32>,
}

impl LimitSpec {
    /// Every budget that is set, as `(kind, limit)`, requests first, then tokens by window,
    /// then `concurrent`.
    pub fn entries(&self) -> impl Iterator<Item = (BudgetKind, u64)> {
        let requests = [
            self.requests_per_second,
            self.requests_per_minute,
            self.requests_per_hour,
            self.requests_per_day,
        ];
        let tokens = [
            self.tokens_per_second,
            self.tokens_per_minute,
            self.tokens_per_hour,
            self.tokens_per_day,
        ];
        let rates = Window::ALL
            .into_iter()
            .zip(requests)
            .filter_map(|(w, l)| Some((BudgetKind::Requests(w), l?)));
        let token_rates = Window::ALL
            .into_iter()
            .zip(tokens)
            .filter_map(|(w, l)| Some((BudgetKind::Tokens(w), l?)));
        let concurrent = self
            .concurrent
            .map(|l| (BudgetKind::Concurrent, u64::from(l)));
        rates.chain(token_rates).chain(concurrent)
    }

    /// Whether no budget is set.
    pub fn is_empty(&self) -> bool {
        self.entries().next().is_none()
    }

    /// The budgets of this block for one owner, e.g. `budgets("key", "checkout-web")` or
    /// `budgets("route", "gpt-4o")`. Ids are stable (`key:checkout-web:requests_per_minute`),
    /// so a configuration reload that builds the same ids keeps the state already counted.
    ///
    /// # Errors
    ///
    /// [`LimitError::ZeroLimit`] when a budget is 0 (write no budget instead of an empty one).
    pub fn budgets(&self, scope: &str, name: &str) -> Result<Vec<Arc<Budget>>, LimitError> {
        self.entries()
            .map(|(kind, limit)| Budget::new(scope, name, kind, limit).map(Arc::new))
            .collect()
    }
}

/// One budget, validated: what it counts, how much, and the stable id its state is kept under.
///
/// Cheap to share: the gateway builds each key's and route's budgets once per configuration
/// (as `Arc<Budget>`) and lists the ones that apply to a request in an
/// [`AdmissionPlan`](super::AdmissionPlan).
///
/// `Display` names the budget for a refusal: `key checkout-web: requests_per_minute`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Budget {
    id: Arc<str>,
    scope: Arc<str>,
    owner: Arc<str>,
    kind: BudgetKind,
    limit: u64,
}

impl Budget {
    /// A budget of `limit` for `kind`, owned by `scope` `name` (`"key"`, `"checkout-web"`).
    /// Its id is `scope:name:kind`.
    ///
    /// # Errors
    ///
    /// [`LimitError::ZeroLimit`] when `limit` is 0, or a `concurrent` limit above `u32::MAX`.
    pub fn new(
        scope: &str,
        name: &str,
        kind: BudgetKind,
        limit: u64,
    ) -> Result<Budget, LimitError> {
        let label = || format!("{scope} {name}: {kind}");
        if limit == 0 {
            return Err(LimitError::ZeroLimit { budget: label() });
        }
        if kind == BudgetKind::Concurrent && limit > u64::from(u32::MAX) {
            return Err(LimitError::LimitTooLarge { budget: label() });
        }
        Ok(Budget {
            id: format!("{scope}:{name}:{kind}").into(),
            scope: scope.into(),
            owner: name.into(),
            kind,
            limit,
        })
    }

    /// The stable id the budget's state is kept under: `key:checkout-web:requests_per_minute`.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn id_arc(&self) -> &Arc<str> {
        &self.id
    }

    /// What owns the budget: `key`, `route`…
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The owner's configured name: `checkout-web`.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// What the budget counts.
    pub fn kind(&self) -> BudgetKind {
        self.kind
    }

    /// The budget's name as configured: `requests_per_minute`.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// How many requests or tokens per window, or requests in flight.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// What one admission costs this budget, given the request's token estimate.
    pub(crate) fn cost(&self, estimated_tokens: u64) -> u64 {
        match self.kind {
            BudgetKind::Tokens(_) => estimated_tokens,
            BudgetKind::Requests(_) | BudgetKind::Concurrent => 1,
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.scope, self.owner, self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_deserializes_and_lists_budgets_in_order() {
        let spec: LimitSpec = serde_json::from_str(
            r#"{"requests_per_minute": 600, "tokens_per_minute": 200000, "concurrent": 20, "requests_per_day": 10}"#,
        )
        .unwrap();
        let budgets = spec.budgets("key", "checkout-web").unwrap();
        let ids: Vec<&str> = budgets.iter().map(|b| b.id()).collect();
        assert_eq!(
            ids,
            [
                "key:checkout-web:requests_per_minute",
                "key:checkout-web:requests_per_day",
                "key:checkout-web:tokens_per_minute",
                "key:checkout-web:concurrent",
            ]
        );
        assert_eq!(
            budgets[0].to_string(),
            "key checkout-web: requests_per_minute"
        );
        assert_eq!(budgets[2].kind(), BudgetKind::Tokens(Window::Minute));
        assert_eq!(budgets[3].limit(), 20);
    }

    #[test]
    fn spec_rejects_unknown_fields_and_zero_limits() {
        assert!(serde_json::from_str::<LimitSpec>(r#"{"request_per_minute": 1}"#).is_err());
        let spec = LimitSpec {
            tokens_per_day: Some(0),
            ..LimitSpec::default()
        };
        let err = spec.budgets("key", "a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "key a: tokens_per_day: a limit must be at least 1"
        );
        assert!(LimitSpec::default().is_empty());
    }

    #[test]
    fn every_kind_has_a_distinct_name() {
        let mut names: Vec<&str> = Window::ALL
            .iter()
            .flat_map(|&w| [BudgetKind::Requests(w).name(), BudgetKind::Tokens(w).name()])
            .chain([BudgetKind::Concurrent.name()])
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 9);
    }
}
