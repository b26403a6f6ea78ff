//! The client's query string on its way upstream: the virtual key taken out of it, and every
//! value scanned by the route's request redactor.
//!
//! A query is read as `application/x-www-form-urlencoded` pairs separated by `&`: each name
//! and value is percent-decoded with `+` read as a space. A pair the gateway does not change
//! is forwarded byte for byte; a rewritten one is percent-encoded again (a space as `%20`).

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::redact::{Direction, RedactError, Redactor, RequestRedaction};
use crate::wire::ApiError;

/// Query parameter names that carry API keys (compared without case): never forwarded when
/// the client's key is not (see [`without_keys`]).
pub const KEY_PARAMS: &[&str] = &["api-key", "api_key", "key", "x-api-key"];

/// What a rewritten name or value is encoded with: all but the RFC 3986 unreserved bytes.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Decodes one query component: `+` is a space, then percent-decoding. `None` when the bytes
/// are not UTF-8.
pub fn decode(component: &str) -> Option<Cow<'_, str>> {
    if !component.contains(['+', '%']) {
        return Some(Cow::Borrowed(component));
    }
    let spaced = component.replace('+', " ");
    let decoded = percent_decode_str(&spaced).decode_utf8().ok()?;
    Some(Cow::Owned(decoded.into_owned()))
}

/// Encodes one query component (the inverse of [`decode`]).
pub fn encode(component: &str) -> String {
    utf8_percent_encode(component, ENCODE).to_string()
}

/// `query` without the parameters that carry a key: those named in [`KEY_PARAMS`] and those
/// whose value is `presented` (the key the client presented, if any), decoded or not.
/// Returns `None` when no parameter is left.
pub fn without_keys<'q>(query: &'q str, presented: Option<&str>) -> Option<Cow<'q, str>> {
    let presented = presented.filter(|k| !k.is_empty());
    let carries_key = |pair: &str| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name).unwrap_or(Cow::Borrowed(name));
        if KEY_PARAMS.iter().any(|k| name.eq_ignore_ascii_case(k)) {
            return true;
        }
        presented.is_some_and(|key| {
            value == key
                || decode(value).is_some_and(|v| v.trim() == key)
                || (value.is_empty() && name == key)
        })
    };
    if !query.split('&').any(carries_key) {
        return (!query.is_empty()).then_some(Cow::Borrowed(query));
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !carries_key(pair))
        .collect();
    (!kept.is_empty()).then(|| Cow::Owned(kept.join("&")))
}

/// Runs every name and value of `query` through `redactor`'s request detectors; `None` when
/// nothing changed (forward the query as it is).
///
/// # Errors
/// 400 when a component is not UTF-8 once decoded (it cannot be inspected, so it is not
/// forwarded), when a blocking detector matches, or when redaction fails.
pub fn redact(
    query: &str,
    redactor: &Redactor,
    cx: &mut RequestRedaction,
) -> Result<Option<String>, ApiError> {
    let mut pairs: Vec<Cow<'_, str>> = Vec::new();
    let mut changed = false;
    for pair in query.split('&') {
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        let new_name = redact_component(name, redactor, cx)?;
        let new_value = match value {
            Some(v) => redact_component(v, redactor, cx)?,
            None => None,
        };
        if new_name.is_none() && new_value.is_none() {
            pairs.push(Cow::Borrowed(pair));
            continue;
        }
        changed = true;
        let mut rewritten = new_name.unwrap_or_else(|| name.to_owned());
        if let Some(v) = value {
            rewritten.push('=');
            rewritten.push_str(new_value.as_deref().unwrap_or(v));
        }
        pairs.push(Cow::Owned(rewritten));
    }
    Ok(changed.then(|| pairs.join("&")))
}

/// One component redacted and encoded again, or `None` when unchanged.
fn redact_component(
    raw: &str,
    redactor: &Redactor,
    cx: &mut RequestRedaction,
) -> Result<Option<String>, ApiError> {
    let Some(text) = decode(raw) else {
        return Err(ApiError::invalid_request(
            "The query string is not valid UTF-8 once percent-decoded. This route inspects requests for secrets and forwards only what it can read; send UTF-8 query parameters.",
        )
        .code("invalid_query"));
    };
    match redactor.redact_text(Direction::Request, &text, cx) {
        Ok(Cow::Borrowed(_)) => Ok(None),
        Ok(Cow::Owned(changed)) if changed == *text => Ok(None),
        Ok(Cow::Owned(changed)) => Ok(Some(encode(&changed))),
        Err(RedactError::Blocked { detector, .. }) => Err(ApiError::invalid_request(format!(
            "The request was blocked by this gateway's data policy: its query string contains data matched by the `{detector}` detector. Remove it and try again."
        ))
        .code("content_blocked")),
        Err(other) => Err(ApiError::invalid_request(format!(
            "The query string could not be inspected for redaction ({}), so the request was not forwarded.",
            other.code()
        ))
        .code(other.code())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::PolicySpec;

    fn ghp() -> String {
        format!("ghp_{}", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d")
    }

    fn redactor() -> Redactor {
        Redactor::new(&PolicySpec::default()).unwrap()
    }

    #[test]
    fn decode_reads_plus_as_space_and_refuses_bad_utf8() {
        assert_eq!(decode("a+b%20c%2Bd").as_deref(), Some("a b c+d"));
        assert_eq!(decode("plain").as_deref(), Some("plain"));
        assert_eq!(decode("%ff%fe"), None);
        assert_eq!(encode("a b/c=d~"), "a%20b%2Fc%3Dd~");
        assert_eq!(decode(&encode("x y&z=é+")).as_deref(), Some("x y&z=é+"));
    }

    #[test]
    fn key_parameters_are_dropped() {
        let k = Some("vg-secret-1");
        assert_eq!(without_keys("a=1&b=2", k).as_deref(), Some("a=1&b=2"));
        assert_eq!(
            without_keys("a=1&api-key=vg-secret-1&b=2", k).as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(without_keys("API_KEY=x&Key=y&X-Api-Key=z", None), None);
        assert_eq!(
            without_keys("token=vg-secret-1&q=ok", k).as_deref(),
            Some("q=ok")
        );
        assert_eq!(
            without_keys("token=vg%2Dsecret%2D1&q=ok", k).as_deref(),
            Some("q=ok")
        );
        assert_eq!(without_keys("vg-secret-1&q=ok", k).as_deref(), Some("q=ok"));
        assert_eq!(without_keys("api%2Dkey=z&q", None).as_deref(), Some("q"));
        assert_eq!(without_keys("", k), None);
    }

    #[test]
    fn secrets_in_values_and_names_are_redacted() {
        let r = redactor();
        let mut cx = RequestRedaction::default();
        assert_eq!(redact("a=1&b=two+words", &r, &mut cx).unwrap(), None);

        let token = ghp();
        let q = format!("a=1&token={token}&b=x+y");
        let out = redact(&q, &r, &mut cx).unwrap().expect("rewritten");
        assert!(!out.contains(&token), "{out}");
        assert!(out.starts_with("a=1&token="), "{out}");
        assert!(out.ends_with("&b=x+y"), "{out}");

        // Hidden behind percent-encoding, glued to other text, or as a name.
        let encoded = format!("q=token%3D{}", encode(&token).replace('_', "%5F"));
        let out = redact(&encoded, &r, &mut cx).unwrap().expect("rewritten");
        assert!(!decode(&out).unwrap().contains(&token), "{out}");
        let out = redact(&token, &r, &mut cx).unwrap().expect("rewritten");
        assert!(!out.contains(&token), "{out}");
        assert!(!cx.counts().is_empty());
    }

    #[test]
    fn undecodable_queries_are_refused() {
        let r = redactor();
        let mut cx = RequestRedaction::default();
        let err = redact("a=%ff", &r, &mut cx).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.code, Some("invalid_query"));
    }
}
