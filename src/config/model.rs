//! The validated runtime configuration: what the proxy uses. It never sees the raw YAML schema.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use globset::{Glob, GlobMatcher};

use crate::limits::{KeySecret, LimitSpec, OnBackendError};
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
    /// How long SIGTERM waits for requests in flight before the process exits.
    pub shutdown_grace: Duration,
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
#[derive(Clone)]
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
    /// `shutdown_grace` when the file does not set it.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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

/// Whether `prefix` is `path` or a parent of it, on a `/` boundary.
fn has_path_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'),
        None => false,
    }
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
    /// The url's path without a trailing slash: `""` or like `/v1`.
    pub base_path: String,
    /// Sent as `Authorization: Bearer …`; `None` when absent or empty. Never printed.
    pub api_key: Option<String>,
    /// Longest wait to open a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the first response byte.
    pub timeout: Duration,
    /// Longest silence inside a response (between stream events).
    pub idle_timeout: Duration,
    /// How the key is sent.
    pub auth: UpstreamAuth,
    /// Query parameters added to every request (`api-version` for Azure).
    pub query: Vec<(String, String)>,
    /// Optional active health check.
    pub health_check: Option<HealthCheck>,
    /// Whether `base_path` contains `{model}`.
    pub has_model_placeholder: bool,
}

/// How an upstream's `api_key` is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// `Authorization: Bearer <key>` (OpenAI and most compatible APIs).
    Bearer,
    /// The key as the value of this (lowercase) header, e.g. Azure's `api-key`.
    Header(String),
}

/// An active health check: `GET <url>/<path>` every `interval`; a 2xx within `timeout` passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Relative to the upstream url, like `models`.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Longest wait for an answer.
    pub timeout: Duration,
}

/// Characters escaped when a model name is put into a url path: everything but RFC 3986
/// unreserved characters, so a model name cannot add path segments or a query.
const MODEL_IN_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// Characters escaped in configured query keys and values.
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

    /// The upstream request path for `rest`, the client path after `/v1/`:
    /// `url_for("chat/completions")` is `/v1/chat/completions` for a base path of `/v1`.
    /// A query string in `rest` is kept.
    pub fn url_for(&self, rest: &str) -> String {
        self.path_for(None, rest, None)
    }

    /// The upstream request path and query: the base path with `{model}` replaced by `model`
    /// (percent-encoded), then `/` + `rest`, then the client's query followed by the
    /// configured `query:` pairs.
    pub fn path_for(&self, model: Option<&str>, rest: &str, client_query: Option<&str>) -> String {
        let base = if self.has_model_placeholder {
            let encoded = percent_encoding::utf8_percent_encode(model.unwrap_or(""), MODEL_IN_PATH)
                .to_string();
            self.base_path.replace("{model}", &encoded)
        } else {
            self.base_path.clone()
        };
        let mut path = format!("{base}/{}", rest.trim_start_matches('/'));
        let mut separator = if path.contains('?') { '&' } else { '?' };
        if let Some(q) = client_query.filter(|q| !q.is_empty()) {
            path.push(separator);
            path.push_str(q);
            separator = '&';
        }
        for (key, value) in &self.query {
            path.push(separator);
            path.extend(percent_encoding::utf8_percent_encode(key, QUERY));
            path.push('=');
            path.extend(percent_encoding::utf8_percent_encode(value, QUERY));
            separator = '&';
        }
        path
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
            .finish()
    }
}

/// Sends matching requests to one upstream.
#[derive(Debug, Clone)]
pub struct Route {
    /// Unique; `name:` or, by default, the first model pattern or path. A metrics label.
    pub name: String,
    /// What the route matches.
    pub matcher: RouteMatch,
    /// The upstreams to choose from by weight (`upstream:` is one target of weight 1).
    pub targets: Vec<Target>,
    /// Tried in order after the targets, when an attempt fails as `retry_on` says.
    pub fallbacks: Vec<String>,
    /// Which failures move on to the next candidate.
    pub retry_on: RetryOn,
    /// For `models:` routes: the model name the upstream sees (the client keeps its own).
    pub model: Option<String>,
    /// This route's traffic environment label, if it sets one.
    pub environment: Option<String>,
    /// The route-wide budget (shared by all keys; per client IP when the gateway runs open).
    pub limits: LimitSpec,
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
    /// Relative share of first attempts (0 = only as a retry).
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
            query: Vec::new(),
            health_check: None,
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

    fn config(routes: Vec<Route>) -> Config {
        Config {
            environment: "test".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: None,
            max_body_bytes: 1024,
            shutdown_grace: Config::DEFAULT_SHUTDOWN_GRACE,
            keys: Vec::new(),
            rate_limit: RateLimitConfig::default(),
            traces: TraceSpec::default(),
            upstreams: BTreeMap::new(),
            routes,
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
    fn model_ids_are_exact_names_in_order_without_duplicates() {
        let cfg = config(vec![
            models_route("a", &["gpt-4o", "gpt-4.1*", "fast"], "openai"),
            paths_route("files", &["/v1/files"], "openai"),
            models_route("b", &["gpt-4o", "o3", "*"], "local"),
        ]);
        assert_eq!(cfg.model_ids(), ["gpt-4o", "fast", "o3"]);
    }

    #[test]
    fn authority_and_url_for() {
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
            u.url_for("chat/completions"),
            "/v1beta/openai/chat/completions"
        );
        assert_eq!(
            upstream(true, "h", 443, "").url_for("models?x=1"),
            "/models?x=1"
        );
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
