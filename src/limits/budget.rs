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

/// A calendar window of a USD budget, in UTC: the clock hour, the day from midnight, the
/// month from its first day. Unlike rate windows, these do not refill gradually: a budget of
/// `$100` per month lets `$100` be spent between the 1st 00:00 UTC and the next 1st.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// From `hh:00:00` to the next hour.
    Hour,
    /// From `00:00:00` UTC to the next midnight.
    Day,
    /// From the 1st, `00:00:00` UTC, to the next month's 1st.
    Month,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 3] = [Period::Hour, Period::Day, Period::Month];

    /// `hour`, `day` or `month`: the suffix in `usd_per_<period>`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The window holding Unix time `secs`: its start and end (exclusive), in Unix seconds.
    pub fn window(self, secs: u64) -> (u64, u64) {
        match self {
            Period::Hour => {
                let start = secs - secs % 3_600;
                (start, start + 3_600)
            }
            Period::Day => {
                let start = secs - secs % 86_400;
                (start, start + 86_400)
            }
            Period::Month => {
                let days = secs / 86_400;
                let (y, m, _) = civil_from_days(days as i64);
                let start = days_from_civil(y, m, 1) as u64 * 86_400;
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let end = days_from_civil(ny, nm, 1) as u64 * 86_400;
                (start, end)
            }
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01, the inverse of [`civil_from_days`].
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An amount of US dollars in a budget, kept as whole micro-dollars. Written in the
/// configuration as a number of dollars (`usd_per_day: 25`, `usd_per_hour: 0.50`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(pub u64);

impl Usd {
    /// Whole micro-dollars.
    pub const fn micros(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::spend::format_usd(self.0))
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor, so that an error is raised on the number itself and reported at its
        // position with its key's path.
        struct Dollars;
        impl serde::de::Visitor<'_> for Dollars {
            type Value = Usd;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount of US dollars, like 25 or 0.50")
            }
            fn visit_f64<E: serde::de::Error>(self, dollars: f64) -> Result<Usd, E> {
                if !dollars.is_finite() || dollars < 0.0 {
                    return Err(E::custom(format!(
                        "{dollars} is not an amount of dollars: write 0 or more, like 25 or 0.50"
                    )));
                }
                if dollars * 1e6 >= u64::MAX as f64 / 2.0 {
                    return Err(E::custom("the amount is too large"));
                }
                Ok(Usd((dollars * 1e6).round() as u64))
            }
            fn visit_u64<E: serde::de::Error>(self, dollars: u64) -> Result<Usd, E> {
                self.visit_f64(dollars as f64)
            }
            fn visit_i64<E: serde::de::Error>(self, dollars: i64) -> Result<Usd, E> {
                self.visit_f64(dollars as f64)
            }
        }
        deserializer.deserialize_f64(Dollars)
    }
}

impl Serialize for Usd {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0 as f64 / 1e6)
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
    /// US dollars per calendar window, counted in micro-dollars: a request reserves its worst
    /// case, then is reconciled with its real cost.
    Spend(Period),
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
            BudgetKind::Spend(Period::Hour) => "usd_per_hour",
            BudgetKind::Spend(Period::Day) => "usd_per_day",
            BudgetKind::Spend(Period::Month) => "usd_per_month",
        }
    }

    /// The refill window of a rate budget; `None` for [`BudgetKind::Concurrent`] and
    /// [`BudgetKind::Spend`].
    pub const fn window(self) -> Option<Window> {
        match self {
            BudgetKind::Requests(w) | BudgetKind::Tokens(w) => Some(w),
            BudgetKind::Concurrent | BudgetKind::Spend(_) => None,
        }
    }

    /// The calendar window of a USD budget.
    pub const fn period(self) -> Option<Period> {
        match self {
            BudgetKind::Spend(p) => Some(p),
            _ => None,
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
/// limits: {requests_per_minute: 600, tokens_per_minute: 200000, concurrent: 20, usd_per_day: 25}
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
    /// US dollars per clock hour (UTC).
    pub usd_per_hour: Option<Usd>,
    /// US dollars per day (UTC).
    pub usd_per_day: Option<Usd>,
    /// US dollars per calendar month (UTC).
    pub usd_per_month: Option<Usd>,
}

impl LimitSpec {
    /// Every budget that is set, as `(kind, limit)`, requests first, then tokens by window,
    /// then `concurrent`, then dollars (in micro-dollars) by period.
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
        let spend = Period::ALL
            .into_iter()
            .zip([self.usd_per_hour, self.usd_per_day, self.usd_per_month])
            .filter_map(|(p, l)| Some((BudgetKind::Spend(p), l?.micros())));
        rates.chain(token_rates).chain(concurrent).chain(spend)
    }

    /// Whether a USD budget is set.
    pub fn counts_spend(&self) -> bool {
        self.usd_per_hour.is_some() || self.usd_per_day.is_some() || self.usd_per_month.is_some()
    }

    /// The same budgets without the USD ones.
    pub fn without_spend(&self) -> LimitSpec {
        LimitSpec {
            usd_per_hour: None,
            usd_per_day: None,
            usd_per_month: None,
            ..*self
        }
    }

    /// Only the USD budgets.
    pub fn spend_only(&self) -> LimitSpec {
        LimitSpec {
            usd_per_hour: self.usd_per_hour,
            usd_per_day: self.usd_per_day,
            usd_per_month: self.usd_per_month,
            ..LimitSpec::default()
        }
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
            return Err(match kind {
                BudgetKind::Spend(_) => LimitError::ZeroSpend { budget: label() },
                _ => LimitError::ZeroLimit { budget: label() },
            });
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

    /// How many requests or tokens per window, requests in flight, or micro-dollars per
    /// period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The limit as written: `600`, or `$25.00` for a USD budget.
    pub fn limit_text(&self) -> String {
        match self.kind {
            BudgetKind::Spend(_) => Usd(self.limit).to_string(),
            _ => self.limit.to_string(),
        }
    }

    /// What one admission costs this budget, given the request's token estimate and its
    /// worst-case cost in micro-dollars.
    pub(crate) fn cost(&self, estimated_tokens: u64, estimated_micros: u64) -> u64 {
        match self.kind {
            BudgetKind::Tokens(_) => estimated_tokens,
            BudgetKind::Spend(_) => estimated_micros,
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
        names.extend(Period::ALL.iter().map(|&p| BudgetKind::Spend(p).name()));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 12);
    }

    #[test]
    fn usd_budgets_are_micro_dollars_listed_last() {
        let spec: LimitSpec =
            serde_json::from_str(r#"{"usd_per_day": 25, "usd_per_hour": 0.5, "concurrent": 2}"#)
                .unwrap();
        assert!(spec.counts_spend());
        let budgets = spec.budgets("key", "app").unwrap();
        let listed: Vec<(&str, u64)> = budgets.iter().map(|b| (b.name(), b.limit())).collect();
        assert_eq!(
            listed,
            [
                ("concurrent", 2),
                ("usd_per_hour", 500_000),
                ("usd_per_day", 25_000_000)
            ]
        );
        assert_eq!(budgets[2].limit_text(), "$25.00");
        assert_eq!(budgets[2].to_string(), "key app: usd_per_day");
        assert!(serde_json::from_str::<LimitSpec>(r#"{"usd_per_day": -1}"#).is_err());
        let zero: LimitSpec = serde_json::from_str(r#"{"usd_per_month": 0}"#).unwrap();
        assert_eq!(
            zero.budgets("key", "a").unwrap_err().to_string(),
            "key a: usd_per_month: a dollar limit must be at least $0.000001"
        );
    }

    #[test]
    fn calendar_windows_are_utc_hours_days_and_months() {
        // 2026-12-05T09:17:17Z
        let t = 1_796_462_237;
        assert_eq!(Period::Hour.window(t), (1_796_461_200, 1_796_464_800));
        assert_eq!(Period::Day.window(t), (1_796_428_800, 1_796_515_200));
        // December 2026: 2026-12-01 to 2027-01-01.
        assert_eq!(Period::Month.window(t), (1_796_083_200, 1_798_761_600));
        // February of a leap year: 29 days.
        let feb = days_from_civil(2028, 2, 10) as u64 * 86_400;
        let (start, end) = Period::Month.window(feb);
        assert_eq!((end - start) / 86_400, 29);
        assert_eq!(
            Period::Month.window(start),
            (start, end),
            "the first second is inside"
        );
        assert_eq!(
            Period::Month.window(end - 1),
            (start, end),
            "the last second too"
        );
        for days in [0i64, 59, 365, 10_957, 20_000, 47_482] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
