//! `keys:` (virtual keys), and the cross-check of their `models:` against the routes.

use super::Checker;
use crate::config::located::Located;
use crate::config::model::{ModelPattern, Route, RouteMatch, VirtualKey};
use crate::config::schema::RawKey;
use crate::config::suggest::closest;
use crate::config::tree::{child_path, item_path, quote};
use crate::limits::{KeySecret, KeyStore};

/// A checked virtual key, and where each of its `models:` entries was written (for the
/// cross-check against the routes, which needs every route first).
pub(super) struct CheckedKey {
    /// The key as the gateway uses it.
    pub(super) key: VirtualKey,
    /// Where `key.models` were written, in the same order.
    models_at: Vec<Located<()>>,
}

impl Checker<'_> {
    /// `keys:`: each with a name, a secret (`key:` or `key_sha256:`), unique names and secrets.
    pub(super) fn keys(&mut self, raw: Vec<Located<RawKey>>) -> Option<Vec<CheckedKey>> {
        let mut keys = Vec::with_capacity(raw.len());
        let mut complete = true;
        let mut names: Vec<String> = Vec::new();
        let mut store = KeyStore::<()>::new();
        for (i, raw) in raw.into_iter().enumerate() {
            let path = item_path("keys", i);
            let at = |key: &str| child_path(&path, key);
            let entry = raw.at();
            let raw = raw.value;
            let name = self.required_text(
                raw.name,
                entry.pos,
                &at("name"),
                "name the app this key is for, like checkout-web",
            );
            let owner = name.as_ref().map_or("?", |n| n.value.as_str());
            let written = raw.key.is_some() || raw.key_sha256.is_some();
            let key = raw.key.and_then(Located::transpose);
            let key_sha256 = raw.key_sha256.and_then(Located::transpose);
            let secret = match (key, key_sha256) {
                (Some(_), Some(hex)) => {
                    self.report(
                        &hex,
                        &at("key_sha256"),
                        "give either key: or key_sha256:, not both",
                    );
                    None
                }
                (None, None) => {
                    if !written {
                        self.report(&entry, &at("key"), "missing required key `key`; set key: ${SOME_ENV_VAR} or key_sha256: <hex digest>");
                    }
                    None
                }
                (Some(key), None) => match KeySecret::clear(owner, &key.value) {
                    Ok(secret) => Some(secret),
                    Err(_) => {
                        self.report(
                            &key,
                            &at("key"),
                            "is empty; set the key (the value is never shown)",
                        );
                        None
                    }
                },
                (None, Some(hex)) => match KeySecret::sha256_hex(owner, hex.value.trim()) {
                    Ok(secret) => Some(secret),
                    Err(_) => {
                        self.report(&hex, &at("key_sha256"), "expected the key's SHA-256 as 64 hex digits (printf %s \"$KEY\" | sha256sum)");
                        None
                    }
                },
            };
            if let (Some(name), Some(secret)) = (&name, &secret) {
                if names.contains(&name.value) {
                    let message = format!("duplicate key name {}", quote(&name.value));
                    self.report(name, &at("name"), message);
                } else if store.insert(&name.value, secret.clone(), ()).is_err() {
                    self.report(
                        &entry,
                        &path,
                        "this key is the same as another key's; give each app its own key",
                    );
                }
                names.push(name.value.clone());
            }
            let environment = match raw.environment {
                Some(env) if env.value.trim().is_empty() => {
                    self.report(
                        &env,
                        &at("environment"),
                        "is empty; write a label such as production, or remove environment:",
                    );
                    None
                }
                other => Some(other.map(|env| env.value)),
            };
            let models = match raw.models {
                None => Some(None),
                Some(list) => self.models(list, &at("models")).map(Some),
            };
            let owner = name.as_ref().map_or("?", |n| n.value.as_str());
            let limits = self.limits(raw.limits, "key", owner, &at("limits"));
            match (name, secret, environment, models, limits) {
                (Some(name), Some(secret), Some(environment), Some(models), Some(limits)) => {
                    let models_at = models.iter().flatten().map(Located::at).collect();
                    let models = models.map(|list| list.into_iter().map(|m| m.value).collect());
                    let key = VirtualKey {
                        name: name.value,
                        secret,
                        environment,
                        models,
                        limits,
                    };
                    keys.push(CheckedKey { key, models_at });
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
    pub(super) fn unserved_key_models(&mut self, routes: &[Route], keys: &[CheckedKey]) {
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
        for (i, checked) in keys.iter().enumerate() {
            let wanted_at = checked.key.models.iter().flatten().zip(&checked.models_at);
            for (j, (wanted, at)) in wanted_at.enumerate() {
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
                    at.show(&wanted.pattern)
                );
                match closest(&wanted.pattern, exact.iter().copied()) {
                    Some(similar) => {
                        message.push_str(&format!("; did you mean {}?", quote(similar)))
                    }
                    None => message.push_str("; add a route for it or remove it"),
                }
                self.report(at, &path, message);
            }
        }
    }
}
