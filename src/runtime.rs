//! The configuration in force, swapped atomically on reload, with the runtime objects
//! [`Runtime::build`] makes of it once per load: the compiled redaction policies, the model
//! list, the key store, the budgets. `Config` is validated data; everything a request runs
//! is here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::{Config, Route, RouteMatch, VirtualKey};
use crate::limits::{Budget, KeyStore, LimitError};
use crate::redact::{Direction, PolicyError, Redactor};
use crate::wire::models::Model;

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
    /// The default redaction policy, compiled.
    pub redaction: Arc<Redactor>,
    /// The routes' own policies, compiled, by route name (routes without one use the default).
    route_redaction: HashMap<String, Arc<Redactor>>,
}

/// Why a validated configuration could not be made into a runtime. Validation compiles and
/// checks the same things first, so this names a bug rather than a mistake in the file; it is
/// still an error (the old configuration stays in force), never a panic.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A redaction policy did not compile.
    #[error("{at}: {error}")]
    Redaction {
        /// `redaction` or `routes.<name>.redaction`.
        at: String,
        /// Why.
        error: PolicyError,
    },
    /// A key or a budget could not be set up.
    #[error("{at}: {error}")]
    Limits {
        /// `keys.<name>` or `routes.<name>.limits`.
        at: String,
        /// Why.
        error: LimitError,
    },
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
    /// Makes the runtime objects of a validated configuration: its redaction policies
    /// compiled, its model list, its key store and its budgets.
    ///
    /// # Errors
    /// [`BuildError`] if something validation accepted does not build.
    pub fn build(config: Config) -> Result<Runtime, BuildError> {
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
        let limits = |at: String| move |error| BuildError::Limits { at, error };
        let mut keys = KeyStore::new();
        for key in &config.keys {
            let at = format!("keys.{}", key.name);
            let budgets = key
                .limits
                .budgets("key", &key.name)
                .map_err(limits(at.clone()))?;
            let entry = Arc::new(KeyEntry {
                key: key.clone(),
                budgets,
            });
            keys.insert(&key.name, key.secret.clone(), entry)
                .map_err(limits(at))?;
        }
        let mut route_budgets = HashMap::new();
        for r in &config.routes {
            // Open gateway: request, token and concurrency limits apply per client IP
            // (see the gateway's admission); a USD budget is the route's whatever the client,
            // as a spend cap that grew with the number of client addresses would cap nothing.
            let spec = if config.keys.is_empty() {
                r.limits.spend_only()
            } else {
                r.limits
            };
            let budgets = spec
                .budgets("route", &r.name)
                .map_err(limits(format!("routes.{}.limits", r.name)))?;
            route_budgets.insert(r.name.clone(), budgets);
        }
        let compile = |spec, at: &str| {
            Redactor::new(spec)
                .map(Arc::new)
                .map_err(|error| BuildError::Redaction {
                    at: at.to_owned(),
                    error,
                })
        };
        let redaction = compile(&config.redaction, "redaction")?;
        let mut route_redaction = HashMap::new();
        for r in &config.routes {
            if let Some(spec) = &r.redaction {
                let policy = compile(spec, &format!("routes.{}.redaction", r.name))?;
                route_redaction.insert(r.name.clone(), policy);
            }
        }
        Ok(Runtime {
            config,
            models,
            created,
            version: VERSION.fetch_add(1, Ordering::Relaxed) + 1,
            keys,
            route_budgets,
            redaction,
            route_redaction,
        })
    }

    /// The redaction policy of `route`: its own, or the default.
    pub fn redactor(&self, route: &Route) -> &Arc<Redactor> {
        self.route_redaction
            .get(&route.name)
            .unwrap_or(&self.redaction)
    }

    /// Whether a route's policy redacts in either direction.
    pub fn redacts(&self, route: &Route) -> bool {
        let policy = self.redactor(route);
        policy.is_active(Direction::Request) || policy.is_active(Direction::Response)
    }

    /// Whether the gateway inspects a route's bodies: its policy redacts and the route does
    /// not say `inspect: false`.
    pub fn inspects(&self, route: &Route) -> bool {
        route.inspect && self.redacts(route)
    }

    /// The `paths:` routes with `inspect: false` whose policy redacts in some direction:
    /// their bodies go through as they are, so redaction does not reach them. `veilgate
    /// check` and the start-up log name each one.
    pub fn uninspected_routes(&self) -> Vec<&Route> {
        self.config
            .routes
            .iter()
            .filter(|route| {
                matches!(route.matcher, RouteMatch::Paths(_))
                    && !route.inspect
                    && self.redacts(route)
            })
            .collect()
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

/// The first runtime, to be swapped on reload.
pub fn shared(runtime: Runtime) -> SharedRuntime {
    Arc::new(ArcSwap::from_pointee(runtime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Action;

    const YAML: &str = r#"
listen: 127.0.0.1:0
environment: test
upstreams:
  u: {url: "http://u.test/v1"}
routes:
  - name: chat
    models: [m]
    upstream: u
  - name: strict
    models: [s]
    upstream: u
    redaction: {request: {pii: redact}}
  - name: files
    paths: [/v1/files]
    upstream: u
  - name: raw
    paths: [/v1/uploads]
    upstream: u
    inspect: false
redaction:
  request: {secrets: redact, pii: off}
  response: {secrets: off, pii: off}
"#;

    fn config() -> Config {
        crate::config::load_str(YAML, "t.yaml", &|_| None).expect("config")
    }

    fn route<'a>(rt: &'a Runtime, name: &str) -> &'a Route {
        rt.config.routes.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn each_route_runs_its_own_policy_or_the_default() {
        let rt = Runtime::build(config()).unwrap();
        let pii = |r: &Redactor| {
            r.detectors(Direction::Request)
                .any(|(name, _)| name == "email")
        };
        assert!(!pii(rt.redactor(route(&rt, "chat"))));
        assert!(pii(rt.redactor(route(&rt, "strict"))));
        assert!(Arc::ptr_eq(
            rt.redactor(route(&rt, "chat")),
            rt.redactor(route(&rt, "files"))
        ));
        assert!(rt.inspects(route(&rt, "files")));
        assert!(!rt.inspects(route(&rt, "raw")));
        let names: Vec<&str> = rt
            .uninspected_routes()
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["raw"]);
    }

    #[test]
    fn a_policy_that_does_not_compile_is_an_error_not_a_panic() {
        let mut config = config();
        config.redaction.actions.insert(
            "no_such_detector".into(),
            crate::redact::DetectorActions::both(Action::Mask),
        );
        let e = Runtime::build(config).unwrap_err();
        assert!(matches!(e, BuildError::Redaction { .. }));
        assert!(e.to_string().starts_with("redaction: "), "{e}");
        assert!(e.to_string().contains("no_such_detector"), "{e}");
    }

    #[test]
    fn nothing_redacting_means_nothing_is_uninspected() {
        let yaml = YAML.replace(
            "request: {secrets: redact, pii: off}",
            "request: {secrets: off, pii: off}",
        );
        let config = crate::config::load_str(&yaml, "t.yaml", &|_| None).unwrap();
        let rt = Runtime::build(config).unwrap();
        assert!(!rt.inspects(route(&rt, "files")));
        assert!(rt.uninspected_routes().is_empty());
        // `strict` keeps its own request policy.
        assert!(rt.redacts(route(&rt, "strict")));
    }
}
