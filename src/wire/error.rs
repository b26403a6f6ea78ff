//! Error answers: OpenAI's `{"error": {"message", "type", "param", "code"}}` by default, or
//! the shape of the client's API family ([`ErrorShape`]; Anthropic's is rendered by
//! [`super::messages`]).
//!
//! Every refusal the gateway produces goes through [`ApiError`], so clients get the same shape
//! the OpenAI SDKs already parse, whatever went wrong. Messages are written for the developer
//! reading them in an exception: what happened, and what to do about it. They never contain a
//! secret, a redacted value or an upstream credential.

use serde::Serialize;

/// An error answer: an HTTP status and OpenAI's error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code of the answer.
    pub status: u16,
    /// Human-readable explanation.
    pub message: String,
    /// OpenAI's error `type` (`invalid_request_error`, `api_error`, …).
    pub kind: &'static str,
    /// The request parameter at fault, if any.
    pub param: Option<&'static str>,
    /// A stable machine-readable code (`model_not_found`, …).
    pub code: Option<&'static str>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// Which API's error shape a client gets: OpenAI's, or on the Messages API endpoints
/// Anthropic's `{"type": "error", "error": {"type", "message"}}`, so that either SDK raises
/// its usual exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorShape {
    /// `{"error": {"message", "type", "param", "code"}}`.
    #[default]
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
}

impl ErrorShape {
    /// The shape of the API a request path belongs to, before any endpoint is known (an
    /// authentication error, a path nobody serves): Anthropic's under `/v1/messages`, OpenAI's
    /// elsewhere.
    pub fn of_path(path: &str) -> ErrorShape {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            ErrorShape::Anthropic
        } else {
            ErrorShape::OpenAi
        }
    }
}

/// Longest client-supplied value (a model name, a path) quoted back in a message.
const MAX_ECHO: usize = 120;

/// Quotes client-supplied text in a message, shortened so a hostile client cannot make the
/// gateway echo megabytes back (or into logs).
pub fn echo(text: &str) -> String {
    if text.len() <= MAX_ECHO {
        return text.to_owned();
    }
    let mut end = MAX_ECHO;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl ApiError {
    /// An error with the given status, type and message.
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    /// Sets the `param` field.
    pub fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// Sets the `code` field.
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    /// 404 for a model no route serves.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!(
                "The model `{}` is not served by this gateway. GET /v1/models lists the models it routes.",
                echo(model)
            ),
        )
        .param("model")
        .code("model_not_found")
    }

    /// 404 for a path the gateway does not serve.
    pub fn unknown_url(method: &str, path: &str) -> Self {
        let message = match unroutable_api(path) {
            Some(api) => format!(
                "Unknown request URL: {method} {}. The {api} API carries no `model`, so this gateway cannot route it by model; an operator can serve it with a `paths:` route (for example `paths: [/v1/{api}]`).",
                echo(path)
            ),
            None => format!(
                "Unknown request URL: {method} {}. Check the path; this gateway serves the OpenAI API under /v1/.",
                echo(path)
            ),
        };
        Self::new(404, "invalid_request_error", message).code("unknown_url")
    }

    /// 405 for a known path called with the wrong method.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &str) -> Self {
        Self::new(
            405,
            "invalid_request_error",
            format!(
                "{method} is not supported on {}; use {allowed}.",
                echo(path)
            ),
        )
        .code("method_not_allowed")
    }

    /// 401: no virtual key, or an unknown one. Never quotes what was presented.
    pub fn invalid_api_key(presented: bool) -> Self {
        let message = if presented {
            "Incorrect API key provided. This gateway accepts only the keys its operators issued; check the key your app sends."
        } else {
            "You didn't provide an API key. Send your Veilgate key as `Authorization: Bearer <key>` (or an `api-key` header)."
        };
        Self::new(401, "invalid_request_error", message).code("invalid_api_key")
    }

    /// 403: the key may not call this model.
    pub fn model_not_allowed(key: &str, model: &str) -> Self {
        Self::new(
            403,
            "permission_error",
            format!(
                "The key `{key}` is not allowed to use the model `{}`. Ask the gateway operators to add it to the key's models.",
                echo(model)
            ),
        )
        .param("model")
        .code("model_not_allowed")
    }

    /// 429: a budget ran out. `budget` names it (`key checkout-web: requests_per_minute`).
    pub fn rate_limited(
        budget: &str,
        limit: u64,
        kind: crate::limits::BudgetKind,
        retry_after_secs: u64,
    ) -> Self {
        let kind_label = match kind {
            crate::limits::BudgetKind::Tokens(_) => "tokens",
            crate::limits::BudgetKind::Requests(_) => "requests",
            crate::limits::BudgetKind::Concurrent => "requests",
            crate::limits::BudgetKind::Spend(_) => "insufficient_quota",
        };
        Self::new(
            429,
            kind_label,
            format!(
                "Rate limit reached for {budget} (limit {limit}). Please try again in {retry_after_secs}s."
            ),
        )
        .code("rate_limit_exceeded")
    }

    /// 429: a USD budget has no room for this request's worst case in its calendar window.
    /// `budget` names it (`key checkout-web: usd_per_day`); amounts are written `$1.25`.
    pub fn spend_limited(
        budget: &str,
        period: crate::limits::Period,
        limit: &str,
        remaining: &str,
        reserve: &str,
        retry_after_secs: u64,
    ) -> Self {
        Self::new(
            429,
            "insufficient_quota",
            format!(
                "Spend limit reached for {budget}: {limit} per {period} (UTC), {remaining} left, and this request could cost up to {reserve}. The budget renews when the {period} ends, in {retry_after_secs}s."
            ),
        )
        .code("budget_exceeded")
    }

    /// 400: the request's worst-case cost is more than a USD budget's whole limit, so it could
    /// never be admitted.
    pub fn over_whole_budget(budget: &str, limit: &str, reserve: &str, param: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            format!(
                "This request could cost up to {reserve}, more than the whole budget {budget} ({limit}); lower {param} so that its worst case fits."
            ),
        )
        .param("max_tokens")
        .code("request_exceeds_budget")
    }

    /// 403: a USD budget applies and the model has no price, so its spend cannot be counted.
    pub fn model_not_priced(model: &str, budget: &str) -> Self {
        Self::new(
            403,
            "permission_error",
            format!(
                "The model `{}` has no price in this gateway, and {budget} is a spend limit that must count what every request costs. Ask the gateway operators to add the model under `prices:`.",
                echo(model)
            ),
        )
        .param("model")
        .code("model_not_priced")
    }

    /// 413 for a body over `max_body_bytes`.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            format!("The request body is larger than this gateway accepts ({limit} bytes, max_body_bytes)."),
        )
        .code("request_too_large")
    }

    /// 502: the upstream could not be reached or broke the protocol.
    pub fn bad_gateway(upstream: &str, reason: &str) -> Self {
        Self::new(
            502,
            "api_error",
            format!("The upstream `{upstream}` could not be reached: {reason}."),
        )
        .code("upstream_unavailable")
    }

    /// 504: the upstream did not answer in time.
    pub fn gateway_timeout(upstream: &str, reason: &str) -> Self {
        Self::new(
            504,
            "api_error",
            format!("The upstream `{upstream}` did not answer in time: {reason}."),
        )
        .code("upstream_timeout")
    }

    /// 500: a failure inside the gateway itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", message).code("internal_error")
    }

    /// The JSON body of the answer.
    pub fn to_json(&self) -> Vec<u8> {
        let envelope = Envelope {
            error: Body {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        };
        // Serializing plain strings into a Vec cannot fail; fall back to a fixed body anyway.
        serde_json::to_vec(&envelope).unwrap_or_else(|_| {
            br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#
                .to_vec()
        })
    }

    /// The same error as one SSE event, for failures after a stream has started.
    /// The error body in `shape`.
    pub fn to_json_in(&self, shape: ErrorShape) -> Vec<u8> {
        match shape {
            ErrorShape::OpenAi => self.to_json(),
            ErrorShape::Anthropic => super::messages::error_json(self),
        }
    }

    /// The error as one SSE event in `shape` (Anthropic's streams name it `event: error`).
    pub fn to_sse_event_in(&self, shape: ErrorShape) -> Vec<u8> {
        let event = match shape {
            ErrorShape::OpenAi => None,
            ErrorShape::Anthropic => Some(super::messages::ERROR_EVENT),
        };
        let json = self.to_json_in(shape);
        let mut out = Vec::with_capacity(json.len() + 24);
        // serde_json writes UTF-8 on one line: the data is one `data:` line.
        crate::wire::sse::write_data(&mut out, event, std::str::from_utf8(&json).unwrap_or("{}"));
        out
    }

    /// The error as one SSE event, OpenAI's shape.
    pub fn to_sse_event(&self) -> Vec<u8> {
        self.to_sse_event_in(ErrorShape::OpenAi)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

/// The OpenAI APIs that carry no `model` to route by (files, batches, uploads, vector
/// stores, fine-tuning, assistants and their threads, containers): the first segment after
/// `/v1/` when `path` is one of them.
fn unroutable_api(path: &str) -> Option<&'static str> {
    const APIS: &[&str] = &[
        "files",
        "batches",
        "uploads",
        "vector_stores",
        "fine_tuning",
        "assistants",
        "threads",
        "containers",
    ];
    let first = path.strip_prefix("/v1/")?.split('/').next()?;
    APIS.iter().copied().find(|api| *api == first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape() {
        let e = ApiError::model_not_found("gpt-9");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-9"));
        assert_eq!(e.status, 404);
    }

    #[test]
    fn null_param_and_code_are_present() {
        let v: serde_json::Value =
            serde_json::from_slice(&ApiError::invalid_request("bad").to_json()).unwrap();
        let obj = v["error"].as_object().unwrap();
        assert!(obj.contains_key("param") && obj["param"].is_null());
        assert!(obj.contains_key("code") && obj["code"].is_null());
    }

    #[test]
    fn echo_bounds_client_text() {
        let long = "é".repeat(500);
        let e = echo(&long);
        assert!(e.len() <= MAX_ECHO + "…".len());
        assert!(e.ends_with('…'));
        assert_eq!(echo("short"), "short");
    }

    #[test]
    fn sse_event_is_one_data_line() {
        let ev = ApiError::internal("x").to_sse_event();
        let s = std::str::from_utf8(&ev).unwrap();
        assert!(s.starts_with("data: {") && s.ends_with("\n\n"));
        assert_eq!(s.matches('\n').count(), 2);
    }
}
