//! The Redis backend: budget states shared by every gateway instance using the same server.
//!
//! * **One atomic round trip per check.** An admission is one Lua script (`lua/admit.lua`,
//!   sent by `EVALSHA`, by `EVAL` if the server lost it) that checks every budget of the
//!   request and commits all or none. Scripts read the server's `TIME`, never the gateway's
//!   clock, so instances agree. Settling a request (its tokens and its lease) is one more
//!   (`lua/settle.lua`).
//! * **Concurrency leases.** `concurrent` budgets are sorted sets of leases scored by expiry.
//!   A lease ends with [`Ticket::reconcile`](super::Ticket::reconcile), or from a spawned task
//!   when its ticket drops without it. While held it is renewed every third of
//!   [`RedisOptions::lease_ttl`] by a background task, so the leases of an instance that dies
//!   expire within `lease_ttl`.
//! * **Bounded waits.** Every call is cut at [`RedisOptions::timeout`]. Connections are made
//!   and remade in the background by redis-rs's `ConnectionManager`; while the server is
//!   failing, only one request per [`RedisOptions::probe_interval`] tries it, the others are
//!   decided at once by [`RedisOptions::on_backend_error`]. Should the manager stay broken
//!   (say, a failed handshake it does not retry), it is replaced after a while.
//! * **Bounded memory.** Keys expire on their own once their budget has drained.
//!
//! A check cut short by the timeout may still have been carried out by Redis: the request is
//! then decided by the policy, yet counted (a lease taken that way expires within
//! `lease_ttl`).
//!
//! Keys are `<key_prefix><budget id>`. Needs Redis 5 or newer. All keys of an admission must
//! live on one server: Redis Cluster is not supported.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, Cmd, ErrorKind, FromRedisValue, IntoConnectionInfo, Script, ServerErrorKind,
    TlsCertificates,
};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::limiter::{Decision, Settlement};
use super::rate_limit_headers::HeaderFigures;
use super::{Budget, BudgetKind, LimitError, OnBackendError};

static ADMIT: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("lua/admit.lua")));
static SETTLE: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("lua/settle.lua")));
static RENEW: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("lua/renew.lua")));

/// A Lua script, run by `EVALSHA`; when the server does not have it (restarted, flushed),
/// by `EVAL`, which also caches it again. Never more than two round trips, and immune to a
/// flush between loading and running (unlike `SCRIPT LOAD` then `EVALSHA`).
struct Lua {
    body: &'static str,
    sha1: String,
}

impl Lua {
    fn new(body: &'static str) -> Lua {
        Lua {
            body,
            sha1: Script::new(body).get_hash().to_owned(),
        }
    }

    fn call(&'static self) -> Call {
        Call {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// One script call, being built.
struct Call {
    script: &'static Lua,
    keys: Vec<String>,
    args: Vec<String>,
}

impl Call {
    fn key(&mut self, key: String) -> &mut Self {
        self.keys.push(key);
        self
    }

    fn arg(&mut self, arg: impl ToString) -> &mut Self {
        self.args.push(arg.to_string());
        self
    }

    fn command(&self, by_body: bool) -> Cmd {
        let mut cmd = if by_body {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(self.script.body);
            cmd
        } else {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&self.script.sha1);
            cmd
        };
        cmd.arg(self.keys.len()).arg(&self.keys).arg(&self.args);
        cmd
    }
}

/// What a PEM certificate starts with.
const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// After this long failing, the connection manager is replaced by a fresh one.
const REBUILD_AFTER: Duration = Duration::from_secs(10);

/// Settings of the Redis backend.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// The longest a request waits on Redis before [`Self::on_backend_error`] decides.
    /// Default 50 ms.
    pub timeout: Duration,
    /// What to do with a request when Redis cannot decide in time. Default: allow.
    pub on_backend_error: OnBackendError,
    /// Prefix of every key the limiter writes. Default `veilgate:rl:`.
    pub key_prefix: String,
    /// How long a concurrency lease outlives an instance that stopped renewing it.
    /// Default 30 s.
    pub lease_ttl: Duration,
    /// While Redis is failing, at most one request per interval tries it. Default 250 ms.
    pub probe_interval: Duration,
    /// Limit on one background connection attempt. Default 1 s.
    pub connect_timeout: Duration,
    /// A root certificate (PEM) to trust for `rediss://` instead of the system's roots, for a
    /// server with a private CA.
    pub tls_root_certificate: Option<Vec<u8>>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            timeout: Duration::from_millis(50),
            on_backend_error: OnBackendError::Allow,
            key_prefix: "veilgate:rl:".into(),
            lease_ttl: Duration::from_secs(30),
            probe_interval: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            tls_root_certificate: None,
        }
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("timeout", &self.timeout)
            .field("on_backend_error", &self.on_backend_error)
            .field("key_prefix", &self.key_prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("probe_interval", &self.probe_interval)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_root_certificate", &self.tls_root_certificate.is_some())
            .finish()
    }
}

/// Why a Redis operation failed.
#[derive(Debug)]
pub(crate) enum RedisFailure {
    Redis(redis::RedisError),
    Timeout(Duration),
    Reply(&'static str),
}

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisFailure::Redis(e) => write!(f, "{e}"),
            RedisFailure::Timeout(d) => write!(f, "no answer within {d:?}"),
            RedisFailure::Reply(what) => write!(f, "unexpected reply: {what}"),
        }
    }
}

impl From<redis::RedisError> for RedisFailure {
    fn from(e: redis::RedisError) -> Self {
        RedisFailure::Redis(e)
    }
}

/// A concurrency lease held by this instance.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    keys: Vec<String>,
    member: String,
}

/// Leases held, and the task that renews them.
#[derive(Default)]
struct Leases {
    held: HashMap<u64, Lease>,
    renewer: Option<JoinHandle<()>>,
}

/// The connection, made on first use in the runtime that serves requests.
struct Connection {
    manager: ConnectionManager,
    made: Instant,
}

pub(crate) struct RedisStore {
    client: Client,
    options: RedisOptions,
    connection: RwLock<Option<Connection>>,
    instance: String,
    next_lease: AtomicU64,
    leases: Mutex<Leases>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client is left out: its connection info holds the password.
        f.debug_struct("RedisStore")
            .field("options", &self.options)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    pub(crate) fn new(url: &str, options: RedisOptions) -> Result<Self, LimitError> {
        let info = url
            .into_connection_info()
            .map_err(|e| LimitError::RedisUrl {
                reason: e.to_string(),
            })?;
        let client = match &options.tls_root_certificate {
            None => Client::open(info).map_err(|e| LimitError::RedisUrl {
                reason: e.to_string(),
            })?,
            Some(pem) => {
                let tls_error = |reason: String| LimitError::RedisTls { reason };
                if !pem
                    .windows(CERTIFICATE_PEM.len())
                    .any(|w| w == CERTIFICATE_PEM)
                {
                    return Err(tls_error("no PEM certificate in it".into()));
                }
                let certificates = TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                };
                Client::build_with_tls(info, certificates).map_err(|e| tls_error(e.to_string()))?
            }
        };
        Ok(RedisStore {
            client,
            options,
            connection: RwLock::new(None),
            instance: instance_id(),
            next_lease: AtomicU64::new(0),
            leases: Mutex::default(),
        })
    }

    pub(crate) fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// The connection manager, made now if there is none.
    ///
    /// # Errors
    ///
    /// Only if redis-rs refuses the configuration.
    fn manager(&self) -> Result<ConnectionManager, RedisFailure> {
        if let Some(conn) = self
            .connection
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Ok(conn.manager.clone());
        }
        let mut slot = self
            .connection
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.options.connect_timeout))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(6);
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        // Connect in the background now, so that no request has to wait for it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut warm = manager.clone();
            runtime.spawn(async move {
                let _: Result<String, _> = redis::cmd("PING").query_async(&mut warm).await;
            });
        }
        *slot = Some(Connection {
            manager: manager.clone(),
            made: Instant::now(),
        });
        Ok(manager)
    }

    /// Drops a connection manager that has been failing for long, so the next use makes a
    /// fresh one.
    pub(crate) fn rebuild_if_stuck(&self, failing_for: Duration) {
        if failing_for < REBUILD_AFTER {
            return;
        }
        let mut slot = self
            .connection
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|c| c.made.elapsed() >= REBUILD_AFTER)
        {
            log::info!("rate limiting: redis backend still failing; reconnecting from scratch");
            *slot = None;
        }
    }

    fn key(&self, budget: &Budget) -> String {
        let mut key = String::with_capacity(self.options.key_prefix.len() + budget.id().len());
        key.push_str(&self.options.key_prefix);
        key.push_str(budget.id());
        key
    }

    /// A USD budget's counter for the calendar window starting at `start` (Unix seconds):
    /// `veilgate:key:app:usd_per_day:1796428800`.
    fn spend_key(&self, budget: &Budget, start: u64) -> String {
        format!("{}:{start}", self.key(budget))
    }

    /// The key of `budget`'s state at wall time `wall`.
    fn budget_key(&self, budget: &Budget, wall: Duration) -> String {
        match budget.kind().period() {
            Some(p) => self.spend_key(budget, p.window(wall.as_secs()).0),
            None => self.key(budget),
        }
    }

    /// What each USD budget has spent in the window holding `wall` (0 for other budgets).
    pub(crate) async fn spent(
        &self,
        budgets: &[Arc<Budget>],
        wall: Duration,
    ) -> Result<Vec<u64>, RedisFailure> {
        let keys: Vec<(usize, String)> = budgets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind().period().is_some())
            .map(|(i, b)| (i, self.budget_key(b, wall)))
            .collect();
        let mut spent = vec![0; budgets.len()];
        if keys.is_empty() {
            return Ok(spent);
        }
        let mut manager = self.manager()?;
        let mut cmd = redis::cmd("MGET");
        for (_, key) in &keys {
            cmd.arg(key);
        }
        let reply = tokio::time::timeout(
            self.options.timeout,
            cmd.query_async::<Vec<Option<u64>>>(&mut manager),
        )
        .await
        .map_err(|_| RedisFailure::Timeout(self.options.timeout))??;
        for ((i, _), value) in keys.iter().zip(reply) {
            spent[*i] = value.unwrap_or(0);
        }
        Ok(spent)
    }

    /// Runs a script call, waiting at most `limit`.
    async fn run<T: FromRedisValue>(
        &self,
        call: &Call,
        limit: Duration,
    ) -> Result<T, RedisFailure> {
        let mut manager = self.manager()?;
        let attempt = async {
            match call.command(false).query_async(&mut manager).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    call.command(true).query_async(&mut manager).await
                }
                reply => reply,
            }
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(reply) => Ok(reply?),
            Err(_) => Err(RedisFailure::Timeout(limit)),
        }
    }

    /// Checks every budget and commits all or none, in one script call. Returns the decision
    /// and, when admitted with concurrency budgets, the number of the lease taken.
    pub(crate) async fn admit(
        &self,
        budgets: &[Arc<Budget>],
        estimated_tokens: u64,
        estimated_micros: u64,
        wall: Duration,
    ) -> Result<(Decision, Option<u64>), RedisFailure> {
        let lease_keys: Vec<String> = budgets
            .iter()
            .filter(|b| b.kind() == BudgetKind::Concurrent)
            .map(|b| self.key(b))
            .collect();
        let lease =
            (!lease_keys.is_empty()).then(|| self.next_lease.fetch_add(1, Ordering::Relaxed));
        let member = lease
            .map(|n| format!("{}:{n}", self.instance))
            .unwrap_or_default();

        let mut call = ADMIT.call();
        for budget in budgets {
            call.key(self.budget_key(budget, wall));
        }
        call.arg(&member).arg(micros(self.options.lease_ttl));
        for budget in budgets {
            let (kind, window) = match (budget.kind().window(), budget.kind().period()) {
                (Some(w), _) => ("r", micros(w.duration())),
                (None, Some(p)) => {
                    let (_, end) = p.window(wall.as_secs());
                    ("s", micros(Duration::from_secs(end).saturating_sub(wall)))
                }
                (None, None) => ("c", 0),
            };
            call.arg(kind)
                .arg(budget.limit())
                .arg(window)
                .arg(budget.cost(estimated_tokens, estimated_micros));
        }
        let reply: Vec<i64> = self.run(&call, self.options.timeout).await?;

        let decision = parse_admit_reply(budgets, &reply)?;
        let lease = match lease {
            Some(n) if decision.refused.is_none() => {
                self.hold(
                    n,
                    Lease {
                        keys: lease_keys,
                        member,
                    },
                );
                Some(n)
            }
            _ => None,
        };
        Ok((decision, lease))
    }

    /// Settles a request: charges (`delta > 0`) or refunds (`delta < 0`) its token and USD
    /// budgets and ends its lease, in one script call.
    pub(crate) async fn settle(
        &self,
        settlement: &Settlement<'_>,
        lease: Option<&Lease>,
    ) -> Result<(), RedisFailure> {
        let mut call = SETTLE.call();
        let windows: Vec<(&Arc<Budget>, Duration)> = settlement
            .tokens
            .iter()
            .filter_map(|b| Some((b, b.kind().window()?.duration())))
            .collect();
        let spend: Vec<String> = if settlement.spend_delta == 0 {
            Vec::new()
        } else {
            settlement
                .spend
                .iter()
                .map(|(b, start)| self.spend_key(b, *start))
                .collect()
        };
        call.arg(settlement.delta)
            .arg(windows.len())
            .arg(lease.map_or("", |l| l.member.as_str()))
            .arg(settlement.spend_delta)
            .arg(spend.len());
        for (budget, window) in &windows {
            call.key(self.key(budget))
                .arg(budget.limit())
                .arg(micros(*window));
        }
        for key in spend {
            call.key(key);
        }
        for key in lease.iter().flat_map(|l| &l.keys) {
            call.key(key.clone());
        }
        let _: i64 = self.run(&call, self.options.timeout).await?;
        Ok(())
    }

    /// Forgets lease `n` locally (it is no longer renewed); returns it so the caller can end
    /// it in Redis.
    pub(crate) fn forget(&self, n: u64) -> Option<Lease> {
        self.lock_leases().held.remove(&n)
    }

    /// Pushes back the expiry of every lease held. Returns how many there were.
    pub(crate) async fn renew(&self) -> Result<usize, RedisFailure> {
        let held: Vec<Lease> = self.lock_leases().held.values().cloned().collect();
        if held.is_empty() {
            return Ok(0);
        }
        let mut call = RENEW.call();
        call.arg(micros(self.options.lease_ttl));
        for lease in &held {
            for key in &lease.keys {
                call.key(key.clone()).arg(&lease.member);
            }
        }
        // Off the request path: allow more than a request's bound, well within the lease.
        let limit = (self.options.lease_ttl / 6).max(self.options.timeout);
        let _: i64 = self.run(&call, limit).await?;
        Ok(held.len())
    }

    /// Whether the renewal task must be (re)started: it is started by the first lease taken,
    /// on the runtime serving requests, and again should that runtime have ended.
    pub(crate) fn needs_renewer(&self) -> bool {
        self.lock_leases()
            .renewer
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    pub(crate) fn set_renewer(&self, task: JoinHandle<()>) {
        if let Some(old) = self.lock_leases().renewer.replace(task) {
            old.abort();
        }
    }

    /// How often held leases are renewed.
    pub(crate) fn renew_every(&self) -> Duration {
        (self.options.lease_ttl / 3).max(Duration::from_millis(10))
    }

    /// Answers PING within the request bound.
    pub(crate) async fn ping(&self) -> Result<(), RedisFailure> {
        let mut manager = self.manager()?;
        let ping = redis::cmd("PING");
        match tokio::time::timeout(
            self.options.timeout,
            ping.query_async::<String>(&mut manager),
        )
        .await
        {
            Ok(reply) => reply.map(drop).map_err(RedisFailure::from),
            Err(_) => Err(RedisFailure::Timeout(self.options.timeout)),
        }
    }

    fn hold(&self, n: u64, lease: Lease) {
        self.lock_leases().held.insert(n, lease);
    }

    fn lock_leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Some(task) = self.lock_leases().renewer.take() {
            task.abort();
        }
    }
}

/// `{admitted, refused (1-based), retry µs, remaining_1, reset_1 µs, …}` into a [`Decision`].
fn parse_admit_reply(budgets: &[Arc<Budget>], reply: &[i64]) -> Result<Decision, RedisFailure> {
    let [admitted, refused, retry, figures @ ..] = reply else {
        return Err(RedisFailure::Reply("admission reply too short"));
    };
    if figures.len() != 2 * budgets.len() {
        return Err(RedisFailure::Reply(
            "admission reply does not match the budgets",
        ));
    }
    let refused = match (*admitted, usize::try_from(*refused)) {
        (1, Ok(0)) => None,
        (0, Ok(i)) if (1..=budgets.len()).contains(&i) => Some((i - 1, from_micros(*retry))),
        _ => return Err(RedisFailure::Reply("admission verdict out of range")),
    };
    let figures = budgets
        .iter()
        .zip(figures.chunks_exact(2))
        .map(|(budget, pair)| HeaderFigures {
            limit: budget.limit(),
            remaining: u64::try_from(pair[0]).unwrap_or(0),
            reset: from_micros(pair[1]),
        })
        .collect();
    Ok(Decision { refused, figures })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn from_micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// A name for this limiter's leases, unique across instances and restarts.
fn instance_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(since_epoch.as_nanos().to_le_bytes());
    h.update(SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let local = 0u8;
    h.update((std::ptr::addr_of!(local) as usize).to_le_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Window;

    #[test]
    fn replies_are_checked_before_use() {
        let b =
            Arc::new(Budget::new("key", "k", BudgetKind::Requests(Window::Minute), 20).unwrap());
        let budgets = [b.clone(), b];
        let ok = parse_admit_reply(&budgets, &[0, 2, 3_000_000, 5, 10, 0, 60_000_000]).unwrap();
        assert_eq!(ok.refused, Some((1, Duration::from_secs(3))));
        assert_eq!(ok.figures[1].reset, Duration::from_secs(60));
        assert!(parse_admit_reply(&budgets, &[1, 0, 0, 5, 10]).is_err());
        assert!(parse_admit_reply(&budgets, &[0, 3, 0, 5, 10, 0, 0]).is_err());
        assert!(parse_admit_reply(&budgets, &[1, 0]).is_err());
    }

    #[test]
    fn options_debug_and_url_errors_hide_passwords() {
        let err = RedisStore::new("http://user:hunter2@host", RedisOptions::default()).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let store =
            RedisStore::new("redis://:hunter2@127.0.0.1:1/0", RedisOptions::default()).unwrap();
        assert!(!format!("{store:?}").contains("hunter2"));
        assert_ne!(instance_id(), instance_id());
    }

    #[test]
    fn an_unusable_tls_root_is_refused_up_front() {
        for pem in [
            &b"not a certificate"[..],
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let options = RedisOptions {
                tls_root_certificate: Some(pem.to_vec()),
                ..RedisOptions::default()
            };
            let err = RedisStore::new("rediss://127.0.0.1:1", options).unwrap_err();
            assert!(matches!(err, LimitError::RedisTls { .. }), "{err}");
        }
    }
}
