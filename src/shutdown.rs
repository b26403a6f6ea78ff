//! Graceful stop: on SIGTERM (or SIGQUIT during an upgrade) Pingora stops accepting; this
//! service then waits for the requests in flight — streams included — and exits as soon as
//! they are done, or when the grace period runs out.
//!
//! Pingora alone sleeps for the whole grace period even when nothing is in flight; exiting
//! as soon as the gateway is idle makes deploys fast without cutting a stream short.
//!
//! "As soon as" is never sooner than [`LATE_REQUEST_GRACE`] after the listeners close: a
//! connection accepted just before may not have sent its request yet (nothing counts it in
//! flight on the admin listener), and exiting under it resets it — during an upgrade, a
//! request lost although the new process was ready.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

/// How long, once the listeners have closed, connections accepted just before may still
/// deliver their request: the drain waits at least this long, and the gateway keeps such
/// connections this long before Pingora drops those still waiting.
pub const LATE_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Counts requests in flight, and client connections being served or awaiting their next
/// request (`gateway::adapter::ClientDeadlines`); each [`InflightGuard`] is one.
#[derive(Debug, Default, Clone)]
pub struct Inflight(Arc<AtomicUsize>);

/// One request in flight, released on drop (whatever path the request ended on).
#[derive(Debug)]
pub struct InflightGuard(Arc<AtomicUsize>);

impl Inflight {
    /// Marks one more request in flight.
    pub fn enter(&self) -> InflightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InflightGuard(self.0.clone())
    }

    /// Requests in flight now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Something to run once before the process exits (flushing trace exporters, …).
pub type ExitHook = Box<dyn Fn() + Send + Sync>;

/// The background service that ends the process once drained.
pub struct Drain {
    inflight: Inflight,
    grace: Duration,
    hooks: Vec<ExitHook>,
}

impl Drain {
    /// Waits for `inflight` at most `grace` after shutdown starts.
    pub fn new(inflight: Inflight, grace: Duration, hooks: Vec<ExitHook>) -> Self {
        Drain {
            inflight,
            grace,
            hooks,
        }
    }
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let now = tokio::time::Instant::now();
        let deadline = now + self.grace;
        let settled = now + LATE_REQUEST_GRACE.min(self.grace);
        log::info!(
            "shutting down: no new connections; waiting up to {}s for {} connection(s) and request(s) in flight",
            self.grace.as_secs(),
            self.inflight.count()
        );
        while (self.inflight.count() > 0 || tokio::time::Instant::now() < settled)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.inflight.count();
        if left > 0 {
            log::warn!("grace period over: {left} request(s) still in flight are cut off");
        } else {
            log::info!("all requests finished; exiting");
        }
        for hook in &self.hooks {
            hook();
        }
        std::process::exit(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_release_on_drop() {
        let inflight = Inflight::default();
        let a = inflight.enter();
        let b = inflight.enter();
        assert_eq!(inflight.count(), 2);
        drop(a);
        assert_eq!(inflight.count(), 1);
        drop(b);
        assert_eq!(inflight.count(), 0);
    }
}
