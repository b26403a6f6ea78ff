//! Trace export configuration: the `telemetry.traces` section, as plain data.
//!
//! ```yaml
//! telemetry:
//!   traces:
//!     endpoint: http://127.0.0.1:4318/v1/traces   # the default exporter; absent: none
//!     headers: {}
//!     sample_ratio: 1.0
//!     capture_content: false
//!     environments:                               # per-environment exporters
//!       staging:    {endpoint: https://cloud.langfuse.com/api/public/otel/v1/traces,
//!                    headers: {authorization: "Basic …"}}
//!       production: {endpoint: …, headers: {authorization: "Basic …"}, capture_content: false}
//! ```
//!
//! A request's spans go to its environment's exporter when `environments` has one, else to
//! the default `endpoint`, else nowhere. Header values are secrets (Langfuse's basic auth):
//! `Debug` shows header names only, and no error message or log line quotes a value.
//!
//! One caveat from `opentelemetry-otlp`: when the `OTEL_EXPORTER_OTLP_HEADERS` or
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS` environment variable is set, that crate adds those
//! headers to *every* exporter, overriding configured headers of the same name. Do not set
//! them when environments export to different backends.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::TelemetryError;

/// The `telemetry.traces` section.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// The default OTLP/HTTP traces endpoint (full URL, e.g. `…/v1/traces`); `None`: only
    /// environments listed in `environments` are traced.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Headers sent to the default endpoint. Values are secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Share of new traces kept, `0.0..=1.0`. Requests that arrive with a `traceparent`
    /// follow its sampled flag instead.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// Export prompts and completions (after redaction) as `gen_ai.input.messages` /
    /// `gen_ai.output.messages`.
    #[serde(default)]
    pub capture_content: bool,
    /// Exporters of their own for some environments.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentExporter>,
    /// Requests whose spans may wait for export, per environment (and once more in front
    /// of the per-environment queues). Beyond it spans are dropped and counted.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Most spans in one export call.
    #[serde(default = "default_max_batch_spans")]
    pub max_batch_spans: usize,
    /// Longest wait for a batch to fill before it is sent, in milliseconds.
    #[serde(default = "default_batch_delay_ms")]
    pub batch_delay_ms: u64,
    /// Bound on one export call, retries included, in milliseconds.
    #[serde(default = "default_export_timeout_ms")]
    pub export_timeout_ms: u64,
    /// Captured content longer than this (bytes, per attribute) is cut.
    #[serde(default = "default_max_content_bytes")]
    pub max_content_bytes: usize,
    /// Bound on captured content waiting for export, all environments together (bytes).
    /// Past it, spans are still exported but without content, marked
    /// `veilgate.content.omitted`.
    #[serde(default = "default_max_queued_content_bytes")]
    pub max_queued_content_bytes: usize,
}

/// One environment's exporter.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentExporter {
    /// The OTLP/HTTP traces endpoint.
    pub endpoint: String,
    /// Headers sent with every export. Values are secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Overrides the top-level `capture_content` for this environment.
    #[serde(default)]
    pub capture_content: Option<bool>,
}

fn default_sample_ratio() -> f64 {
    1.0
}
fn default_queue_capacity() -> usize {
    2048
}
fn default_max_batch_spans() -> usize {
    512
}
fn default_batch_delay_ms() -> u64 {
    1000
}
fn default_export_timeout_ms() -> u64 {
    10_000
}
fn default_max_content_bytes() -> usize {
    32 * 1024
}
fn default_max_queued_content_bytes() -> usize {
    64 * 1024 * 1024
}

impl Default for TraceSpec {
    /// No exporters: tracing off.
    fn default() -> Self {
        TraceSpec {
            endpoint: None,
            headers: BTreeMap::new(),
            sample_ratio: default_sample_ratio(),
            capture_content: false,
            environments: BTreeMap::new(),
            queue_capacity: default_queue_capacity(),
            max_batch_spans: default_max_batch_spans(),
            batch_delay_ms: default_batch_delay_ms(),
            export_timeout_ms: default_export_timeout_ms(),
            max_content_bytes: default_max_content_bytes(),
            max_queued_content_bytes: default_max_queued_content_bytes(),
        }
    }
}

impl TraceSpec {
    /// Whether any exporter is configured.
    pub fn is_enabled(&self) -> bool {
        self.endpoint.is_some() || !self.environments.is_empty()
    }

    /// Checks what the exporter would otherwise reject or silently ignore: URLs, header
    /// names and values, the ratio and the bounds. Call it when loading the configuration
    /// to report problems with the rest; [`Telemetry`](super::Telemetry) calls it too.
    ///
    /// # Errors
    ///
    /// [`TelemetryError::InvalidTraceSpec`] naming the first offending field (never quoting
    /// a header value).
    pub fn validate(&self) -> Result<(), TelemetryError> {
        let invalid = |field: String, problem: &str| TelemetryError::InvalidTraceSpec {
            field,
            problem: problem.to_owned(),
        };
        if !self.sample_ratio.is_finite() || !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(invalid(
                "telemetry.traces.sample_ratio".into(),
                "must be a number from 0.0 to 1.0",
            ));
        }
        for (field, value) in [
            ("queue_capacity", self.queue_capacity as u64),
            ("max_batch_spans", self.max_batch_spans as u64),
            ("batch_delay_ms", self.batch_delay_ms),
            ("export_timeout_ms", self.export_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(
                    format!("telemetry.traces.{field}"),
                    "must be greater than 0",
                ));
            }
        }
        if let Some(endpoint) = &self.endpoint {
            check_endpoint(endpoint).map_err(|p| invalid("telemetry.traces.endpoint".into(), p))?;
        }
        check_headers(&self.headers, "telemetry.traces.headers")?;
        for (name, exporter) in &self.environments {
            if name.is_empty() {
                return Err(invalid(
                    "telemetry.traces.environments".into(),
                    "environment names must not be empty",
                ));
            }
            let at = format!("telemetry.traces.environments.{name}");
            check_endpoint(&exporter.endpoint).map_err(|p| invalid(format!("{at}.endpoint"), p))?;
            check_headers(&exporter.headers, &format!("{at}.headers"))?;
        }
        Ok(())
    }

    pub(crate) fn batch_delay(&self) -> Duration {
        Duration::from_millis(self.batch_delay_ms)
    }

    pub(crate) fn export_timeout(&self) -> Duration {
        Duration::from_millis(self.export_timeout_ms)
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| "must be an absolute http:// or https:// URL")?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err("must be an absolute http:// or https:// URL"),
    }
}

fn check_headers(headers: &BTreeMap<String, String>, at: &str) -> Result<(), TelemetryError> {
    for (name, value) in headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(TelemetryError::InvalidTraceSpec {
                field: at.to_owned(),
                problem: format!("{name:?} is not a valid header name"),
            });
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(TelemetryError::InvalidTraceSpec {
                field: format!("{at}.{name}"),
                problem: "the value is not a valid header value (control characters?)".into(),
            });
        }
    }
    Ok(())
}

/// An endpoint fit for logs: scheme, host, port and path, without user info or query.
pub(crate) fn endpoint_for_log(endpoint: &str) -> String {
    match endpoint.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}{}{}",
            uri.scheme_str().unwrap_or("?"),
            uri.host().unwrap_or("?"),
            uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default(),
            uri.path()
        ),
        Err(_) => "<invalid endpoint>".to_owned(),
    }
}

/// Header names with every value hidden.
struct RedactedHeaders<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, format_args!("<redacted>"))))
            .finish()
    }
}

struct LoggableEndpoint<'a>(&'a str);

impl fmt::Debug for LoggableEndpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&endpoint_for_log(self.0))
    }
}

impl fmt::Debug for TraceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceSpec")
            .field("endpoint", &self.endpoint.as_deref().map(LoggableEndpoint))
            .field("headers", &RedactedHeaders(&self.headers))
            .field("sample_ratio", &self.sample_ratio)
            .field("capture_content", &self.capture_content)
            .field("environments", &self.environments)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_batch_spans", &self.max_batch_spans)
            .field("batch_delay_ms", &self.batch_delay_ms)
            .field("export_timeout_ms", &self.export_timeout_ms)
            .field("max_content_bytes", &self.max_content_bytes)
            .field("max_queued_content_bytes", &self.max_queued_content_bytes)
            .finish()
    }
}

impl fmt::Debug for EnvironmentExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvironmentExporter")
            .field("endpoint", &LoggableEndpoint(&self.endpoint))
            .field("headers", &RedactedHeaders(&self.headers))
            .field("capture_content", &self.capture_content)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "Basic c2stbGYtU0VDUkVULXBsYW50ZWQ=";

    fn spec() -> TraceSpec {
        let json = serde_json::json!({
            "endpoint": "http://user:pw@127.0.0.1:4318/v1/traces?token=abc",
            "headers": {"x-api-key": SECRET},
            "environments": {
                "staging": {"endpoint": "https://cloud.langfuse.com/api/public/otel/v1/traces",
                            "headers": {"authorization": SECRET}, "capture_content": true}
            }
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_and_validation() {
        let s = spec();
        assert_eq!(s.sample_ratio, 1.0);
        assert!(!s.capture_content);
        assert!(s.is_enabled());
        assert!(s.validate().is_ok());
        assert!(!TraceSpec::default().is_enabled());
        assert!(TraceSpec::default().validate().is_ok());
    }

    #[test]
    fn debug_hides_header_values_and_credentials_in_urls() {
        let debug = format!("{:?}", spec());
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!debug.contains("pw"), "{debug}");
        assert!(!debug.contains("token=abc"), "{debug}");
        assert!(debug.contains("authorization"), "{debug}");
        assert!(debug.contains("cloud.langfuse.com"), "{debug}");
    }

    #[test]
    fn rejects_bad_values_without_quoting_them() {
        let mut s = spec();
        s.sample_ratio = 1.5;
        assert!(
            matches!(s.validate(), Err(TelemetryError::InvalidTraceSpec { field, .. }) if field.ends_with("sample_ratio"))
        );

        let mut s = spec();
        let bad = format!("{SECRET}\r\nx-injected: 1");
        s.environments
            .get_mut("staging")
            .unwrap()
            .headers
            .insert("authorization".into(), bad);
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("environments.staging.headers.authorization"),
            "{err}"
        );
        assert!(!err.contains(SECRET), "{err}");

        let mut s = spec();
        s.endpoint = Some("localhost:4318".into());
        assert!(s.validate().is_err());

        let mut s = spec();
        s.queue_capacity = 0;
        assert!(s.validate().is_err());

        let unknown: Result<TraceSpec, _> =
            serde_json::from_value(serde_json::json!({"sample_rate": 0.5}));
        assert!(unknown.is_err());
    }
}
