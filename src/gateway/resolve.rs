//! Upstream name resolution, asynchronous and cached.
//!
//! Pingora's `HttpPeer::new` resolves host names with a blocking lookup and panics when it
//! fails, so the gateway resolves names itself with tokio and hands Pingora socket addresses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a successful lookup is reused.
const TTL: Duration = Duration::from_secs(30);
/// At most this many host names are cached; the cache is cleared when it would grow past it.
const MAX_ENTRIES: usize = 1024;

/// A resolution failure, worded for an error message.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The lookup failed or found nothing.
    #[error("cannot resolve host {host}: {reason}")]
    Failed {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// The lookup took longer than the connect timeout.
    #[error("resolving host {host} timed out")]
    TimedOut {
        /// The host name.
        host: String,
    },
}

/// A small TTL cache in front of tokio's resolver.
#[derive(Debug, Default)]
pub struct Resolver {
    cache: Mutex<HashMap<(String, u16), (SocketAddr, Instant)>>,
}

impl Resolver {
    /// Resolves `host:port`, using the cache when fresh.
    ///
    /// # Errors
    /// [`ResolveError`] when the name does not resolve within `timeout`.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<SocketAddr, ResolveError> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_owned(), port);
        if let Ok(cache) = self.cache.lock() {
            if let Some((addr, at)) = cache.get(&key) {
                if at.elapsed() < TTL {
                    return Ok(*addr);
                }
            }
        }
        let lookup = tokio::net::lookup_host((host, port));
        let addr = match tokio::time::timeout(timeout, lookup).await {
            Err(_) => {
                return Err(ResolveError::TimedOut {
                    host: host.to_owned(),
                })
            }
            Ok(Err(e)) => {
                return Err(ResolveError::Failed {
                    host: host.to_owned(),
                    reason: e.to_string(),
                })
            }
            Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| ResolveError::Failed {
                host: host.to_owned(),
                reason: "no addresses".to_owned(),
            })?,
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(key, (addr, Instant::now()));
        }
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_skip_lookup() {
        let r = Resolver::default();
        let a = r
            .resolve("127.0.0.1", 8080, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(a, "127.0.0.1:8080".parse().unwrap());
        let a = r
            .resolve("[::1]", 443, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(a, "[::1]:443".parse().unwrap());
    }

    #[tokio::test]
    async fn localhost_resolves_and_bad_names_fail() {
        let r = Resolver::default();
        assert!(r
            .resolve("localhost", 80, Duration::from_secs(5))
            .await
            .is_ok());
        let e = r
            .resolve("no-such-host.invalid", 80, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no-such-host.invalid"));
    }
}
