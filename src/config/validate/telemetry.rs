//! `telemetry.traces`, and the cross-check of its environments against the labels in use.

use std::collections::BTreeMap;

use super::keys::CheckedKey;
use super::Checker;
use crate::config::located::Located;
use crate::config::model::Route;
use crate::config::schema::{RawExporter, RawHeaders, RawTraces};
use crate::config::suggest::closest;
use crate::config::tree::{child_path, quote};
use crate::telemetry::{EnvironmentExporter, TelemetryError, TraceSpec};

/// The checked `telemetry.traces`, and where each of its environments was written (for the
/// cross-check against the labels in use, which needs every route and key first).
pub(super) struct CheckedTraces {
    /// The section as the telemetry uses it.
    pub(super) spec: TraceSpec,
    /// Where each of `spec.environments` was written.
    environments_at: BTreeMap<String, Located<()>>,
}

impl Checker<'_> {
    /// `telemetry.traces`, checked by [`TraceSpec::validate`]: its problem is reported at the
    /// field it names when that is written, else at the section.
    pub(super) fn traces(&mut self, raw: Option<Located<RawTraces>>) -> Option<CheckedTraces> {
        let Some(raw) = raw else {
            return Some(CheckedTraces {
                spec: TraceSpec::default(),
                environments_at: BTreeMap::new(),
            });
        };
        let spec = trace_spec(&raw.value);
        match spec.validate() {
            Ok(()) => {
                let environments_at = raw
                    .value
                    .environments
                    .iter()
                    .flat_map(|envs| &envs.value)
                    .map(|(name, exporter)| (name.clone(), exporter.at()))
                    .collect();
                Some(CheckedTraces {
                    spec,
                    environments_at,
                })
            }
            Err(TelemetryError::InvalidTraceSpec { field, problem }) => {
                let path = if field.starts_with("telemetry.") {
                    field
                } else {
                    format!("telemetry.traces.{field}")
                };
                let pos = written_at(&raw.value, &path).map_or(raw.pos, |at| at.pos);
                self.problems.push(pos, &path, problem);
                None
            }
            Err(e) => {
                self.report(&raw, "telemetry.traces", e.to_string());
                None
            }
        }
    }

    /// A `telemetry.traces.environments.<name>` that no traffic is labelled with: its spans
    /// would go to the default exporter instead (a typo such as `stagign` sends staging traces
    /// to another collector). A name close to a label in use is always reported. When the
    /// top-level `environment` comes from `${VAR}` (one file for several deployments), other
    /// unused names are accepted: another deployment of the same file uses them.
    pub(super) fn unused_trace_environments(
        &mut self,
        environment: &Located<String>,
        routes: &[Route],
        keys: &[CheckedKey],
        traces: &CheckedTraces,
    ) {
        let mut used: Vec<&str> = vec![&environment.value];
        used.extend(routes.iter().filter_map(|r| r.environment.as_deref()));
        used.extend(keys.iter().filter_map(|k| k.key.environment.as_deref()));
        used.sort_unstable();
        used.dedup();
        let shared_file = environment.source.is_some();
        for (name, at) in &traces.environments_at {
            if used.contains(&name.as_str()) {
                continue;
            }
            let path = child_path("telemetry.traces.environments", name);
            let labels = used.iter().map(|u| quote(u)).collect::<Vec<_>>().join(", ");
            match closest(name, used.iter().copied()) {
                Some(similar) => {
                    let message = format!(
                        "no traffic is labelled {} (the labels in use are {labels}); did you mean {}?",
                        quote(name),
                        quote(similar)
                    );
                    self.report(at, &path, message);
                }
                None if !shared_file => {
                    let message = format!(
                        "no traffic is labelled {} (the labels in use are {labels}: the top-level environment and the routes' and keys' environment); its spans would go to the default exporter",
                        quote(name)
                    );
                    self.report(at, &path, message);
                }
                None => {}
            }
        }
    }
}

/// The [`TraceSpec`] `raw` describes: what is written, `TraceSpec`'s defaults for the rest.
fn trace_spec(raw: &RawTraces) -> TraceSpec {
    let defaults = TraceSpec::default();
    let or = |value: &Option<Located<usize>>, default: usize| {
        value.as_ref().map_or(default, |v| v.value)
    };
    let or_u64 =
        |value: &Option<Located<u64>>, default: u64| value.as_ref().map_or(default, |v| v.value);
    let environments = raw.environments.iter().flat_map(|envs| &envs.value);
    TraceSpec {
        endpoint: raw.endpoint.as_ref().map(|e| e.value.clone()),
        headers: headers(&raw.headers),
        sample_ratio: raw
            .sample_ratio
            .as_ref()
            .map_or(defaults.sample_ratio, |r| r.value),
        capture_content: raw.capture_content,
        environments: environments
            .map(|(name, exporter)| (name.clone(), exporter_spec(&exporter.value)))
            .collect(),
        queue_capacity: or(&raw.queue_capacity, defaults.queue_capacity),
        max_batch_spans: or(&raw.max_batch_spans, defaults.max_batch_spans),
        batch_delay_ms: or_u64(&raw.batch_delay_ms, defaults.batch_delay_ms),
        export_timeout_ms: or_u64(&raw.export_timeout_ms, defaults.export_timeout_ms),
        max_content_bytes: or(&raw.max_content_bytes, defaults.max_content_bytes),
        max_queued_content_bytes: or(
            &raw.max_queued_content_bytes,
            defaults.max_queued_content_bytes,
        ),
    }
}

fn exporter_spec(raw: &RawExporter) -> EnvironmentExporter {
    EnvironmentExporter {
        endpoint: raw.endpoint.value.clone(),
        headers: headers(&raw.headers),
        capture_content: raw.capture_content,
    }
}

fn headers(raw: &Option<Located<RawHeaders>>) -> BTreeMap<String, String> {
    raw.iter()
        .flat_map(|h| &h.value)
        .map(|(name, value)| (name.clone(), value.value.clone()))
        .collect()
}

/// Where the field [`TraceSpec::validate`] names (`telemetry.traces.environments.qa.endpoint`)
/// is written in `raw`, if it is.
fn written_at(raw: &RawTraces, field: &str) -> Option<Located<()>> {
    let field = field.strip_prefix("telemetry.traces.")?;
    match field {
        "endpoint" => return raw.endpoint.as_ref().map(Located::at),
        "sample_ratio" => return raw.sample_ratio.as_ref().map(Located::at),
        "queue_capacity" => return raw.queue_capacity.as_ref().map(Located::at),
        "max_batch_spans" => return raw.max_batch_spans.as_ref().map(Located::at),
        "batch_delay_ms" => return raw.batch_delay_ms.as_ref().map(Located::at),
        "export_timeout_ms" => return raw.export_timeout_ms.as_ref().map(Located::at),
        _ => {}
    }
    if let Some(rest) = field.strip_prefix("headers") {
        return header_at(raw.headers.as_ref(), rest);
    }
    let rest = field.strip_prefix("environments")?;
    let environments = raw.environments.as_ref()?;
    let Some(rest) = rest.strip_prefix('.') else {
        return rest.is_empty().then(|| environments.at());
    };
    // An environment's name may hold dots: try each name the rest starts with.
    environments.value.iter().find_map(|(name, exporter)| {
        match rest.strip_prefix(name.as_str())? {
            "" => Some(exporter.at()),
            ".endpoint" => Some(exporter.value.endpoint.at()),
            tail => header_at(
                exporter.value.headers.as_ref(),
                tail.strip_prefix(".headers")?,
            ),
        }
    })
}

/// Where `headers` (`rest` empty) or one of its values (`rest` is `.<name>`) is written.
fn header_at(
    headers: Option<&Located<BTreeMap<String, Located<String>>>>,
    rest: &str,
) -> Option<Located<()>> {
    let headers = headers?;
    match rest.strip_prefix('.') {
        None if rest.is_empty() => Some(headers.at()),
        None => None,
        Some(name) => headers.value.get(name).map(Located::at),
    }
}
