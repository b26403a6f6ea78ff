//! `upstreams:`: each upstream's url, key, timeouts, API, auth header, query and health check.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Checker;
use crate::config::base_url::parse_base_url;
use crate::config::model::{HealthCheck, Upstream, UpstreamApi, UpstreamAuth, MODEL_PLACEHOLDER};
use crate::config::schema::{RawHealthCheck, RawUpstream};
use crate::config::suggest::closest;
use crate::config::tree::{child_path, quote};

/// The names under `upstreams:`, known before any upstream is validated, so that routes are
/// checked even when an upstream has problems.
pub(super) struct UpstreamNames {
    /// Every name, sorted.
    pub(super) all: Vec<String>,
    /// Those whose url has `{model}`: they need a model, so `paths:` routes cannot use them.
    pub(super) with_model: Vec<String>,
}

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
    pub(super) fn upstreams(
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
}
