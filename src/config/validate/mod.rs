//! Semantic checks on the raw schema, building the runtime model.
//!
//! Every check reports at the position its value carries ([`Located`]), or, for a missing
//! required key, at the mapping that should hold it, and carries on, so one run lists every
//! problem. Key paths (`routes[1].upstream`) are built along the way for the messages. Values
//! whose `${VAR}` expansion failed were reported already and are not reported again.
//!
//! This file holds the checker's core (reporting, required values, the top-level keys and the
//! assembly of the [`Config`]); each domain is checked in a file of its own.

use std::net::SocketAddr;
use std::time::Duration;

use super::duration::{parse_duration, DurationError};
use super::error::{Pos, Problems};
use super::located::Located;
use super::model::Config;
use super::schema::{RawConfig, RawRedaction};
use super::tree::{child_path, item_path, quote};
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
pub(crate) fn validate(raw: Located<RawConfig>, problems: &mut Problems) -> Option<Config> {
    let mut checker = Checker { problems };
    checker.config(raw)
}

/// Reports problems, each once, and builds the model from what is valid.
struct Checker<'a> {
    problems: &'a mut Problems,
}

impl Checker<'_> {
    /// Reports a problem with `value` at its position, unless it was reported already (its
    /// `${VAR}` expansion failed, or it or a parent was replaced by a stand-in).
    pub(super) fn report<T>(&mut self, value: &Located<T>, path: &str, message: impl Into<String>) {
        if !value.failed {
            self.report_at(value.pos, path, message);
        }
    }

    /// Reports a problem at `pos`: the position of the mapping for a key missing from it.
    pub(super) fn report_at(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        if !self.problems.is_quiet(path) {
            self.problems.push(pos, path, message);
        }
    }

    /// A required, non-blank string: reported missing (at `parent`, the mapping that should
    /// hold it) or empty (at the value), with `hint`.
    pub(super) fn required_text(
        &mut self,
        value: Option<Located<Option<String>>>,
        parent: Pos,
        path: &str,
        hint: &str,
    ) -> Option<Located<String>> {
        let Some(found) = value else {
            let key = path.rsplit('.').next().unwrap_or(path);
            let message = format!("missing required key `{key}`; {hint}");
            self.report_at(parent, path, message);
            return None;
        };
        if found.value.as_deref().is_some_and(|v| !v.trim().is_empty()) {
            return found.transpose();
        }
        let message = match &found.source {
            Some(source) => format!("is empty (the expansion of {}); {hint}", quote(source)),
            None => format!("is empty; {hint}"),
        };
        self.report(&found, path, message);
        None
    }

    /// Like [`Checker::required_text`] for a top-level collection that must be present and
    /// non-empty (an empty one is `None` in `value`).
    pub(super) fn required_some<T>(
        &mut self,
        value: Option<Located<Option<T>>>,
        root: Pos,
        path: &str,
        hint: &str,
    ) -> Option<T> {
        match value {
            None => {
                let message = format!("missing required key `{path}`; {hint}");
                self.report_at(root, path, message);
                None
            }
            Some(found) if found.value.is_none() => {
                self.report(&found, path, format!("is empty; {hint}"));
                None
            }
            Some(found) => found.value,
        }
    }

    fn config(&mut self, raw: Located<RawConfig>) -> Option<Config> {
        let document = raw.at();
        let root = raw.pos;
        let raw = raw.value;
        let environment = self.required_text(
            raw.environment,
            root,
            "environment",
            "set a label such as production or development",
        );
        let listen = self
            .required_text(
                raw.listen,
                root,
                "listen",
                "set the address to serve on, like 0.0.0.0:8080",
            )
            .and_then(|text| self.socket_addr(&text, "listen"));
        let admin_text = raw.admin.filter(|t| !t.value.is_empty());
        let admin = match &admin_text {
            None => Ok(None),
            Some(text) => self.socket_addr(text, "admin").map(Some).ok_or(()),
        };
        if let (Some(listen), Ok(Some(admin)), Some(text)) = (listen, admin, &admin_text) {
            if overlap(listen, admin) {
                self.report(
                    text,
                    "admin",
                    "uses the same port as listen; pick another port",
                );
            }
        }
        let max_body_bytes = self.max_body_bytes(raw.max_body_bytes.as_ref());
        let max_buffered_bytes = self.max_buffered_bytes(
            raw.max_buffered_bytes.as_ref(),
            max_body_bytes,
            raw.max_body_bytes.as_ref(),
        );
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
        let upstream_names = UpstreamNames::of(raw.upstreams.as_ref());
        let upstreams = self.upstreams(raw.upstreams, root);
        let mut raw_routes = raw.routes;
        let route_policies: Vec<Option<Located<RawRedaction>>> = raw_routes
            .iter_mut()
            .flat_map(|routes| routes.value.iter_mut().flatten())
            .map(|r| r.value.redaction.take())
            .collect();
        let routes = self.routes(raw_routes, root, &upstream_names);
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
        let block = raw.redaction.as_ref().map_or(document, Located::at);
        let redaction =
            self.check_policy(&redaction_spec, raw.redaction.as_ref(), block, "redaction");
        let routes = match (routes, redaction) {
            (Some(mut routes), true) => {
                let mut valid = true;
                for (i, raw_policy) in route_policies.iter().enumerate() {
                    if let (Some(route), Some(raw_policy)) = (routes.get_mut(i), raw_policy) {
                        let spec = apply_redaction(redaction_spec.clone(), Some(raw_policy));
                        let path = child_path(&item_path("routes", i), "redaction");
                        valid &= self.check_policy(&spec, Some(raw_policy), raw_policy.at(), &path);
                        route.redaction = Some(spec);
                    }
                }
                valid.then_some(routes)
            }
            (routes, true) => routes,
            (_, false) => None,
        };
        Some(Config {
            environment: environment?.value,
            listen: listen?,
            admin: admin.ok()?,
            max_body_bytes: max_body_bytes?,
            max_buffered_bytes: max_buffered_bytes?,
            shutdown_grace: shutdown_grace?,
            client_timeout: client_timeout?,
            keys: keys?.into_iter().map(|k| k.key).collect(),
            rate_limit: rate_limit?,
            traces: traces?.spec,
            redaction: redaction_spec,
            upstreams: upstreams?,
            routes: routes?,
            prices: PriceTable::new(prices?),
        })
    }

    fn socket_addr(&mut self, text: &Located<String>, path: &str) -> Option<SocketAddr> {
        if let Ok(addr) = text.value.parse() {
            return Some(addr);
        }
        let mut message = format!(
            "expected an IP address and port like 0.0.0.0:8080 or [::]:8080, found {}",
            text.show(&text.value)
        );
        if text.value.starts_with("localhost") {
            message.push_str("; write 127.0.0.1 for localhost (host names are not resolved)");
        }
        self.report(text, path, message);
        None
    }

    fn max_body_bytes(&mut self, value: Option<&Located<u64>>) -> Option<usize> {
        const PATH: &str = "max_body_bytes";
        let Some(value) = value else {
            return Some(Config::DEFAULT_MAX_BODY_BYTES);
        };
        match usize::try_from(value.value) {
            Ok(0) => {
                let message = "must be greater than 0 (the default is 33554432, 32 MiB)";
                self.report(value, PATH, message);
                None
            }
            Ok(n) => Some(n),
            Err(_) => {
                self.report(value, PATH, "is too large for this platform");
                None
            }
        }
    }

    /// `max_buffered_bytes`: more than 0, and room for at least one body of `max_body_bytes`
    /// (when that is valid).
    fn max_buffered_bytes(
        &mut self,
        value: Option<&Located<u64>>,
        max_body_bytes: Option<usize>,
        max_body_written: Option<&Located<u64>>,
    ) -> Option<usize> {
        const PATH: &str = "max_buffered_bytes";
        let n = match value.map(|v| (v, usize::try_from(v.value))) {
            None => Config::DEFAULT_MAX_BUFFERED_BYTES,
            Some((v, Ok(0))) => {
                let message = "must be greater than 0 (the default is 268435456, 256 MiB)";
                self.report(v, PATH, message);
                return None;
            }
            Some((_, Ok(n))) => n,
            Some((v, Err(_))) => {
                self.report(v, PATH, "is too large for this platform");
                return None;
            }
        };
        match max_body_bytes {
            Some(body) if n < body => {
                if let Some(v) = value {
                    self.report(v, PATH, format!(
                        "is {n}, less than max_body_bytes ({body}): a body of the largest accepted size could never be read; raise it to at least {body}"
                    ));
                } else if let Some(written) = max_body_written {
                    // Only a written max_body_bytes can be more than the default buffer.
                    self.report(written, "max_body_bytes", format!(
                        "is {body}, more than max_buffered_bytes (not set: 268435456, 256 MiB), the most request bytes buffered at once; set max_buffered_bytes to at least {body}"
                    ));
                }
                None
            }
            _ => Some(n),
        }
    }

    /// A duration above 0, or `default` when absent.
    pub(super) fn duration(
        &mut self,
        text: Option<Located<String>>,
        path: &str,
        default: Duration,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        const EXAMPLES: &str = "like 30s, 250ms, 5m or 1h";
        let message = match parse_duration(&text.value) {
            Ok(duration) if !duration.is_zero() => return Some(duration),
            Ok(_) => "must be greater than 0".to_owned(),
            Err(DurationError::NoUnit) => format!(
                "expected a duration {EXAMPLES}, found the bare number {}; add a unit (ms, s, m or h)",
                text.show(&text.value)
            ),
            Err(err) => format!("invalid duration {}: {err}; write it {EXAMPLES}", text.show(&text.value)),
        };
        self.report(&text, path, message);
        None
    }
}

/// Whether two listening addresses would clash: same port, and the same or a wildcard IP.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
