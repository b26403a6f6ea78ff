//! What each key and route has used, in the current hour, day and month (UTC) and since the
//! process started: requests, tokens by kind, dollars. `GET /usage` on the admin listener
//! reports it beside the USD budgets.
//!
//! The ledger is this process's: with several gateway instances, each reports its own
//! traffic, while the USD budgets' figures (kept by the limiter, in Redis when shared) are
//! those of all instances. A request counts in the windows holding its start, as it does in
//! its budgets. Memory is bounded by the configured names: at most one account per key and
//! per route ever configured (names removed by a reload stay until restart).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::limits::Period;
use crate::wire::usage::Usage;

/// Requests, tokens and dollars counted over some span of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Requests answered (any status).
    pub requests: u64,
    /// Tokens, by kind.
    pub tokens: TokenTally,
    /// Dollars, at the price table's prices.
    pub cost_usd: f64,
    /// Requests with usage but no price: their cost is not in `cost_usd`.
    pub unpriced_requests: u64,
}

/// Tokens by kind; the details are parts of `prompt` and `completion`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenTally {
    /// Input tokens.
    pub prompt: u64,
    /// Output tokens.
    pub completion: u64,
    /// Of `prompt`: read from a prompt cache.
    pub cache_read: u64,
    /// Of `prompt`: written to a prompt cache.
    pub cache_write: u64,
    /// Of `completion`: reasoning.
    pub reasoning: u64,
}

impl Tally {
    fn add(&mut self, tokens: Option<&Usage>, cost: Option<f64>) {
        self.requests += 1;
        if let Some(t) = tokens {
            self.tokens.prompt += t.prompt;
            self.tokens.completion += t.completion;
            self.tokens.cache_read += t.cache_read;
            self.tokens.cache_write += t.cache_write;
            self.tokens.reasoning += t.reasoning;
            match cost {
                Some(c) if c.is_finite() && c >= 0.0 => self.cost_usd += c,
                _ => self.unpriced_requests += 1,
            }
        }
    }
}

/// One key's or route's account.
#[derive(Debug, Clone, Default)]
struct Account {
    /// Since the process started.
    total: Tally,
    /// Per period (hour, day, month): the window's start (Unix seconds) and its tally.
    windows: [(u64, Tally); 3],
}

/// An account as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    /// The key's or route's configured name.
    pub name: String,
    /// The current hour, day and month: `(period, window start in Unix seconds, tally)`.
    pub windows: Vec<(Period, u64, Tally)>,
    /// Since the process started.
    pub since_start: Tally,
}

/// Per key and per route accounts. Cheap to share behind an `Arc`; one short lock per
/// finished request.
#[derive(Debug)]
pub struct Ledger {
    accounts: Mutex<Accounts>,
    started: SystemTime,
}

/// The accounts by key name and by route name (looked up by `&str`: no allocation per
/// request once an account exists).
#[derive(Debug, Default)]
struct Accounts {
    keys: HashMap<String, Account>,
    routes: HashMap<String, Account>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Ledger {
    /// An empty ledger, started now.
    pub fn new() -> Self {
        Ledger {
            accounts: Mutex::new(Accounts::default()),
            started: SystemTime::now(),
        }
    }

    /// When the ledger started counting.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Counts a finished request for its key (if it had one) and its route (if one matched),
    /// in the windows holding `started_at`.
    pub fn record(
        &self,
        key: Option<&str>,
        route: &str,
        started_at: SystemTime,
        tokens: Option<&Usage>,
        cost: Option<f64>,
    ) {
        let at = unix(started_at);
        let starts = Period::ALL.map(|period| period.window(at).0);
        let mut guard = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let accounts = &mut *guard;
        let owners = [
            (&mut accounts.keys, key.unwrap_or("")),
            (&mut accounts.routes, route),
        ];
        for (map, name) in owners {
            if name.is_empty() {
                continue;
            }
            if !map.contains_key(name) {
                map.insert(name.to_owned(), Account::default());
            }
            let Some(account) = map.get_mut(name) else {
                continue;
            };
            account.total.add(tokens, cost);
            for (slot, &start) in account.windows.iter_mut().zip(&starts) {
                if slot.0 < start {
                    *slot = (start, Tally::default());
                }
                if slot.0 == start {
                    slot.1.add(tokens, cost);
                }
            }
        }
    }

    /// The keys' and the routes' accounts as of `now` (a window that has ended reads as
    /// empty), each list sorted by name.
    pub fn snapshot(&self, now: SystemTime) -> (Vec<LedgerEntry>, Vec<LedgerEntry>) {
        let now = unix(now);
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys = Vec::new();
        let mut routes = Vec::new();
        let owned = accounts
            .keys
            .iter()
            .map(|a| (true, a))
            .chain(accounts.routes.iter().map(|a| (false, a)));
        for (is_key, (name, account)) in owned {
            let windows = Period::ALL
                .into_iter()
                .zip(&account.windows)
                .map(|(period, (start, tally))| {
                    let (current, _) = period.window(now);
                    if *start == current {
                        (period, current, *tally)
                    } else {
                        (period, current, Tally::default())
                    }
                })
                .collect();
            let entry = LedgerEntry {
                name: name.clone(),
                windows,
                since_start: account.total,
            };
            if is_key {
                keys.push(entry);
            } else {
                routes.push(entry);
            }
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        (keys, routes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn requests_count_per_key_and_route_in_their_windows() {
        let ledger = Ledger::new();
        // 2026-12-05T09:17:17Z and the same day, an hour later.
        let t = 1_796_462_237;
        let tokens = Usage {
            cache_read: 100,
            ..Usage::new(1_000, 200)
        };
        ledger.record(Some("app"), "chat", at(t), Some(&tokens), Some(0.5));
        ledger.record(Some("app"), "chat", at(t + 3_600), Some(&tokens), None);
        ledger.record(None, "chat", at(t + 3_600), None, None);

        let (keys, routes) = ledger.snapshot(at(t + 3_601));
        assert_eq!(keys.len(), 1);
        let app = &keys[0];
        assert_eq!(app.name, "app");
        assert_eq!(app.since_start.requests, 2);
        assert_eq!(app.since_start.tokens.cache_read, 200);
        assert_eq!(app.since_start.cost_usd, 0.5);
        assert_eq!(app.since_start.unpriced_requests, 1);
        let hour = app.windows[0].2;
        assert_eq!(
            (app.windows[0].0, hour.requests, hour.cost_usd),
            (Period::Hour, 1, 0.0)
        );
        let day = app.windows[1].2;
        assert_eq!((day.requests, day.cost_usd), (2, 0.5));

        assert_eq!(routes[0].name, "chat");
        assert_eq!(routes[0].since_start.requests, 3);

        // The next day, the day's and the hour's windows read as empty.
        let (keys, _) = ledger.snapshot(at(t + 86_400));
        assert_eq!(keys[0].windows[1].2, Tally::default());
        assert_eq!(keys[0].windows[2].2.requests, 2, "same month");
    }
}
