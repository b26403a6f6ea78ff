//! The configuration in force, swapped atomically on reload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::{Config, RouteMatch};
use crate::openai::models::Model;

/// Everything a request needs from the configuration, prepared once per load.
#[derive(Debug)]
pub struct Runtime {
    /// The validated configuration.
    pub config: Config,
    /// The `GET /v1/models` list.
    pub models: Vec<Model>,
    /// Increases by one on every successful (re)load.
    pub version: u64,
}

static VERSION: AtomicU64 = AtomicU64::new(0);

impl Runtime {
    /// Prepares a loaded configuration.
    pub fn new(config: Config) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut models = Vec::new();
        for id in config.model_ids() {
            let owner = config
                .routes
                .iter()
                .find(|r| match &r.matcher {
                    RouteMatch::Models(ps) => ps.iter().any(|p| !p.is_glob() && p.pattern == id),
                    RouteMatch::Paths(_) => false,
                })
                .and_then(|r| r.upstream_names().next())
                .unwrap_or_default()
                .to_owned();
            models.push(Model::new(id, owner, created));
        }
        Runtime {
            config,
            models,
            version: VERSION.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }
}

/// The runtime shared by the proxy, the admin listener and the reloader.
pub type SharedRuntime = Arc<ArcSwap<Runtime>>;

/// Wraps a first configuration.
pub fn shared(config: Config) -> SharedRuntime {
    Arc::new(ArcSwap::from_pointee(Runtime::new(config)))
}
