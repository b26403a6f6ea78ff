//! `routes:`: what each route matches (`models:` or `paths:`), its name, model, environment
//! and limits.

use std::collections::HashMap;

use super::targets::RouteUpstreams;
use super::upstreams::UpstreamNames;
use super::Checker;
use crate::config::error::Pos;
use crate::config::located::Located;
use crate::config::model::{ModelPattern, Route, RouteMatch};
use crate::config::schema::{RawRoute, RawRoutes};
use crate::config::tree::{child_path, item_path, quote};

impl Checker<'_> {
    /// `routes:`: required, at least one, each valid, no two with the same name.
    pub(super) fn routes(
        &mut self,
        raw: Option<Located<Option<RawRoutes>>>,
        root: Pos,
        upstream_names: &UpstreamNames,
    ) -> Option<Vec<Route>> {
        const HINT: &str = "add at least one route, like `- {models: [\"*\"], upstream: openai}`";
        let raw = raw.map(|r| r.map(|routes| routes.filter(|routes| !routes.is_empty())));
        let raw = self.required_some(raw, root, "routes", HINT)?;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut routes = Vec::with_capacity(raw.len());
        let mut complete = true;
        for (i, raw) in raw.into_iter().enumerate() {
            let path = item_path("routes", i);
            // Where a duplicate name is reported: at `name:` when it is written, else the route.
            let name_at = match &raw.value.name {
                Some(name) => (name.at(), child_path(&path, "name")),
                None => (raw.at(), path.clone()),
            };
            match self.route(&path, raw, upstream_names) {
                Some(route) => {
                    if !self.unique_name(&route.name, &path, name_at, &mut names) {
                        complete = false;
                    }
                    routes.push(route);
                }
                None => complete = false,
            }
        }
        complete.then_some(routes)
    }

    /// Records `name` for the route at `path`; reports it (at `at`, with its path) when an
    /// earlier route has it.
    fn unique_name(
        &mut self,
        name: &str,
        path: &str,
        (at, at_path): (Located<()>, String),
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
        if at_path == path {
            message.push_str(
                "; a route's name defaults to its first model or path: set a distinct name:",
            );
        }
        self.report(&at, &at_path, message);
        false
    }

    fn route(
        &mut self,
        path: &str,
        raw: Located<RawRoute>,
        upstream_names: &UpstreamNames,
    ) -> Option<Route> {
        let at = |key: &str| child_path(path, key);
        let route_at = raw.at();
        let raw = raw.value;
        let has_models = raw.models.is_some();
        let has_paths = raw.paths.is_some();
        let matcher = match (raw.models, raw.paths) {
            (Some(models), None) => {
                let models = models.map(Option::unwrap_or_default);
                self.models(models, &at("models")).map(|patterns| {
                    RouteMatch::Models(patterns.into_iter().map(|p| p.value).collect())
                })
            }
            (None, Some(paths)) => self.paths(paths.map(Option::unwrap_or_default), &at("paths")),
            (Some(_), Some(paths)) => {
                let message =
                    "a route matches either models: or paths:, not both; split it into two routes";
                self.report(&paths, &at("paths"), message);
                None
            }
            (None, None) => {
                let message =
                    "a route needs models: (model names or globs) or paths: (path prefixes)";
                self.report(&route_at, path, message);
                None
            }
        };
        if let (true, Some(inspect)) = (has_models, &raw.inspect) {
            let message = "inspect: applies only to paths: routes (models: routes are always inspected); remove it";
            self.report(inspect, &at("inspect"), message);
        }
        if let (true, Some(model)) = (has_paths, &raw.model) {
            let message = "model: (the model name the upstream sees) applies only to models: routes; remove it";
            self.report(model, &at("model"), message);
        }
        let (targets, fallbacks) = self.route_upstreams(
            RouteUpstreams {
                single: raw.upstream,
                weighted: raw.upstreams,
                fallbacks: raw.fallbacks.unwrap_or_default(),
                has_model: !has_paths,
                route: route_at,
            },
            path,
            upstream_names,
        );
        let retry_on = self.retry_on(raw.retry_on, &at("retry_on"));
        let written_name = raw.name.and_then(Located::transpose);
        let route_name = written_name
            .as_ref()
            .map_or_else(|| path.to_owned(), |name| name.value.clone());
        let limits = self.limits(raw.limits, "route", &route_name, &at("limits"));
        let environment = match raw.environment {
            Some(env) if env.value.trim().is_empty() => {
                self.report(
                    &env,
                    &at("environment"),
                    "is empty; write a label such as staging, or remove environment:",
                );
                None
            }
            other => Some(other.map(|env| env.value)),
        };
        let model = match raw.model {
            Some(model) if model.value.trim().is_empty() => {
                self.report(
                    &model,
                    &at("model"),
                    "is empty; name the model the upstream should see, or remove model:",
                );
                None
            }
            other => other.map(|model| model.value),
        };
        let name = match written_name {
            Some(name) if name.value.trim().is_empty() => {
                self.report(
                    &name,
                    &at("name"),
                    "is empty; name the route or remove name:",
                );
                None
            }
            Some(name) => Some(name.value),
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
            inspect: raw.inspect.is_none_or(|inspect| inspect.value),
        })
    }

    /// `models:` of a route or a key: model names or globs, at least one.
    pub(super) fn models(
        &mut self,
        models: Located<Vec<Located<String>>>,
        path: &str,
    ) -> Option<Vec<Located<ModelPattern>>> {
        if models.value.is_empty() {
            self.report(
                &models,
                path,
                "is empty; list model names or globs, like [gpt-4o, \"gpt-4.1*\"]",
            );
            return None;
        }
        let count = models.value.len();
        let mut patterns = Vec::with_capacity(count);
        for (j, model) in models.value.into_iter().enumerate() {
            let item = item_path(path, j);
            if model.value.trim().is_empty() {
                self.report(&model, &item, "is empty; write a model name or a glob");
                continue;
            }
            match ModelPattern::new(&model.value) {
                Ok(pattern) => patterns.push(model.map(|_| pattern)),
                Err(err) => {
                    let message =
                        format!("invalid glob {}: {}", model.show(&model.value), err.kind());
                    self.report(&model, &item, message);
                }
            }
        }
        (patterns.len() == count).then_some(patterns)
    }

    /// `paths:` of a route: path prefixes, at least one.
    fn paths(&mut self, paths: Located<Vec<Located<String>>>, path: &str) -> Option<RouteMatch> {
        if paths.value.is_empty() {
            self.report(
                &paths,
                path,
                "is empty; list path prefixes, like [/v1/files]",
            );
            return None;
        }
        let mut prefixes = Vec::with_capacity(paths.value.len());
        for (j, prefix) in paths.value.iter().enumerate() {
            let item = item_path(path, j);
            let text = &prefix.value;
            let message = if !text.starts_with('/') {
                "must start with /, like /v1/files"
            } else if text.contains(['?', '#']) || text.contains(char::is_whitespace) {
                "a path prefix must not contain a query (?), a fragment (#) or spaces"
            } else {
                let trimmed = text.trim_end_matches('/');
                prefixes.push(if trimmed.is_empty() { "/" } else { trimmed }.to_owned());
                continue;
            };
            let message = format!("{message}; found {}", prefix.show(text));
            self.report(prefix, &item, message);
        }
        (prefixes.len() == paths.value.len()).then_some(RouteMatch::Paths(prefixes))
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
