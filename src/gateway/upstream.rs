//! Building the request an upstream receives and the answer header the client receives.

use std::borrow::Cow;

use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::config::{Upstream, UpstreamApi, UpstreamAuth, ANTHROPIC_VERSION};

use super::{headers, query};

/// What varies per upstream attempt.
pub struct Outbound<'a> {
    /// The upstream.
    pub upstream: &'a Upstream,
    /// The model name the upstream sees (for a `{model}` url).
    pub model: Option<&'a str>,
    /// The path below the SDK base url, like `chat/completions`.
    pub rest: &'a str,
    /// The client's query as inspected (redacted on a redacting route); `None`: the query of
    /// the client's request as received.
    pub query: Option<&'a str>,
    /// `x-request-id`.
    pub request_id: &'a str,
    /// W3C `traceparent` for the upstream's span, if traced.
    pub traceparent: Option<&'a str>,
    /// Drop the client's key even when the upstream has no key of its own (it is a Veilgate
    /// virtual key, which must never leave the gateway).
    pub strip_client_auth: bool,
}

/// Headers that carry a client's API key.
const KEY_HEADERS: &[&str] = &["authorization", "api-key", "x-api-key"];

/// The key the client presented, from any of the headers clients send one in (see
/// [`crate::limits::presented_key`]).
pub fn presented_key(client: &RequestHeader) -> Option<&str> {
    let header = |name: &str| client.headers.get(name).and_then(|v| v.to_str().ok());
    crate::limits::presented_key(
        header("authorization"),
        header("api-key"),
        header("x-api-key"),
    )
}

/// The upstream request header: the client's headers less hop-by-hop ones, the upstream's
/// host, path, query and credentials.
///
/// When the client's key must not leave (`strip_client_auth`, or the upstream has a key of
/// its own), none of it does: not `Authorization`, `api-key` or `x-api-key`, nor any other
/// header whose value contains the presented key (is it, for a key under 8 bytes), nor a query parameter that carries a key (see
/// [`query::without_keys`]).
///
/// # Errors
/// When a header value cannot be encoded (a configured key with invalid characters).
pub fn request_header(client: &RequestHeader, t: &Outbound<'_>) -> Result<RequestHeader> {
    let strip_auth = t.strip_client_auth || t.upstream.api_key.is_some();
    let presented = presented_key(client).filter(|_| strip_auth);
    let client_query = t.query.or(client.uri.query());
    let forwarded_query = match client_query {
        Some(q) if strip_auth => query::without_keys(q, presented),
        Some(q) => Some(Cow::Borrowed(q)),
        None => None,
    };
    let path = t
        .upstream
        .path_for(t.model, t.rest, forwarded_query.as_deref());
    let mut header = RequestHeader::build_no_case(
        client.method.clone(),
        path.as_bytes(),
        Some(client.headers.len() + 4),
    )?;
    for (name, value) in client.headers.iter() {
        let carries_key = strip_auth
            && (KEY_HEADERS.contains(&name.as_str())
                || presented.is_some_and(|key| holds_key(value.as_bytes(), key.as_bytes())));
        if headers::forward_request_header(name, strip_auth)
            && !carries_key
            && name.as_str() != "traceparent"
        {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    header.insert_header(http::header::HOST, t.upstream.authority())?;
    add_credentials(&mut header, t.upstream)?;
    header.insert_header("x-request-id", t.request_id)?;
    match t.traceparent {
        Some(tp) => header.insert_header("traceparent", tp)?,
        None => {
            if let Some(tp) = client.headers.get("traceparent") {
                header.insert_header("traceparent", tp.clone())?;
            }
        }
    }
    Ok(header)
}

/// Adds the upstream's own key, as its `auth_header:` or API says, and the headers its API
/// needs: `anthropic-version` for an `api: anthropic` upstream, unless the client sent one.
///
/// # Errors
/// When a header value cannot be encoded (a configured key with invalid characters).
pub fn add_credentials(header: &mut RequestHeader, upstream: &Upstream) -> Result<()> {
    if let Some(key) = &upstream.api_key {
        match &upstream.auth {
            UpstreamAuth::Bearer => {
                header.insert_header(http::header::AUTHORIZATION, format!("Bearer {key}"))?
            }
            UpstreamAuth::Header(name) => header.insert_header(name.clone(), key.as_str())?,
        }
    }
    if upstream.api == UpstreamApi::Anthropic && header.headers.get("anthropic-version").is_none() {
        header.insert_header("anthropic-version", ANTHROPIC_VERSION)?;
    }
    Ok(())
}

/// Shortest presented key looked for inside other header values; a shorter one (`test`)
/// would strip unrelated headers such as `Content-Type`, so it is looked for only as a whole
/// value (or after `Bearer `).
const MIN_KEY_IN_VALUE: usize = 8;

/// Whether a header value carries `key`.
fn holds_key(value: &[u8], key: &[u8]) -> bool {
    if key.is_empty() {
        return false;
    }
    if key.len() < MIN_KEY_IN_VALUE {
        let value = value.trim_ascii();
        let bare = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map_or(value, |_| value[7..].trim_ascii());
        return bare == key;
    }
    value.windows(key.len()).any(|w| w == key)
}

/// The client response header: the upstream's status and headers less hop-by-hop ones.
///
/// `drop_length` removes `Content-Length` (the body will be rewritten).
///
/// # Errors
/// When the status or a header cannot be encoded.
pub fn response_header(
    upstream: &ResponseHeader,
    request_id: &str,
    drop_length: bool,
) -> Result<ResponseHeader> {
    // No case map: the names are `http`'s lower-case ones either way, and the map would double
    // the header's memory for as long as the answer streams.
    let mut header =
        ResponseHeader::build_no_case(upstream.status, Some(upstream.headers.len() + 1))?;
    for (name, value) in upstream.headers.iter() {
        if headers::forward_response_header(name)
            && !(drop_length && name == http::header::CONTENT_LENGTH)
        {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    header.insert_header("x-request-id", request_id)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KEY: &str = "vg-live-0123456789abcdef";

    fn upstream(api_key: Option<&str>) -> Upstream {
        Upstream {
            name: "u".into(),
            tls: false,
            host: "127.0.0.1".into(),
            port: 8000,
            base_path: "/v1".into(),
            api_key: api_key.map(str::to_owned),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            auth: UpstreamAuth::Bearer,
            api: UpstreamApi::OpenAi,
            query: Vec::new(),
            health_check: None,
            owned_by: None,
            has_model_placeholder: false,
        }
    }

    fn client(target: &str, headers: &[(&str, String)]) -> RequestHeader {
        let mut h = RequestHeader::build("POST", target.as_bytes(), None).unwrap();
        for (name, value) in headers {
            h.append_header(name.to_string(), value.as_str()).unwrap();
        }
        h
    }

    fn build(client: &RequestHeader, upstream: &Upstream, strip: bool) -> RequestHeader {
        request_header(
            client,
            &Outbound {
                upstream,
                model: None,
                rest: "chat/completions",
                query: None,
                request_id: "req-1",
                traceparent: None,
                strip_client_auth: strip,
            },
        )
        .unwrap()
    }

    /// Every header value and the request target, as one text.
    fn wire(h: &RequestHeader) -> String {
        let mut s = String::from_utf8_lossy(h.raw_path()).into_owned();
        for (name, value) in h.headers.iter() {
            s.push_str(&format!(
                "\n{name}: {}",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        s
    }

    #[test]
    fn no_presented_key_leaves_in_any_header_or_parameter() {
        for carrier in ["authorization", "api-key", "x-api-key"] {
            let value = if carrier == "authorization" {
                format!("Bearer {KEY}")
            } else {
                KEY.to_owned()
            };
            let c = client(
                &format!("/v1/chat/completions?api-key={KEY}&token={KEY}&key=k&x=1"),
                &[
                    (carrier, value),
                    ("x-copy", format!("prefix {KEY} suffix")),
                    ("openai-organization", "org-1".into()),
                    ("content-type", "application/json".into()),
                ],
            );
            assert_eq!(presented_key(&c), Some(KEY));
            for (strip, up) in [(true, upstream(None)), (false, upstream(Some("sk-up")))] {
                let h = build(&c, &up, strip);
                let text = wire(&h);
                assert!(!text.contains(KEY), "{carrier}: {text}");
                assert_eq!(
                    String::from_utf8_lossy(h.raw_path()),
                    "/v1/chat/completions?x=1"
                );
                assert_eq!(h.headers.get("openai-organization").unwrap(), "org-1");
                assert_eq!(h.headers.get("content-type").unwrap(), "application/json");
                assert!(h.headers.get("x-copy").is_none());
                assert!(h.headers.get("api-key").is_none());
                assert!(h.headers.get("x-api-key").is_none());
                match up.api_key {
                    Some(_) => assert_eq!(h.headers.get("authorization").unwrap(), "Bearer sk-up"),
                    None => assert!(h.headers.get("authorization").is_none()),
                }
            }
        }
    }

    #[test]
    fn a_short_key_is_looked_for_only_as_a_whole_value() {
        assert!(holds_key(b"prefix vg-live-0123 suffix", b"vg-live-0123"));
        assert!(!holds_key(b"application/json", b"json"));
        assert!(holds_key(b" json ", b"json"));
        assert!(holds_key(b"Bearer json", b"json"));
        assert!(!holds_key(b"anything", b""));
        let c = client(
            "/v1/chat/completions?k=test",
            &[
                ("api-key", "test".into()),
                ("content-type", "application/json; charset=test".into()),
                ("x-copy", "test".into()),
            ],
        );
        let h = build(&c, &upstream(None), true);
        assert!(h.headers.get("api-key").is_none());
        assert!(h.headers.get("x-copy").is_none());
        assert!(h.headers.get("content-type").is_some());
        assert_eq!(
            String::from_utf8_lossy(h.raw_path()),
            "/v1/chat/completions"
        );
    }

    #[test]
    fn an_open_gateway_to_a_keyless_upstream_forwards_the_client_key() {
        // No virtual keys and no upstream key: the client's key is the upstream's.
        let c = client(
            "/v1/chat/completions?api-version=2024-10-21",
            &[("authorization", format!("Bearer {KEY}"))],
        );
        let h = build(&c, &upstream(None), false);
        assert_eq!(
            h.headers.get("authorization").unwrap().as_bytes(),
            format!("Bearer {KEY}").as_bytes()
        );
        assert_eq!(
            String::from_utf8_lossy(h.raw_path()),
            "/v1/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn the_inspected_query_replaces_the_clients() {
        let c = client("/v1/files?q=secret", &[]);
        let h = request_header(
            &c,
            &Outbound {
                upstream: &upstream(None),
                model: None,
                rest: "files",
                query: Some("q=%5BREDACTED%5D"),
                request_id: "req-1",
                traceparent: Some("00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"),
                strip_client_auth: true,
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(h.raw_path()),
            "/v1/files?q=%5BREDACTED%5D"
        );
        assert_eq!(h.headers.get("x-request-id").unwrap(), "req-1");
        assert_eq!(h.headers.get("host").unwrap(), "127.0.0.1:8000");
    }
}
