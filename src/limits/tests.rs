//! The limiter with its memory backend, on a clock moved by hand.

use std::sync::Arc;
use std::time::Duration;

use super::*;

fn limiter() -> (Limiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (
        Limiter::memory_with(MemoryOptions::default(), clock.clone()),
        clock,
    )
}

fn budgets(scope: &str, name: &str, spec: LimitSpec) -> Vec<Arc<Budget>> {
    spec.budgets(scope, name).unwrap()
}

fn rpm(n: u64) -> LimitSpec {
    LimitSpec {
        requests_per_minute: Some(n),
        ..LimitSpec::default()
    }
}

async fn admitted(limiter: &Limiter, plan: &AdmissionPlan, tries: usize) -> usize {
    let mut passed = 0;
    for _ in 0..tries {
        if let Admission::Allowed(_) = limiter.admit(plan).await {
            passed += 1;
        }
    }
    passed
}

fn refused(admission: Admission) -> Refusal {
    match admission {
        Admission::Refused(r) => r,
        Admission::Allowed(t) => panic!("expected a refusal, got {t:?}"),
    }
}

fn allowed(admission: Admission) -> Ticket {
    match admission {
        Admission::Allowed(t) => t,
        Admission::Refused(r) => panic!("expected an admission, got {r}"),
    }
}

#[tokio::test]
async fn a_burst_gets_exactly_the_budget_in_every_window() {
    for window in Window::ALL {
        let (limiter, clock) = limiter();
        let kind = BudgetKind::Requests(window);
        let budget = Arc::new(Budget::new("key", "k", kind, 20).unwrap());
        let plan = AdmissionPlan::new(0).with([&budget]);
        assert_eq!(admitted(&limiter, &plan, 30).await, 20, "{window}");
        let refusal = refused(limiter.admit(&plan).await);
        assert_eq!(refusal.retry_after(), window.duration() / 20);
        clock.advance(window.duration() / 20);
        assert_eq!(
            admitted(&limiter, &plan, 5).await,
            1,
            "{window}: one refilled"
        );
        clock.advance(window.duration());
        assert_eq!(
            admitted(&limiter, &plan, 30).await,
            20,
            "{window}: all refilled"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admissions_are_exact() {
    let limiter = Limiter::memory();
    let plan = Arc::new(AdmissionPlan::new(0).with(&budgets("key", "k", rpm(20))));
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (limiter, plan) = (limiter.clone(), plan.clone());
            tokio::spawn(async move { matches!(limiter.admit(&plan).await, Admission::Allowed(_)) })
        })
        .collect();
    let mut passed = 0;
    for task in tasks {
        passed += usize::from(task.await.unwrap());
    }
    assert_eq!(passed, 20);
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.refused), (20, 10));
}

#[tokio::test]
async fn refusal_names_the_budget_and_when_to_retry() {
    let (limiter, _) = limiter();
    let plan = AdmissionPlan::new(0).with(&budgets("key", "checkout-web", rpm(20)));
    admitted(&limiter, &plan, 20).await;
    let refusal = refused(limiter.admit(&plan).await);
    assert_eq!(refusal.to_string(), "key checkout-web: requests_per_minute");
    let budget = refusal.budget().unwrap();
    assert_eq!(budget.kind(), BudgetKind::Requests(Window::Minute));
    assert_eq!(
        (budget.name(), budget.limit(), budget.owner()),
        ("requests_per_minute", 20, "checkout-web")
    );
    assert_eq!(refusal.retry_after(), Duration::from_secs(3));
    assert_eq!(refusal.retry_after_secs(), 3);
    let headers = refusal.headers().requests.unwrap();
    assert_eq!((headers.limit, headers.remaining), (20, 0));
    assert_eq!(headers.reset, Duration::from_secs(60));
}

#[tokio::test]
async fn retry_after_secs_is_at_least_one() {
    let (limiter, _) = limiter();
    let spec = LimitSpec {
        requests_per_second: Some(10),
        ..LimitSpec::default()
    };
    let plan = AdmissionPlan::new(0).with(&budgets("key", "k", spec));
    admitted(&limiter, &plan, 10).await;
    let refusal = refused(limiter.admit(&plan).await);
    assert_eq!(refusal.retry_after(), Duration::from_millis(100));
    assert_eq!(refusal.retry_after_secs(), 1);
}

#[tokio::test]
async fn all_or_nothing_across_budgets() {
    let (limiter, _) = limiter();
    let key = budgets("key", "a", rpm(5));
    let other_key = budgets("key", "b", rpm(5));
    let route = budgets("route", "gpt-4o", rpm(3));
    let plan = AdmissionPlan::new(0).with(&key).with(&route);
    assert_eq!(admitted(&limiter, &plan, 5).await, 3);
    let refusal = refused(limiter.admit(&plan).await);
    assert_eq!(refusal.to_string(), "route gpt-4o: requests_per_minute");
    // The key's budget was charged only for the 3 admitted: 2 left for another route.
    let key_only = AdmissionPlan::new(0).with(&key);
    assert_eq!(admitted(&limiter, &key_only, 5).await, 2);
    // Another key on the same route shares the route's budget.
    let b_plan = AdmissionPlan::new(0).with(&other_key).with(&route);
    assert!(matches!(
        limiter.admit(&b_plan).await,
        Admission::Refused(_)
    ));
    assert_eq!(
        admitted(&limiter, &AdmissionPlan::new(0).with(&other_key), 9).await,
        5
    );
}

#[tokio::test]
async fn a_token_refusal_consumes_no_request() {
    let (limiter, _) = limiter();
    let spec = LimitSpec {
        requests_per_minute: Some(10),
        tokens_per_minute: Some(1_000),
        ..LimitSpec::default()
    };
    let budgets = budgets("key", "k", spec);
    let big = AdmissionPlan::new(800).with(&budgets);
    let _first = allowed(limiter.admit(&big).await);
    let refusal = refused(limiter.admit(&big).await);
    assert_eq!(refusal.to_string(), "key k: tokens_per_minute");
    // 800 of 1 000 in use: another 800 needs 600 drained, at 1 000 a minute = 36 s.
    assert_eq!(refusal.retry_after(), Duration::from_secs(36));
    let headers = refusal.headers();
    assert_eq!(
        headers.requests.unwrap().remaining,
        9,
        "the refused request was not counted"
    );
    assert_eq!(headers.tokens.unwrap().remaining, 200);
}

#[tokio::test]
async fn tokens_reserve_then_reconcile_with_refund_charge_and_debt() {
    let (limiter, clock) = limiter();
    let spec = LimitSpec {
        tokens_per_minute: Some(1_000),
        ..LimitSpec::default()
    };
    let budgets = budgets("key", "k", spec);
    let remaining = |a: &Admission| a.headers().tokens.unwrap().remaining;

    let first = limiter.admit(&AdmissionPlan::new(600).with(&budgets)).await;
    assert_eq!(remaining(&first), 400);
    let ticket = allowed(first);
    assert_eq!(ticket.reserved_tokens(), 600);
    ticket.reconcile(100).await; // refund 500

    let second = limiter.admit(&AdmissionPlan::new(800).with(&budgets)).await;
    assert_eq!(remaining(&second), 100);
    allowed(second).reconcile(2_400).await; // charge 1 600: 100 + 2 400 = 2 500 used of 1 000

    let zero = AdmissionPlan::new(0).with(&budgets);
    let refusal = refused(limiter.admit(&zero).await);
    assert_eq!(
        refusal.retry_after(),
        Duration::from_secs(90),
        "1 500 of debt to drain"
    );
    clock.advance(Duration::from_secs(90));
    let ticket = allowed(limiter.admit(&zero).await);
    assert_eq!(ticket.headers().tokens.unwrap().remaining, 0);
    clock.advance(Duration::from_secs(60));
    assert_eq!(remaining(&limiter.admit(&zero).await), 1_000);
}

#[tokio::test]
async fn a_forgotten_ticket_keeps_its_estimate() {
    let (limiter, _) = limiter();
    let spec = LimitSpec {
        tokens_per_hour: Some(1_000),
        concurrent: Some(1),
        ..LimitSpec::default()
    };
    let budgets = budgets("key", "k", spec);
    drop(allowed(
        limiter.admit(&AdmissionPlan::new(300).with(&budgets)).await,
    ));
    let next = allowed(limiter.admit(&AdmissionPlan::new(0).with(&budgets)).await);
    assert_eq!(next.headers().tokens.unwrap().remaining, 700);
}

#[tokio::test]
async fn an_estimate_above_the_budget_waits_for_a_full_budget() {
    let (limiter, _) = limiter();
    let spec = LimitSpec {
        tokens_per_minute: Some(1_000),
        ..LimitSpec::default()
    };
    let budgets = budgets("key", "k", spec);
    let huge = AdmissionPlan::new(5_000).with(&budgets);
    let ticket = allowed(limiter.admit(&huge).await);
    assert_eq!(
        ticket.headers().tokens.unwrap().reset,
        Duration::from_secs(300)
    );
    assert!(matches!(limiter.admit(&huge).await, Admission::Refused(_)));
}

#[tokio::test]
async fn concurrency_is_released_on_drop_reconcile_and_cancellation() {
    let (limiter, _) = limiter();
    let spec = LimitSpec {
        concurrent: Some(2),
        ..LimitSpec::default()
    };
    let plan = Arc::new(AdmissionPlan::new(0).with(&budgets("key", "k", spec)));
    let a = allowed(limiter.admit(&plan).await);
    let b = allowed(limiter.admit(&plan).await);
    let refusal = refused(limiter.admit(&plan).await);
    assert_eq!(refusal.to_string(), "key k: concurrent");
    assert_eq!(refusal.retry_after_secs(), 1);

    drop(a); // error path
    let c = allowed(limiter.admit(&plan).await);
    b.reconcile(10).await; // success path
    let d = allowed(limiter.admit(&plan).await);
    drop((c, d));

    // Client gone: the task holding the ticket is aborted.
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let task = {
        let (limiter, plan) = (limiter.clone(), plan.clone());
        tokio::spawn(async move {
            let _ticket = allowed(limiter.admit(&plan).await);
            let _ = held_tx.send(());
            std::future::pending::<()>().await;
        })
    };
    held_rx.await.unwrap();
    let e = allowed(limiter.admit(&plan).await);
    assert!(matches!(limiter.admit(&plan).await, Admission::Refused(_)));
    task.abort();
    let _ = task.await;

    // Timeout: the future holding the ticket is dropped by `timeout`.
    let slow = async {
        let _ticket = allowed(limiter.admit(&plan).await);
        std::future::pending::<()>().await;
    };
    assert!(tokio::time::timeout(Duration::from_millis(5), slow)
        .await
        .is_err());
    let f = allowed(limiter.admit(&plan).await);
    drop((e, f));
    assert_eq!(
        limiter.stats().tracked_states,
        0,
        "nothing in flight, nothing kept"
    );
}

#[tokio::test]
async fn a_concurrency_refusal_consumes_no_request() {
    let (limiter, _) = limiter();
    let spec = LimitSpec {
        requests_per_minute: Some(10),
        concurrent: Some(1),
        ..LimitSpec::default()
    };
    let plan = AdmissionPlan::new(0).with(&budgets("key", "k", spec));
    let held = allowed(limiter.admit(&plan).await);
    assert_eq!(held.headers().requests.unwrap().remaining, 9);
    for _ in 0..5 {
        assert!(matches!(limiter.admit(&plan).await, Admission::Refused(_)));
    }
    drop(held);
    let next = allowed(limiter.admit(&plan).await);
    assert_eq!(next.headers().requests.unwrap().remaining, 8);
}

#[tokio::test]
async fn headers_show_the_tightest_budget_of_each_kind() {
    let (limiter, _) = limiter();
    let key = LimitSpec {
        requests_per_minute: Some(100),
        requests_per_day: Some(3),
        tokens_per_minute: Some(10_000),
        ..LimitSpec::default()
    };
    let route = LimitSpec {
        tokens_per_hour: Some(500),
        ..LimitSpec::default()
    };
    let plan = AdmissionPlan::new(100)
        .with(&budgets("key", "k", key))
        .with(&budgets("route", "r", route));
    let ticket = allowed(limiter.admit(&plan).await);
    let h = ticket.headers();
    let requests = h.requests.unwrap();
    assert_eq!((requests.limit, requests.remaining), (3, 2));
    assert_eq!(requests.reset, Duration::from_secs(28_800));
    let tokens = h.tokens.unwrap();
    assert_eq!((tokens.limit, tokens.remaining), (500, 400));
    assert_eq!(tokens.reset, Duration::from_secs(720));
    let pairs = h.to_pairs();
    assert_eq!(pairs.len(), 6);
    assert_eq!(
        pairs[2],
        ("x-ratelimit-reset-requests", "8h0m0s".to_string())
    );
    assert_eq!(pairs[5], ("x-ratelimit-reset-tokens", "12m0s".to_string()));
}

#[tokio::test]
async fn an_empty_plan_is_free() {
    let (limiter, _) = limiter();
    let ticket = allowed(limiter.admit(&AdmissionPlan::new(10)).await);
    assert!(ticket.headers().is_empty());
    assert!(!ticket.admitted_on_backend_error());
    ticket.reconcile(1_000).await;
    assert_eq!(limiter.stats(), LimiterStats::default());
}

#[tokio::test]
async fn a_budget_listed_twice_counts_once() {
    let (limiter, _) = limiter();
    let key = budgets("key", "k", rpm(4));
    let again = budgets("key", "k", rpm(4));
    let plan = AdmissionPlan::new(0).with(&key).with(&again).with(&key);
    assert_eq!(plan.budgets().len(), 1);
    assert_eq!(admitted(&limiter, &plan, 10).await, 4);
}

#[tokio::test]
async fn state_survives_a_reload_with_the_same_ids() {
    let (limiter, clock) = limiter();
    let before = AdmissionPlan::new(0).with(&budgets("key", "k", rpm(10)));
    assert_eq!(admitted(&limiter, &before, 6).await, 6);
    // Reload: new budget objects, same ids.
    let same = AdmissionPlan::new(0).with(&budgets("key", "k", rpm(10)));
    assert_eq!(admitted(&limiter, &same, 10).await, 4);
    // Reload raising the limit: what was used still counts.
    let raised = AdmissionPlan::new(0).with(&budgets("key", "k", rpm(20)));
    assert_eq!(admitted(&limiter, &raised, 20).await, 10);
    // A renamed key starts afresh.
    clock.advance(Duration::from_millis(1));
    let renamed = AdmissionPlan::new(0).with(&budgets("key", "k2", rpm(10)));
    assert_eq!(admitted(&limiter, &renamed, 20).await, 10);
}

#[tokio::test]
async fn memory_is_bounded_and_idle_states_expire() {
    let clock = Arc::new(ManualClock::new());
    for policy in [OnBackendError::Allow, OnBackendError::Deny] {
        let options = MemoryOptions {
            max_states: 8,
            shards: 1,
            on_backend_error: policy,
        };
        let limiter = Limiter::memory_with(options, clock.clone());
        for i in 0..8 {
            let plan =
                AdmissionPlan::new(0).with(&budgets("client", &format!("10.0.0.{i}"), rpm(2)));
            drop(allowed(limiter.admit(&plan).await));
        }
        assert_eq!(limiter.stats().tracked_states, 8);
        let ninth = AdmissionPlan::new(0).with(&budgets("client", "10.0.0.9", rpm(2)));
        match (policy, limiter.admit(&ninth).await) {
            (OnBackendError::Allow, Admission::Allowed(t)) => {
                assert!(t.admitted_on_backend_error())
            }
            (OnBackendError::Deny, Admission::Refused(r)) => {
                assert_eq!(r.cause(), &RefusalCause::BackendUnavailable);
                assert!(r.budget().is_none());
            }
            (_, other) => panic!("{policy}: {other:?}"),
        }
        let stats = limiter.stats();
        assert_eq!((stats.backend_incidents, stats.backend_errors), (1, 1));
        assert!(!limiter.is_backend_healthy());
        // An idle state is forgotten once drained: one request of 2/min drains in 30 s.
        clock.advance(Duration::from_secs(30));
        drop(allowed(limiter.admit(&ninth).await));
        assert_eq!(limiter.stats().tracked_states, 1);
        assert!(limiter.is_backend_healthy());
    }
}

#[tokio::test]
async fn stats_count_every_decision() {
    let (limiter, _) = limiter();
    let plan = AdmissionPlan::new(0).with(&budgets("key", "k", rpm(2)));
    admitted(&limiter, &plan, 5).await;
    let stats = limiter.stats();
    assert_eq!(
        (stats.admitted, stats.refused, stats.backend_errors),
        (2, 3, 0)
    );
    assert_eq!(stats.tracked_states, 1);
    assert_eq!(limiter.backend_name(), "memory");
    assert!(limiter.probe_backend().await);
}

#[tokio::test]
async fn types_cross_threads_and_admission_futures_are_send() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Limiter>();
    send_sync::<Ticket>();
    send_sync::<Admission>();
    send_sync::<KeyStore<Arc<Budget>>>();
    let limiter = Limiter::redis("redis://127.0.0.1:1", RedisOptions::default()).unwrap();
    let plan = AdmissionPlan::new(0);
    send(&limiter.admit(&plan));
    let ticket = allowed(Limiter::memory().admit(&plan).await);
    send(&ticket.reconcile(1));
}

#[test]
fn a_plan_counts_tokens_only_with_a_token_budget() {
    let requests = budgets("key", "a", rpm(10));
    let tokens = budgets(
        "route",
        "b",
        LimitSpec {
            tokens_per_minute: Some(1_000),
            ..Default::default()
        },
    );
    let plan = AdmissionPlan::new(0).with(&requests);
    assert!(!plan.counts_tokens());
    let mut plan = plan.with(&tokens);
    assert!(plan.counts_tokens());
    plan.set_estimated_tokens(321);
    assert_eq!(plan.estimated_tokens(), 321);
}

/// 2026-12-05 10:30:00 UTC.
const DEC_5_1030: u64 = 1_796_466_600;

fn spend_limiter(unix: u64) -> (Limiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at_unix(unix));
    (
        Limiter::memory_with(MemoryOptions::default(), clock.clone()),
        clock,
    )
}

fn usd_per_hour(dollars: u64) -> LimitSpec {
    LimitSpec {
        usd_per_hour: Some(Usd(dollars * 1_000_000)),
        ..LimitSpec::default()
    }
}

fn spend_plan(budgets: &[Arc<Budget>], micros: u64) -> AdmissionPlan {
    let mut plan = AdmissionPlan::new(0).with(budgets);
    plan.set_estimated_micros(micros);
    plan
}

#[tokio::test]
async fn usd_budgets_reserve_the_worst_case_and_settle_the_real_cost() {
    let (limiter, clock) = spend_limiter(DEC_5_1030);
    let budgets = budgets("key", "k", usd_per_hour(1));
    let spent = |l: &Limiter| {
        let l = l.clone();
        let b = budgets.clone();
        async move { l.spent(&b).await.unwrap()[0] }
    };
    let plan = spend_plan(&budgets, 400_000);
    let first = allowed(limiter.admit(&plan).await);
    assert_eq!(first.reserved_micros(), 400_000);
    let second = allowed(limiter.admit(&plan).await);
    assert_eq!(spent(&limiter).await, 800_000);
    let refusal = refused(limiter.admit(&plan).await);
    assert_eq!(refusal.to_string(), "key k: usd_per_hour");
    assert_eq!(refusal.remaining(), Some(200_000));
    assert_eq!(
        refusal.retry_after(),
        Duration::from_secs(1_800),
        "a calendar hour: until 11:00 UTC"
    );
    assert_eq!(spent(&limiter).await, 800_000, "a refusal costs nothing");

    first.reconcile_cost(0, Some(100_000)).await; // refund 300 000
    assert_eq!(spent(&limiter).await, 500_000);
    second.reconcile_cost(0, Some(900_000)).await; // charge 500 000 more
    assert_eq!(spent(&limiter).await, 1_000_000);
    let _ = refused(limiter.admit(&spend_plan(&budgets, 1)).await);

    // A cost the gateway could not learn keeps the reservation.
    clock.advance(Duration::from_secs(1_800));
    assert_eq!(spent(&limiter).await, 0, "a new hour");
    allowed(limiter.admit(&plan).await)
        .reconcile_cost(0, None)
        .await;
    assert_eq!(spent(&limiter).await, 400_000);
    // An admission without a cost to reserve still must fit: nothing left is nothing left.
    let _ = allowed(limiter.admit(&spend_plan(&budgets, 600_000)).await);
    let refusal = refused(limiter.admit(&spend_plan(&budgets, 0)).await);
    assert_eq!(refusal.remaining(), Some(0));
}

#[tokio::test]
async fn a_cost_is_settled_in_the_window_it_was_admitted_in() {
    // 10:59:59: admitted in the 10 o'clock hour, answered in the 11 o'clock one.
    let (limiter, clock) = spend_limiter(DEC_5_1030 + 1_799);
    let budgets = budgets("key", "k", usd_per_hour(1));
    let ticket = allowed(limiter.admit(&spend_plan(&budgets, 900_000)).await);
    clock.advance(Duration::from_secs(2));
    assert_eq!(limiter.spent(&budgets).await.unwrap(), [0]);
    ticket.reconcile_cost(0, Some(2_000_000)).await;
    assert_eq!(
        limiter.spent(&budgets).await.unwrap(),
        [0],
        "the 10 o'clock hour paid; the new hour starts clean"
    );
    let _ = allowed(limiter.admit(&spend_plan(&budgets, 1_000_000)).await);
}

#[tokio::test]
async fn a_usd_refusal_charges_no_other_budget() {
    let (limiter, _) = spend_limiter(DEC_5_1030);
    let key = budgets(
        "key",
        "k",
        LimitSpec {
            requests_per_minute: Some(10),
            tokens_per_minute: Some(10_000),
            ..LimitSpec::default()
        },
    );
    let route = budgets("route", "gpt-4o", usd_per_hour(1));
    let mut plan = AdmissionPlan::new(1_000).with(&key).with(&route);
    plan.set_estimated_micros(600_000);
    let admitted = allowed(limiter.admit(&plan).await);
    assert_eq!(admitted.headers().requests.unwrap().remaining, 9);
    let refusal = refused(limiter.admit(&plan).await);
    assert_eq!(refusal.to_string(), "route gpt-4o: usd_per_hour");
    let headers = refusal.headers();
    assert_eq!(headers.requests.unwrap().remaining, 9, "no request counted");
    assert_eq!(
        headers.tokens.unwrap().remaining,
        9_000,
        "no token reserved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_burst_never_overshoots_a_usd_budget() {
    let (limiter, _) = spend_limiter(DEC_5_1030);
    let budgets = budgets("key", "k", usd_per_hour(1));
    let plan = Arc::new(spend_plan(&budgets, 30_000));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (limiter, plan) = (limiter.clone(), plan.clone());
        tasks.push(tokio::spawn(async move {
            matches!(limiter.admit(&plan).await, Admission::Allowed(_))
        }));
    }
    let mut passed = 0;
    for t in tasks {
        passed += usize::from(t.await.unwrap());
    }
    assert_eq!(passed, 33, "$1 / $0.03 = 33 worst cases, and not one more");
    assert_eq!(limiter.spent(&budgets).await.unwrap(), [990_000]);
}

#[tokio::test]
async fn usd_periods_follow_the_utc_calendar() {
    // 2026-12-31 23:00:00 UTC: the hour, the day and the month end together.
    let (limiter, clock) = spend_limiter(1_798_758_000);
    let spec = LimitSpec {
        usd_per_hour: Some(Usd(3_000_000)),
        usd_per_day: Some(Usd(5_000_000)),
        usd_per_month: Some(Usd(6_000_000)),
        ..LimitSpec::default()
    };
    let budgets = budgets("key", "k", spec);
    let _ = allowed(limiter.admit(&spend_plan(&budgets, 2_000_000)).await);
    assert_eq!(
        limiter.spent(&budgets).await.unwrap(),
        [2_000_000, 2_000_000, 2_000_000]
    );
    let refusal = refused(limiter.admit(&spend_plan(&budgets, 2_000_000)).await);
    assert_eq!(refusal.to_string(), "key k: usd_per_hour");
    assert_eq!(refusal.retry_after(), Duration::from_secs(3_600));
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(limiter.spent(&budgets).await.unwrap(), [0, 0, 0], "2027");
}
