//! The config file as written: serde structs that mirror the YAML, every field optional so that
//! deserialization never stops early. [`super::validate`] checks them and builds the runtime
//! model; nothing else uses these types.
//!
//! Values whose problems are reported are [`Located`]: they carry their position (and the
//! `${VAR}` they came from) into validation. A mapping or list item that can miss a required
//! key is `Located` too: "missing required key" is reported at the mapping. Keys whose empty
//! value (`key:`) is reported differently from their absence are
//! `Option<Located<Option<T>>>` read with [`written`].
//!
//! Field order matters: it is the order of "expected one of: …" in unknown-key messages. No
//! `Debug`: these hold the API keys in the clear.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::located::{written, Located};
use crate::limits::LimitSpec;
use crate::redact::{Action, CustomDetectorSpec, DetectorActions};

/// The top level of the file.
#[derive(Deserialize)]
pub(crate) struct RawConfig {
    #[serde(default, deserialize_with = "written")]
    pub environment: Option<Located<Option<String>>>,
    #[serde(default, deserialize_with = "written")]
    pub listen: Option<Located<Option<String>>>,
    pub admin: Option<Located<String>>,
    pub max_body_bytes: Option<Located<u64>>,
    pub max_buffered_bytes: Option<Located<u64>>,
    pub shutdown_grace: Option<Located<String>>,
    pub client_timeout: Option<Located<String>>,
    #[serde(default, deserialize_with = "written")]
    pub upstreams: Option<Located<Option<RawUpstreams>>>,
    #[serde(default, deserialize_with = "written")]
    pub routes: Option<Located<Option<RawRoutes>>>,
    pub keys: Option<Vec<Located<RawKey>>>,
    pub rate_limit: Option<Located<RawRateLimit>>,
    pub telemetry: Option<RawTelemetry>,
    pub redaction: Option<Located<RawRedaction>>,
    pub prices: Option<RawPrices>,
}

/// `redaction:` at the top level or on a route: every part optional, so a route overrides
/// only what it names.
#[derive(Deserialize)]
pub(crate) struct RawRedaction {
    pub request: Option<RawCategoryActions>,
    pub response: Option<RawCategoryActions>,
    pub actions: Option<Located<BTreeMap<String, Located<DetectorActions>>>>,
    pub detectors: Option<Vec<Located<CustomDetectorSpec>>>,
    pub allow: Option<Located<Vec<String>>>,
    #[serde(default, deserialize_with = "written")]
    pub hash_key: Option<Located<Option<String>>>,
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
    #[serde(default, deserialize_with = "written")]
    pub name: Option<Located<Option<String>>>,
    #[serde(default, deserialize_with = "written")]
    pub key: Option<Located<Option<String>>>,
    #[serde(default, deserialize_with = "written")]
    pub key_sha256: Option<Located<Option<String>>>,
    pub environment: Option<Located<String>>,
    pub models: Option<Located<Vec<Located<String>>>>,
    pub limits: Option<Located<LimitSpec>>,
}

/// `rate_limit:`.
#[derive(Deserialize)]
pub(crate) struct RawRateLimit {
    pub backend: Option<Located<String>>,
    #[serde(default, deserialize_with = "written")]
    pub url: Option<Located<Option<String>>>,
    pub on_backend_error: Option<Located<String>>,
    pub timeout: Option<Located<String>>,
}

/// `telemetry:`.
#[derive(Deserialize)]
pub(crate) struct RawTelemetry {
    pub traces: Option<Located<RawTraces>>,
}

/// `telemetry.traces`: [`crate::telemetry::TraceSpec`] as written, with the positions of what
/// its validation can name. Same keys, order and types (a key written empty is a value of
/// the wrong type, as there, not an absent one); the defaults are `TraceSpec`'s.
#[derive(Deserialize)]
pub(crate) struct RawTraces {
    pub endpoint: Option<Located<String>>,
    #[serde(default, deserialize_with = "written")]
    pub headers: Option<Located<RawHeaders>>,
    #[serde(default, deserialize_with = "written")]
    pub sample_ratio: Option<Located<f64>>,
    #[serde(default)]
    pub capture_content: bool,
    #[serde(default, deserialize_with = "written")]
    pub environments: Option<Located<BTreeMap<String, Located<RawExporter>>>>,
    #[serde(default, deserialize_with = "written")]
    pub queue_capacity: Option<Located<usize>>,
    #[serde(default, deserialize_with = "written")]
    pub max_batch_spans: Option<Located<usize>>,
    #[serde(default, deserialize_with = "written")]
    pub batch_delay_ms: Option<Located<u64>>,
    #[serde(default, deserialize_with = "written")]
    pub export_timeout_ms: Option<Located<u64>>,
    #[serde(default, deserialize_with = "written")]
    pub max_content_bytes: Option<Located<usize>>,
    #[serde(default, deserialize_with = "written")]
    pub max_queued_content_bytes: Option<Located<usize>>,
}

/// `headers:` of a trace exporter: values by header name.
pub(crate) type RawHeaders = BTreeMap<String, Located<String>>;

/// One of `telemetry.traces.environments`: [`crate::telemetry::EnvironmentExporter`] as
/// written, with positions.
#[derive(Deserialize)]
pub(crate) struct RawExporter {
    pub endpoint: Located<String>,
    #[serde(default, deserialize_with = "written")]
    pub headers: Option<Located<RawHeaders>>,
    pub capture_content: Option<bool>,
}

/// `upstreams:`: each upstream by name.
pub(crate) type RawUpstreams = BTreeMap<String, Located<RawUpstream>>;

/// One entry under `upstreams:`.
#[derive(Deserialize)]
pub(crate) struct RawUpstream {
    #[serde(default, deserialize_with = "written")]
    pub url: Option<Located<Option<String>>>,
    pub api_key: Option<Located<String>>,
    pub connect_timeout: Option<Located<String>>,
    pub timeout: Option<Located<String>>,
    pub idle_timeout: Option<Located<String>>,
    pub auth_header: Option<Located<String>>,
    pub api: Option<Located<String>>,
    pub query: Option<Located<RawPairs>>,
    pub health_check: Option<Located<RawHealthCheck>>,
    pub owned_by: Option<String>,
}

/// `health_check:` of an upstream.
#[derive(Deserialize)]
pub(crate) struct RawHealthCheck {
    #[serde(default, deserialize_with = "written")]
    pub path: Option<Located<Option<String>>>,
    pub interval: Option<Located<String>>,
    pub timeout: Option<Located<String>>,
}

/// One entry of a route's `upstreams:` list.
#[derive(Deserialize)]
pub(crate) struct RawTarget {
    #[serde(default, deserialize_with = "written")]
    pub name: Option<Located<Option<String>>>,
    /// Signed so that `-1` gets the same "from 0 to 1000" message as `5000`.
    pub weight: Option<Located<i64>>,
}

/// `routes:`, in order.
pub(crate) type RawRoutes = Vec<Located<RawRoute>>;

/// One entry under `routes:`.
#[derive(Deserialize)]
pub(crate) struct RawRoute {
    #[serde(default, deserialize_with = "written")]
    pub models: Option<Located<Option<Vec<Located<String>>>>>,
    #[serde(default, deserialize_with = "written")]
    pub paths: Option<Located<Option<Vec<Located<String>>>>>,
    #[serde(default, deserialize_with = "written")]
    pub upstream: Option<Located<Option<String>>>,
    #[serde(default, deserialize_with = "written")]
    pub upstreams: Option<Located<Option<Vec<Located<RawTarget>>>>>,
    pub fallbacks: Option<Vec<Located<String>>>,
    pub retry_on: Option<Vec<Located<String>>>,
    pub model: Option<Located<String>>,
    #[serde(default, deserialize_with = "written")]
    pub name: Option<Located<Option<String>>>,
    pub environment: Option<Located<String>>,
    pub limits: Option<Located<LimitSpec>>,
    pub redaction: Option<Located<RawRedaction>>,
    pub inspect: Option<Located<bool>>,
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
pub(crate) type RawPrices = RawOrdered<Located<RawPrice>>;

/// One model's prices: [`crate::spend::ModelPrice`] as written, with the position of each
/// price. Same keys, order and types: `input` and `output` are required.
#[derive(Deserialize)]
pub(crate) struct RawPrice {
    pub input: Located<f64>,
    pub output: Located<f64>,
    pub cached_input: Option<Located<f64>>,
    pub cache_write: Option<Located<f64>>,
    pub reasoning: Option<Located<f64>>,
    pub audio_input: Option<Located<f64>>,
    pub audio_output: Option<Located<f64>>,
    pub image_input: Option<Located<f64>>,
    pub max_output_tokens: Option<Located<u64>>,
}

/// The built-in price table file (`conf/prices.yaml`).
#[derive(Deserialize)]
pub(crate) struct RawPriceFile {
    #[serde(default, deserialize_with = "written")]
    pub taken: Option<Located<Option<String>>>,
    pub models: Option<RawPrices>,
}
