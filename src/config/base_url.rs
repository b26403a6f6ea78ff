//! Upstream base urls: `http(s)://host[:port][/base/path]`, nothing else.

use std::net::Ipv6Addr;

/// The parts of an upstream url the gateway needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    pub tls: bool,
    /// Lowercase; IPv6 addresses without brackets.
    pub host: String,
    pub port: u16,
    /// `""` or like `/v1`: no trailing slash.
    pub base_path: String,
}

/// Parses an upstream url. Error messages never repeat the url (it may hold credentials).
///
/// # Errors
///
/// Returns a message when the url is not `http` or `https`, has no host, a bad port, user
/// info, a query string or a fragment.
pub(crate) fn parse_base_url(text: &str) -> Result<BaseUrl, String> {
    const EXAMPLE: &str = "like https://api.openai.com/v1";
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an upstream url must not contain spaces or control characters".into());
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("expected an absolute http or https url, {EXAMPLE}"));
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err(format!("unsupported scheme {scheme:?}; use http or https")),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(
            "user info (user:password@) is not allowed in an upstream url; set api_key instead"
                .into(),
        );
    }
    if path.contains('?') {
        return Err("a query string (?…) is not allowed in an upstream url".into());
    }
    if path.contains('#') {
        return Err("a fragment (#…) is not allowed in an upstream url".into());
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(
                    "invalid port in upstream url; expected a number from 1 to 65535".into(),
                )
            }
        },
    };
    Ok(BaseUrl {
        tls,
        host,
        port,
        base_path: path.trim_end_matches('/').to_owned(),
    })
}

/// Splits `host[:port]` or `[v6]:port`; validates the host.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>), String> {
    if authority.is_empty() {
        return Err("the upstream url has no host".into());
    }
    if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((address, after)) = bracketed.split_once(']') else {
            return Err("unclosed [ in the upstream url's IPv6 address".into());
        };
        if address.parse::<Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address in upstream url".into());
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err("unexpected text after the IPv6 address in upstream url".into()),
            },
        };
        return Ok((address.to_ascii_lowercase(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid {
        return Err("invalid host in upstream url; expected a host name or an IP address".into());
    }
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> BaseUrl {
        parse_base_url(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        match parse_base_url(text) {
            Ok(url) => panic!("{text} parsed as {url:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parts() {
        let url = ok("https://api.openai.com/v1");
        assert_eq!(
            url,
            BaseUrl {
                tls: true,
                host: "api.openai.com".into(),
                port: 443,
                base_path: "/v1".into()
            }
        );
        let url = ok("http://127.0.0.1:11434/v1/");
        assert_eq!(
            (url.tls, url.host.as_str(), url.port, url.base_path.as_str()),
            (false, "127.0.0.1", 11434, "/v1")
        );
        assert_eq!(ok("HTTPS://Example.COM").host, "example.com");
        assert_eq!(ok("https://example.com/").base_path, "");
        assert_eq!(ok("http://example.com").port, 80);
        let v6 = ok("http://[::1]:8080/x");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.base_path.as_str()),
            ("::1", 8080, "/x")
        );
        assert_eq!(ok("https://[2001:db8::1]").port, 443);
    }

    #[test]
    fn the_model_placeholder_is_kept_in_the_path() {
        let url = ok("https://x.openai.azure.com/openai/deployments/{model}/");
        assert_eq!(url.base_path, "/openai/deployments/{model}");
        assert_eq!(ok("http://h:8080/{model}/v1").base_path, "/{model}/v1");
        // Only the path may hold it (validation rejects other placeholders there).
        assert!(err("https://{model}.openai.azure.com").contains("invalid host"));
    }

    #[test]
    fn rejects() {
        assert!(err("ftp://x").contains("unsupported scheme \"ftp\""));
        assert!(err("api.openai.com/v1").contains("absolute"));
        assert!(err("https:///v1").contains("no host"));
        assert!(err("https://user:sk-secret@host/v1").contains("user info"));
        assert!(err("https://host/v1?key=1").contains("query"));
        assert!(err("https://host?key=1").contains("query"));
        assert!(err("https://host/v1#frag").contains("fragment"));
        assert!(err("https://host:0").contains("port"));
        assert!(err("https://host:99999").contains("port"));
        assert!(err("https://host:").contains("port"));
        assert!(err("https://ho st").contains("spaces"));
        assert!(err("https://h!st").contains("invalid host"));
        assert!(err("https://[::zz]").contains("IPv6"));
        assert!(!err("https://user:sk-secret@host").contains("sk-secret"));
    }
}
