//! The models behind glob routes (`models: ["lite-*"]`) for `GET /v1/models`: the gateway asks
//! each upstream of such a route for its own `GET /models` list, keeps the names the route's
//! globs match (and that the route, by first match, actually serves), and caches the answer for
//! a minute per configuration version.
//!
//! Bounded on every side: one refresh at a time, each upstream asked within [`TIMEOUT`], at most
//! [`MAX_BODY`] bytes read and [`MAX_IDS`] names kept from each. An upstream that fails or does
//! not list models contributes nothing (the exact names of the configuration are always listed;
//! retrieval of a glob-routed name never needs the upstream).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::health_checks;
use super::transport::Transport;
use crate::config::{Config, RouteMatch};
use crate::runtime::Runtime;
use crate::wire::models::Model;

/// How long a discovered list is served before the upstreams are asked again.
pub const TTL: Duration = Duration::from_secs(60);
/// Longest wait for one upstream's list.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// Most bytes read of one upstream's list.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Most names kept from one upstream's list.
pub const MAX_IDS: usize = 10_000;
/// Longest model name kept.
const MAX_ID_LEN: usize = 256;

struct Cached {
    version: u64,
    at: Instant,
    models: Arc<Vec<Model>>,
}

/// The cache of discovered glob-routed models.
#[derive(Default)]
pub struct Discovery {
    cache: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct ListAnswer {
    data: Vec<ListEntry>,
}

#[derive(Deserialize)]
struct ListEntry {
    id: String,
}

impl Discovery {
    /// The glob-routed models of `runtime`'s configuration, from the cache while it is fresh.
    pub async fn models<T: Transport>(&self, runtime: &Runtime, forwarder: &T) -> Arc<Vec<Model>> {
        if !has_glob_routes(&runtime.config) {
            return Arc::new(Vec::new());
        }
        // One refresh at a time: concurrent listings wait for it instead of asking again.
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if c.version == runtime.version && c.at.elapsed() < TTL {
                return c.models.clone();
            }
        }
        let models = Arc::new(discover(runtime, forwarder).await);
        *cache = Some(Cached {
            version: runtime.version,
            at: Instant::now(),
            models: models.clone(),
        });
        models
    }
}

fn has_glob_routes(config: &Config) -> bool {
    config.routes.iter().any(|r| match &r.matcher {
        RouteMatch::Models(ps) => ps.iter().any(|p| p.is_glob()),
        RouteMatch::Paths(_) => false,
    })
}

/// Asks every upstream of every glob route (once each, concurrently) and keeps what the
/// configuration routes to that route.
async fn discover<T: Transport>(runtime: &Runtime, forwarder: &T) -> Vec<Model> {
    let config = &runtime.config;
    let mut upstreams: Vec<&str> = Vec::new();
    for route in &config.routes {
        let RouteMatch::Models(ps) = &route.matcher else {
            continue;
        };
        if ps.iter().any(|p| p.is_glob()) {
            for name in route.upstream_names() {
                if !upstreams.contains(&name) {
                    upstreams.push(name);
                }
            }
        }
    }
    let asks = upstreams.iter().filter_map(|name| {
        let upstream = config.upstream(name)?;
        // An upstream whose url has `{model}` serves one model per url: nothing to list.
        (!upstream.has_model_placeholder).then_some(async move {
            let path = upstream.path_for(None, "models", None);
            let result = health_checks::get(
                forwarder,
                upstream,
                &path,
                "veilgate-model-list",
                TIMEOUT,
                MAX_BODY,
            )
            .await;
            (upstream.name.as_str(), result)
        })
    });
    let answers = futures_util::future::join_all(asks).await;
    let mut out: Vec<Model> = Vec::new();
    for (upstream, result) in answers {
        let ids = match result {
            Ok((200, body)) => match serde_json::from_slice::<ListAnswer>(&body) {
                Ok(list) => list.data.into_iter().map(|e| e.id),
                Err(_) => {
                    log::warn!("upstream {upstream}: its model list is not OpenAI's shape; glob-routed models it serves are not listed");
                    continue;
                }
            },
            Ok((status, _)) => {
                log::warn!("upstream {upstream}: GET models answered {status}; glob-routed models it serves are not listed");
                continue;
            }
            Err(reason) => {
                log::warn!("upstream {upstream}: GET models failed ({reason}); glob-routed models it serves are not listed");
                continue;
            }
        };
        for id in ids.take(MAX_IDS) {
            if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
                continue;
            }
            if runtime.models.iter().any(|m| m.id == id) || out.iter().any(|m| m.id == id) {
                continue;
            }
            // Listed only if a glob route serves it (first match) and this upstream is one of
            // that route's: a name another route takes is not this upstream's to list.
            let Some((route, pattern)) = config.route_for_model(&id) else {
                continue;
            };
            if !pattern.is_glob() || !route.upstream_names().any(|n| n == upstream) {
                continue;
            }
            out.push(Model::new(id, runtime.owner_of(route), runtime.created));
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}
