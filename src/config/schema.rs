//! The config file as written: serde structs that mirror the YAML, every field optional so that
//! deserialization never stops early. [`super::validate`] checks them and builds the runtime
//! model; nothing else uses these types.
//!
//! Field order matters: it is the order of "expected one of: …" in unknown-key messages. No
//! `Debug`: these hold the API keys in the clear.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The top level of the file.
#[derive(Deserialize)]
pub(crate) struct RawConfig {
    pub environment: Option<String>,
    pub listen: Option<String>,
    pub admin: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub shutdown_grace: Option<String>,
    pub upstreams: Option<BTreeMap<String, RawUpstream>>,
    pub routes: Option<Vec<RawRoute>>,
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
    pub query: Option<BTreeMap<String, String>>,
    pub health_check: Option<RawHealthCheck>,
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
    pub weight: Option<u64>,
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
}
