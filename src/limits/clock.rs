//! Time for the memory backend, injectable so the algorithm is tested without sleeping.
//!
//! Rate budgets use the monotonic [`Clock::now`]; USD budgets, which count in calendar windows
//! (UTC), use [`Clock::wall`]. The Redis backend reads the Redis server's `TIME` for rate
//! budgets, so every gateway instance sharing the server agrees on time; the calendar window
//! of a USD budget is named by the gateway's wall clock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A monotonic clock: time since an arbitrary origin, never going backwards; and the wall
/// clock, for calendar windows.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Time elapsed since the clock's origin.
    fn now(&self) -> Duration;

    /// Time since the Unix epoch (UTC).
    fn wall(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// The real clock: [`Instant`] since the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to: for tests. Its wall clock is its origin's Unix time
/// (0 unless [`ManualClock::at_unix`]) plus the time it was moved by.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
    epoch_secs: u64,
}

impl ManualClock {
    /// A clock at its origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock whose origin is Unix time `secs` on the wall clock.
    pub fn at_unix(secs: u64) -> Self {
        ManualClock {
            nanos: AtomicU64::new(0),
            epoch_secs: secs,
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: the value is the only shared state; saturating keeps it monotonic.
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    fn wall(&self) -> Duration {
        Duration::from_secs(self.epoch_secs) + self.now()
    }
}
