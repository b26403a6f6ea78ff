//! `routes:`: what each route matches (`models:` or `paths:`), its name, model, environment
//! and limits.

use std::collections::HashMap;

use super::targets::RouteUpstreams;
use super::upstreams::UpstreamNames;
use super::Checker;
use crate::config::model::{ModelPattern, Route, RouteMatch};
use crate::config::schema::RawRoute;
use crate::config::tree::{child_path, item_path, quote};

impl Checker<'_> {
    pub(super) fn routes(
        &mut self,
        raw: Option<Vec<RawRoute>>,
        upstream_names: &UpstreamNames,
    ) -> Option<Vec<Route>> {
        const HINT: &str = "add at least one route, like `- {models: [\"*\"], upstream: openai}`";
        let raw = raw.filter(|routes| !routes.is_empty());
        let raw = self.required_some(raw, "routes", HINT)?;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut routes = Vec::with_capacity(raw.len());
        let mut complete = true;
        for (i, raw) in raw.into_iter().enumerate() {
            let path = item_path("routes", i);
            match self.route(&path, raw, upstream_names) {
                Some(route) => {
                    let explicit = self.index.get(&child_path(&path, "name")).is_some();
                    if !self.unique_name(&route.name, &path, explicit, &mut names) {
                        complete = false;
                    }
                    routes.push(route);
                }
                None => complete = false,
            }
        }
        complete.then_some(routes)
    }

    /// Records `name` for the route at `path`; reports it when an earlier route has it.
    fn unique_name(
        &mut self,
        name: &str,
        path: &str,
        explicit: bool,
        names: &mut HashMap<String, String>,
    ) -> bool {
        let Some(first) = names.get(name) else {
            names.insert(name.to_owned(), path.to_owned());
            return true;
        };
        let mut message = format!(
            "duplicate route name {} (also the name of {first})",
            quote(name)
        );
        if explicit {
            self.report(&child_path(path, "name"), message);
        } else {
            message.push_str(
                "; a route's name defaults to its first model or path: set a distinct name:",
            );
            self.report(path, message);
        }
        false
    }

    fn route(
        &mut self,
        path: &str,
        raw: RawRoute,
        upstream_names: &UpstreamNames,
    ) -> Option<Route> {
        let at = |key: &str| child_path(path, key);
        let has_models = raw.models.is_some() || self.index.get(&at("models")).is_some();
        let has_paths = raw.paths.is_some() || self.index.get(&at("paths")).is_some();
        let matcher = match (has_models, has_paths) {
            (true, false) => self.models(raw.models.unwrap_or_default(), &at("models")),
            (false, true) => self.paths(raw.paths.unwrap_or_default(), &at("paths")),
            (true, true) => {
                let message =
                    "a route matches either models: or paths:, not both; split it into two routes";
                self.report(&at("paths"), message);
                None
            }
            (false, false) => {
                let message =
                    "a route needs models: (model names or globs) or paths: (path prefixes)";
                self.report(path, message);
                None
            }
        };
        if has_models && raw.inspect.is_some() {
            let message = "inspect: applies only to paths: routes (models: routes are always inspected); remove it";
            self.report(&at("inspect"), message);
        }
        if has_paths && raw.model.is_some() {
            let message = "model: (the model name the upstream sees) applies only to models: routes; remove it";
            self.report(&at("model"), message);
        }
        let (targets, fallbacks) = self.route_upstreams(
            RouteUpstreams {
                single: raw.upstream,
                weighted: raw.upstreams,
                fallbacks: raw.fallbacks.unwrap_or_default(),
                has_model: !has_paths,
            },
            path,
            upstream_names,
        );
        let retry_on = self.retry_on(raw.retry_on, &at("retry_on"));
        let route_name = raw.name.clone().unwrap_or_else(|| path.to_owned());
        let limits = self.limits(raw.limits, "route", &route_name, &at("limits"));
        let environment = match raw.environment {
            Some(env) if env.trim().is_empty() => {
                self.report(
                    &at("environment"),
                    "is empty; write a label such as staging, or remove environment:",
                );
                None
            }
            other => Some(other),
        };
        let model = match raw.model {
            Some(model) if model.trim().is_empty() => {
                self.report(
                    &at("model"),
                    "is empty; name the model the upstream should see, or remove model:",
                );
                None
            }
            other => other,
        };
        let name = match raw.name {
            Some(name) if name.trim().is_empty() => {
                self.report(&at("name"), "is empty; name the route or remove name:");
                None
            }
            Some(name) => Some(name),
            None => matcher.as_ref().map(default_route_name),
        };
        Some(Route {
            name: name?,
            matcher: matcher?,
            targets: targets?,
            fallbacks: fallbacks?,
            retry_on: retry_on?,
            model,
            environment: environment?,
            limits: limits?,
            redaction: None,
            inspect: raw.inspect.unwrap_or(true),
        })
    }

    pub(super) fn models(&mut self, models: Vec<String>, path: &str) -> Option<RouteMatch> {
        if models.is_empty() {
            self.report(
                path,
                "is empty; list model names or globs, like [gpt-4o, \"gpt-4.1*\"]",
            );
            return None;
        }
        let mut patterns = Vec::with_capacity(models.len());
        for (j, model) in models.iter().enumerate() {
            let item = item_path(path, j);
            if model.trim().is_empty() {
                self.report(&item, "is empty; write a model name or a glob");
                continue;
            }
            match ModelPattern::new(model) {
                Ok(pattern) => patterns.push(pattern),
                Err(err) => {
                    let message =
                        format!("invalid glob {}: {}", self.show(&item, model), err.kind());
                    self.report(&item, message);
                }
            }
        }
        (patterns.len() == models.len()).then_some(RouteMatch::Models(patterns))
    }

    pub(super) fn paths(&mut self, paths: Vec<String>, path: &str) -> Option<RouteMatch> {
        if paths.is_empty() {
            self.report(path, "is empty; list path prefixes, like [/v1/files]");
            return None;
        }
        let mut prefixes = Vec::with_capacity(paths.len());
        for (j, prefix) in paths.iter().enumerate() {
            let item = item_path(path, j);
            let message = if !prefix.starts_with('/') {
                "must start with /, like /v1/files"
            } else if prefix.contains(['?', '#']) || prefix.contains(char::is_whitespace) {
                "a path prefix must not contain a query (?), a fragment (#) or spaces"
            } else {
                let trimmed = prefix.trim_end_matches('/');
                prefixes.push(if trimmed.is_empty() { "/" } else { trimmed }.to_owned());
                continue;
            };
            let message = format!("{message}; found {}", self.show(&item, prefix));
            self.report(&item, message);
        }
        (prefixes.len() == paths.len()).then_some(RouteMatch::Paths(prefixes))
    }
}

/// A route's name when `name:` is absent: its first model pattern or path.
fn default_route_name(matcher: &RouteMatch) -> String {
    match matcher {
        RouteMatch::Models(patterns) => patterns.first().map(|p| p.pattern.clone()),
        RouteMatch::Paths(paths) => paths.first().cloned(),
    }
    .unwrap_or_default()
}
