//! The limiter: admits a request against all its budgets at once, and hands back a
//! [`Ticket`] that reconciles its tokens and releases its concurrency.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::backend_health::{bump, BackendHealth, LimiterStats};
use super::memory::{MemoryOptions, MemoryStore};
use super::rate_limit_headers::{HeaderFigures, RateLimitHeaders};
use super::redis::{RedisOptions, RedisStore};
use super::{Budget, BudgetKind, Clock, LimitError, MonotonicClock, OnBackendError};

/// The budgets that apply to one request, and its token estimate.
///
/// ```
/// # use std::sync::Arc;
/// # use veilgate::limits::{AdmissionPlan, LimitSpec};
/// let key = LimitSpec { requests_per_minute: Some(600), ..Default::default() }.budgets("key", "checkout-web")?;
/// let route = LimitSpec { tokens_per_minute: Some(2_000_000), ..Default::default() }.budgets("route", "gpt-4o")?;
/// let plan = AdmissionPlan::new(1_200).with(&key).with(&route);
/// assert_eq!(plan.budgets().len(), 2);
/// # Ok::<(), veilgate::limits::LimitError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AdmissionPlan {
    budgets: Vec<Arc<Budget>>,
    estimated_tokens: u64,
    estimated_micros: u64,
}

impl AdmissionPlan {
    /// A plan with no budgets yet, for a request estimated at `estimated_tokens` (prompt plus
    /// expected completion); token budgets reserve that much.
    pub fn new(estimated_tokens: u64) -> Self {
        AdmissionPlan {
            budgets: Vec::new(),
            estimated_tokens,
            estimated_micros: 0,
        }
    }

    /// Adds budgets; one whose id is already in the plan is skipped (it would count twice).
    pub fn with<'a>(mut self, budgets: impl IntoIterator<Item = &'a Arc<Budget>>) -> Self {
        self.extend(budgets);
        self
    }

    /// Adds budgets in place; see [`AdmissionPlan::with`].
    pub fn extend<'a>(&mut self, budgets: impl IntoIterator<Item = &'a Arc<Budget>>) {
        for budget in budgets {
            if !self.budgets.iter().any(|b| b.id() == budget.id()) {
                self.budgets.push(Arc::clone(budget));
            }
        }
    }

    /// The budgets, in the order added.
    pub fn budgets(&self) -> &[Arc<Budget>] {
        &self.budgets
    }

    /// The token estimate.
    pub fn estimated_tokens(&self) -> u64 {
        self.estimated_tokens
    }

    /// Whether a token budget applies (and the token estimate matters).
    pub fn counts_tokens(&self) -> bool {
        self.budgets
            .iter()
            .any(|b| matches!(b.kind(), BudgetKind::Tokens(_)))
    }

    /// Sets the token estimate, e.g. once [`AdmissionPlan::counts_tokens`] says it matters.
    pub fn set_estimated_tokens(&mut self, estimated_tokens: u64) {
        self.estimated_tokens = estimated_tokens;
    }

    /// Whether a USD budget applies (and the request's worst-case cost matters).
    pub fn counts_spend(&self) -> bool {
        self.budgets
            .iter()
            .any(|b| matches!(b.kind(), BudgetKind::Spend(_)))
    }

    /// The USD budgets of the plan.
    pub fn spend_budgets(&self) -> impl Iterator<Item = &Arc<Budget>> {
        self.budgets
            .iter()
            .filter(|b| matches!(b.kind(), BudgetKind::Spend(_)))
    }

    /// The worst-case cost USD budgets reserve, in micro-dollars.
    pub fn estimated_micros(&self) -> u64 {
        self.estimated_micros
    }

    /// Sets the worst-case cost, in micro-dollars.
    pub fn set_estimated_micros(&mut self, micros: u64) {
        self.estimated_micros = micros;
    }

    /// Whether no budget applies (admission is then free and always succeeds).
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }
}

/// What a backend decided for a plan: the refusing budget (by position, with its wait) if
/// any, and every budget's figures (after the admission, or as they stand when refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) refused: Option<(usize, Duration)>,
    pub(crate) figures: Vec<HeaderFigures>,
}

/// The answer to [`Limiter::admit`].
#[derive(Debug)]
#[must_use = "a refused request must not be forwarded, and an admitted one holds a Ticket"]
pub enum Admission {
    /// Every budget had room; they are now charged. Keep the ticket until the response is done.
    Allowed(Ticket),
    /// The request must not be forwarded.
    Refused(Refusal),
}

impl Admission {
    /// The figures for the `x-ratelimit-*` headers, either way.
    pub fn headers(&self) -> &RateLimitHeaders {
        match self {
            Admission::Allowed(ticket) => ticket.headers(),
            Admission::Refused(refusal) => refusal.headers(),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalCause {
    /// This budget ran out (the one with the longest wait, when several did).
    Exhausted(Arc<Budget>),
    /// The backend could not decide and `on_backend_error` is `deny`.
    BackendUnavailable,
}

/// A refused admission: nothing was charged.
///
/// `Display` says what ran out: `key checkout-web: requests_per_minute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    cause: RefusalCause,
    retry_after: Duration,
    headers: RateLimitHeaders,
    /// The refusing budget's figures, as it stands.
    figures: Option<HeaderFigures>,
}

impl Refusal {
    /// Why.
    pub fn cause(&self) -> &RefusalCause {
        &self.cause
    }

    /// The budget that ran out, unless the backend failed.
    pub fn budget(&self) -> Option<&Budget> {
        match &self.cause {
            RefusalCause::Exhausted(budget) => Some(budget),
            RefusalCause::BackendUnavailable => None,
        }
    }

    /// How long until the same request would be admitted, as far as the refusing budget
    /// knows (a second for `concurrent`, and when the backend failed).
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// [`Refusal::retry_after`] in whole seconds, rounded up, at least 1: the `Retry-After`
    /// header's value.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_nanos().div_ceil(1_000_000_000).max(1) as u64
    }

    /// The figures for the `x-ratelimit-*` headers, as the budgets stand.
    pub fn headers(&self) -> &RateLimitHeaders {
        &self.headers
    }

    /// What the refusing budget has left (requests, tokens, or micro-dollars for a USD
    /// budget), when the backend said.
    pub fn remaining(&self) -> Option<u64> {
        self.figures.map(|f| f.remaining)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            RefusalCause::Exhausted(budget) => budget.fmt(f),
            RefusalCause::BackendUnavailable => f.write_str("rate-limit backend unavailable"),
        }
    }
}

/// An admitted request's hold on its budgets: the token reservation, and its places in
/// `concurrent` budgets.
///
/// * **Tokens**: call [`Ticket::reconcile`] with the real usage once it is known; it consumes
///   the ticket, so it happens at most once. A ticket dropped without it keeps the estimate
///   charged — nothing to do, so nothing can be lost in a `Drop`.
/// * **Concurrency**: released by [`Ticket::reconcile`], or when the ticket drops, on every
///   path (error, timeout, client gone and the request future dropped). With Redis,
///   `reconcile` settles tokens and concurrency in one round trip; a drop releases from a
///   spawned task; should neither get through, the lease expires within `lease_ttl`.
#[must_use = "dropping the ticket ends the request's concurrency hold at once"]
pub struct Ticket {
    /// `None` when nothing needs undoing: no budget applied, or the backend failed.
    limiter: Option<Limiter>,
    headers: RateLimitHeaders,
    on_backend_error: bool,
    tokens: Vec<Arc<Budget>>,
    reserved: u64,
    /// USD budgets with the start of the calendar window they were charged in.
    spend: Vec<(Arc<Budget>, u64)>,
    reserved_micros: u64,
    hold: Hold,
}

/// What a ticket releases when it drops.
#[derive(Debug)]
enum Hold {
    Nothing,
    /// Memory: the concurrency budgets to decrement.
    Memory(Vec<Arc<Budget>>),
    /// Redis: the lease number.
    Redis(u64),
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("headers", &self.headers)
            .field("on_backend_error", &self.on_backend_error)
            .field("token_budgets", &self.tokens.len())
            .field("reserved", &self.reserved)
            .field("spend_budgets", &self.spend.len())
            .field("reserved_micros", &self.reserved_micros)
            .field("hold", &self.hold)
            .finish()
    }
}

impl Ticket {
    fn free(on_backend_error: bool) -> Ticket {
        Ticket {
            limiter: None,
            headers: RateLimitHeaders::default(),
            on_backend_error,
            tokens: Vec::new(),
            reserved: 0,
            spend: Vec::new(),
            reserved_micros: 0,
            hold: Hold::Nothing,
        }
    }

    /// The figures for the `x-ratelimit-*` headers, after this admission.
    pub fn headers(&self) -> &RateLimitHeaders {
        &self.headers
    }

    /// Whether the request was admitted unchecked because the backend failed
    /// (`on_backend_error: allow`).
    pub fn admitted_on_backend_error(&self) -> bool {
        self.on_backend_error
    }

    /// Tokens reserved in the token budgets (0 when none applied).
    pub fn reserved_tokens(&self) -> u64 {
        self.reserved
    }

    /// Micro-dollars reserved in the USD budgets (0 when none applied).
    pub fn reserved_micros(&self) -> u64 {
        self.reserved_micros
    }

    /// Settles the token budgets with the request's real usage — refunds what was reserved
    /// beyond it, or charges what it used beyond the reservation (into debt if need be, so the
    /// next request waits) — and releases the ticket's concurrency. USD budgets keep their
    /// reservation (see [`Ticket::reconcile_cost`]).
    ///
    /// Never fails: with Redis unavailable the reservation simply stands (a failed attempt
    /// counts as a backend error). Waits at most the backend's bound.
    pub async fn reconcile(self, actual_tokens: u64) {
        self.reconcile_cost(actual_tokens, None).await;
    }

    /// [`Ticket::reconcile`], and the USD budgets settled with the request's real cost in
    /// micro-dollars, in the calendar window they were charged in at admission. `None` (the
    /// cost is unknown) leaves the worst-case reservation charged.
    pub async fn reconcile_cost(mut self, actual_tokens: u64, actual_micros: Option<u64>) {
        let Some(limiter) = self.limiter.clone() else {
            return;
        };
        let delta = if self.tokens.is_empty() {
            0
        } else {
            i128::from(actual_tokens) - i128::from(self.reserved)
        };
        let spend_delta = match actual_micros {
            Some(actual) if !self.spend.is_empty() => {
                i128::from(actual) - i128::from(self.reserved_micros)
            }
            _ => 0,
        };
        let hold = std::mem::replace(&mut self.hold, Hold::Nothing);
        let settlement = Settlement {
            tokens: &self.tokens,
            delta,
            spend: &self.spend,
            spend_delta,
        };
        limiter.settle(settlement, hold).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let hold = std::mem::replace(&mut self.hold, Hold::Nothing);
        if let Some(limiter) = &self.limiter {
            limiter.release(hold);
        }
    }
}

/// What a finished request changes in its budgets.
pub(crate) struct Settlement<'a> {
    /// Token budgets, and the tokens to add (or refund, negative).
    pub(crate) tokens: &'a [Arc<Budget>],
    pub(crate) delta: i128,
    /// USD budgets with their admission window, and the micro-dollars to add or refund.
    pub(crate) spend: &'a [(Arc<Budget>, u64)],
    pub(crate) spend_delta: i128,
}

impl Settlement<'_> {
    fn is_empty(&self) -> bool {
        self.delta == 0 && self.spend_delta == 0
    }
}

/// Rate limits for the gateway: request, token, concurrency and USD budgets, kept in memory
/// or in Redis. Cheap to clone (shared).
///
/// The limiter holds no budgets: each admission names its own in an [`AdmissionPlan`], and
/// state is kept per budget id. So a configuration reload keeps the limiter, builds new
/// budgets, and every budget whose id is unchanged keeps its count — even if its limit
/// changed (the count is in requests or tokens, not in fractions of the limit).
///
/// The Redis backend runs on Tokio (timers, background tasks): use it from a Tokio runtime
/// that lives as long as the limiter is used.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    health: BackendHealth,
}

enum Backend {
    Memory(MemoryStore),
    /// Boxed: far larger than the memory store, and only ever reached through the `Arc`.
    Redis(Box<RedisStore>),
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Limiter");
        match &self.inner.backend {
            Backend::Memory(m) => s.field("backend", m),
            Backend::Redis(r) => s.field("backend", r),
        };
        s.field("on_backend_error", &self.inner.health.policy())
            .finish()
    }
}

impl Limiter {
    /// An in-process limiter with default [`MemoryOptions`]: exact for one gateway instance.
    pub fn memory() -> Limiter {
        Limiter::memory_with(MemoryOptions::default(), Arc::new(MonotonicClock::new()))
    }

    /// An in-process limiter with these options, reading time from `clock`.
    pub fn memory_with(options: MemoryOptions, clock: Arc<dyn Clock>) -> Limiter {
        let health = BackendHealth::new("memory", options.on_backend_error, Duration::ZERO);
        Limiter::with_backend(Backend::Memory(MemoryStore::new(&options, clock)), health)
    }

    /// A limiter sharing its budgets through the Redis server at `url`
    /// (`redis://[:password@]host:port[/db]`, or `rediss://` for TLS).
    ///
    /// Nothing is sent yet: the connection is made on first use, in the background, on the
    /// Tokio runtime that uses the limiter, and remade whenever it breaks. Call
    /// [`Limiter::probe_backend`] from that runtime to connect before the first request.
    ///
    /// # Errors
    ///
    /// [`LimitError::RedisUrl`] for a URL that is not a Redis URL, [`LimitError::RedisTls`]
    /// for an unreadable [`RedisOptions::tls_root_certificate`].
    pub fn redis(url: &str, options: RedisOptions) -> Result<Limiter, LimitError> {
        let health = BackendHealth::new("redis", options.on_backend_error, options.probe_interval);
        let store = RedisStore::new(url, options)?;
        Ok(Limiter::with_backend(
            Backend::Redis(Box::new(store)),
            health,
        ))
    }

    fn with_backend(backend: Backend, health: BackendHealth) -> Limiter {
        Limiter {
            inner: Arc::new(Inner { backend, health }),
        }
    }

    /// `memory` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        match self.inner.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Checks every budget of `plan` and charges them all, or none: a request budget 1, a
    /// token budget the plan's estimate, a concurrency budget one place until the ticket
    /// drops.
    ///
    /// Waits at most the backend's bound (Redis: [`RedisOptions::timeout`]); when the backend
    /// cannot decide, the limiter's [`OnBackendError`] does.
    pub async fn admit(&self, plan: &AdmissionPlan) -> Admission {
        if plan.is_empty() {
            return Admission::Allowed(Ticket::free(false));
        }
        let health = &self.inner.health;
        let budgets = plan.budgets();
        let wall = self.wall();
        let outcome = match &self.inner.backend {
            Backend::Memory(store) => {
                match store.admit(budgets, plan.estimated_tokens, plan.estimated_micros, wall) {
                    Ok(decision) => {
                        let mut concurrent = budgets
                            .iter()
                            .filter(|b| b.kind() == BudgetKind::Concurrent)
                            .peekable();
                        let hold = if decision.refused.is_none() && concurrent.peek().is_some() {
                            Hold::Memory(concurrent.cloned().collect())
                        } else {
                            Hold::Nothing
                        };
                        Ok((decision, hold))
                    }
                    Err(full) => {
                        health.failed("admission check", &full);
                        Err(())
                    }
                }
            }
            Backend::Redis(store) => {
                if !health.may_try() {
                    Err(())
                } else {
                    match store
                        .admit(budgets, plan.estimated_tokens, plan.estimated_micros, wall)
                        .await
                    {
                        Ok((decision, lease)) => {
                            if lease.is_some() {
                                self.ensure_renewer(store);
                            }
                            Ok((decision, lease.map_or(Hold::Nothing, Hold::Redis)))
                        }
                        Err(failure) => {
                            health.failed("admission check", &failure);
                            if let Some(failing_for) = health.failing_for() {
                                store.rebuild_if_stuck(failing_for);
                            }
                            Err(())
                        }
                    }
                }
            }
        };
        match outcome {
            Ok((decision, hold)) => {
                health.succeeded();
                self.decide(plan, decision, hold, wall)
            }
            Err(()) => self.decide_without_backend(),
        }
    }

    /// The wall clock calendar windows are named by: the memory backend's clock, else the
    /// system's.
    fn wall(&self) -> Duration {
        match &self.inner.backend {
            Backend::Memory(store) => store.wall(),
            Backend::Redis(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    fn decide(
        &self,
        plan: &AdmissionPlan,
        decision: Decision,
        hold: Hold,
        wall: Duration,
    ) -> Admission {
        let counters = &self.inner.health.counters;
        let mut headers = RateLimitHeaders::default();
        let refused_figures = decision
            .refused
            .and_then(|(i, _)| decision.figures.get(i).copied());
        for (budget, figures) in plan.budgets().iter().zip(decision.figures) {
            headers.consider(budget, figures);
        }
        if let Some((index, retry_after)) = decision.refused {
            // Backends name a budget of the plan; anything else is a backend fault.
            let Some(budget) = plan.budgets().get(index).cloned() else {
                return self.decide_without_backend();
            };
            bump(&counters.refused);
            // Nothing was taken, so `hold` is empty; dropping it releases nothing.
            return Admission::Refused(Refusal {
                cause: RefusalCause::Exhausted(budget),
                retry_after,
                headers,
                figures: refused_figures,
            });
        }
        bump(&counters.admitted);
        let tokens: Vec<Arc<Budget>> = plan
            .budgets()
            .iter()
            .filter(|b| matches!(b.kind(), BudgetKind::Tokens(_)))
            .cloned()
            .collect();
        let reserved = if tokens.is_empty() {
            0
        } else {
            plan.estimated_tokens
        };
        let spend: Vec<(Arc<Budget>, u64)> = plan
            .spend_budgets()
            .filter_map(|b| Some((b.clone(), b.kind().period()?.window(wall.as_secs()).0)))
            .collect();
        let reserved_micros = if spend.is_empty() {
            0
        } else {
            plan.estimated_micros
        };
        Admission::Allowed(Ticket {
            limiter: Some(self.clone()),
            headers,
            on_backend_error: false,
            tokens,
            reserved,
            spend,
            reserved_micros,
            hold,
        })
    }

    fn decide_without_backend(&self) -> Admission {
        let health = &self.inner.health;
        match health.policy() {
            OnBackendError::Allow => {
                bump(&health.counters.admitted_on_backend_error);
                Admission::Allowed(Ticket::free(true))
            }
            OnBackendError::Deny => {
                bump(&health.counters.refused_on_backend_error);
                Admission::Refused(Refusal {
                    cause: RefusalCause::BackendUnavailable,
                    retry_after: Duration::from_secs(1),
                    headers: RateLimitHeaders::default(),
                    figures: None,
                })
            }
        }
    }

    /// Settles a finished request: its tokens and dollars, and its concurrency (`hold`).
    async fn settle(&self, settlement: Settlement<'_>, hold: Hold) {
        let health = &self.inner.health;
        match (&self.inner.backend, hold) {
            (Backend::Memory(store), hold) => {
                if settlement.delta != 0 {
                    store.adjust(settlement.tokens, settlement.delta);
                }
                if settlement.spend_delta != 0 {
                    store.adjust_spend(settlement.spend, settlement.spend_delta);
                }
                if let Hold::Memory(budgets) = hold {
                    store.release(&budgets);
                }
            }
            (Backend::Redis(store), hold) => {
                let lease = match hold {
                    Hold::Redis(n) => store.forget(n),
                    _ => None,
                };
                if settlement.is_empty() && lease.is_none() {
                    return;
                }
                // During an incident the reservation stands (probing is for admissions), and
                // the lease, no longer renewed, expires by itself.
                if !health.is_healthy() {
                    return;
                }
                if let Err(failure) = store.settle(&settlement, lease.as_ref()).await {
                    health.failed_in_background("settlement", &failure);
                }
            }
        }
    }

    /// Ends a dropped ticket's concurrency hold.
    fn release(&self, hold: Hold) {
        match (hold, &self.inner.backend) {
            (Hold::Memory(budgets), Backend::Memory(store)) => store.release(&budgets),
            (Hold::Redis(n), Backend::Redis(store)) => {
                let Some(lease) = store.forget(n) else {
                    return;
                };
                // A Drop cannot wait: release on a task. Without a runtime (the process is
                // ending), the lease expires by itself within `lease_ttl`.
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let limiter = self.clone();
                runtime.spawn(async move {
                    if let Backend::Redis(store) = &limiter.inner.backend {
                        let nothing = Settlement {
                            tokens: &[],
                            delta: 0,
                            spend: &[],
                            spend_delta: 0,
                        };
                        if let Err(failure) = store.settle(&nothing, Some(&lease)).await {
                            let health = &limiter.inner.health;
                            health.failed_in_background("concurrency release", &failure);
                        }
                    }
                });
            }
            _ => {}
        }
    }

    /// Starts the lease renewal task on this runtime, unless it is running.
    fn ensure_renewer(&self, store: &RedisStore) {
        if !store.needs_renewer() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let every = store.renew_every();
        let limiter = Arc::downgrade(&self.inner);
        store.set_renewer(runtime.spawn(renew_leases(limiter, every)));
    }

    /// Asks the backend whether it works (Redis: a PING within the request bound); makes the
    /// Redis connection if there is none yet. For readiness checks and warm-up.
    pub async fn probe_backend(&self) -> bool {
        match &self.inner.backend {
            Backend::Memory(_) => true,
            Backend::Redis(store) => match store.ping().await {
                Ok(()) => {
                    self.inner.health.succeeded();
                    true
                }
                Err(failure) => {
                    self.inner.health.failed("probe", &failure);
                    false
                }
            },
        }
    }

    /// What each USD budget has spent in its current calendar window, in micro-dollars, in
    /// the order given (0 for budgets that are not USD budgets). `None` when the backend
    /// cannot say (Redis unreachable).
    pub async fn spent(&self, budgets: &[Arc<Budget>]) -> Option<Vec<u64>> {
        let wall = self.wall();
        match &self.inner.backend {
            Backend::Memory(store) => Some(budgets.iter().map(|b| store.spent(b, wall)).collect()),
            Backend::Redis(store) => match store.spent(budgets, wall).await {
                Ok(spent) => Some(spent),
                Err(failure) => {
                    self.inner.health.failed("spend report", &failure);
                    None
                }
            },
        }
    }

    /// Whether the backend's last operation succeeded (no incident under way).
    pub fn is_backend_healthy(&self) -> bool {
        self.inner.health.is_healthy()
    }

    /// The limiter's counters, for telemetry.
    pub fn stats(&self) -> LimiterStats {
        let tracked = match &self.inner.backend {
            Backend::Memory(store) => store.tracked(),
            Backend::Redis(_) => 0,
        };
        self.inner.health.snapshot(tracked)
    }

    /// The Redis options, if this limiter uses Redis.
    pub fn redis_options(&self) -> Option<&RedisOptions> {
        match &self.inner.backend {
            Backend::Redis(store) => Some(store.options()),
            Backend::Memory(_) => None,
        }
    }
}

/// Renews the leases of a limiter until it is dropped.
async fn renew_leases(limiter: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = limiter.upgrade() else {
            return;
        };
        if let Backend::Redis(store) = &inner.backend {
            if let Err(failure) = store.renew().await {
                inner.health.failed_in_background("lease renewal", &failure);
            }
        }
    }
}
