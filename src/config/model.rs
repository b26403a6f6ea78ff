//! The validated runtime configuration: what the proxy uses. It never sees the raw YAML schema.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use globset::{Glob, GlobMatcher};

use crate::limits::{KeySecret, LimitSpec, OnBackendError};
use crate::redact::{CategoryActions, PolicySpec};
use crate::telemetry::TraceSpec;

/// A loaded, validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// A free-form label such as `production`, for logs and metrics.
    pub environment: String,
    /// Where the gateway accepts OpenAI-compatible requests.
    pub listen: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served, if anywhere.
    pub admin: Option<SocketAddr>,
    /// The largest request body read; larger requests are refused.
    pub max_body_bytes: usize,
    /// The most request body bytes buffered at once, by all requests together; a request
    /// that would go over it is refused with 503 (on top of `max_body_bytes` per request).
    pub max_buffered_bytes: usize,
    /// How long SIGTERM waits for requests in flight before the process exits.
    pub shutdown_grace: Duration,
    /// How long a client may take to send its request header, and to send the next piece of
    /// its body; past it the connection is closed (after a 408 when the body stalls).
    pub client_timeout: Duration,
    /// Upstreams by name.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// Routes in file order; the first match wins.
    pub routes: Vec<Route>,
    /// Virtual keys; empty: the gateway runs open.
    pub keys: Vec<VirtualKey>,
    /// Where rate-limit state lives.
    pub rate_limit: RateLimitConfig,
    /// Trace exporters.
    pub traces: TraceSpec,
    /// The default redaction policy (compiled by `Runtime::build`).
    pub redaction: PolicySpec,
    /// Model prices: the `prices:` entries, then the built-in table.
    pub prices: crate::spend::PriceTable,
}

/// A key handed to an app: it authenticates, labels and budgets that app's traffic.
#[derive(Clone)]
pub struct VirtualKey {
    /// Its name: a metrics label, in logs and traces (never the key).
    pub name: String,
    /// The key's digest.
    pub secret: KeySecret,
    /// The environment its traffic belongs to, if set.
    pub environment: Option<String>,
    /// The models it may call; `None`: any.
    pub models: Option<Vec<ModelPattern>>,
    /// Its budgets.
    pub limits: LimitSpec,
}

impl fmt::Debug for VirtualKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualKey")
            .field("name", &self.name)
            .field("environment", &self.environment)
            .field("models", &self.models)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl VirtualKey {
    /// Whether this key may call `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(model)))
    }
}

/// `rate_limit:`.
#[derive(Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Memory (one process) or Redis (shared).
    pub backend: RateLimitBackend,
    /// What happens when the backend cannot decide.
    pub on_backend_error: OnBackendError,
    /// Longest wait for Redis on one check.
    pub timeout: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            backend: RateLimitBackend::Memory,
            on_backend_error: OnBackendError::Allow,
            timeout: Duration::from_millis(50),
        }
    }
}

impl fmt::Debug for RateLimitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match &self.backend {
            RateLimitBackend::Memory => "memory",
            RateLimitBackend::Redis { .. } => "redis",
        };
        f.debug_struct("RateLimitConfig")
            .field("backend", &backend)
            .field("on_backend_error", &self.on_backend_error)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where rate-limit state lives.
#[derive(Clone, PartialEq, Eq)]
pub enum RateLimitBackend {
    /// In this process.
    Memory,
    /// In Redis, shared by every instance using the same server. The url may hold a password.
    Redis {
        /// `redis://` or `rediss://`.
        url: String,
    },
}

impl Config {
    /// `max_body_bytes` when the file does not set it: 32 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
    /// `max_buffered_bytes` when the file does not set it: 256 MiB.
    pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 * 1024 * 1024;
    /// `shutdown_grace` when the file does not set it.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
    /// `client_timeout` when the file does not set it.
    pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

    /// The first route (in file order) whose `models:` list matches `model`, with the pattern
    /// that matched.
    pub fn route_for_model(&self, model: &str) -> Option<(&Route, &ModelPattern)> {
        self.routes.iter().find_map(|route| match &route.matcher {
            RouteMatch::Models(patterns) => patterns
                .iter()
                .find(|p| p.matches(model))
                .map(|p| (route, p)),
            RouteMatch::Paths(_) => None,
        })
    }

    /// Every environment label traffic can carry: the top-level one, then the routes' and the
    /// keys' own, each once.
    pub fn environments(&self) -> Vec<&str> {
        let mut labels = vec![self.environment.as_str()];
        let others = self.routes.iter().filter_map(|r| r.environment.as_deref());
        for label in others.chain(self.keys.iter().filter_map(|k| k.environment.as_deref())) {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels
    }

    /// What redaction does, in one line for the start-up log: the category actions of each
    /// direction, then what else the policy holds (per-detector actions, custom detectors,
    /// allow-list entries, routes with their own policy). Never a value of the allow-list or
    /// the hash key.
    pub fn redaction_summary(&self) -> String {
        fn side(actions: CategoryActions) -> String {
            format!("secrets={} pii={}", actions.secrets, actions.pii)
        }
        let policy = &self.redaction;
        let mut summary = format!(
            "requests {}; answers {}",
            side(policy.request),
            side(policy.response)
        );
        let overrides = self.routes.iter().filter(|r| r.redaction.is_some()).count();
        for (count, what) in [
            (policy.actions.len(), "per-detector actions"),
            (policy.detectors.len(), "custom detectors"),
            (policy.allow.len(), "allowed literals"),
            (overrides, "routes with their own policy"),
        ] {
            if count > 0 {
                summary.push_str(&format!("; {count} {what}"));
            }
        }
        summary
    }

    /// Models the `models:` routes send upstream that the price table cannot price, as
    /// `(route, model or glob)`: the route's `model:` when it renames, else each exact name,
    /// and each glob that matches no priced name. Requests for them have no cost in the
    /// metrics and access log, and a USD budget refuses them; `veilgate check` and the
    /// start-up log warn about each.
    pub fn unpriced_models(&self) -> Vec<(&str, &str)> {
        let mut unpriced = Vec::new();
        for route in &self.routes {
            let RouteMatch::Models(patterns) = &route.matcher else {
                continue;
            };
            if let Some(model) = &route.model {
                if self.prices.price(model).is_none() {
                    unpriced.push((route.name.as_str(), model.as_str()));
                }
                continue;
            }
            for p in patterns {
                let priced = if p.is_glob() {
                    self.prices.prices_some_of(p)
                } else {
                    self.prices.price(&p.pattern).is_some()
                };
                if !priced {
                    unpriced.push((route.name.as_str(), p.pattern.as_str()));
                }
            }
        }
        unpriced
    }

    /// The first `paths:` route with a prefix of `path` on a segment boundary: `/v1/files`
    /// matches `/v1/files` and `/v1/files/abc`, not `/v1/filesystem`. A query string or
    /// fragment in `path` is ignored.
    pub fn route_for_path(&self, path: &str) -> Option<&Route> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        self.routes.iter().find(|route| match &route.matcher {
            RouteMatch::Paths(prefixes) => {
                prefixes.iter().any(|prefix| has_path_prefix(path, prefix))
            }
            RouteMatch::Models(_) => false,
        })
    }

    /// Model ids for `GET /v1/models`: every exact (non-glob) name in `models:` lists, in file
    /// order, without duplicates. Aliases are listed by the name clients use.
    pub fn model_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for route in &self.routes {
            if let RouteMatch::Models(patterns) = &route.matcher {
                for pattern in patterns.iter().filter(|p| !p.is_glob()) {
                    if !ids.contains(&pattern.pattern) {
                        ids.push(pattern.pattern.clone());
                    }
                }
            }
        }
        ids
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(name)
    }
}

/// Whether `prefix` is `path` or a parent of it, on a `/` boundary, and the part of `path`
/// below it cannot climb out of it: no segment of it is `.` or `..`, even read the way a lax
/// server might (`%2e` as a dot, `\`, `%2f` and `%5c` as a slash). The gateway refuses such
/// paths before routing (`gateway::canonical`); this keeps the matcher safe on its own.
fn has_path_prefix(path: &str, prefix: &str) -> bool {
    let Some(rest) = path.strip_prefix(prefix) else {
        return false;
    };
    let on_boundary = rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/');
    on_boundary && !climbs(rest)
}

/// Whether a path part has a dot segment, reading encoded dots, slashes and backslashes the
/// way a lax server would.
fn climbs(rest: &str) -> bool {
    if !rest.contains(['.', '%', '\\']) {
        return false;
    }
    let lax = rest
        .to_ascii_lowercase()
        .replace("%2e", ".")
        .replace("%2f", "/")
        .replace("%5c", "/")
        .replace('\\', "/");
    lax.split('/')
        .any(|segment| segment == "." || segment == "..")
}

/// An OpenAI-compatible API the gateway forwards to.
#[derive(Clone)]
pub struct Upstream {
    /// The name under `upstreams:`.
    pub name: String,
    /// `https` (true) or `http`.
    pub tls: bool,
    /// Host name or IP address, lowercase; an IPv6 address is stored without brackets.
    pub host: String,
    /// The port, 443 or 80 unless the url names one.
    pub port: u16,
    /// The url's path without a trailing slash: `""` or like `/v1`; it may hold `{model}` (see
    /// [`Upstream::path_for`]).
    pub base_path: String,
    /// Sent as [`Upstream::auth`] says; `None` when absent or empty. Never printed.
    pub api_key: Option<String>,
    /// Longest wait to open a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the first response byte.
    pub timeout: Duration,
    /// Longest silence inside a response (between stream events).
    pub idle_timeout: Duration,
    /// How the key is sent (`auth_header:`; by default as the API expects it).
    pub auth: UpstreamAuth,
    /// The API the upstream speaks (`api:`): how it is authenticated and what it is called in
    /// traces.
    pub api: UpstreamApi,
    /// Query parameters added to every request (`api-version` for Azure), in file order, not
    /// encoded.
    pub query: Vec<(String, String)>,
    /// Optional active health check.
    pub health_check: Option<HealthCheck>,
    /// What `GET /v1/models` says owns the models this upstream serves (`owned_by:`); by
    /// default `veilgate`, so internal upstream names are not shown to clients.
    pub owned_by: Option<String>,
    /// Whether `base_path` contains `{model}`: such an upstream serves only `models:` routes,
    /// and its `health_check` path is taken from the host's root.
    pub has_model_placeholder: bool,
}

/// The API an upstream speaks. Requests are forwarded to the path the client used either way
/// (Anthropic serves an OpenAI-compatible `/v1/chat/completions` too); the API decides how
/// the upstream's key is sent and the headers it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamApi {
    /// OpenAI and compatible servers: `Authorization: Bearer <key>`.
    #[default]
    OpenAi,
    /// Anthropic's Messages API: `x-api-key: <key>` and an `anthropic-version` header (the
    /// client's, else [`ANTHROPIC_VERSION`]).
    Anthropic,
}

/// The `anthropic-version` sent to an `api: anthropic` upstream when the client sends none.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How an upstream's `api_key` is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// `Authorization: Bearer <key>` (OpenAI and most compatible APIs).
    Bearer,
    /// The key as the value of this (lowercase) header, e.g. Azure's `api-key`.
    Header(String),
}

/// An active health check (`health_check:`): `GET` [`Upstream::health_check_target`] every
/// `interval`; a 2xx within `timeout` passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Relative to the upstream url (to the host's root when the url has `{model}`), without a
    /// leading `/`: `models` for `/models`.
    pub path: String,
    /// Time between checks; default 10s.
    pub interval: Duration,
    /// Longest wait for an answer; default 5s.
    pub timeout: Duration,
}

impl HealthCheck {
    /// `interval` when the file does not set it.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    /// `timeout` when the file does not set it.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
}

/// Characters escaped when a model name is put into a url path: everything but RFC 3986
/// unreserved characters, sub-delims, `:` and `@` (the characters of a path segment), so a model
/// name cannot add path segments (`/` is `%2F`), a query (`?`) or a fragment (`#`).
const MODEL_IN_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    // unreserved
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    // sub-delims
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    // the rest of pchar
    .remove(b':')
    .remove(b'@');

/// The one placeholder an upstream url's path may hold.
pub(crate) const MODEL_PLACEHOLDER: &str = "{model}";

/// Characters escaped in configured query keys and values: all but RFC 3986 unreserved.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Upstream {
    /// `connect_timeout` when the file does not set it.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// `timeout` (to the first response byte) when the file does not set it.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    /// `idle_timeout` (longest silence inside a stream) when the file does not set it.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

    /// The `Host` header value: the host, with `:port` when it is not the scheme's default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The upstream request path and query (an HTTP request target, starting with `/`):
    ///
    /// 1. the base path, with each `{model}` replaced by `model` percent-encoded as one path
    ///    segment (`/` becomes `%2F`; a model of `.` or `..` is written `%2E`/`%2E%2E` so it
    ///    cannot be a dot segment; `None` and `""` leave the segment empty — validation keeps
    ///    requests without a model off upstreams with `{model}`);
    /// 2. `/` and `rest`, the client path after `/v1/` (leading `/` trimmed), as given;
    /// 3. the query: `client_query` as given (if any and not empty), then the configured `query:`
    ///    pairs percent-encoded, joined with `&` (after `?`, or after `&` when `rest` already has
    ///    a query).
    ///
    /// For a base path of `/v1`, `path_for(None, "chat/completions", None)` is
    /// `/v1/chat/completions`.
    pub fn path_for(&self, model: Option<&str>, rest: &str, client_query: Option<&str>) -> String {
        let mut path = if self.has_model_placeholder {
            let model = model.unwrap_or_default();
            let encoded = match model {
                "." => "%2E".to_owned(),
                ".." => "%2E%2E".to_owned(),
                _ => percent_encoding::utf8_percent_encode(model, MODEL_IN_PATH).to_string(),
            };
            self.base_path.replace(MODEL_PLACEHOLDER, &encoded)
        } else {
            self.base_path.clone()
        };
        path.push('/');
        path.push_str(rest.trim_start_matches('/'));
        self.append_query(&mut path, client_query);
        path
    }

    /// What an active health check GETs: [`Upstream::path_for`]`(None, path, None)`; for an
    /// upstream whose url has `{model}` (there is no model to put there) the check path is
    /// taken from the host's root instead — `/openai/models` on Azure — with the `query:`
    /// pairs (the `api-version`) appended.
    pub fn health_check_target(&self) -> Option<String> {
        let check = self.health_check.as_ref()?;
        if !self.has_model_placeholder {
            return Some(self.path_for(None, &check.path, None));
        }
        let mut path = format!("/{}", check.path);
        self.append_query(&mut path, None);
        Some(path)
    }

    fn append_query(&self, path: &mut String, client_query: Option<&str>) {
        let mut separator = if path.contains('?') { '&' } else { '?' };
        if let Some(query) = client_query.filter(|q| !q.is_empty()) {
            path.push(separator);
            path.push_str(query);
            separator = '&';
        }
        for (key, value) in &self.query {
            path.push(separator);
            path.extend(percent_encoding::utf8_percent_encode(key, QUERY));
            path.push('=');
            path.extend(percent_encoding::utf8_percent_encode(value, QUERY));
            separator = '&';
        }
    }
}

/// Prints `<redacted>` for the API key.
impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("tls", &self.tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("base_path", &self.base_path)
            .field("api_key", &self.api_key.as_ref().map(|_| Redacted))
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("auth", &self.auth)
            .field("query", &self.query)
            .field("health_check", &self.health_check)
            .field("has_model_placeholder", &self.has_model_placeholder)
            .finish()
    }
}

/// Sends matching requests to its upstreams: a first attempt on a target picked by weight, then
/// (as `retry_on` allows) the other targets and the fallbacks.
#[derive(Debug, Clone)]
pub struct Route {
    /// Unique; `name:` or, by default, the first model pattern or path. A metrics label.
    pub name: String,
    /// What the route matches.
    pub matcher: RouteMatch,
    /// The upstreams to choose from by weight, in file order, never empty, at least one weight
    /// above 0 (`upstream: x` is one target of weight 1). Names are keys of [`Config::upstreams`].
    pub targets: Vec<Target>,
    /// Tried in order after the targets, when an attempt fails as `retry_on` says. No name
    /// appears twice across `targets` and `fallbacks`.
    pub fallbacks: Vec<String>,
    /// Which failures move on to the next candidate.
    pub retry_on: RetryOn,
    /// For `models:` routes: the model name the upstream sees (the client keeps its own).
    pub model: Option<String>,
    /// This route's traffic environment label (telemetry), if it sets one; never empty.
    pub environment: Option<String>,
    /// The route-wide budget (shared by all keys; per client IP when the gateway runs open).
    pub limits: LimitSpec,
    /// Its own redaction policy (the default with this route's overrides), if it has one.
    pub redaction: Option<PolicySpec>,
    /// `paths:` routes: whether their bodies are inspected when the policy redacts (`true`
    /// unless `inspect: false`). `models:` routes are always inspected.
    pub inspect: bool,
}

impl Route {
    /// Every upstream the route may use: targets, then fallbacks.
    pub fn upstream_names(&self) -> impl Iterator<Item = &str> {
        self.targets
            .iter()
            .map(|t| t.upstream.as_str())
            .chain(self.fallbacks.iter().map(String::as_str))
    }
}

/// One weighted upstream of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A key of [`Config::upstreams`].
    pub upstream: String,
    /// Relative share of first attempts, 0 to 1000 (0: only as a retry).
    pub weight: u32,
}

/// Which failed attempts are retried on the next candidate (`retry_on:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    /// No connection, or it broke before an answer.
    pub connect: bool,
    /// No answer within the upstream's `timeout`.
    pub timeout: bool,
    /// The upstream answered 429.
    pub too_many_requests: bool,
    /// The upstream answered 5xx.
    pub server_error: bool,
}

impl RetryOn {
    /// `retry_on: []`.
    pub const NONE: RetryOn = RetryOn {
        connect: false,
        timeout: false,
        too_many_requests: false,
        server_error: false,
    };
}

impl Default for RetryOn {
    /// `[connect, timeout, 429, 5xx]`.
    fn default() -> Self {
        RetryOn {
            connect: true,
            timeout: true,
            too_many_requests: true,
            server_error: true,
        }
    }
}

/// What a route matches.
#[derive(Debug, Clone)]
pub enum RouteMatch {
    /// The request body's `model`, by exact names or globs.
    Models(Vec<ModelPattern>),
    /// Path prefixes (like `/v1/files`), matched on segment boundaries, without trailing `/`.
    Paths(Vec<String>),
}

/// An exact model name, or a glob (`*`, `?`, `[…]`, `{a,b}`) over model names.
#[derive(Debug, Clone)]
pub struct ModelPattern {
    /// The pattern as written.
    pub pattern: String,
    glob: Option<GlobMatcher>,
}

impl ModelPattern {
    /// Characters that make a pattern a glob.
    const GLOB_CHARS: [char; 4] = ['*', '?', '[', '{'];

    /// An exact name, or a glob when `pattern` has any of `* ? [ {`. `*` also matches `/`.
    ///
    /// # Errors
    ///
    /// Returns globset's error for an invalid glob, such as an unclosed `[`.
    pub fn new(pattern: &str) -> Result<ModelPattern, globset::Error> {
        let glob = if pattern.contains(Self::GLOB_CHARS) {
            Some(Glob::new(pattern)?.compile_matcher())
        } else {
            None
        };
        Ok(ModelPattern {
            pattern: pattern.to_owned(),
            glob,
        })
    }

    /// Whether `model` is this name or matches this glob (case-sensitive).
    pub fn matches(&self, model: &str) -> bool {
        match &self.glob {
            Some(glob) => glob.is_match(model),
            None => self.pattern == model,
        }
    }

    /// Whether this is a glob rather than an exact name.
    pub fn is_glob(&self) -> bool {
        self.glob.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> ModelPattern {
        ModelPattern::new(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn models_route(name: &str, patterns: &[&str], upstream: &str) -> Route {
        Route {
            name: name.into(),
            matcher: RouteMatch::Models(patterns.iter().map(|p| pattern(p)).collect()),
            targets: vec![Target {
                upstream: upstream.into(),
                weight: 1,
            }],
            fallbacks: Vec::new(),
            retry_on: RetryOn::default(),
            model: None,
            environment: None,
            limits: LimitSpec::default(),
            redaction: None,
            inspect: true,
        }
    }

    fn paths_route(name: &str, paths: &[&str], upstream: &str) -> Route {
        Route {
            name: name.into(),
            matcher: RouteMatch::Paths(paths.iter().map(|p| p.to_string()).collect()),
            targets: vec![Target {
                upstream: upstream.into(),
                weight: 1,
            }],
            fallbacks: Vec::new(),
            retry_on: RetryOn::default(),
            model: None,
            environment: None,
            limits: LimitSpec::default(),
            redaction: None,
            inspect: true,
        }
    }

    fn upstream(tls: bool, host: &str, port: u16, base_path: &str) -> Upstream {
        Upstream {
            name: "u".into(),
            tls,
            host: host.into(),
            port,
            base_path: base_path.into(),
            api_key: Some("sk-very-secret".into()),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            auth: UpstreamAuth::Bearer,
            api: UpstreamApi::OpenAi,
            query: Vec::new(),
            health_check: None,
            owned_by: None,
            has_model_placeholder: base_path.contains("{model}"),
        }
    }

    #[test]
    fn path_for_substitutes_and_merges_queries() {
        let mut u = upstream(
            true,
            "x.openai.azure.com",
            443,
            "/openai/deployments/{model}",
        );
        u.query = vec![("api-version".into(), "2024-10-21".into())];
        assert_eq!(
            u.path_for(Some("gpt-4o"), "chat/completions", Some("a=1")),
            "/openai/deployments/gpt-4o/chat/completions?a=1&api-version=2024-10-21"
        );
        assert_eq!(
            u.path_for(Some("../x?y"), "/embeddings", None),
            "/openai/deployments/..%2Fx%3Fy/embeddings?api-version=2024-10-21"
        );
        let plain = upstream(false, "h", 80, "/v1");
        assert_eq!(
            plain.path_for(Some("m"), "files", Some("purpose=batch")),
            "/v1/files?purpose=batch"
        );
    }

    #[test]
    fn a_model_name_is_one_encoded_path_segment() {
        let u = upstream(true, "h", 443, "/openai/deployments/{model}");
        let model_path = |m: &str| u.path_for(Some(m), "chat/completions", None);
        assert_eq!(
            model_path("accounts/fw/models/llama-v3"),
            "/openai/deployments/accounts%2Ffw%2Fmodels%2Fllama-v3/chat/completions"
        );
        // Unreserved, sub-delims, ':' and '@' stay; everything else is escaped.
        assert_eq!(
            model_path("a-b.c_d~e!$&'()*+,;=:@"),
            "/openai/deployments/a-b.c_d~e!$&'()*+,;=:@/chat/completions"
        );
        assert_eq!(
            model_path("a b#c?d%e\\f\"g{h}[i]"),
            "/openai/deployments/a%20b%23c%3Fd%25e%5Cf%22g%7Bh%7D%5Bi%5D/chat/completions"
        );
        assert_eq!(
            model_path("modèle"),
            "/openai/deployments/mod%C3%A8le/chat/completions"
        );
        // Dot segments would climb out of the deployment.
        assert_eq!(
            model_path(".."),
            "/openai/deployments/%2E%2E/chat/completions"
        );
        assert_eq!(model_path("."), "/openai/deployments/%2E/chat/completions");
        assert_eq!(
            model_path("..."),
            "/openai/deployments/.../chat/completions"
        );
        assert_eq!(
            u.path_for(None, "models", None),
            "/openai/deployments//models",
            "no model: an empty segment (validation keeps such requests away)"
        );
        let twice = upstream(true, "h", 443, "/{model}/x/{model}");
        assert_eq!(twice.path_for(Some("m/1"), "y", None), "/m%2F1/x/m%2F1/y");
    }

    #[test]
    fn configured_query_pairs_follow_the_client_query_encoded() {
        let mut u = upstream(true, "h", 443, "/v1");
        u.query = vec![
            ("api-version".into(), "2024-10-21".into()),
            ("a b".into(), "x&y=z/é".into()),
        ];
        assert_eq!(
            u.path_for(None, "chat/completions", None),
            "/v1/chat/completions?api-version=2024-10-21&a%20b=x%26y%3Dz%2F%C3%A9"
        );
        assert_eq!(
            u.path_for(None, "files", Some("purpose=batch&limit=2")),
            "/v1/files?purpose=batch&limit=2&api-version=2024-10-21&a%20b=x%26y%3Dz%2F%C3%A9",
            "the client query is kept as given, first"
        );
        assert_eq!(
            u.path_for(None, "models?x=1", Some("")),
            "/v1/models?x=1&api-version=2024-10-21&a%20b=x%26y%3Dz%2F%C3%A9",
            "a query already in rest is continued with &"
        );
        u.query.clear();
        assert_eq!(u.path_for(None, "models", Some("")), "/v1/models");
    }

    fn config(routes: Vec<Route>) -> Config {
        Config {
            environment: "test".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: None,
            max_body_bytes: 1024,
            max_buffered_bytes: 4096,
            shutdown_grace: Config::DEFAULT_SHUTDOWN_GRACE,
            client_timeout: Config::DEFAULT_CLIENT_TIMEOUT,
            keys: Vec::new(),
            rate_limit: RateLimitConfig::default(),
            traces: TraceSpec::default(),
            redaction: crate::redact::PolicySpec::default(),
            upstreams: BTreeMap::new(),
            routes,
            prices: crate::spend::PriceTable::default(),
        }
    }

    #[test]
    fn patterns_exact_and_glob() {
        assert!(pattern("gpt-4o").matches("gpt-4o"));
        assert!(!pattern("gpt-4o").matches("gpt-4o-mini"));
        assert!(!pattern("gpt-4o").is_glob());
        let glob = pattern("gpt-4.1*");
        assert!(glob.is_glob());
        assert!(glob.matches("gpt-4.1") && glob.matches("gpt-4.1-mini"));
        assert!(!glob.matches("gpt-4.0"), "the dot is literal");
        assert!(
            pattern("*").matches("accounts/fw/models/llama"),
            "* crosses /"
        );
        assert!(pattern("o?-mini").matches("o3-mini"));
        assert!(pattern("{claude,gemini}-*").matches("gemini-2.5-flash"));
        assert!(pattern("gpt-[45]o").matches("gpt-4o") && !pattern("gpt-[45]o").matches("gpt-3o"));
        assert!(ModelPattern::new("gpt-[").is_err());
    }

    #[test]
    fn first_matching_route_wins() {
        let cfg = config(vec![
            models_route("a", &["gpt-4o"], "openai"),
            models_route("b", &["gpt-*", "o3"], "other"),
            paths_route("files", &["/v1/files"], "openai"),
            models_route("c", &["*"], "local"),
        ]);
        let hit = |m: &str| {
            cfg.route_for_model(m)
                .map(|(r, p)| (r.name.clone(), p.pattern.clone()))
        };
        assert_eq!(hit("gpt-4o"), Some(("a".into(), "gpt-4o".into())));
        assert_eq!(hit("gpt-4o-mini"), Some(("b".into(), "gpt-*".into())));
        assert_eq!(hit("o3"), Some(("b".into(), "o3".into())));
        assert_eq!(hit("llama3"), Some(("c".into(), "*".into())));
        assert!(config(vec![models_route("a", &["x"], "u")])
            .route_for_model("y")
            .is_none());
    }

    #[test]
    fn path_routes_match_on_segment_boundaries() {
        let cfg = config(vec![
            models_route("m", &["*"], "local"),
            paths_route("files", &["/v1/files", "/v1/batches"], "openai"),
            paths_route("root", &["/"], "other"),
        ]);
        let hit = |p: &str| cfg.route_for_path(p).map(|r| r.name.clone());
        assert_eq!(hit("/v1/files").as_deref(), Some("files"));
        assert_eq!(hit("/v1/files/abc/content").as_deref(), Some("files"));
        assert_eq!(hit("/v1/files?purpose=batch").as_deref(), Some("files"));
        assert_eq!(hit("/v1/batches/b1").as_deref(), Some("files"));
        assert_eq!(hit("/v1/filesystem").as_deref(), Some("root"));
        assert_eq!(
            config(vec![paths_route("f", &["/v1/files"], "u")])
                .route_for_path("/v1/filesystem")
                .map(|r| r.name.clone()),
            None
        );
        assert_eq!(
            config(vec![paths_route("f", &["/v1/files"], "u")])
                .route_for_path("/v1/file")
                .map(|r| r.name.clone()),
            None
        );
    }

    #[test]
    fn a_path_route_never_serves_a_path_outside_its_prefix() {
        let cfg = config(vec![paths_route("files", &["/v1/files"], "u")]);
        let hit = |p: &str| cfg.route_for_path(p).is_some();
        for inside in [
            "/v1/files",
            "/v1/files/",
            "/v1/files/abc",
            "/v1/files/abc/content",
            "/v1/files/a..b",
            "/v1/files/.hidden",
        ] {
            assert!(hit(inside), "{inside}");
        }
        for outside in [
            "/v1/filesystem",
            "/v1/file",
            "/v1",
            "/v1/files/../chat/completions",
            "/v1/files/..",
            "/v1/files/./../chat",
            "/v1/files/%2e%2e/chat/completions",
            "/v1/files/%2E%2E/chat/completions",
            "/v1/files/.%2e/chat",
            "/v1/files/..%2fchat/completions",
            "/v1/files%2f..%2fchat",
            "/v1/files/..\\chat",
            "/v1/files/..%5cchat",
            "/v1/files/a/../../chat/completions",
        ] {
            assert!(!hit(outside), "{outside}");
        }
        // The root prefix is on every boundary, and still no dot segment.
        let root = config(vec![paths_route("root", &["/"], "u")]);
        assert!(root.route_for_path("/anything/at/all").is_some());
        assert!(root.route_for_path("/a/../b").is_none());
    }

    #[test]
    fn model_ids_are_exact_names_in_order_without_duplicates() {
        let cfg = config(vec![
            models_route("a", &["gpt-4o", "gpt-4.1*", "fast"], "openai"),
            paths_route("files", &["/v1/files"], "openai"),
            models_route("b", &["gpt-4o", "o3", "*"], "local"),
        ]);
        assert_eq!(cfg.model_ids(), ["gpt-4o", "fast", "o3"]);
    }

    #[test]
    fn authority_and_plain_paths() {
        assert_eq!(
            upstream(true, "api.openai.com", 443, "/v1").authority(),
            "api.openai.com"
        );
        assert_eq!(upstream(true, "h", 8443, "").authority(), "h:8443");
        assert_eq!(
            upstream(false, "127.0.0.1", 80, "").authority(),
            "127.0.0.1"
        );
        assert_eq!(
            upstream(false, "127.0.0.1", 443, "").authority(),
            "127.0.0.1:443"
        );
        assert_eq!(upstream(false, "::1", 11434, "").authority(), "[::1]:11434");
        let u = upstream(true, "h", 443, "/v1beta/openai");
        assert_eq!(
            u.path_for(None, "chat/completions", None),
            "/v1beta/openai/chat/completions"
        );
        assert_eq!(
            u.path_for(Some("ignored/without/placeholder"), "/models", Some("")),
            "/v1beta/openai/models",
            "a model is used only for {{model}}; an empty client query adds no ?"
        );
        assert_eq!(
            upstream(true, "h", 443, "").path_for(None, "models?x=1", None),
            "/models?x=1"
        );
        assert_eq!(upstream(true, "h", 443, "").path_for(None, "", None), "/");
    }

    #[test]
    fn debug_hides_the_api_key() {
        let u = upstream(true, "h", 443, "/v1");
        let printed = format!("{u:?} {u:#?}");
        assert!(!printed.contains("sk-very-secret"), "{printed}");
        assert!(printed.contains("api_key: Some(<redacted>)"), "{printed}");
        let mut cfg = config(vec![]);
        cfg.upstreams.insert("u".into(), Arc::new(u));
        assert!(!format!("{cfg:?}").contains("sk-very-secret"));
    }

    #[test]
    fn config_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Config>();
    }
}
