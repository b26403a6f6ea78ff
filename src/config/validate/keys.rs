//! `keys:` (virtual keys), and the cross-check of their `models:` against the routes.

use super::Checker;
use crate::config::model::{ModelPattern, Route, RouteMatch, VirtualKey};
use crate::config::schema::RawKey;
use crate::config::suggest::closest;
use crate::config::tree::{child_path, item_path, quote};
use crate::limits::{KeySecret, KeyStore};

impl Checker<'_> {
    pub(super) fn keys(&mut self, raw: Vec<RawKey>) -> Option<Vec<VirtualKey>> {
        let mut keys = Vec::with_capacity(raw.len());
        let mut complete = true;
        let mut names: Vec<String> = Vec::new();
        let mut store = KeyStore::<()>::new();
        for (i, raw) in raw.into_iter().enumerate() {
            let path = item_path("keys", i);
            let at = |key: &str| child_path(&path, key);
            let name = self.required_text(
                raw.name,
                &at("name"),
                "name the app this key is for, like checkout-web",
            );
            let secret = match (raw.key, raw.key_sha256) {
                (Some(_), Some(_)) => {
                    self.report(
                        &at("key_sha256"),
                        "give either key: or key_sha256:, not both",
                    );
                    None
                }
                (None, None) => {
                    if self.index.get(&at("key")).is_none()
                        && self.index.get(&at("key_sha256")).is_none()
                    {
                        self.report(&at("key"), "missing required key `key`; set key: ${SOME_ENV_VAR} or key_sha256: <hex digest>");
                    }
                    None
                }
                (Some(key), None) => match KeySecret::clear(name.as_deref().unwrap_or("?"), &key) {
                    Ok(secret) => Some(secret),
                    Err(_) => {
                        self.report(
                            &at("key"),
                            "is empty; set the key (the value is never shown)",
                        );
                        None
                    }
                },
                (None, Some(hex)) => {
                    match KeySecret::sha256_hex(name.as_deref().unwrap_or("?"), hex.trim()) {
                        Ok(secret) => Some(secret),
                        Err(_) => {
                            self.report(&at("key_sha256"), "expected the key's SHA-256 as 64 hex digits (printf %s \"$KEY\" | sha256sum)");
                            None
                        }
                    }
                }
            };
            if let (Some(name), Some(secret)) = (&name, &secret) {
                if names.contains(name) {
                    self.report(&at("name"), format!("duplicate key name {}", quote(name)));
                } else if store.insert(name, secret.clone(), ()).is_err() {
                    self.report(
                        &path,
                        "this key is the same as another key's; give each app its own key",
                    );
                }
                names.push(name.clone());
            }
            let environment = match raw.environment {
                Some(env) if env.trim().is_empty() => {
                    self.report(
                        &at("environment"),
                        "is empty; write a label such as production, or remove environment:",
                    );
                    None
                }
                other => Some(other),
            };
            let models = match raw.models {
                None => Some(None),
                Some(list) => match self.models(list, &at("models")) {
                    Some(RouteMatch::Models(patterns)) => Some(Some(patterns)),
                    _ => None,
                },
            };
            let limits = self.limits(
                raw.limits,
                "key",
                name.as_deref().unwrap_or("?"),
                &at("limits"),
            );
            match (name, secret, environment, models, limits) {
                (Some(name), Some(secret), Some(environment), Some(models), Some(limits)) => {
                    keys.push(VirtualKey {
                        name,
                        secret,
                        environment,
                        models,
                        limits,
                    });
                }
                _ => complete = false,
            }
        }
        complete.then_some(keys)
    }

    /// A key's `models:` entry that no `models:` route serves: the key's app would get 404 for
    /// it, so it is most likely a typo. An exact name must be matched by a route; a glob must
    /// match a route's exact name or be a route's own glob, unless some route has another glob
    /// (two globs may overlap in ways not worth deciding here).
    pub(super) fn unserved_key_models(&mut self, routes: &[Route], keys: &[VirtualKey]) {
        let patterns: Vec<&ModelPattern> = routes
            .iter()
            .filter_map(|route| match &route.matcher {
                RouteMatch::Models(patterns) => Some(patterns),
                RouteMatch::Paths(_) => None,
            })
            .flatten()
            .collect();
        let exact: Vec<&str> = patterns
            .iter()
            .filter(|p| !p.is_glob())
            .map(|p| p.pattern.as_str())
            .collect();
        for (i, key) in keys.iter().enumerate() {
            for (j, wanted) in key.models.iter().flatten().enumerate() {
                let served = if wanted.is_glob() {
                    exact.iter().any(|name| wanted.matches(name))
                        || patterns
                            .iter()
                            .any(|p| p.is_glob() && p.pattern != wanted.pattern)
                        || patterns.iter().any(|p| p.pattern == wanted.pattern)
                } else {
                    patterns.iter().any(|p| p.matches(&wanted.pattern))
                };
                if served {
                    continue;
                }
                let path = item_path(&child_path(&item_path("keys", i), "models"), j);
                let mut message = format!(
                    "no route serves the model {}, so this key could never use it",
                    self.show(&path, &wanted.pattern)
                );
                match closest(&wanted.pattern, exact.iter().copied()) {
                    Some(similar) => {
                        message.push_str(&format!("; did you mean {}?", quote(similar)))
                    }
                    None => message.push_str("; add a route for it or remove it"),
                }
                self.report(&path, message);
            }
        }
    }
}
