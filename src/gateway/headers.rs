//! Which headers cross the gateway.

use http::HeaderName;

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the gateway sets itself on the upstream
/// request; none of them is copied from the client.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "accept-encoding",
    "expect",
];

/// Whether a client request header is copied to the upstream request.
///
/// `Authorization` is dropped when the upstream has its own key (`upstream_has_key`).
pub fn forward_request_header(name: &HeaderName, upstream_has_key: bool) -> bool {
    let n = name.as_str();
    if NOT_FORWARDED.contains(&n) {
        return false;
    }
    !(upstream_has_key && n == "authorization")
}

/// Hop-by-hop response headers, not copied from the upstream answer to the client.
const RESPONSE_HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether an upstream response header is copied to the client.
pub fn forward_response_header(name: &HeaderName) -> bool {
    !RESPONSE_HOP_BY_HOP.contains(&name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_depends_on_upstream_key() {
        let auth = HeaderName::from_static("authorization");
        assert!(forward_request_header(&auth, false));
        assert!(!forward_request_header(&auth, true));
    }

    #[test]
    fn hop_by_hop_never_forwarded() {
        for h in ["connection", "transfer-encoding", "host", "accept-encoding"] {
            assert!(!forward_request_header(&HeaderName::from_static(h), false));
        }
        assert!(forward_request_header(
            &HeaderName::from_static("openai-organization"),
            true
        ));
        assert!(!forward_response_header(&HeaderName::from_static(
            "transfer-encoding"
        )));
        assert!(forward_response_header(&HeaderName::from_static(
            "x-request-id"
        )));
    }
}
