//! Configuration reload without a restart: on SIGHUP, and when the file changes on disk.
//!
//! A new configuration is validated first; only a valid one is swapped in, atomically, so
//! requests already running finish on the configuration they started with. An invalid one is
//! logged with every problem (file:line:col) and the old configuration stays in force.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::config;
use crate::runtime::{Runtime, SharedRuntime};
use crate::telemetry::{ReloadResult, Telemetry};

/// How often the file is checked for changes.
const POLL: Duration = Duration::from_secs(1);

/// Watches the configuration file and SIGHUP; swaps the runtime on a valid change.
pub struct Reloader {
    path: PathBuf,
    runtime: SharedRuntime,
    telemetry: Arc<Telemetry>,
}

/// What identifies a version of the file on disk.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

impl Reloader {
    /// A reloader for the file at `path`, swapping `runtime`.
    pub fn new(path: PathBuf, runtime: SharedRuntime, telemetry: Arc<Telemetry>) -> Self {
        Reloader {
            path,
            runtime,
            telemetry,
        }
    }

    /// Loads and validates the file; swaps it in when valid. Returns whether it was swapped.
    ///
    /// Everything a request reads from the configuration changes at once; the trace exporters
    /// are rebuilt. What only a restart can change — the listening addresses, the rate-limit
    /// backend, the shutdown grace period — stays as it was: the reload is then logged and
    /// counted as `partial`, naming those settings, never as a success.
    pub fn reload(&self, why: &str) -> bool {
        // Built before anything changes: a configuration that does not build changes nothing.
        let built = config::load_file(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|cfg| Runtime::build(cfg).map_err(|e| format!("it does not build: {e}")));
        match built {
            Ok(next) => {
                let cfg = &next.config;
                let old = self.runtime.load_full();
                let mut kept = Vec::new();
                if cfg.listen != old.config.listen {
                    kept.push("listen");
                }
                if cfg.admin != old.config.admin {
                    kept.push("admin");
                }
                if cfg.rate_limit != old.config.rate_limit {
                    kept.push("rate_limit");
                }
                if cfg.shutdown_grace != old.config.shutdown_grace {
                    kept.push("shutdown_grace");
                }
                if cfg.traces != old.config.traces {
                    if let Err(e) = self.telemetry.reconfigure_traces(&cfg.traces) {
                        log::error!(
                            "config reload ({why}): the new trace exporters could not start ({e}); the old ones stay"
                        );
                        kept.push("telemetry.traces");
                    }
                }
                let version = next.version;
                self.runtime.store(Arc::new(next));
                if kept.is_empty() {
                    self.telemetry
                        .metrics()
                        .config_reloaded(ReloadResult::Success);
                    log::info!(
                        "config reloaded ({why}) from {}: now version {version}",
                        self.path.display()
                    );
                } else {
                    self.telemetry
                        .metrics()
                        .config_reloaded(ReloadResult::Partial);
                    log::warn!(
                        "config reloaded in part ({why}) from {}: now version {version}, but {} changed and {} only after a restart; the old {} stay in force until then",
                        self.path.display(),
                        kept.join(", "),
                        if kept.len() == 1 { "takes effect" } else { "take effect" },
                        if kept.len() == 1 { "value" } else { "values" },
                    );
                }
                true
            }
            Err(e) => {
                self.telemetry
                    .metrics()
                    .config_reloaded(ReloadResult::Failure);
                log::error!(
                    "config reload ({why}) refused, keeping version {}:\n{e}",
                    self.runtime.load().version
                );
                false
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot listen for SIGHUP ({e}); reload on file change only");
                None
            }
        };
        let mut last = stamp(&self.path);
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    last = stamp(&self.path);
                    self.reload("SIGHUP");
                }
                _ = tick.tick() => {
                    let now = stamp(&self.path);
                    if now.is_some() && now != last {
                        last = now;
                        self.reload("file changed");
                    }
                }
            }
        }
    }
}
