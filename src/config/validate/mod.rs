//! Semantic checks on the raw schema, building the runtime model.
//!
//! Every check reports at the position of the offending value (looked up by key path in the
//! [`Index`]) and carries on, so one run lists every problem. Values whose `${VAR}` expansion
//! failed were reported already and are not reported again.
//!
//! This file holds the checker's core (reporting, required values, the top-level keys and the
//! assembly of the [`Config`]); each domain is checked in a file of its own.

use std::net::SocketAddr;
use std::time::Duration;

use super::duration::{parse_duration, DurationError};
use super::error::Problems;
use super::model::{Config, MODEL_PLACEHOLDER};
use super::schema::{RawConfig, RawRedaction};
use super::tree::{child_path, item_path, quote, Index};
use crate::redact::PolicySpec;
use crate::spend::PriceTable;

use redaction::apply_redaction;
use upstreams::UpstreamNames;

pub(crate) use prices::validate_price_file;

mod keys;
mod limits;
mod prices;
mod redaction;
mod routes;
mod targets;
mod telemetry;
mod upstreams;

/// Checks `raw` and builds the [`Config`]; `None` when anything was reported.
pub(crate) fn validate(raw: RawConfig, index: &Index, problems: &mut Problems) -> Option<Config> {
    let mut checker = Checker { index, problems };
    checker.config(raw)
}

struct Checker<'a> {
    index: &'a Index,
    problems: &'a mut Problems,
}

impl Checker<'_> {
    pub(super) fn report(&mut self, path: &str, message: impl Into<String>) {
        if !self.index.failed(path) && !self.problems.is_quiet(path) {
            self.problems.push(self.index.pos(path), path, message);
        }
    }

    /// Quotes the value at `path` for a message (an expanded value by its `${VAR}` source).
    pub(super) fn show(&self, path: &str, value: &str) -> String {
        self.index.show(path, value)
    }

    /// A required, non-blank string; reports it missing or empty (with `hint`) otherwise.
    pub(super) fn required_text(
        &mut self,
        value: Option<String>,
        path: &str,
        hint: &str,
    ) -> Option<String> {
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

    /// Like [`Checker::required_text`] for a collection that must be present and non-empty.
    pub(super) fn required_some<T>(
        &mut self,
        value: Option<T>,
        path: &str,
        hint: &str,
    ) -> Option<T> {
        if value.is_none() {
            let message = match self.index.get(path) {
                Some(_) => format!("is empty; {hint}"),
                None => format!("missing required key `{path}`; {hint}"),
            };
            self.report(path, message);
        }
        value
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

    pub(super) fn duration(
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
}

/// Whether two listening addresses would clash: same port, and the same or a wildcard IP.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
