//! A route's upstreams: `upstream:` or weighted `upstreams:`, `fallbacks:` and `retry_on:`.

use super::upstreams::UpstreamNames;
use super::Checker;
use crate::config::model::{RetryOn, Target, MODEL_PLACEHOLDER};
use crate::config::schema::RawTarget;
use crate::config::suggest::closest;
use crate::config::tree::{child_path, item_path, quote};

/// `retry_on:` conditions, as written.
const RETRY_CONDITIONS: [&str; 4] = ["connect", "timeout", "429", "5xx"];

impl Checker<'_> {
    /// `upstream:` xor `upstreams:`, plus `fallbacks:`; every name defined, none twice, and none
    /// with `{model}` in its url on a `paths:` route.
    pub(super) fn route_upstreams(
        &mut self,
        raw: RouteUpstreams,
        path: &str,
        upstream_names: &UpstreamNames,
    ) -> (Option<Vec<Target>>, Option<Vec<String>>) {
        let RouteUpstreams {
            single,
            weighted,
            fallbacks,
            has_model,
        } = raw;
        let at = |key: &str| child_path(path, key);
        let target_names: Vec<String> = single
            .iter()
            .cloned()
            .chain(weighted.iter().flatten().filter_map(|t| t.name.clone()))
            .collect();
        let mut seen: Vec<String> = Vec::new();
        let mut ok = true;
        let mut check = |this: &mut Self, name: String, item: &str| -> Option<String> {
            let name = this.known_upstream(name, item, &upstream_names.all)?;
            if !has_model && upstream_names.with_model.contains(&name) {
                let message = format!(
                    "upstream {} has {MODEL_PLACEHOLDER} in its url, and a paths: route has no model \
                     to put there; use an upstream without {MODEL_PLACEHOLDER}",
                    quote(&name)
                );
                this.report(item, message);
                return None;
            }
            if seen.contains(&name) {
                let message = format!(
                    "upstream {} is listed twice in this route's upstreams or twice in its \
                     fallbacks; list each once (a target may be listed again in fallbacks)",
                    quote(&name)
                );
                this.report(item, message);
                return None;
            }
            seen.push(name.clone());
            Some(name)
        };
        let targets = match (single, weighted) {
            (Some(_), Some(_)) => {
                self.report(
                    &at("upstreams"),
                    "a route has either upstream: (one name) or upstreams: (a weighted list), not both",
                );
                None
            }
            (None, None) => {
                if self.index.get(&at("upstream")).is_none()
                    && self.index.get(&at("upstreams")).is_none()
                {
                    self.report(
                        &at("upstream"),
                        "missing required key `upstream`; name the upstream that serves this route (or list upstreams: with weights)",
                    );
                }
                None
            }
            (Some(name), None) => check(self, name, &at("upstream")).map(|upstream| {
                vec![Target {
                    upstream,
                    weight: 1,
                }]
            }),
            (None, Some(list)) => {
                if list.is_empty() {
                    self.report(&at("upstreams"), "is empty; list {name, weight} entries");
                    None
                } else {
                    let mut targets = Vec::with_capacity(list.len());
                    for (i, raw) in list.into_iter().enumerate() {
                        let item = item_path(&at("upstreams"), i);
                        let name = self.required_text(
                            raw.name,
                            &child_path(&item, "name"),
                            "name an upstream",
                        );
                        let weight_path = child_path(&item, "weight");
                        let weight = match raw.weight.map(u32::try_from) {
                            None => Some(1),
                            Some(Ok(w)) if w <= MAX_WEIGHT => Some(w),
                            Some(_) => {
                                let found = raw.weight.unwrap_or_default().to_string();
                                let message = format!(
                                    "expected an integer from 0 to {MAX_WEIGHT} (a relative share), found {}",
                                    self.show(&weight_path, &found)
                                );
                                self.report(&weight_path, message);
                                None
                            }
                        };
                        match (
                            name.and_then(|n| check(self, n, &child_path(&item, "name"))),
                            weight,
                        ) {
                            (Some(upstream), Some(weight)) => {
                                targets.push(Target { upstream, weight })
                            }
                            _ => ok = false,
                        }
                    }
                    if ok && targets.iter().all(|t| t.weight == 0) {
                        self.report(
                            &at("upstreams"),
                            "every weight is 0; give at least one upstream a weight above 0",
                        );
                        ok = false;
                    }
                    ok.then_some(targets)
                }
            }
        };
        let mut resolved = Vec::with_capacity(fallbacks.len());
        let mut fallbacks_ok = true;
        for (i, name) in fallbacks.into_iter().enumerate() {
            // A target listed again as a fallback (a weighted upstream that should also be
            // the last resort) is accepted: it is tried once, as a target.
            if target_names.contains(&name) {
                continue;
            }
            match check(self, name, &item_path(&at("fallbacks"), i)) {
                Some(n) => resolved.push(n),
                None => fallbacks_ok = false,
            }
        }
        (targets, fallbacks_ok.then_some(resolved))
    }

    pub(super) fn retry_on(&mut self, raw: Option<Vec<String>>, path: &str) -> Option<RetryOn> {
        let Some(items) = raw else {
            return Some(RetryOn::default());
        };
        let mut retry = RetryOn::NONE;
        let mut ok = true;
        // `429` is usually a plain integer in YAML: the deserializer hands it over as its text.
        for (i, item) in items.iter().enumerate() {
            match item.trim() {
                "connect" => retry.connect = true,
                "timeout" => retry.timeout = true,
                "429" => retry.too_many_requests = true,
                "5xx" => retry.server_error = true,
                other => {
                    let item_path = item_path(path, i);
                    let mut message = format!(
                        "unknown retry condition {}; expected connect, timeout, 429 or 5xx",
                        self.show(&item_path, other)
                    );
                    if let Some(similar) = closest(other, RETRY_CONDITIONS) {
                        message.push_str(&format!("; did you mean {}?", quote(similar)));
                    }
                    self.report(&item_path, message);
                    ok = false;
                }
            }
        }
        ok.then_some(retry)
    }

    pub(super) fn known_upstream(
        &mut self,
        name: String,
        path: &str,
        upstream_names: &[String],
    ) -> Option<String> {
        if upstream_names.contains(&name) {
            return Some(name);
        }
        if upstream_names.is_empty() {
            return None; // Already reported: upstreams is missing or empty.
        }
        let mut message = format!(
            "unknown upstream {}; defined upstreams: {}",
            self.show(path, &name),
            upstream_names.join(", ")
        );
        if let Some(similar) = closest(&name, upstream_names.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean {}?", quote(similar)));
        }
        self.report(path, message);
        None
    }
}

/// A route's upstream keys, as written.
pub(super) struct RouteUpstreams {
    pub(super) single: Option<String>,
    pub(super) weighted: Option<Vec<RawTarget>>,
    pub(super) fallbacks: Vec<String>,
    /// A `models:` route (there is a model to put in `{model}`).
    pub(super) has_model: bool,
}

/// The largest `weight:` of a route's upstream.
const MAX_WEIGHT: u32 = 1000;
