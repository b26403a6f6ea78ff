//! `telemetry.traces`, and the cross-check of its environments against the labels in use.

use super::Checker;
use crate::config::model::{Route, VirtualKey};
use crate::config::suggest::closest;
use crate::config::tree::{child_path, quote};
use crate::telemetry::{TelemetryError, TraceSpec};

impl Checker<'_> {
    pub(super) fn traces(&mut self, spec: Option<TraceSpec>) -> Option<TraceSpec> {
        let spec = spec.unwrap_or_default();
        match spec.validate() {
            Ok(()) => Some(spec),
            Err(TelemetryError::InvalidTraceSpec { field, problem }) => {
                let path = if field.starts_with("telemetry.") {
                    field
                } else {
                    format!("telemetry.traces.{field}")
                };
                let at = if self.index.get(&path).is_some() {
                    path.clone()
                } else {
                    "telemetry.traces".to_owned()
                };
                self.problems.push(self.index.pos(&at), &path, problem);
                None
            }
            Err(e) => {
                self.report("telemetry.traces", e.to_string());
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
        environment: &str,
        routes: &[Route],
        keys: &[VirtualKey],
        traces: &TraceSpec,
    ) {
        let mut used: Vec<&str> = vec![environment];
        used.extend(routes.iter().filter_map(|r| r.environment.as_deref()));
        used.extend(keys.iter().filter_map(|k| k.environment.as_deref()));
        used.sort_unstable();
        used.dedup();
        let shared_file = self
            .index
            .get("environment")
            .is_some_and(|found| found.source.is_some());
        for name in traces.environments.keys() {
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
                    self.report(&path, message);
                }
                None if !shared_file => {
                    let message = format!(
                        "no traffic is labelled {} (the labels in use are {labels}: the top-level environment and the routes' and keys' environment); its spans would go to the default exporter",
                        quote(name)
                    );
                    self.report(&path, message);
                }
                None => {}
            }
        }
    }
}
