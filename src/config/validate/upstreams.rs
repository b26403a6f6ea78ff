//! `upstreams:`: each upstream's url, key, timeouts, API, auth header, query and health check.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Checker;
use crate::config::base_url::parse_base_url;
use crate::config::error::Pos;
use crate::config::located::Located;
use crate::config::model::{HealthCheck, Upstream, UpstreamApi, UpstreamAuth, MODEL_PLACEHOLDER};
use crate::config::schema::{RawHealthCheck, RawUpstream, RawUpstreams};
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

impl UpstreamNames {
    /// The names in `upstreams:` as written.
    pub(super) fn of(raw: Option<&Located<Option<RawUpstreams>>>) -> Self {
        let upstreams = raw.and_then(|u| u.value.as_ref());
        UpstreamNames {
            all: upstreams.iter().flat_map(|u| u.keys().cloned()).collect(),
            with_model: upstreams
                .iter()
                .flat_map(|u| u.iter())
                .filter(|(_, u)| {
                    u.value
                        .url
                        .as_ref()
                        .and_then(|url| url.value.as_deref())
                        .is_some_and(|url| url.contains(MODEL_PLACEHOLDER))
                })
                .map(|(name, _)| name.clone())
                .collect(),
        }
    }
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
    /// `upstreams:`: required, at least one, each valid.
    pub(super) fn upstreams(
        &mut self,
        raw: Option<Located<Option<RawUpstreams>>>,
        root: Pos,
    ) -> Option<BTreeMap<String, Arc<Upstream>>> {
        const HINT: &str = "define at least one, like `openai: {url: https://api.openai.com/v1}`";
        let raw = raw.map(|u| u.map(|map| map.filter(|map| !map.is_empty())));
        let raw = self.required_some(raw, root, "upstreams", HINT)?;
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

    fn upstream(&mut self, name: &str, raw: Located<RawUpstream>) -> Option<Upstream> {
        let path = child_path("upstreams", name);
        let at = |key: &str| child_path(&path, key);
        if name.trim().is_empty() {
            self.report(&raw, &path, "an upstream name must not be empty");
        }
        let (pos, raw) = (raw.pos, raw.value);
        let url_text = self.required_text(
            raw.url,
            pos,
            &at("url"),
            "set the API's base url, like https://api.openai.com/v1",
        );
        let url = url_text
            .as_ref()
            .and_then(|text| match parse_base_url(&text.value) {
                Ok(url) => Some(url),
                Err(message) => {
                    self.report(text, &at("url"), message);
                    None
                }
            });
        let api_key = raw.api_key.filter(|key| !key.value.is_empty());
        let api_key_ok = api_key
            .as_ref()
            .is_none_or(|key| key.value.chars().all(|c| c.is_ascii_graphic()));
        if let (false, Some(key)) = (api_key_ok, &api_key) {
            let message =
                "contains spaces, control or non-ASCII characters (a trailing newline from a \
                           secrets file?); the value is not shown";
            self.report(key, &at("api_key"), message);
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
        let api = match &raw.api {
            None => Some(UpstreamApi::OpenAi),
            Some(api) => match api.value.trim() {
                "openai" => Some(UpstreamApi::OpenAi),
                "anthropic" => Some(UpstreamApi::Anthropic),
                other => {
                    let shown = api.show(other);
                    self.report(
                        api,
                        &at("api"),
                        format!("{shown} is not an API Veilgate speaks; write openai (the default) or anthropic"),
                    );
                    None
                }
            },
        };
        let auth = match (&raw.auth_header, api) {
            (None, Some(UpstreamApi::Anthropic)) => Some(UpstreamAuth::Header("x-api-key".into())),
            _ => self.auth_header(raw.auth_header, &at("auth_header")),
        };
        let mut query = Vec::new();
        if let Some(pairs) = raw.query {
            let written = pairs.at();
            for (key, value) in pairs.value.0 {
                if key.trim().is_empty() {
                    self.report(&written, &at("query"), "has an empty parameter name");
                } else {
                    query.push((key, value));
                }
            }
        }
        let has_model_placeholder = url
            .as_ref()
            .is_some_and(|url| url.base_path.contains(MODEL_PLACEHOLDER));
        let placeholder_ok = match (&url, &url_text) {
            (Some(url), Some(text)) => self.placeholders(&url.base_path, text, &at("url")),
            _ => true,
        };
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
            api_key: api_key.filter(|_| api_key_ok).map(|key| key.value),
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
    fn auth_header(&mut self, raw: Option<Located<String>>, path: &str) -> Option<UpstreamAuth> {
        let Some(raw) = raw else {
            return Some(UpstreamAuth::Bearer);
        };
        let header = match raw.value.trim() {
            "" => return Some(UpstreamAuth::Bearer),
            h if h.eq_ignore_ascii_case("authorization") => return Some(UpstreamAuth::Bearer),
            h => h,
        };
        let message = match http::HeaderName::from_bytes(header.as_bytes()) {
            Ok(name) if !RESERVED_HEADERS.contains(&name.as_str()) => {
                return Some(UpstreamAuth::Header(name.as_str().to_owned()))
            }
            Ok(_) => format!(
                "{} is a header the gateway sets itself; name the header the API reads its key \
                 from, like api-key",
                raw.show(header)
            ),
            Err(_) => format!(
                "{} is not a valid HTTP header name; write e.g. api-key",
                raw.show(header)
            ),
        };
        self.report(&raw, path, message);
        None
    }

    /// Reports a `{…}` other than `{model}`, or a stray brace, in an upstream url's path.
    fn placeholders(&mut self, base_path: &str, url: &Located<String>, path: &str) -> bool {
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
        let expanded = url.source.is_some();
        let message = match token {
            Some(token) if !expanded => {
                let mut message = format!("unknown placeholder {}; {ONLY}", quote(&token));
                let name = token.trim_start_matches('{').trim_end_matches('}');
                if closest(name, ["model"]).is_some() {
                    message.push_str(&format!("; did you mean {}?", quote(MODEL_PLACEHOLDER)));
                }
                message
            }
            Some(_) => format!("{} has an unknown placeholder; {ONLY}", url.show("")),
            None => format!("unbalanced {{ or }} in the url path; {ONLY}"),
        };
        self.report(url, path, message);
        false
    }

    /// `health_check:`; on an upstream whose url has `{model}` the path is from the host's
    /// root (a check has no model to put in the url), like Azure's `/openai/models`.
    fn health_check(
        &mut self,
        raw: Located<RawHealthCheck>,
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
        let (pos, raw) = (raw.pos, raw.value);
        let check_path =
            self.required_text(raw.path, pos, &at("path"), missing)
                .and_then(|text| {
                    let problem = if text.value.contains("://") {
                        "must be a path relative to the upstream url, like /models, not a url"
                    } else if text.value.chars().any(|c| {
                        c.is_whitespace() || c.is_control() || matches!(c, '#' | '{' | '}')
                    }) {
                        "must not contain spaces, control characters, braces or a fragment (#); \
                     write a path relative to the upstream url, like /models"
                    } else {
                        return Some(text.value.trim_start_matches('/').to_owned());
                    };
                    let message = format!("{}: {problem}", text.show(&text.value));
                    self.report(&text, &at("path"), message);
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
