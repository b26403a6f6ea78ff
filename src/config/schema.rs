//! The config file as written: serde structs that mirror the YAML, every field optional so that
//! deserialization never stops early. [`super::validate`] checks them and builds the runtime
//! model; nothing else uses these types.
//!
//! Field order matters: it is the order of "expected one of: …" in unknown-key messages. No
//! `Debug`: these hold the API keys in the clear.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::limits::LimitSpec;
use crate::redact::{Action, CustomDetectorSpec};
use crate::spend::ModelPrice;
use crate::telemetry::TraceSpec;

/// The top level of the file.
#[derive(Deserialize)]
pub(crate) struct RawConfig {
    pub environment: Option<String>,
    pub listen: Option<String>,
    pub admin: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub max_buffered_bytes: Option<u64>,
    pub shutdown_grace: Option<String>,
    pub client_timeout: Option<String>,
    pub upstreams: Option<BTreeMap<String, RawUpstream>>,
    pub routes: Option<Vec<RawRoute>>,
    pub keys: Option<Vec<RawKey>>,
    pub rate_limit: Option<RawRateLimit>,
    pub telemetry: Option<RawTelemetry>,
    pub redaction: Option<RawRedaction>,
    pub prices: Option<RawPrices>,
}

/// `redaction:` at the top level or on a route: every part optional, so a route overrides
/// only what it names.
#[derive(Deserialize)]
pub(crate) struct RawRedaction {
    pub request: Option<RawCategoryActions>,
    pub response: Option<RawCategoryActions>,
    pub actions: Option<BTreeMap<String, Action>>,
    pub detectors: Option<Vec<CustomDetectorSpec>>,
    pub allow: Option<Vec<String>>,
    pub hash_key: Option<String>,
}

/// `{secrets: …, pii: …}`.
#[derive(Deserialize)]
pub(crate) struct RawCategoryActions {
    pub secrets: Option<Action>,
    pub pii: Option<Action>,
}

/// One entry under `keys:` (a virtual key).
#[derive(Deserialize)]
pub(crate) struct RawKey {
    pub name: Option<String>,
    pub key: Option<String>,
    pub key_sha256: Option<String>,
    pub environment: Option<String>,
    pub models: Option<Vec<String>>,
    pub limits: Option<LimitSpec>,
}

/// `rate_limit:`.
#[derive(Deserialize)]
pub(crate) struct RawRateLimit {
    pub backend: Option<String>,
    pub url: Option<String>,
    pub on_backend_error: Option<String>,
    pub timeout: Option<String>,
}

/// `telemetry:`.
#[derive(Deserialize)]
pub(crate) struct RawTelemetry {
    pub traces: Option<TraceSpec>,
}

/// One entry under `upstreams:`.
#[derive(Deserialize)]
pub(crate) struct RawUpstream {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub auth_header: Option<String>,
    pub api: Option<String>,
    pub query: Option<RawPairs>,
    pub health_check: Option<RawHealthCheck>,
    pub owned_by: Option<String>,
}

/// `health_check:` of an upstream.
#[derive(Deserialize)]
pub(crate) struct RawHealthCheck {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
}

/// One entry of a route's `upstreams:` list.
#[derive(Deserialize)]
pub(crate) struct RawTarget {
    pub name: Option<String>,
    /// Signed so that `-1` gets the same "from 0 to 1000" message as `5000`.
    pub weight: Option<i64>,
}

/// One entry under `routes:`.
#[derive(Deserialize)]
pub(crate) struct RawRoute {
    pub models: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub upstream: Option<String>,
    pub upstreams: Option<Vec<RawTarget>>,
    pub fallbacks: Option<Vec<String>>,
    pub retry_on: Option<Vec<String>>,
    pub model: Option<String>,
    pub name: Option<String>,
    pub environment: Option<String>,
    pub limits: Option<LimitSpec>,
    pub redaction: Option<RawRedaction>,
    pub inspect: Option<bool>,
}

/// A mapping kept in file order (`query:`, `prices:`), unlike a `BTreeMap`. Duplicate keys were
/// reported by the tree already.
pub(crate) struct RawOrdered<T>(pub Vec<(String, T)>);

impl<T> Default for RawOrdered<T> {
    fn default() -> Self {
        RawOrdered(Vec::new())
    }
}

/// `query:`: strings by name.
pub(crate) type RawPairs = RawOrdered<String>;

impl<'de, T: Deserialize<'de>> Deserialize<'de> for RawOrdered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
            type Value = RawOrdered<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawOrdered<T>, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry::<String, T>()? {
                    pairs.push(pair);
                }
                Ok(RawOrdered(pairs))
            }
        }

        deserializer.deserialize_map(OrderedVisitor(std::marker::PhantomData))
    }
}

/// `prices:` at the top level: a model name or glob → its prices.
pub(crate) type RawPrices = RawOrdered<ModelPrice>;

/// The built-in price table file (`conf/prices.yaml`).
#[derive(Deserialize)]
pub(crate) struct RawPriceFile {
    pub taken: Option<String>,
    pub models: Option<RawPrices>,
}
