//! The in-process backend: budget states in a sharded map, for one gateway instance.
//!
//! * **All or nothing.** An admission locks the shards of all its budgets (in shard order, so
//!   two admissions cannot deadlock), checks every budget, and commits only if all allow.
//! * **Low contention.** States are spread over [`MemoryOptions::shards`] mutexes by a hash of
//!   the budget id; a lock is held for a few hash-map operations.
//! * **Bounded memory.** A rate state is dropped once it has fully drained (at most one
//!   window after its last use, longer only while in debt), a concurrency state as soon as
//!   nothing is in flight. Drained states are swept from a shard at most every few seconds,
//!   and whenever the shard is full. At most [`MemoryOptions::max_states`] states are kept;
//!   an admission that needs a new state beyond that is a backend failure, decided by
//!   [`OnBackendError`](super::OnBackendError).

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::gcra::{Level, Rate};
use super::limiter::Decision;
use super::rate_limit_headers::HeaderFigures;
use super::{Budget, BudgetKind, Clock, OnBackendError};

/// Settings of the memory backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryOptions {
    /// Most budget states kept at once (one per budget in use, e.g. per key and window).
    /// Roughly 150 bytes each. Default 262 144 (about 40 MB when full).
    pub max_states: usize,
    /// Number of independently locked shards, rounded up to a power of two. Default 64.
    pub shards: usize,
    /// What to do when a new state would exceed `max_states`. Default: allow.
    pub on_backend_error: OnBackendError,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            max_states: 262_144,
            shards: 64,
            on_backend_error: OnBackendError::Allow,
        }
    }
}

/// How often a shard forgets drained states, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The state of one budget.
#[derive(Debug, Clone, Copy)]
enum State {
    /// A rate budget's level, with the rate it was last used at (to know when it drained).
    Rate { level: Level, rate: Rate },
    /// Requests in flight for a concurrency budget.
    InFlight(u64),
    /// Micro-dollars spent in the calendar window `[start, end)` (Unix seconds).
    Spend { start: u64, end: u64, used: u64 },
}

impl State {
    fn is_idle(&self, now: u64, wall_secs: u64) -> bool {
        match *self {
            State::Rate { level, rate } => rate.is_idle(level, now),
            State::InFlight(n) => n == 0,
            State::Spend { end, used, .. } => used == 0 || wall_secs >= end,
        }
    }
}

#[derive(Default)]
struct Shard {
    states: HashMap<Arc<str>, State>,
    next_sweep: u64,
}

impl Shard {
    fn sweep(&mut self, now: u64, wall_secs: u64) {
        self.states
            .retain(|_, state| !state.is_idle(now, wall_secs));
        self.next_sweep = now.saturating_add(SWEEP_EVERY.as_nanos() as u64);
    }
}

/// The memory store has no room for a new budget state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full {
    max_states: usize,
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "all {} budget states in use (max_states)",
            self.max_states
        )
    }
}

pub(crate) struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
    max_states: usize,
    per_shard: usize,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .field("max_states", &self.max_states)
            .field("clock", &self.clock)
            .finish()
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Nothing panics while a shard is locked; should it ever, its states are still valid.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    pub(crate) fn new(options: &MemoryOptions, clock: Arc<dyn Clock>) -> Self {
        let shards = options.shards.clamp(1, 1 << 16).next_power_of_two();
        let max_states = options.max_states.max(1);
        MemoryStore {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            clock,
            max_states,
            per_shard: max_states.div_ceil(shards),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard_of(&self, id: &str) -> usize {
        (self.hasher.hash_one(id) as usize) & (self.shards.len() - 1)
    }

    /// The wall clock: calendar windows of USD budgets.
    pub(crate) fn wall(&self) -> Duration {
        self.clock.wall()
    }

    /// Checks every budget of an admission and commits all of them, or none. USD budgets are
    /// counted in the calendar window holding `wall`.
    pub(crate) fn admit(
        &self,
        budgets: &[Arc<Budget>],
        estimated_tokens: u64,
        estimated_micros: u64,
        wall: Duration,
    ) -> Result<Decision, Full> {
        let now = self.now();
        let wall_secs = wall.as_secs();
        let slots: Vec<usize> = budgets.iter().map(|b| self.shard_of(b.id())).collect();
        let mut order = slots.clone();
        order.sort_unstable();
        order.dedup();
        // Locked in ascending shard order: no two admissions wait on each other in a cycle.
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            order.iter().map(|&i| lock(&self.shards[i])).collect();
        let position = |slot: usize| order.binary_search(&slot).unwrap_or(0);

        // Room for the states this admission would create?
        for (k, guard) in guards.iter_mut().enumerate() {
            if now >= guard.next_sweep || guard.states.len() >= self.per_shard {
                guard.sweep(now, wall_secs);
            }
            let new = budgets
                .iter()
                .zip(&slots)
                .filter(|(b, &s)| position(s) == k && !guard.states.contains_key(b.id()))
                .count();
            if guard.states.len() + new > self.per_shard {
                return Err(Full {
                    max_states: self.max_states,
                });
            }
        }

        // Check every budget without changing anything.
        let mut checks = Vec::with_capacity(budgets.len());
        let mut refused: Option<(usize, Duration)> = None;
        for (i, budget) in budgets.iter().enumerate() {
            let state = guards[position(slots[i])].states.get(budget.id()).copied();
            let check = check(budget, state, now, wall, estimated_tokens, estimated_micros);
            if let Some(wait) = check.refusal {
                if refused.is_none_or(|(_, longest)| wait > longest) {
                    refused = Some((i, wait));
                }
            }
            checks.push(check);
        }

        if refused.is_none() {
            for ((budget, &slot), check) in budgets.iter().zip(&slots).zip(&checks) {
                let shard = &mut guards[position(slot)];
                match shard.states.get_mut(budget.id()) {
                    Some(state) => *state = check.after,
                    None => {
                        shard.states.insert(budget.id_arc().clone(), check.after);
                    }
                }
            }
        }
        let figures = checks
            .iter()
            .map(|c| {
                if refused.is_none() {
                    c.figures_after
                } else {
                    c.figures_now
                }
            })
            .collect();
        Ok(Decision { refused, figures })
    }

    /// Ends one request in flight for each concurrency budget.
    pub(crate) fn release(&self, budgets: &[Arc<Budget>]) {
        for budget in budgets {
            let mut shard = lock(&self.shards[self.shard_of(budget.id())]);
            if let Entry::Occupied(mut entry) = shard.states.entry(budget.id_arc().clone()) {
                match entry.get_mut() {
                    State::InFlight(n) if *n > 1 => *n -= 1,
                    _ => {
                        entry.remove();
                    }
                }
            }
        }
    }

    /// Charges (`delta > 0`) or refunds (`delta < 0`) token budgets.
    pub(crate) fn adjust(&self, budgets: &[Arc<Budget>], delta: i128) {
        let now = self.now();
        for budget in budgets {
            let Some(window) = budget.kind().window() else {
                continue;
            };
            let rate = Rate::new(budget.limit(), window.duration());
            let mut shard = lock(&self.shards[self.shard_of(budget.id())]);
            let full = shard.states.len() >= self.per_shard;
            match shard.states.entry(budget.id_arc().clone()) {
                Entry::Occupied(mut entry) => {
                    let level = match *entry.get() {
                        State::Rate { level, .. } => level,
                        State::InFlight(_) | State::Spend { .. } => Level::default(),
                    };
                    let level = rate.adjust(level, now, delta);
                    if level.scaled == 0 {
                        entry.remove();
                    } else {
                        entry.insert(State::Rate { level, rate });
                    }
                }
                // No state: nothing to refund; a charge needs room (else it is dropped).
                Entry::Vacant(entry) if delta > 0 && !full => {
                    let level = rate.adjust(Level { scaled: 0, at: now }, now, delta);
                    entry.insert(State::Rate { level, rate });
                }
                Entry::Vacant(_) => {}
            }
        }
    }

    /// Charges (`delta > 0`) or refunds (`delta < 0`) USD budgets in the calendar window each
    /// was admitted in (`start`, Unix seconds). A window that has ended and been replaced is
    /// not reopened: its spend is over.
    pub(crate) fn adjust_spend(&self, budgets: &[(Arc<Budget>, u64)], delta: i128) {
        let wall_secs = self.wall().as_secs();
        for (budget, start) in budgets {
            let Some(period) = budget.kind().period() else {
                continue;
            };
            let mut shard = lock(&self.shards[self.shard_of(budget.id())]);
            let full = shard.states.len() >= self.per_shard;
            let apply = |used: u64| -> u64 {
                let moved = i128::from(used) + delta;
                u64::try_from(moved.max(0)).unwrap_or(u64::MAX)
            };
            match shard.states.entry(budget.id_arc().clone()) {
                Entry::Occupied(mut entry) => {
                    if let State::Spend {
                        start: s,
                        end,
                        used,
                    } = *entry.get()
                    {
                        if s == *start {
                            entry.insert(State::Spend {
                                start: s,
                                end,
                                used: apply(used),
                            });
                        }
                    }
                }
                Entry::Vacant(entry) if delta > 0 && !full => {
                    let (s, end) = period.window(*start);
                    if s == *start && wall_secs < end {
                        entry.insert(State::Spend {
                            start: s,
                            end,
                            used: apply(0),
                        });
                    }
                }
                Entry::Vacant(_) => {}
            }
        }
    }

    /// What a USD budget has spent in the window holding `wall`, in micro-dollars.
    pub(crate) fn spent(&self, budget: &Budget, wall: Duration) -> u64 {
        let Some(period) = budget.kind().period() else {
            return 0;
        };
        let (start, _) = period.window(wall.as_secs());
        let shard = lock(&self.shards[self.shard_of(budget.id())]);
        match shard.states.get(budget.id()) {
            Some(State::Spend { start: s, used, .. }) if *s == start => *used,
            _ => 0,
        }
    }

    /// States held now.
    pub(crate) fn tracked(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| lock(s).states.len() as u64)
            .sum()
    }
}

/// One budget checked: what it would become, and its figures either way.
struct Checked {
    /// `Some(retry_after)` when the budget refuses.
    refusal: Option<Duration>,
    after: State,
    figures_now: HeaderFigures,
    figures_after: HeaderFigures,
}

/// How long a refused concurrency budget suggests waiting: in-flight requests give no hint.
pub(crate) const CONCURRENCY_RETRY: Duration = Duration::from_secs(1);

fn check(
    budget: &Budget,
    state: Option<State>,
    now: u64,
    wall: Duration,
    estimated_tokens: u64,
    estimated_micros: u64,
) -> Checked {
    let limit = budget.limit();
    match budget.kind() {
        BudgetKind::Spend(period) => {
            let (start, end) = period.window(wall.as_secs());
            let used = match state {
                Some(State::Spend { start: s, used, .. }) if s == start => used,
                _ => 0,
            };
            let cost = budget.cost(estimated_tokens, estimated_micros);
            let reset = Duration::from_secs(end).saturating_sub(wall);
            let figures = |used: u64| HeaderFigures {
                limit,
                remaining: limit.saturating_sub(used),
                reset,
            };
            let after = used.saturating_add(cost);
            Checked {
                // Money spent in a calendar window comes back when the window ends. A spent
                // budget refuses even a request that reserves nothing (a `paths:` route).
                refusal: (after > limit || used >= limit)
                    .then_some(reset.max(Duration::from_secs(1))),
                after: State::Spend {
                    start,
                    end,
                    used: after,
                },
                figures_now: figures(used),
                figures_after: figures(after),
            }
        }
        BudgetKind::Concurrent => {
            let in_flight = match state {
                Some(State::InFlight(n)) => n,
                _ => 0,
            };
            let figures = |n: u64| HeaderFigures {
                limit,
                remaining: limit.saturating_sub(n),
                reset: Duration::ZERO,
            };
            let allowed = in_flight < limit;
            Checked {
                refusal: (!allowed).then_some(CONCURRENCY_RETRY),
                after: State::InFlight(in_flight + 1),
                figures_now: figures(in_flight),
                figures_after: figures(in_flight + 1),
            }
        }
        BudgetKind::Requests(window) | BudgetKind::Tokens(window) => {
            let rate = Rate::new(limit, window.duration());
            let level = match state {
                Some(State::Rate { level, .. }) => level,
                _ => Level { scaled: 0, at: now },
            };
            let current = rate.drained(level, now);
            let check = rate.check(level, now, budget.cost(estimated_tokens, estimated_micros));
            let figures = |level: Level| HeaderFigures {
                limit,
                remaining: rate.remaining(level),
                reset: rate.reset(level),
            };
            Checked {
                refusal: (!check.allowed).then_some(check.retry_after),
                after: State::Rate {
                    level: check.level,
                    rate,
                },
                figures_now: figures(current),
                figures_after: figures(check.level),
            }
        }
    }
}
