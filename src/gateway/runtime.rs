//! The configuration in force, swapped atomically on reload, with what is derived from it
//! once per load: the model list, the key store, the budgets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::{Config, Route, RouteMatch, VirtualKey};
use crate::limits::{Budget, KeyStore};
use crate::openai::models::Model;

/// A virtual key with its budgets.
#[derive(Debug)]
pub struct KeyEntry {
    /// The key as configured (its secret is only a digest).
    pub key: VirtualKey,
    /// Its budgets, stable ids `key:<name>:<budget>` so state survives reloads.
    pub budgets: Vec<Arc<Budget>>,
}

/// Everything a request needs from the configuration, prepared once per load.
pub struct Runtime {
    /// The validated configuration.
    pub config: Config,
    /// The `GET /v1/models` list of the models named exactly (glob-routed ones are discovered,
    /// see `discovery`).
    pub models: Vec<Model>,
    /// Unix time of this load: every model's `created`.
    pub created: u64,
    /// Increases by one on every successful (re)load.
    pub version: u64,
    /// Virtual keys by digest; empty when the gateway runs open.
    pub keys: KeyStore<Arc<KeyEntry>>,
    /// Route-wide budgets by route name (empty for routes without `limits:`).
    pub route_budgets: HashMap<String, Vec<Arc<Budget>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("version", &self.version)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

static VERSION: AtomicU64 = AtomicU64::new(0);

/// `owned_by` when the route's upstream does not set one.
const DEFAULT_OWNER: &str = "veilgate";

fn owner_of(config: &Config, route: &Route) -> String {
    route
        .upstream_names()
        .next()
        .and_then(|name| config.upstream(name))
        .and_then(|u| u.owned_by.clone())
        .unwrap_or_else(|| DEFAULT_OWNER.to_owned())
}

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
                .map_or_else(|| DEFAULT_OWNER.to_owned(), |r| owner_of(&config, r));
            models.push(Model::new(id, owner, created));
        }
        let mut keys = KeyStore::new();
        for key in &config.keys {
            // Validation already built these budgets once, so they cannot fail here.
            let budgets = key.limits.budgets("key", &key.name).unwrap_or_default();
            let entry = Arc::new(KeyEntry {
                key: key.clone(),
                budgets,
            });
            if let Err(e) = keys.insert(&key.name, key.secret.clone(), entry) {
                log::error!("key {}: {e}", key.name);
            }
        }
        let route_budgets = config
            .routes
            .iter()
            .map(|r| {
                // Open gateway: request, token and concurrency limits apply per client IP
                // (see `Gateway::admit`); a USD budget is the route's whatever the client, as
                // a spend cap that grew with the number of client addresses would cap nothing.
                let spec = if config.keys.is_empty() {
                    r.limits.spend_only()
                } else {
                    r.limits
                };
                let budgets = spec.budgets("route", &r.name).unwrap_or_default();
                (r.name.clone(), budgets)
            })
            .collect();
        Runtime {
            config,
            models,
            created,
            version: VERSION.fetch_add(1, Ordering::Relaxed) + 1,
            keys,
            route_budgets,
        }
    }

    /// The `owned_by` of the models `route` serves: its first upstream's `owned_by:`, or
    /// `veilgate` (internal upstream names are not shown to clients).
    pub fn owner_of(&self, route: &Route) -> String {
        owner_of(&self.config, route)
    }

    /// `GET /v1/models/{id}`: a model any route serves by its name or by a glob (the key's
    /// allow-list is the caller's to apply).
    pub fn model(&self, id: &str) -> Option<Model> {
        if let Some(m) = self.models.iter().find(|m| m.id == id) {
            return Some(m.clone());
        }
        // A name with glob characters is a pattern, not a model (`gpt-4.1*` matches itself).
        if id.contains(['*', '?', '[', ']', '{', '}']) {
            return None;
        }
        let (route, _) = self.config.route_for_model(id)?;
        Some(Model::new(id, self.owner_of(route), self.created))
    }

    /// Whether every request must carry a virtual key.
    pub fn requires_keys(&self) -> bool {
        !self.config.keys.is_empty()
    }
}

/// The runtime shared by the proxy, the admin listener and the reloader.
pub type SharedRuntime = Arc<ArcSwap<Runtime>>;

/// Wraps a first configuration.
pub fn shared(config: Config) -> SharedRuntime {
    Arc::new(ArcSwap::from_pointee(Runtime::new(config)))
}
