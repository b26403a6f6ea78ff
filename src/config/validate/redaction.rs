//! `redaction:` at the top level and on routes: merged into policies and compiled.

use super::Checker;
use crate::config::located::Located;
use crate::config::schema::{RawCategoryActions, RawRedaction};
use crate::config::suggest::closest;
use crate::config::tree::{child_path, item_path, quote};
use crate::redact::{CategoryActions, PolicyError, PolicySpec, Redactor};

/// `base` with the parts `raw` names replaced (actions merged by detector, custom detectors
/// and allow-list entries added).
pub(super) fn apply_redaction(
    mut base: PolicySpec,
    raw: Option<&Located<RawRedaction>>,
) -> PolicySpec {
    let Some(raw) = raw.map(|r| &r.value) else {
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
        // Per direction: a route's `email: {response: off}` keeps an inherited request action.
        for (name, over) in &actions.value {
            let merged = base
                .actions
                .get(name)
                .map_or(over.value, |inherited| inherited.merged(over.value));
            base.actions.insert(name.clone(), merged);
        }
    }
    if let Some(detectors) = &raw.detectors {
        for d in detectors {
            base.detectors
                .retain(|existing| existing.name != d.value.name);
            base.detectors.push(d.value.clone());
        }
    }
    if let Some(allow) = &raw.allow {
        base.allow.extend(allow.value.iter().cloned());
    }
    if let Some(key) = raw.hash_key.as_ref().and_then(|k| k.value.as_ref()) {
        base.hash_key = key.clone().into_bytes();
    }
    base
}

impl Checker<'_> {
    /// Checks that the redaction policy `spec`, merged from `raw` (the `redaction:` block at
    /// `path`, if written) and what it inherits, compiles (`Runtime::build` compiles it for
    /// good). A problem is reported at the part of `raw` it names when `raw` has that part,
    /// else at `block` (the block, or the document); returns whether there was none.
    pub(super) fn check_policy(
        &mut self,
        spec: &PolicySpec,
        raw: Option<&Located<RawRedaction>>,
        block: Located<()>,
        path: &str,
    ) -> bool {
        let e = match Redactor::new(spec) {
            Ok(_) => return true,
            Err(e) => e,
        };
        let raw = raw.map(|r| &r.value);
        let part = |key: &str| child_path(path, key);
        let (at, at_path) = match &e {
            PolicyError::UnknownDetector { name } => {
                let names: Vec<String> = Redactor::detector_names()
                    .map(str::to_owned)
                    .chain(spec.detectors.iter().map(|d| d.name.clone()))
                    .collect();
                let mut message = format!("unknown detector {}", quote(name));
                if let Some(similar) = closest(name, names.iter().map(String::as_str)) {
                    message.push_str(&format!(" (did you mean {}?)", quote(similar)));
                }
                message.push_str(&format!("; detectors: {}", names.join(", ")));
                // At the action that names it, else (an inherited one) at `actions:`.
                let actions = raw.and_then(|r| r.actions.as_ref());
                let at = match actions.map(|a| (a.value.get(name.as_str()), a)) {
                    Some((Some(action), _)) => action.at(),
                    Some((None, actions)) => actions.at(),
                    None => block,
                };
                let p = child_path(&part("actions"), name);
                self.report(&at, &p, message);
                return false;
            }
            PolicyError::MissingHashKey => match raw.and_then(|r| r.hash_key.as_ref()) {
                Some(key) => (key.at(), part("hash_key")),
                None => (block, path.to_owned()),
            },
            PolicyError::EmptyAllowEntry => match raw.and_then(|r| r.allow.as_ref()) {
                Some(allow) => (allow.at(), part("allow")),
                None => (block, path.to_owned()),
            },
            PolicyError::InvalidPattern { detector, .. }
            | PolicyError::EmptyMatch { detector }
            | PolicyError::InvalidMaxLen { detector }
            | PolicyError::InvalidSpec { detector, .. }
            | PolicyError::ExampleFailed { detector, .. }
            | PolicyError::DuplicateDetector { name: detector }
            | PolicyError::InvalidName { name: detector } => {
                // Where this block writes the detector (a route's list holds only its own: the
                // ones it inherits were checked with the block that wrote them); a failed
                // example by its own path.
                let written = raw.and_then(|r| {
                    let list = r.detectors.as_ref()?;
                    let i = list.iter().rposition(|d| &d.value.name == detector)?;
                    let mut at_path = item_path(&part("detectors"), i);
                    if let PolicyError::ExampleFailed { example, .. } = &e {
                        at_path = format!("{}.{example}", child_path(&at_path, "examples"));
                    }
                    Some((list[i].at(), at_path))
                });
                written.unwrap_or((block, path.to_owned()))
            }
            _ => (block, path.to_owned()),
        };
        self.report(&at, &at_path, e.to_string());
        false
    }
}
