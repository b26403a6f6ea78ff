//! The rate algorithm: GCRA (generic cell rate algorithm) in its leaky-bucket form, in exact
//! integer arithmetic.
//!
//! A budget of `N` per window `W` drains at `N / W`. Its state is a *level*: how much is in use
//! (in cost units) as of an instant. An admission of cost `c` is allowed when
//! `level_now + c <= N`, where `level_now` is the stored level minus what drained since. So a
//! fresh budget admits exactly `N` at once (no burst beyond the budget), then one more each
//! `W / N`. Over any span of length `d`, at most `N + d·N/W` get through: there is no window
//! boundary at which twice the budget passes at once, as with a fixed-window counter. This is
//! GCRA with emission interval `T = W / N` and tolerance `W - T`.
//!
//! To stay exact when `W / N` is not a whole number of nanoseconds, levels are kept scaled by
//! `W` (in nanoseconds): one cost unit is `W` "scaled units" and the drain is `N` scaled units
//! per nanosecond. Everything fits in `u128` with room to spare and saturates rather than wraps.
//!
//! A cost larger than the whole budget (a token estimate above `tokens_per_minute`) is admitted
//! when the budget is entirely unused, and leaves it in debt; otherwise it could never pass.
//! Debt (`level > N`) is also how a reconciled overrun makes later requests wait.

use std::time::Duration;

/// A budget's rate: `limit` per `window_ns` nanoseconds. Both are at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    limit: u64,
    window_ns: u64,
}

/// A budget's state: the level (scaled by the window) as of `at` (nanoseconds on the
/// limiter's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Level {
    pub(crate) scaled: u128,
    pub(crate) at: u64,
}

/// The outcome of checking one admission against one budget, without changing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fit {
    /// Whether the cost fits.
    pub(crate) allowed: bool,
    /// The level after the admission if allowed, else the current level.
    pub(crate) level: Level,
    /// When refused: how long until the cost would fit.
    pub(crate) retry_after: Duration,
}

impl Rate {
    /// `limit` per `window`. Zero limits and windows are raised to 1 (callers validate them).
    pub(crate) fn new(limit: u64, window: Duration) -> Rate {
        let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Rate {
            limit: limit.max(1),
            window_ns: window_ns.max(1),
        }
    }

    fn capacity(self) -> u128 {
        u128::from(self.limit) * u128::from(self.window_ns)
    }

    fn scaled(self, cost: u64) -> u128 {
        u128::from(cost) * u128::from(self.window_ns)
    }

    /// The level at `now`, after draining since it was stored.
    pub(crate) fn drained(self, level: Level, now: u64) -> Level {
        let elapsed = now.saturating_sub(level.at);
        let drain = u128::from(elapsed).saturating_mul(u128::from(self.limit));
        Level {
            scaled: level.scaled.saturating_sub(drain),
            at: now.max(level.at),
        }
    }

    /// Whether `cost` fits at `now`, and the level it would leave.
    pub(crate) fn check(self, level: Level, now: u64, cost: u64) -> Fit {
        let current = self.drained(level, now);
        // A cost above the whole budget needs the budget entirely unused (see module docs).
        let need = self.scaled(cost.min(self.limit));
        let fill = current.scaled.saturating_add(need);
        if fill <= self.capacity() {
            Fit {
                allowed: true,
                level: Level {
                    scaled: current.scaled.saturating_add(self.scaled(cost)),
                    at: current.at,
                },
                retry_after: Duration::ZERO,
            }
        } else {
            Fit {
                allowed: false,
                level: current,
                retry_after: self.drain_time(fill - self.capacity()),
            }
        }
    }

    /// The level after adding `delta` cost units (positive: charge, possibly into debt;
    /// negative: refund, down to empty) at `now`.
    pub(crate) fn adjust(self, level: Level, now: u64, delta: i128) -> Level {
        let current = self.drained(level, now);
        let amount = u128::from(self.window_ns).saturating_mul(delta.unsigned_abs());
        let scaled = if delta >= 0 {
            current.scaled.saturating_add(amount)
        } else {
            current.scaled.saturating_sub(amount)
        };
        Level {
            scaled,
            at: current.at,
        }
    }

    /// Whole cost units left at this level (0 when in debt).
    pub(crate) fn remaining(self, level: Level) -> u64 {
        let free = self.capacity().saturating_sub(level.scaled) / u128::from(self.window_ns);
        u64::try_from(free).unwrap_or(u64::MAX)
    }

    /// How long until this level has fully drained: the budget is back to its initial state.
    pub(crate) fn reset(self, level: Level) -> Duration {
        self.drain_time(level.scaled)
    }

    /// Whether the level has fully drained by `now` (its state can be forgotten).
    pub(crate) fn is_idle(self, level: Level, now: u64) -> bool {
        self.drained(level, now).scaled == 0
    }

    /// Time to drain `scaled` units, rounded up to the nanosecond.
    fn drain_time(self, scaled: u128) -> Duration {
        let ns = scaled.div_ceil(u128::from(self.limit));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Window;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    /// Admits `n` costs at `now`, returns how many passed.
    fn burst(rate: Rate, level: &mut Level, now: u64, n: u64, cost: u64) -> u64 {
        let mut passed = 0;
        for _ in 0..n {
            let check = rate.check(*level, now, cost);
            if check.allowed {
                *level = check.level;
                passed += 1;
            }
        }
        passed
    }

    #[test]
    fn exactly_the_limit_of_a_burst_passes_in_every_window() {
        for window in Window::ALL {
            for limit in [1, 7, 20, 600, 10_000] {
                let rate = Rate::new(limit, window.duration());
                let mut level = Level::default();
                let t0 = 5 * SEC;
                assert_eq!(
                    burst(rate, &mut level, t0, limit + 13, 1),
                    limit,
                    "{limit}/{window}"
                );
                assert_eq!(rate.remaining(rate.drained(level, t0)), 0);
                // One emission interval later, exactly one more.
                let interval = window.duration().as_nanos() as u64 / limit;
                let later = t0 + interval + 1;
                assert_eq!(
                    burst(rate, &mut level, later, 5, 1),
                    1,
                    "{limit}/{window} refill"
                );
                // A full window after the burst, the whole budget is back.
                let full = later + window.duration().as_nanos() as u64;
                assert_eq!(
                    burst(rate, &mut level, full, limit + 3, 1),
                    limit,
                    "{limit}/{window} full"
                );
            }
        }
    }

    #[test]
    fn refusal_says_when_to_retry_and_it_is_right() {
        let rate = Rate::new(20, Window::Minute.duration());
        let mut level = Level::default();
        assert_eq!(burst(rate, &mut level, 0, 20, 1), 20);
        let check = rate.check(level, 0, 1);
        assert!(!check.allowed);
        assert_eq!(check.retry_after, Duration::from_secs(3));
        let just_before = check.retry_after.as_nanos() as u64 - 1;
        assert!(!rate.check(level, just_before, 1).allowed);
        assert!(rate.check(level, just_before + 1, 1).allowed);
        assert_eq!(rate.reset(level), Duration::from_secs(60));
    }

    #[test]
    fn non_integral_interval_stays_exact() {
        // 7 per minute: 8.571428…s apart.
        let rate = Rate::new(7, Window::Minute.duration());
        let mut level = Level::default();
        assert_eq!(burst(rate, &mut level, 0, 10, 1), 7);
        let check = rate.check(level, 0, 1);
        assert_eq!(check.retry_after, Duration::from_nanos(8_571_428_572));
        // After exactly one window, all 7 are back — no rounding drift.
        assert_eq!(burst(rate, &mut level, 60 * SEC, 10, 1), 7);
    }

    #[test]
    fn tokens_reserve_refund_and_debt() {
        let rate = Rate::new(1_000, Window::Minute.duration());
        let mut level = Level::default();
        // Reserve 600, then 400 fits, then nothing.
        assert_eq!(burst(rate, &mut level, 0, 1, 600), 1);
        assert_eq!(burst(rate, &mut level, 0, 1, 600), 0);
        assert_eq!(burst(rate, &mut level, 0, 1, 400), 1);
        assert_eq!(rate.remaining(level), 0);
        // The 600 really used 100: refund 500.
        level = rate.adjust(level, 0, -500);
        assert_eq!(rate.remaining(level), 500);
        // The 400 really used 1 900: charge 1 500, into debt.
        level = rate.adjust(level, 0, 1_500);
        assert_eq!(rate.remaining(level), 0);
        let check = rate.check(level, 0, 0);
        assert!(
            !check.allowed,
            "a budget in debt refuses even a zero estimate"
        );
        // 2 000 used of 1 000: 1 000 must drain = one minute.
        assert_eq!(check.retry_after, Duration::from_secs(60));
        assert!(rate.check(level, 60 * SEC, 0).allowed);
        assert!(!rate.check(level, 60 * SEC, 1).allowed);
        // A refund never goes below empty.
        let empty = rate.adjust(Level::default(), 0, -5_000);
        assert_eq!(empty.scaled, 0);
    }

    #[test]
    fn a_cost_above_the_budget_needs_it_unused_and_leaves_debt() {
        let rate = Rate::new(100, Window::Second.duration());
        let check = rate.check(Level::default(), 0, 250);
        assert!(check.allowed);
        assert_eq!(rate.remaining(check.level), 0);
        assert_eq!(rate.reset(check.level), Duration::from_millis(2_500));
        let mut used = Level::default();
        assert_eq!(burst(rate, &mut used, 0, 1, 1), 1);
        assert!(!rate.check(used, 0, 250).allowed);
    }

    #[test]
    fn idle_state_is_recognised_once_drained() {
        let rate = Rate::new(10, Window::Second.duration());
        let mut level = Level::default();
        burst(rate, &mut level, 0, 10, 1);
        assert!(!rate.is_idle(level, SEC - 1));
        assert!(rate.is_idle(level, SEC));
    }

    proptest! {
        // Failures are reported, not written into the source tree.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Over any schedule of unit requests, any span of length d admits at most
        /// N + d·N/W: the budget at once, then its rate — never a double burst.
        #[test]
        fn never_more_than_burst_plus_rate(
            limit in 1u64..50,
            gaps in proptest::collection::vec(0u64..400_000_000, 1..300),
        ) {
            let window = SEC;
            let rate = Rate::new(limit, Duration::from_nanos(window));
            let mut level = Level::default();
            let mut now = 0;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += gap;
                let check = rate.check(level, now, 1);
                if check.allowed {
                    level = check.level;
                    admitted.push(now);
                }
            }
            for i in 0..admitted.len() {
                for j in i..admitted.len() {
                    let count = (j - i + 1) as u128;
                    let span = u128::from(admitted[j] - admitted[i]);
                    let bound = u128::from(limit) * u128::from(window) + span * u128::from(limit);
                    prop_assert!(count * u128::from(window) <= bound, "{count} in {span}ns");
                }
            }
        }

        /// A refusal's retry_after is exact: refused just before, allowed at it.
        #[test]
        fn retry_after_is_tight(limit in 1u64..1000, used in 1u64..2000, cost in 0u64..1500) {
            let rate = Rate::new(limit, Window::Hour.duration());
            let level = rate.adjust(Level::default(), 0, i128::from(used));
            let check = rate.check(level, 0, cost);
            if !check.allowed {
                let at = check.retry_after.as_nanos() as u64;
                prop_assert!(at > 0);
                prop_assert!(!rate.check(level, at - 1, cost).allowed);
                prop_assert!(rate.check(level, at, cost).allowed);
            }
        }
    }
}
