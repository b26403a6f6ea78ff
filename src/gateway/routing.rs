//! Which request this is and where it goes: the client's API (for the shape of its errors),
//! its virtual key, what its method and path ask for, the route that serves it, and the
//! environment its telemetry belongs to. Pure functions of the header and the configuration.

use std::sync::Arc;

use pingora_http::RequestHeader;

use super::upstream;
use crate::config::{Config, Route, RouteMatch};
use crate::runtime::{KeyEntry, Runtime};
use crate::wire::{ApiError, Endpoint};

/// What a request's method and (canonical) path ask for.
#[derive(Debug)]
pub enum Dispatch<'a> {
    /// `GET /v1/models` (`None`) or `GET /v1/models/{id}`.
    Models(Option<&'a str>),
    /// A `POST` to an endpoint routed by the `model` in its body.
    Model(Endpoint),
    /// A `paths:` route: the first in file order with a prefix of the path.
    Path(&'a Route),
}

/// The virtual key of a request, when keys are configured (`None` when they are not).
///
/// # Errors
/// 401 when keys are configured and the request carries none, or one that is not configured
/// (the message says which, never the key).
pub fn authenticate(
    runtime: &Runtime,
    header: &RequestHeader,
) -> Result<Option<Arc<KeyEntry>>, ApiError> {
    if !runtime.requires_keys() {
        return Ok(None);
    }
    let presented = upstream::presented_key(header);
    match presented.and_then(|k| runtime.keys.authenticate(k)) {
        Some(entry) => Ok(Some(entry.clone())),
        None => Err(ApiError::invalid_api_key(presented.is_some())),
    }
}

/// What `method` on `path` asks for.
///
/// # Errors
/// 405 for a method the path does not take, 404 for a path nothing serves.
pub fn dispatch<'a>(
    config: &'a Config,
    method: &http::Method,
    path: &'a str,
) -> Result<Dispatch<'a>, ApiError> {
    if path == "/v1/models" || path.starts_with("/v1/models/") {
        if method != http::Method::GET {
            return Err(ApiError::method_not_allowed(method.as_str(), path, "GET"));
        }
        return Ok(Dispatch::Models(path.strip_prefix("/v1/models/")));
    }
    if let Some(endpoint) = Endpoint::from_path(path) {
        if method != http::Method::POST {
            return Err(ApiError::method_not_allowed(method.as_str(), path, "POST"));
        }
        return Ok(Dispatch::Model(endpoint));
    }
    if let Some(route) = config.route_for_path(path) {
        return Ok(Dispatch::Path(route));
    }
    Err(ApiError::unknown_url(method.as_str(), path))
}

/// The first route, in file order, that matches: a `models:` route by the model, a `paths:`
/// route by the path. Also returns the label metrics use for the model: the pattern that
/// matched (a glob stays a glob, so clients cannot create label values).
pub fn select_route<'a>(
    config: &'a Config,
    path: &str,
    model: &str,
) -> Option<(&'a Route, String)> {
    let path_route = config.route_for_path(path);
    config.routes.iter().find_map(|route| match &route.matcher {
        RouteMatch::Models(patterns) => patterns
            .iter()
            .find(|p| p.matches(model))
            .map(|p| (route, p.pattern.clone())),
        RouteMatch::Paths(_) => path_route
            .filter(|p| std::ptr::eq(*p, route))
            .map(|r| (r, r.name.clone())),
    })
}

/// The environment a request belongs to: its key's, else its route's, else the config's —
/// the one rule for every request, routed or not, so a key's traffic is never exported to
/// another environment's trace backend.
pub fn environment_of(key: Option<&KeyEntry>, route: Option<&Route>, config: &Config) -> String {
    key.and_then(|k| k.key.environment.clone())
        .or_else(|| route.and_then(|r| r.environment.clone()))
        .unwrap_or_else(|| config.environment.clone())
}

/// `/v1/files/abc` → `files/abc`: the part below the SDK base URL.
pub fn rest_of(path: &str) -> &str {
    path.strip_prefix("/v1/")
        .or_else(|| path.strip_prefix('/'))
        .unwrap_or(path)
}

/// The media type of a `Content-Type`, lower-case, without parameters.
pub fn media_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Runtime;
    use crate::wire::ErrorShape;

    const CONFIG: &str = r#"
listen: 127.0.0.1:0
environment: prod
upstreams:
  openai: {url: "https://api.openai.com/v1", api_key: "${OPENAI_KEY}"}
  local: {url: "http://127.0.0.1:9/v1"}
routes:
  - name: files
    paths: ["/v1/files"]
    upstreams: [{name: openai}]
    environment: batch
  - name: gpt
    models: ["gpt-4o", "gpt-4.1*"]
    upstreams: [{name: openai}]
  - name: rest
    models: ["*"]
    upstreams: [{name: local}]
    environment: lab
keys:
  - name: team-a
    key: ${TEAM_A}
    environment: staging
  - name: team-b
    key: ${TEAM_B}
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "OPENAI_KEY" => Some("sk-upstream-0123456789abcdef".into()),
            "TEAM_A" => Some("vg-team-a-0123456789abcdef".into()),
            "TEAM_B" => Some("vg-team-b-0123456789abcdef".into()),
            _ => None,
        }
    }

    fn runtime() -> Runtime {
        Runtime::build(crate::config::load_str(CONFIG, "test.yaml", &env).expect("config")).unwrap()
    }

    fn header(pairs: &[(&str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        for (k, v) in pairs {
            h.insert_header(k.to_string(), *v).unwrap();
        }
        h
    }

    #[test]
    fn a_configured_key_is_accepted_from_every_header_sdks_send_it_in() {
        let rt = runtime();
        for (name, value) in [
            ("authorization", "Bearer vg-team-a-0123456789abcdef"),
            ("api-key", "vg-team-a-0123456789abcdef"),
            ("x-api-key", "vg-team-a-0123456789abcdef"),
        ] {
            let entry = authenticate(&rt, &header(&[(name, value)]))
                .expect("accepted")
                .expect("a key");
            assert_eq!(entry.key.name, "team-a", "{name}");
        }
    }

    #[test]
    fn a_missing_or_unknown_key_is_a_401_that_never_echoes_the_key() {
        let rt = runtime();
        let missing = authenticate(&rt, &header(&[])).unwrap_err();
        assert_eq!(
            (missing.status, missing.code),
            (401, Some("invalid_api_key"))
        );
        let wrong = authenticate(
            &rt,
            &header(&[("authorization", "Bearer vg-guessed-secret-value")]),
        )
        .unwrap_err();
        assert_eq!(wrong.status, 401);
        assert_ne!(missing.message, wrong.message, "says which of the two");
        assert!(!wrong.message.contains("vg-guessed-secret-value"));
        // The upstream's own key is not a virtual key.
        let upstream_key = authenticate(
            &rt,
            &header(&[("authorization", "Bearer sk-upstream-0123456789abcdef")]),
        );
        assert!(upstream_key.is_err());
    }

    #[test]
    fn without_keys_every_request_is_open() {
        let config =
            crate::config::load_str(&CONFIG[..CONFIG.find("keys:").unwrap()], "test.yaml", &env)
                .expect("config");
        let rt = Runtime::build(config).unwrap();
        assert!(authenticate(&rt, &header(&[])).unwrap().is_none());
        assert!(
            authenticate(&rt, &header(&[("authorization", "Bearer anything")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn dispatch_by_method_and_path() {
        let rt = runtime();
        let c = &rt.config;
        let get = http::Method::GET;
        let post = http::Method::POST;
        assert!(matches!(
            dispatch(c, &get, "/v1/models"),
            Ok(Dispatch::Models(None))
        ));
        assert!(matches!(
            dispatch(c, &get, "/v1/models/gpt-4o"),
            Ok(Dispatch::Models(Some("gpt-4o")))
        ));
        assert!(matches!(
            dispatch(c, &post, "/v1/chat/completions"),
            Ok(Dispatch::Model(Endpoint::ChatCompletions))
        ));
        assert!(
            matches!(dispatch(c, &get, "/v1/files/abc"), Ok(Dispatch::Path(r)) if r.name == "files")
        );
        let e = dispatch(c, &get, "/v1/chat/completions").unwrap_err();
        assert_eq!(e.status, 405);
        let e = dispatch(c, &post, "/v1/models").unwrap_err();
        assert_eq!(e.status, 405);
        let e = dispatch(c, &post, "/v1/filesystem").unwrap_err();
        assert_eq!(e.status, 404, "a prefix only on a segment boundary");
        let e = dispatch(c, &post, "/admin").unwrap_err();
        assert_eq!(e.status, 404);
    }

    #[test]
    fn the_first_matching_route_wins_and_its_label_is_the_pattern() {
        let rt = runtime();
        let c = &rt.config;
        let (r, label) = select_route(c, "/v1/chat/completions", "gpt-4o").unwrap();
        assert_eq!((r.name.as_str(), label.as_str()), ("gpt", "gpt-4o"));
        let (r, label) = select_route(c, "/v1/chat/completions", "gpt-4.1-mini").unwrap();
        assert_eq!((r.name.as_str(), label.as_str()), ("gpt", "gpt-4.1*"));
        // A client-chosen model name never becomes a label value.
        let (r, label) = select_route(c, "/v1/chat/completions", "made-up-model-123").unwrap();
        assert_eq!((r.name.as_str(), label.as_str()), ("rest", "*"));
        // A `paths:` route before the model routes takes requests on its path.
        let (r, _) = select_route(c, "/v1/files", "gpt-4o").unwrap();
        assert_eq!(r.name, "files");
    }

    #[test]
    fn the_environment_is_the_keys_then_the_routes_then_the_configs() {
        let rt = runtime();
        let c = &rt.config;
        let a = rt.keys.authenticate("vg-team-a-0123456789abcdef").unwrap();
        let b = rt.keys.authenticate("vg-team-b-0123456789abcdef").unwrap();
        let lab = c.routes.iter().find(|r| r.name == "rest").unwrap();
        let gpt = c.routes.iter().find(|r| r.name == "gpt").unwrap();
        assert_eq!(environment_of(Some(a), Some(lab), c), "staging");
        assert_eq!(environment_of(Some(b), Some(lab), c), "lab");
        assert_eq!(environment_of(Some(b), Some(gpt), c), "prod");
        assert_eq!(environment_of(None, None, c), "prod");
        assert_eq!(environment_of(Some(a), None, c), "staging");
    }

    #[test]
    fn shapes_paths_and_media() {
        assert_eq!(ErrorShape::of_path("/v1/messages"), ErrorShape::Anthropic);
        assert_eq!(
            ErrorShape::of_path("/v1/messages/count_tokens"),
            ErrorShape::Anthropic
        );
        assert_eq!(ErrorShape::of_path("/v1/messagesx"), ErrorShape::OpenAi);
        assert_eq!(rest_of("/v1/files/abc"), "files/abc");
        assert_eq!(rest_of("/other"), "other");
        assert_eq!(media_of(" Text/Plain ; charset=utf-8"), "text/plain");
    }
}
