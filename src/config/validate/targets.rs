//! A route's upstreams: `upstream:` or weighted `upstreams:`, `fallbacks:` and `retry_on:`.

use super::upstreams::UpstreamNames;
use super::Checker;
use crate::config::located::Located;
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
            route,
        } = raw;
        let at = |key: &str| child_path(path, key);
        let written = single.is_some() || weighted.is_some();
        let single = single.and_then(Located::transpose);
        let weighted = weighted.and_then(Located::transpose);
        let target_names: Vec<String> = single
            .iter()
            .map(|name| name.value.clone())
            .chain(weighted.iter().flat_map(|list| {
                list.value
                    .iter()
                    .filter_map(|t| t.value.name.as_ref().and_then(|n| n.value.clone()))
            }))
            .collect();
        let mut seen: Vec<String> = Vec::new();
        let mut ok = true;
        let mut check = |this: &mut Self, name: Located<String>, item: &str| -> Option<String> {
            let known = this.known_upstream(&name, item, &upstream_names.all)?;
            if !has_model && upstream_names.with_model.contains(&known) {
                let message = format!(
                    "upstream {} has {MODEL_PLACEHOLDER} in its url, and a paths: route has no model \
                     to put there; use an upstream without {MODEL_PLACEHOLDER}",
                    quote(&known)
                );
                this.report(&name, item, message);
                return None;
            }
            if seen.contains(&known) {
                let message = format!(
                    "upstream {} is listed twice in this route's upstreams or twice in its \
                     fallbacks; list each once (a target may be listed again in fallbacks)",
                    quote(&known)
                );
                this.report(&name, item, message);
                return None;
            }
            seen.push(known.clone());
            Some(known)
        };
        let targets = match (single, weighted) {
            (Some(_), Some(list)) => {
                self.report(
                    &list,
                    &at("upstreams"),
                    "a route has either upstream: (one name) or upstreams: (a weighted list), not both",
                );
                None
            }
            (None, None) => {
                if !written {
                    self.report(
                        &route,
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
            (None, Some(list)) if list.value.is_empty() => {
                self.report(
                    &list,
                    &at("upstreams"),
                    "is empty; list {name, weight} entries",
                );
                None
            }
            (None, Some(list)) => {
                let list_at = list.at();
                let mut targets = Vec::with_capacity(list.value.len());
                for (i, raw) in list.value.into_iter().enumerate() {
                    let item = item_path(&at("upstreams"), i);
                    let (pos, raw) = (raw.pos, raw.value);
                    let name_path = child_path(&item, "name");
                    let name = self.required_text(raw.name, pos, &name_path, "name an upstream");
                    let weight = match raw.weight {
                        None => Some(1),
                        Some(weight) => match u32::try_from(weight.value) {
                            Ok(w) if w <= MAX_WEIGHT => Some(w),
                            _ => {
                                let message = format!(
                                    "expected an integer from 0 to {MAX_WEIGHT} (a relative share), found {}",
                                    weight.show(&weight.value.to_string())
                                );
                                self.report(&weight, &child_path(&item, "weight"), message);
                                None
                            }
                        },
                    };
                    match (name.and_then(|n| check(self, n, &name_path)), weight) {
                        (Some(upstream), Some(weight)) => targets.push(Target { upstream, weight }),
                        _ => ok = false,
                    }
                }
                if ok && targets.iter().all(|t| t.weight == 0) {
                    self.report(
                        &list_at,
                        &at("upstreams"),
                        "every weight is 0; give at least one upstream a weight above 0",
                    );
                    ok = false;
                }
                ok.then_some(targets)
            }
        };
        let mut resolved = Vec::with_capacity(fallbacks.len());
        let mut fallbacks_ok = true;
        for (i, name) in fallbacks.into_iter().enumerate() {
            // A target listed again as a fallback (a weighted upstream that should also be
            // the last resort) is accepted: it is tried once, as a target.
            if target_names.contains(&name.value) {
                continue;
            }
            match check(self, name, &item_path(&at("fallbacks"), i)) {
                Some(n) => resolved.push(n),
                None => fallbacks_ok = false,
            }
        }
        (targets, fallbacks_ok.then_some(resolved))
    }

    /// `retry_on:`: the conditions a request is retried on (every one when absent).
    pub(super) fn retry_on(
        &mut self,
        raw: Option<Vec<Located<String>>>,
        path: &str,
    ) -> Option<RetryOn> {
        let Some(items) = raw else {
            return Some(RetryOn::default());
        };
        let mut retry = RetryOn::NONE;
        let mut ok = true;
        // `429` is usually a plain integer in YAML: the deserializer hands it over as its text.
        for (i, item) in items.iter().enumerate() {
            match item.value.trim() {
                "connect" => retry.connect = true,
                "timeout" => retry.timeout = true,
                "429" => retry.too_many_requests = true,
                "5xx" => retry.server_error = true,
                other => {
                    let mut message = format!(
                        "unknown retry condition {}; expected connect, timeout, 429 or 5xx",
                        item.show(other)
                    );
                    if let Some(similar) = closest(other, RETRY_CONDITIONS) {
                        message.push_str(&format!("; did you mean {}?", quote(similar)));
                    }
                    self.report(item, &item_path(path, i), message);
                    ok = false;
                }
            }
        }
        ok.then_some(retry)
    }

    /// `name` if it is one of `upstream_names`; reported (with the closest name) if not.
    fn known_upstream(
        &mut self,
        name: &Located<String>,
        path: &str,
        upstream_names: &[String],
    ) -> Option<String> {
        if upstream_names.contains(&name.value) {
            return Some(name.value.clone());
        }
        if upstream_names.is_empty() {
            return None; // Already reported: upstreams is missing or empty.
        }
        let mut message = format!(
            "unknown upstream {}; defined upstreams: {}",
            name.show(&name.value),
            upstream_names.join(", ")
        );
        if let Some(similar) = closest(&name.value, upstream_names.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean {}?", quote(similar)));
        }
        self.report(name, path, message);
        None
    }
}

/// A route's upstream keys, as written.
pub(super) struct RouteUpstreams {
    /// `upstream:`, written (perhaps empty) or not.
    pub(super) single: Option<Located<Option<String>>>,
    /// `upstreams:`, written (perhaps empty) or not.
    pub(super) weighted: Option<Located<Option<Vec<Located<RawTarget>>>>>,
    /// `fallbacks:`.
    pub(super) fallbacks: Vec<Located<String>>,
    /// A `models:` route (there is a model to put in `{model}`).
    pub(super) has_model: bool,
    /// The route: a missing `upstream:` is reported here.
    pub(super) route: Located<()>,
}

/// The largest `weight:` of a route's upstream.
const MAX_WEIGHT: u32 = 1000;
