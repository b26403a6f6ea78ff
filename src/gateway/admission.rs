//! Admission: the key's and the route's budgets checked at once before a request is sent,
//! and what the answer used recorded for the reconcile and telemetry.

use bytes::Bytes;

use super::context::RequestCtx;
use super::pipeline::Pipeline;
use super::transport::Transport;
use crate::config::Route;
use crate::limits::{Admission, AdmissionPlan, BudgetKind, RefusalCause, Usd};
use crate::spend::{format_usd, to_micros};
use crate::telemetry::record::RateLimitOutcome;
use crate::wire::usage::{self, Usage};
use crate::wire::{ApiError, Endpoint};

impl<T: Transport> Pipeline<T> {
    /// Checks the key's and the route's budgets at once; refuses with 429 (or 503 when the
    /// backend cannot decide and `on_backend_error: deny`).
    ///
    /// USD budgets reserve the request's worst case at `upstream_model`'s price (its prompt
    /// estimate at the dearest input price, its output cap — or the model's — at the dearest
    /// output price). A request on a `paths:` route (`upstream_model` `None`: files, batches)
    /// is not priced and reserves nothing.
    pub(super) async fn admit(
        &self,
        client_ip: Option<std::net::IpAddr>,
        ctx: &mut RequestCtx,
        route: &Route,
        upstream_model: Option<&str>,
        estimate: &mut Estimate,
    ) -> Result<(), ApiError> {
        let runtime = ctx.runtime.clone();
        let mut plan = AdmissionPlan::new(0);
        if let Some(entry) = &ctx.key {
            plan.extend(&entry.budgets);
        }
        if let Some(budgets) = runtime.route_budgets.get(&route.name) {
            plan.extend(budgets);
        }
        let ip_budgets;
        let per_ip = route.limits.without_spend();
        if !runtime.requires_keys() && !per_ip.is_empty() {
            let ip = client_ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
            ip_budgets = per_ip
                .budgets("route-ip", &format!("{}@{ip}", route.name))
                .unwrap_or_default();
            plan.extend(&ip_budgets);
        }
        if plan.is_empty() {
            return Ok(());
        }
        if plan.counts_tokens() {
            plan.set_estimated_tokens(estimate.get().total());
        }
        let mut reserve = 0;
        if let (true, Some(model)) = (plan.counts_spend(), upstream_model) {
            let first = plan.spend_budgets().next().map(|b| b.to_string());
            let Some(priced) = runtime.config.prices.price(model) else {
                let budget = first.unwrap_or_default();
                return Err(ApiError::model_not_priced(model, &budget));
            };
            let guess = estimate.get();
            // Every answer asked for (`n`, `best_of`) may reach the cap.
            let cap = if guess.completion > 0 {
                guess.completion
            } else {
                priced.price.output_cap().saturating_mul(estimate.choices)
            };
            reserve = to_micros(priced.price.worst_case(guess.prompt, cap));
            if let Some(budget) = plan.spend_budgets().find(|b| b.limit() < reserve) {
                let param = if guess.completion > 0 {
                    "`max_tokens`"
                } else {
                    "the output with `max_tokens` (not set: the model's longest answer was assumed)"
                };
                return Err(ApiError::over_whole_budget(
                    &budget.to_string(),
                    &budget.limit_text(),
                    &format_usd(reserve),
                    param,
                ));
            }
            plan.set_estimated_micros(reserve);
        }
        match self.limiter.admit(&plan).await {
            Admission::Allowed(ticket) => {
                ctx.rate_headers = ticket.headers().to_pairs();
                ctx.record.rate_limit = if ticket.admitted_on_backend_error() {
                    RateLimitOutcome::BackendError { admitted: true }
                } else {
                    RateLimitOutcome::Allowed
                };
                ctx.ticket = Some(ticket);
                Ok(())
            }
            Admission::Refused(refusal) => {
                ctx.rate_headers = refusal.headers().to_pairs();
                let retry = refusal.retry_after_secs().max(1);
                ctx.rate_headers.push(("retry-after", retry.to_string()));
                match refusal.cause() {
                    RefusalCause::Exhausted(budget) => {
                        ctx.record.rate_limit = RateLimitOutcome::Refused {
                            budget: budget.kind().name().to_string(),
                        };
                        if let BudgetKind::Spend(period) = budget.kind() {
                            // The OpenAI and Anthropic SDKs retry a 429 a few times within
                            // seconds: pointless when the budget renews in minutes or hours.
                            if retry > 60 {
                                ctx.rate_headers
                                    .push(("x-should-retry", "false".to_owned()));
                            }
                            let left = refusal.remaining().unwrap_or(0);
                            return Err(ApiError::spend_limited(
                                &budget.to_string(),
                                period,
                                &budget.limit_text(),
                                &Usd(left).to_string(),
                                &format_usd(reserve),
                                retry,
                            ));
                        }
                        Err(ApiError::rate_limited(
                            &budget.to_string(),
                            budget.limit(),
                            budget.kind(),
                            retry,
                        ))
                    }
                    RefusalCause::BackendUnavailable => {
                        ctx.record.rate_limit = RateLimitOutcome::BackendError { admitted: false };
                        Err(ApiError::new(
                            503,
                            "api_error",
                            "Rate limits cannot be checked right now (the rate-limit backend is unavailable) and this gateway is configured to refuse meanwhile.",
                        )
                        .code("rate_limit_backend_unavailable"))
                    }
                }
            }
        }
    }

    /// Records what the answer used, and what it cost: at the price of the model sent
    /// upstream, else of the model the answer names (an Azure deployment name has no price,
    /// its answer's `gpt-4o-2024-08-06` has).
    pub(super) fn account(
        &self,
        ctx: &mut RequestCtx,
        seen: &usage::StreamUsage,
        estimate: &mut Estimate,
    ) {
        // The prompt estimate (a parse of the body) only when the upstream reported no usage.
        let charged = match seen.reported {
            Some(_) => seen.charge(0),
            None => seen.charge(estimate.get().prompt),
        };
        ctx.record.tokens = Some(charged);
        let prices = &ctx.runtime.config.prices;
        let sent = ctx.record.attempts.last().map(|a| a.model.as_str());
        let priced = sent
            .filter(|m| !m.is_empty())
            .and_then(|m| prices.price(m))
            .or_else(|| seen.response_model.as_deref().and_then(|m| prices.price(m)));
        ctx.record.cost_usd = priced.map(|p| p.price.cost(&charged));
        ctx.record.response.model = seen.response_model.clone();
        ctx.record.response.id = seen.response_id.clone();
        if let (Some(text), Some(content)) = (&seen.text, ctx.record.content.as_mut()) {
            content.output = text.messages();
        }
        ctx.record.response.finish_reasons = seen.finish_reasons.clone();
    }
}

/// A request's token estimate, computed only when something needs it: a token budget at
/// admission, or an answer that does not report its usage. Estimating needs the whole JSON
/// body parsed into a tree, which cost ~10% of a request's CPU when done for every request.
pub(super) struct Estimate {
    endpoint: Endpoint,
    body: Option<Bytes>,
    known: Option<Usage>,
    /// Answers the request asks for (`n`, `best_of`), known with the estimate.
    choices: u64,
}

impl Estimate {
    /// Known already.
    pub(super) fn known(usage: Usage) -> Self {
        Estimate {
            endpoint: Endpoint::ChatCompletions,
            body: None,
            known: Some(usage),
            choices: 1,
        }
    }

    /// From the JSON `body` (as the client sent it), if ever asked for.
    pub(super) fn later(endpoint: Endpoint, body: Bytes) -> Self {
        Estimate {
            endpoint,
            body: Some(body),
            known: None,
            choices: 1,
        }
    }

    /// The estimate: from the parsed body, or, when serde_json cannot parse it (a lone
    /// surrogate escape, a number out of range), from its size
    /// ([`usage::estimate_from_size`]), so such a body is not charged nothing.
    pub(super) fn get(&mut self) -> Usage {
        if let Some(known) = self.known {
            return known;
        }
        let usage = match self.body.take() {
            Some(body) => match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(value) => {
                    self.choices = usage::choices(&value);
                    usage::estimate(self.endpoint, &value)
                }
                Err(_) => {
                    self.choices = usage::choices_from_text(&body);
                    usage::estimate_from_size(&body)
                }
            },
            None => Usage::default(),
        };
        self.known = Some(usage);
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_body_is_estimated_by_its_size() {
        let body = Bytes::from_static(
            br#"{"model":"m","stream":true,"user":"\ud800","messages":[{"role":"user","content":"hello there"}]}"#,
        );
        let mut e = Estimate::later(Endpoint::ChatCompletions, body.clone());
        let u = e.get();
        assert_eq!(u.prompt, (body.len() as u64).div_ceil(4));
        assert_eq!(e.get(), u, "computed once");

        let readable = Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"hello there"}]}"#,
        );
        let exact = Estimate::later(Endpoint::ChatCompletions, readable).get();
        assert!(exact.prompt > 0 && exact.prompt < u.prompt);
        assert_eq!(Estimate::known(Usage::default()).get(), Usage::default());
    }
}
