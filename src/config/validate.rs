//! Semantic checks on the raw schema, building the runtime model.
//!
//! Every check reports at the position of the offending value (looked up by key path in the
//! [`Index`]) and carries on, so one run lists every problem. Values whose `${VAR}` expansion
//! failed were reported already and are not reported again.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::base_url::parse_base_url;
use super::duration::{parse_duration, DurationError};
use super::error::Problems;
use super::model::{
    Config, HealthCheck, ModelPattern, RetryOn, Route, RouteMatch, Target, Upstream, UpstreamApi,
    UpstreamAuth, MODEL_PLACEHOLDER,
};
use super::model::{RateLimitBackend, RateLimitConfig, VirtualKey};
use super::schema::{
    RawConfig, RawHealthCheck, RawKey, RawPriceFile, RawPrices, RawRateLimit, RawRoute, RawTarget,
    RawUpstream,
};
use super::suggest::closest;
use super::tree::{child_path, item_path, quote, Index};
use crate::limits::{KeySecret, KeyStore, LimitSpec, OnBackendError};
use crate::redact::{CategoryActions, PolicyError, PolicySpec, Redactor};
use crate::spend::{PriceEntry, PriceTable};
use crate::telemetry::{TelemetryError, TraceSpec};

use super::schema::{RawCategoryActions, RawRedaction};

/// `base` with the parts `raw` names replaced (actions merged by detector, custom detectors
/// and allow-list entries added).
fn apply_redaction(mut base: PolicySpec, raw: Option<&RawRedaction>) -> PolicySpec {
    let Some(raw) = raw else {
        return base;
    };
    let merge = |base: CategoryActions, raw: &Option<RawCategoryActions>| match raw {
        None => base,
        Some(r) => CategoryActions {
            secrets: r.secrets.unwrap_or(base.secrets),
            pii: r.pii.unwrap_or(base.pii),
        },
    };
    base.request = merge(base.request, &raw.request);
    base.response = merge(base.response, &raw.response);
    if let Some(actions) = &raw.actions {
        base.actions
            .extend(actions.iter().map(|(k, v)| (k.clone(), *v)));
    }
    if let Some(detectors) = &raw.detectors {
        for d in detectors {
            base.detectors.retain(|existing| existing.name != d.name);
            base.detectors.push(d.clone());
        }
    }
    if let Some(allow) = &raw.allow {
        base.allow.extend(allow.iter().cloned());
    }
    if let Some(key) = &raw.hash_key {
        base.hash_key = key.clone().into_bytes();
    }
    base
}

/// Checks `raw` and builds the [`Config`]; `None` when anything was reported.
pub(crate) fn validate(raw: RawConfig, index: &Index, problems: &mut Problems) -> Option<Config> {
    let mut checker = Checker { index, problems };
    checker.config(raw)
}

/// Checks a price table file and returns its date and entries; `None` when anything was
/// reported.
pub(crate) fn validate_price_file(
    raw: RawPriceFile,
    index: &Index,
    problems: &mut Problems,
) -> Option<(String, Vec<PriceEntry>)> {
    let mut checker = Checker { index, problems };
    let taken = checker.required_text(
        raw.taken,
        "taken",
        "write the date the prices were taken, like 2025-12-01",
    );
    let taken = taken.filter(|t| {
        let ok = t.len() == 10
            && t.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !ok {
            checker.report("taken", "must be a date written YYYY-MM-DD");
        }
        ok
    });
    let entries = checker.prices(raw.models.unwrap_or_default(), "models");
    Some((taken?, entries?))
}

struct Checker<'a> {
    index: &'a Index,
    problems: &'a mut Problems,
}

/// The names under `upstreams:`, known before any upstream is validated, so that routes are
/// checked even when an upstream has problems.
struct UpstreamNames {
    /// Every name, sorted.
    all: Vec<String>,
    /// Those whose url has `{model}`: they need a model, so `paths:` routes cannot use them.
    with_model: Vec<String>,
}

/// `retry_on:` conditions, as written.
const RETRY_CONDITIONS: [&str; 4] = ["connect", "timeout", "429", "5xx"];

/// Headers the gateway itself writes (framing, routing, hop-by-hop): never an `auth_header`.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

impl Checker<'_> {
    fn report(&mut self, path: &str, message: impl Into<String>) {
        if !self.index.failed(path) && !self.problems.is_quiet(path) {
            self.problems.push(self.index.pos(path), path, message);
        }
    }

    /// Quotes the value at `path` for a message (an expanded value by its `${VAR}` source).
    fn show(&self, path: &str, value: &str) -> String {
        self.index.show(path, value)
    }

    /// A required, non-blank string; reports it missing or empty (with `hint`) otherwise.
    fn required_text(&mut self, value: Option<String>, path: &str, hint: &str) -> Option<String> {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            return Some(value);
        }
        let message = match self.index.get(path) {
            Some(found) => match &found.source {
                Some(source) => format!("is empty (the expansion of {}); {hint}", quote(source)),
                None => format!("is empty; {hint}"),
            },
            None => {
                let key = path.rsplit('.').next().unwrap_or(path);
                format!("missing required key `{key}`; {hint}")
            }
        };
        self.report(path, message);
        None
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let environment = self.required_text(
            raw.environment,
            "environment",
            "set a label such as production or development",
        );
        let listen = self
            .required_text(
                raw.listen,
                "listen",
                "set the address to serve on, like 0.0.0.0:8080",
            )
            .and_then(|text| self.socket_addr(&text, "listen"));
        let admin = match raw.admin.filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(text) => self.socket_addr(&text, "admin").map(Some).ok_or(()),
        };
        if let (Some(listen), Ok(Some(admin))) = (listen, admin) {
            if overlap(listen, admin) {
                self.report("admin", "uses the same port as listen; pick another port");
            }
        }
        let max_body_bytes = self.max_body_bytes(raw.max_body_bytes);
        let max_buffered_bytes = self.max_buffered_bytes(raw.max_buffered_bytes, max_body_bytes);
        let shutdown_grace = self.duration(
            raw.shutdown_grace,
            "shutdown_grace",
            Config::DEFAULT_SHUTDOWN_GRACE,
        );
        let client_timeout = self.duration(
            raw.client_timeout,
            "client_timeout",
            Config::DEFAULT_CLIENT_TIMEOUT,
        );
        let upstream_names = UpstreamNames {
            all: raw
                .upstreams
                .iter()
                .flat_map(|u| u.keys().cloned())
                .collect(),
            with_model: raw
                .upstreams
                .iter()
                .flatten()
                .filter(|(_, u)| {
                    u.url
                        .as_deref()
                        .is_some_and(|url| url.contains(MODEL_PLACEHOLDER))
                })
                .map(|(name, _)| name.clone())
                .collect(),
        };
        let upstreams = self.upstreams(raw.upstreams);
        let mut raw_routes = raw.routes;
        let route_policies: Vec<Option<RawRedaction>> = raw_routes
            .iter_mut()
            .flatten()
            .map(|r| r.redaction.take())
            .collect();
        let routes = self.routes(raw_routes, &upstream_names);
        let keys = self.keys(raw.keys.unwrap_or_default());
        let rate_limit = self.rate_limit(raw.rate_limit);
        let traces = self.traces(raw.telemetry.and_then(|t| t.traces));
        let prices = self.prices(raw.prices.unwrap_or_default(), "prices");
        if let (Some(routes), Some(keys)) = (&routes, &keys) {
            self.unserved_key_models(routes, keys);
            if let (Some(environment), Some(traces)) = (&environment, &traces) {
                self.unused_trace_environments(environment, routes, keys, traces);
            }
        }
        let redaction_spec = apply_redaction(PolicySpec::default(), raw.redaction.as_ref());
        let redaction = self.redactor(&redaction_spec, "redaction");
        let routes = match (routes, &redaction) {
            (Some(mut routes), Some(_)) => {
                for (i, raw_policy) in route_policies.iter().enumerate() {
                    if let (Some(route), Some(raw_policy)) = (routes.get_mut(i), raw_policy) {
                        let spec = apply_redaction(redaction_spec.clone(), Some(raw_policy));
                        route.redaction =
                            self.redactor(&spec, &child_path(&item_path("routes", i), "redaction"));
                    }
                }
                Some(routes)
            }
            (routes, _) => routes,
        };
        Some(Config {
            environment: environment?,
            listen: listen?,
            admin: admin.ok()?,
            max_body_bytes: max_body_bytes?,
            max_buffered_bytes: max_buffered_bytes?,
            shutdown_grace: shutdown_grace?,
            client_timeout: client_timeout?,
            keys: keys?,
            rate_limit: rate_limit?,
            traces: traces?,
            redaction: redaction?,
            redaction_policy: redaction_spec,
            upstreams: upstreams?,
            routes: routes?,
            prices: PriceTable::new(prices?),
        })
    }

    /// Price entries (`prices:`, or the built-in table's `models:`): a valid name or glob,
    /// and every price a finite number of dollars, 0 or more.
    fn prices(&mut self, raw: RawPrices, parent: &str) -> Option<Vec<PriceEntry>> {
        let mut entries = Vec::with_capacity(raw.0.len());
        let mut complete = true;
        for (name, price) in raw.0 {
            let path = child_path(parent, &name);
            let pattern = match ModelPattern::new(&name) {
                Ok(pattern) => Some(pattern),
                Err(e) => {
                    self.report(&path, format!("is not a valid model name or glob: {e}"));
                    None
                }
            };
            let mut valid = true;
            for (field, value) in price.fields() {
                if let Some(v) = value.filter(|v| !v.is_finite() || *v < 0.0) {
                    self.report(
                        &child_path(&path, field),
                        format!("{v} is not a price: write USD per million tokens, 0 or more (like 2.50)"),
                    );
                    valid = false;
                }
            }
            if price.max_output_tokens == Some(0) {
                self.report(
                    &child_path(&path, "max_output_tokens"),
                    "must be at least 1 (leave it out when unknown)",
                );
                valid = false;
            }
            match pattern {
                Some(pattern) if valid => entries.push(PriceEntry::new(pattern, price)),
                _ => complete = false,
            }
        }
        complete.then_some(entries)
    }

    /// A key's `models:` entry that no `models:` route serves: the key's app would get 404 for
    /// it, so it is most likely a typo. An exact name must be matched by a route; a glob must
    /// match a route's exact name or be a route's own glob, unless some route has another glob
    /// (two globs may overlap in ways not worth deciding here).
    fn unserved_key_models(&mut self, routes: &[Route], keys: &[VirtualKey]) {
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

    /// A `telemetry.traces.environments.<name>` that no traffic is labelled with: its spans
    /// would go to the default exporter instead (a typo such as `stagign` sends staging traces
    /// to another collector). A name close to a label in use is always reported. When the
    /// top-level `environment` comes from `${VAR}` (one file for several deployments), other
    /// unused names are accepted: another deployment of the same file uses them.
    fn unused_trace_environments(
        &mut self,
        environment: &str,
        routes: &[Route],
        keys: &[VirtualKey],
        traces: &TraceSpec,
    ) {
        let mut used: Vec<&str> = vec![environment];
        used.extend(routes.iter().filter_map(|r| r.environment.as_deref()));
        used.extend(keys.iter().filter_map(|k| k.environment.as_deref()));
        used.sort_unstable();
        used.dedup();
        let shared_file = self
            .index
            .get("environment")
            .is_some_and(|found| found.source.is_some());
        for name in traces.environments.keys() {
            if used.contains(&name.as_str()) {
                continue;
            }
            let path = child_path("telemetry.traces.environments", name);
            let labels = used.iter().map(|u| quote(u)).collect::<Vec<_>>().join(", ");
            match closest(name, used.iter().copied()) {
                Some(similar) => {
                    let message = format!(
                        "no traffic is labelled {} (the labels in use are {labels}); did you mean {}?",
                        quote(name),
                        quote(similar)
                    );
                    self.report(&path, message);
                }
                None if !shared_file => {
                    let message = format!(
                        "no traffic is labelled {} (the labels in use are {labels}: the top-level environment and the routes' and keys' environment); its spans would go to the default exporter",
                        quote(name)
                    );
                    self.report(&path, message);
                }
                None => {}
            }
        }
    }

    fn socket_addr(&mut self, text: &str, path: &str) -> Option<SocketAddr> {
        if let Ok(addr) = text.parse() {
            return Some(addr);
        }
        let mut message = format!(
            "expected an IP address and port like 0.0.0.0:8080 or [::]:8080, found {}",
            self.show(path, text)
        );
        if text.starts_with("localhost") {
            message.push_str("; write 127.0.0.1 for localhost (host names are not resolved)");
        }
        self.report(path, message);
        None
    }

    fn max_body_bytes(&mut self, value: Option<u64>) -> Option<usize> {
        match value.map(usize::try_from) {
            None => Some(Config::DEFAULT_MAX_BODY_BYTES),
            Some(Ok(0)) => {
                self.report(
                    "max_body_bytes",
                    "must be greater than 0 (the default is 33554432, 32 MiB)",
                );
                None
            }
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                self.report("max_body_bytes", "is too large for this platform");
                None
            }
        }
    }

    /// `max_buffered_bytes`: more than 0, and room for at least one body of `max_body_bytes`
    /// (when that is valid).
    fn max_buffered_bytes(
        &mut self,
        value: Option<u64>,
        max_body_bytes: Option<usize>,
    ) -> Option<usize> {
        const PATH: &str = "max_buffered_bytes";
        let n = match value.map(usize::try_from) {
            None => Config::DEFAULT_MAX_BUFFERED_BYTES,
            Some(Ok(0)) => {
                self.report(
                    PATH,
                    "must be greater than 0 (the default is 268435456, 256 MiB)",
                );
                return None;
            }
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                self.report(PATH, "is too large for this platform");
                return None;
            }
        };
        match max_body_bytes {
            Some(body) if n < body => {
                if value.is_some() {
                    self.report(PATH, format!(
                        "is {n}, less than max_body_bytes ({body}): a body of the largest accepted size could never be read; raise it to at least {body}"
                    ));
                } else {
                    self.report("max_body_bytes", format!(
                        "is {body}, more than max_buffered_bytes (not set: 268435456, 256 MiB), the most request bytes buffered at once; set max_buffered_bytes to at least {body}"
                    ));
                }
                None
            }
            _ => Some(n),
        }
    }

    fn upstreams(
        &mut self,
        raw: Option<BTreeMap<String, RawUpstream>>,
    ) -> Option<BTreeMap<String, Arc<Upstream>>> {
        const HINT: &str = "define at least one, like `openai: {url: https://api.openai.com/v1}`";
        let raw = raw.filter(|map| !map.is_empty());
        let raw = self.required_some(raw, "upstreams", HINT)?;
        let mut upstreams = BTreeMap::new();
        let mut complete = true;
        for (name, raw) in raw {
            match self.upstream(&name, raw) {
                Some(upstream) => {
                    upstreams.insert(name, Arc::new(upstream));
                }
                None => complete = false,
            }
        }
        complete.then_some(upstreams)
    }

    /// Like [`Checker::required_text`] for a collection that must be present and non-empty.
    fn required_some<T>(&mut self, value: Option<T>, path: &str, hint: &str) -> Option<T> {
        if value.is_none() {
            let message = match self.index.get(path) {
                Some(_) => format!("is empty; {hint}"),
                None => format!("missing required key `{path}`; {hint}"),
            };
            self.report(path, message);
        }
        value
    }

    fn upstream(&mut self, name: &str, raw: RawUpstream) -> Option<Upstream> {
        let path = child_path("upstreams", name);
        let at = |key: &str| child_path(&path, key);
        if name.trim().is_empty() {
            self.report(&path, "an upstream name must not be empty");
        }
        let url = self
            .required_text(
                raw.url,
                &at("url"),
                "set the API's base url, like https://api.openai.com/v1",
            )
            .and_then(|text| match parse_base_url(&text) {
                Ok(url) => Some(url),
                Err(message) => {
                    self.report(&at("url"), message);
                    None
                }
            });
        let api_key = raw.api_key.filter(|key| !key.is_empty());
        let api_key_ok = api_key
            .as_deref()
            .is_none_or(|key| key.chars().all(|c| c.is_ascii_graphic()));
        if !api_key_ok {
            let message =
                "contains spaces, control or non-ASCII characters (a trailing newline from a \
                           secrets file?); the value is not shown";
            self.report(&at("api_key"), message);
        }
        let connect_timeout = self.duration(
            raw.connect_timeout,
            &at("connect_timeout"),
            Upstream::DEFAULT_CONNECT_TIMEOUT,
        );
        let timeout = self.duration(raw.timeout, &at("timeout"), Upstream::DEFAULT_TIMEOUT);
        let idle_timeout = self.duration(
            raw.idle_timeout,
            &at("idle_timeout"),
            Upstream::DEFAULT_IDLE_TIMEOUT,
        );
        let api = match raw.api.as_deref().map(str::trim) {
            None | Some("openai") => Some(UpstreamApi::OpenAi),
            Some("anthropic") => Some(UpstreamApi::Anthropic),
            Some(other) => {
                let shown = self.show(&at("api"), other);
                self.report(
                    &at("api"),
                    format!("{shown} is not an API Veilgate speaks; write openai (the default) or anthropic"),
                );
                None
            }
        };
        let auth = match (&raw.auth_header, api) {
            (None, Some(UpstreamApi::Anthropic)) => Some(UpstreamAuth::Header("x-api-key".into())),
            _ => self.auth_header(raw.auth_header, &at("auth_header")),
        };
        let mut query = Vec::new();
        for (key, value) in raw.query.unwrap_or_default().0 {
            if key.trim().is_empty() {
                self.report(&at("query"), "has an empty parameter name");
            } else {
                query.push((key, value));
            }
        }
        let has_model_placeholder = url
            .as_ref()
            .is_some_and(|url| url.base_path.contains(MODEL_PLACEHOLDER));
        let placeholder_ok = url
            .as_ref()
            .is_none_or(|url| self.placeholders(&url.base_path, &at("url")));
        let health_check = match raw.health_check {
            None => Some(None),
            Some(check) => self
                .health_check(check, &at("health_check"), has_model_placeholder)
                .map(Some),
        };
        let url = url.filter(|_| placeholder_ok)?;
        Some(Upstream {
            name: name.to_owned(),
            tls: url.tls,
            host: url.host,
            port: url.port,
            base_path: url.base_path,
            api_key: if api_key_ok { api_key } else { None },
            connect_timeout: connect_timeout?,
            timeout: timeout?,
            idle_timeout: idle_timeout?,
            auth: auth?,
            api: api?,
            query,
            health_check: health_check?,
            owned_by: raw.owned_by.filter(|o| !o.trim().is_empty()),
            has_model_placeholder,
        })
    }

    /// `auth_header:`: absent, empty or `authorization` is the Bearer form.
    fn auth_header(&mut self, raw: Option<String>, path: &str) -> Option<UpstreamAuth> {
        let header = match raw.as_deref().map(str::trim) {
            None | Some("") => return Some(UpstreamAuth::Bearer),
            Some(h) if h.eq_ignore_ascii_case("authorization") => {
                return Some(UpstreamAuth::Bearer)
            }
            Some(h) => h,
        };
        let message = match http::HeaderName::from_bytes(header.as_bytes()) {
            Ok(name) if !RESERVED_HEADERS.contains(&name.as_str()) => {
                return Some(UpstreamAuth::Header(name.as_str().to_owned()))
            }
            Ok(_) => format!(
                "{} is a header the gateway sets itself; name the header the API reads its key \
                 from, like api-key",
                self.show(path, header)
            ),
            Err(_) => format!(
                "{} is not a valid HTTP header name; write e.g. api-key",
                self.show(path, header)
            ),
        };
        self.report(path, message);
        None
    }

    /// Reports a `{…}` other than `{model}`, or a stray brace, in an upstream url's path.
    fn placeholders(&mut self, base_path: &str, path: &str) -> bool {
        let rest = base_path.replace(MODEL_PLACEHOLDER, "");
        let Some(start) = rest.find(['{', '}']) else {
            return true;
        };
        const ONLY: &str =
            "the only placeholder allowed in an upstream url is {model} (the upstream model name)";
        let token = rest[start..]
            .strip_prefix('{')
            .and_then(|after| after.find(['}', '{', '/']).map(|end| &after[..end + 1]))
            .filter(|inner| inner.ends_with('}'))
            .map(|inner| format!("{{{inner}"));
        // An expanded url is never quoted, not even in part: it is named by its `${VAR}`.
        let expanded = self.index.get(path).is_some_and(|l| l.source.is_some());
        let message = match token {
            Some(token) if !expanded => {
                let mut message = format!("unknown placeholder {}; {ONLY}", quote(&token));
                let name = token.trim_start_matches('{').trim_end_matches('}');
                if closest(name, ["model"]).is_some() {
                    message.push_str(&format!("; did you mean {}?", quote(MODEL_PLACEHOLDER)));
                }
                message
            }
            Some(_) => format!("{} has an unknown placeholder; {ONLY}", self.show(path, "")),
            None => format!("unbalanced {{ or }} in the url path; {ONLY}"),
        };
        self.report(path, message);
        false
    }

    /// `health_check:`; on an upstream whose url has `{model}` the path is from the host's
    /// root (a check has no model to put in the url), like Azure's `/openai/models`.
    fn health_check(
        &mut self,
        raw: RawHealthCheck,
        path: &str,
        from_root: bool,
    ) -> Option<HealthCheck> {
        let at = |key: &str| child_path(path, key);
        let missing = if from_root {
            "set the path to GET; this upstream's url has {model}, so the path is from the \
             host's root, like /openai/models on Azure"
        } else {
            "set the path to GET, relative to the upstream url, like /models"
        };
        let check_path =
            self.required_text(raw.path, &at("path"), missing)
                .and_then(|text| {
                    let problem = if text.contains("://") {
                        "must be a path relative to the upstream url, like /models, not a url"
                    } else if text.chars().any(|c| {
                        c.is_whitespace() || c.is_control() || matches!(c, '#' | '{' | '}')
                    }) {
                        "must not contain spaces, control characters, braces or a fragment (#); \
                     write a path relative to the upstream url, like /models"
                    } else {
                        return Some(text.trim_start_matches('/').to_owned());
                    };
                    let message = format!("{}: {problem}", self.show(&at("path"), &text));
                    self.report(&at("path"), message);
                    None
                });
        let interval = self.duration(raw.interval, &at("interval"), HealthCheck::DEFAULT_INTERVAL);
        let timeout = self.duration(raw.timeout, &at("timeout"), HealthCheck::DEFAULT_TIMEOUT);
        Some(HealthCheck {
            path: check_path?,
            interval: interval?,
            timeout: timeout?,
        })
    }

    fn duration(
        &mut self,
        text: Option<String>,
        path: &str,
        default: Duration,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        const EXAMPLES: &str = "like 30s, 250ms, 5m or 1h";
        let message = match parse_duration(&text) {
            Ok(duration) if !duration.is_zero() => return Some(duration),
            Ok(_) => "must be greater than 0".to_owned(),
            Err(DurationError::NoUnit) => format!(
                "expected a duration {EXAMPLES}, found the bare number {}; add a unit (ms, s, m or h)",
                self.show(path, &text)
            ),
            Err(err) => format!("invalid duration {}: {err}; write it {EXAMPLES}", self.show(path, &text)),
        };
        self.report(path, message);
        None
    }

    fn routes(
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

    /// Compiles a redaction policy, reporting its problems at `path`.
    fn redactor(&mut self, spec: &PolicySpec, path: &str) -> Option<Arc<Redactor>> {
        match Redactor::new(spec) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                let at = match &e {
                    PolicyError::UnknownDetector { name } => {
                        let p = child_path(&child_path(path, "actions"), name);
                        let names: Vec<String> = Redactor::detector_names()
                            .map(str::to_owned)
                            .chain(spec.detectors.iter().map(|d| d.name.clone()))
                            .collect();
                        let mut message = format!("unknown detector {}", quote(name));
                        if let Some(similar) = closest(name, names.iter().map(String::as_str)) {
                            message.push_str(&format!(" (did you mean {}?)", quote(similar)));
                        }
                        message.push_str(&format!("; detectors: {}", names.join(", ")));
                        self.report(&p, message);
                        return None;
                    }
                    PolicyError::MissingHashKey => child_path(path, "hash_key"),
                    PolicyError::EmptyAllowEntry => child_path(path, "allow"),
                    PolicyError::InvalidPattern { detector, .. }
                    | PolicyError::EmptyMatch { detector }
                    | PolicyError::InvalidMaxLen { detector }
                    | PolicyError::DuplicateDetector { name: detector }
                    | PolicyError::InvalidName { name: detector } => {
                        let idx = spec.detectors.iter().rposition(|d| &d.name == detector);
                        match idx {
                            Some(i) => item_path(&child_path(path, "detectors"), i),
                            None => path.to_owned(),
                        }
                    }
                    _ => path.to_owned(),
                };
                let at = if self.index.get(&at).is_some() {
                    at
                } else {
                    path.to_owned()
                };
                self.report(&at, e.to_string());
                None
            }
        }
    }

    /// A `limits:` block: every figure above 0.
    fn limits(
        &mut self,
        spec: Option<LimitSpec>,
        scope: &str,
        name: &str,
        path: &str,
    ) -> Option<LimitSpec> {
        let spec = spec.unwrap_or_default();
        match spec.budgets(scope, name) {
            Ok(_) => Some(spec),
            // A budget of the wrong type was reported, and read as 0: not a second message.
            Err(_) if self.problems.is_quiet_within(path) => None,
            Err(e) => {
                self.report(
                    path,
                    format!(
                        "{e}; every limit must be at least 1 (leave a window out for no limit)"
                    ),
                );
                None
            }
        }
    }

    fn keys(&mut self, raw: Vec<RawKey>) -> Option<Vec<VirtualKey>> {
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

    fn rate_limit(&mut self, raw: Option<RawRateLimit>) -> Option<RateLimitConfig> {
        let Some(raw) = raw else {
            return Some(RateLimitConfig::default());
        };
        let backend = match raw.backend.as_deref().map(str::trim) {
            None | Some("memory") => {
                if raw.url.is_some() && raw.backend.is_none() {
                    self.report(
                        "rate_limit.url",
                        "a url is used only with backend: redis; add backend: redis",
                    );
                    None
                } else {
                    Some(RateLimitBackend::Memory)
                }
            }
            Some("redis") => match raw.url.as_deref().map(str::trim) {
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    Some(RateLimitBackend::Redis {
                        url: url.to_owned(),
                    })
                }
                Some(_) => {
                    self.report("rate_limit.url", "expected redis://host:port or rediss://host:port (the value is not shown: it may hold a password)");
                    None
                }
                None => {
                    self.report("rate_limit.url", "missing required key `url` for backend: redis; like redis://127.0.0.1:6379");
                    None
                }
            },
            Some(other) => {
                let message = format!(
                    "unknown backend {}; expected memory or redis",
                    self.show("rate_limit.backend", other)
                );
                self.report("rate_limit.backend", message);
                None
            }
        };
        let on_backend_error = match raw.on_backend_error.as_deref().map(str::trim) {
            None | Some("allow") => Some(OnBackendError::Allow),
            Some("deny") => Some(OnBackendError::Deny),
            Some(other) => {
                let message = format!(
                    "expected allow or deny, found {}",
                    self.show("rate_limit.on_backend_error", other)
                );
                self.report("rate_limit.on_backend_error", message);
                None
            }
        };
        let timeout = self.duration(raw.timeout, "rate_limit.timeout", Duration::from_millis(50));
        Some(RateLimitConfig {
            backend: backend?,
            on_backend_error: on_backend_error?,
            timeout: timeout?,
        })
    }

    fn traces(&mut self, spec: Option<TraceSpec>) -> Option<TraceSpec> {
        let spec = spec.unwrap_or_default();
        match spec.validate() {
            Ok(()) => Some(spec),
            Err(TelemetryError::InvalidTraceSpec { field, problem }) => {
                let path = if field.starts_with("telemetry.") {
                    field
                } else {
                    format!("telemetry.traces.{field}")
                };
                let at = if self.index.get(&path).is_some() {
                    path.clone()
                } else {
                    "telemetry.traces".to_owned()
                };
                self.problems.push(self.index.pos(&at), &path, problem);
                None
            }
            Err(e) => {
                self.report("telemetry.traces", e.to_string());
                None
            }
        }
    }

    /// `upstream:` xor `upstreams:`, plus `fallbacks:`; every name defined, none twice, and none
    /// with `{model}` in its url on a `paths:` route.
    fn route_upstreams(
        &mut self,
        raw: RouteUpstreams,
        path: &str,
        upstream_names: &UpstreamNames,
    ) -> (Option<Vec<Target>>, Option<Vec<String>>) {
        let RouteUpstreams {
            single,
            weighted,
            fallbacks,
            has_model,
        } = raw;
        let at = |key: &str| child_path(path, key);
        let target_names: Vec<String> = single
            .iter()
            .cloned()
            .chain(weighted.iter().flatten().filter_map(|t| t.name.clone()))
            .collect();
        let mut seen: Vec<String> = Vec::new();
        let mut ok = true;
        let mut check = |this: &mut Self, name: String, item: &str| -> Option<String> {
            let name = this.known_upstream(name, item, &upstream_names.all)?;
            if !has_model && upstream_names.with_model.contains(&name) {
                let message = format!(
                    "upstream {} has {MODEL_PLACEHOLDER} in its url, and a paths: route has no model \
                     to put there; use an upstream without {MODEL_PLACEHOLDER}",
                    quote(&name)
                );
                this.report(item, message);
                return None;
            }
            if seen.contains(&name) {
                let message = format!(
                    "upstream {} is listed twice in this route's upstreams or twice in its \
                     fallbacks; list each once (a target may be listed again in fallbacks)",
                    quote(&name)
                );
                this.report(item, message);
                return None;
            }
            seen.push(name.clone());
            Some(name)
        };
        let targets = match (single, weighted) {
            (Some(_), Some(_)) => {
                self.report(
                    &at("upstreams"),
                    "a route has either upstream: (one name) or upstreams: (a weighted list), not both",
                );
                None
            }
            (None, None) => {
                if self.index.get(&at("upstream")).is_none()
                    && self.index.get(&at("upstreams")).is_none()
                {
                    self.report(
                        &at("upstream"),
                        "missing required key `upstream`; name the upstream that serves this route (or list upstreams: with weights)",
                    );
                }
                None
            }
            (Some(name), None) => check(self, name, &at("upstream")).map(|upstream| {
                vec![Target {
                    upstream,
                    weight: 1,
                }]
            }),
            (None, Some(list)) => {
                if list.is_empty() {
                    self.report(&at("upstreams"), "is empty; list {name, weight} entries");
                    None
                } else {
                    let mut targets = Vec::with_capacity(list.len());
                    for (i, raw) in list.into_iter().enumerate() {
                        let item = item_path(&at("upstreams"), i);
                        let name = self.required_text(
                            raw.name,
                            &child_path(&item, "name"),
                            "name an upstream",
                        );
                        let weight_path = child_path(&item, "weight");
                        let weight = match raw.weight.map(u32::try_from) {
                            None => Some(1),
                            Some(Ok(w)) if w <= MAX_WEIGHT => Some(w),
                            Some(_) => {
                                let found = raw.weight.unwrap_or_default().to_string();
                                let message = format!(
                                    "expected an integer from 0 to {MAX_WEIGHT} (a relative share), found {}",
                                    self.show(&weight_path, &found)
                                );
                                self.report(&weight_path, message);
                                None
                            }
                        };
                        match (
                            name.and_then(|n| check(self, n, &child_path(&item, "name"))),
                            weight,
                        ) {
                            (Some(upstream), Some(weight)) => {
                                targets.push(Target { upstream, weight })
                            }
                            _ => ok = false,
                        }
                    }
                    if ok && targets.iter().all(|t| t.weight == 0) {
                        self.report(
                            &at("upstreams"),
                            "every weight is 0; give at least one upstream a weight above 0",
                        );
                        ok = false;
                    }
                    ok.then_some(targets)
                }
            }
        };
        let mut resolved = Vec::with_capacity(fallbacks.len());
        let mut fallbacks_ok = true;
        for (i, name) in fallbacks.into_iter().enumerate() {
            // A target listed again as a fallback (a weighted upstream that should also be
            // the last resort) is accepted: it is tried once, as a target.
            if target_names.contains(&name) {
                continue;
            }
            match check(self, name, &item_path(&at("fallbacks"), i)) {
                Some(n) => resolved.push(n),
                None => fallbacks_ok = false,
            }
        }
        (targets, fallbacks_ok.then_some(resolved))
    }

    fn retry_on(&mut self, raw: Option<Vec<String>>, path: &str) -> Option<RetryOn> {
        let Some(items) = raw else {
            return Some(RetryOn::default());
        };
        let mut retry = RetryOn::NONE;
        let mut ok = true;
        // `429` is usually a plain integer in YAML: the deserializer hands it over as its text.
        for (i, item) in items.iter().enumerate() {
            match item.trim() {
                "connect" => retry.connect = true,
                "timeout" => retry.timeout = true,
                "429" => retry.too_many_requests = true,
                "5xx" => retry.server_error = true,
                other => {
                    let item_path = item_path(path, i);
                    let mut message = format!(
                        "unknown retry condition {}; expected connect, timeout, 429 or 5xx",
                        self.show(&item_path, other)
                    );
                    if let Some(similar) = closest(other, RETRY_CONDITIONS) {
                        message.push_str(&format!("; did you mean {}?", quote(similar)));
                    }
                    self.report(&item_path, message);
                    ok = false;
                }
            }
        }
        ok.then_some(retry)
    }

    fn known_upstream(
        &mut self,
        name: String,
        path: &str,
        upstream_names: &[String],
    ) -> Option<String> {
        if upstream_names.contains(&name) {
            return Some(name);
        }
        if upstream_names.is_empty() {
            return None; // Already reported: upstreams is missing or empty.
        }
        let mut message = format!(
            "unknown upstream {}; defined upstreams: {}",
            self.show(path, &name),
            upstream_names.join(", ")
        );
        if let Some(similar) = closest(&name, upstream_names.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean {}?", quote(similar)));
        }
        self.report(path, message);
        None
    }

    fn models(&mut self, models: Vec<String>, path: &str) -> Option<RouteMatch> {
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

    fn paths(&mut self, paths: Vec<String>, path: &str) -> Option<RouteMatch> {
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

/// A route's upstream keys, as written.
struct RouteUpstreams {
    single: Option<String>,
    weighted: Option<Vec<RawTarget>>,
    fallbacks: Vec<String>,
    /// A `models:` route (there is a model to put in `{model}`).
    has_model: bool,
}

/// The largest `weight:` of a route's upstream.
const MAX_WEIGHT: u32 = 1000;

/// Whether two listening addresses would clash: same port, and the same or a wildcard IP.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// A route's name when `name:` is absent: its first model pattern or path.
fn default_route_name(matcher: &RouteMatch) -> String {
    match matcher {
        RouteMatch::Models(patterns) => patterns.first().map(|p| p.pattern.clone()),
        RouteMatch::Paths(paths) => paths.first().cloned(),
    }
    .unwrap_or_default()
}
