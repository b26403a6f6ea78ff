//! `redaction:` at the top level and on routes: merged into policies and compiled.

use std::sync::Arc;

use super::Checker;
use crate::config::schema::{RawCategoryActions, RawRedaction};
use crate::config::suggest::closest;
use crate::config::tree::{child_path, item_path, quote};
use crate::redact::{CategoryActions, PolicyError, PolicySpec, Redactor};

/// `base` with the parts `raw` names replaced (actions merged by detector, custom detectors
/// and allow-list entries added).
pub(super) fn apply_redaction(mut base: PolicySpec, raw: Option<&RawRedaction>) -> PolicySpec {
    let Some(raw) = raw else {
        return base;
    };
    let merge = |base: CategoryActions, raw: &Option<RawCategoryActions>| match raw {
        None => base,
        Some(r) => CategoryActions {
            secrets: r.secrets.unwrap_or(base.secrets),
            pii: r.pii.unwrap_or(base.pii),
        },
    };
    base.request = merge(base.request, &raw.request);
    base.response = merge(base.response, &raw.response);
    if let Some(actions) = &raw.actions {
        base.actions
            .extend(actions.iter().map(|(k, v)| (k.clone(), *v)));
    }
    if let Some(detectors) = &raw.detectors {
        for d in detectors {
            base.detectors.retain(|existing| existing.name != d.name);
            base.detectors.push(d.clone());
        }
    }
    if let Some(allow) = &raw.allow {
        base.allow.extend(allow.iter().cloned());
    }
    if let Some(key) = &raw.hash_key {
        base.hash_key = key.clone().into_bytes();
    }
    base
}

impl Checker<'_> {
    /// Compiles a redaction policy, reporting its problems at `path`.
    pub(super) fn redactor(&mut self, spec: &PolicySpec, path: &str) -> Option<Arc<Redactor>> {
        match Redactor::new(spec) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                let at = match &e {
                    PolicyError::UnknownDetector { name } => {
                        let p = child_path(&child_path(path, "actions"), name);
                        let names: Vec<String> = Redactor::detector_names()
                            .map(str::to_owned)
                            .chain(spec.detectors.iter().map(|d| d.name.clone()))
                            .collect();
                        let mut message = format!("unknown detector {}", quote(name));
                        if let Some(similar) = closest(name, names.iter().map(String::as_str)) {
                            message.push_str(&format!(" (did you mean {}?)", quote(similar)));
                        }
                        message.push_str(&format!("; detectors: {}", names.join(", ")));
                        self.report(&p, message);
                        return None;
                    }
                    PolicyError::MissingHashKey => child_path(path, "hash_key"),
                    PolicyError::EmptyAllowEntry => child_path(path, "allow"),
                    PolicyError::InvalidPattern { detector, .. }
                    | PolicyError::EmptyMatch { detector }
                    | PolicyError::InvalidMaxLen { detector }
                    | PolicyError::DuplicateDetector { name: detector }
                    | PolicyError::InvalidName { name: detector } => {
                        let idx = spec.detectors.iter().rposition(|d| &d.name == detector);
                        match idx {
                            Some(i) => item_path(&child_path(path, "detectors"), i),
                            None => path.to_owned(),
                        }
                    }
                    _ => path.to_owned(),
                };
                let at = if self.index.get(&at).is_some() {
                    at
                } else {
                    path.to_owned()
                };
                self.report(&at, e.to_string());
                None
            }
        }
    }
}
