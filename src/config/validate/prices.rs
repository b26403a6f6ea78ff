//! Price tables: `prices:` in the config, and the built-in table's file.

use super::Checker;
use crate::config::error::Problems;
use crate::config::located::Located;
use crate::config::model::ModelPattern;
use crate::config::schema::{RawPrice, RawPriceFile, RawPrices};
use crate::config::tree::child_path;
use crate::spend::{ModelPrice, PriceEntry};

/// Checks a price table file and returns its date and entries; `None` when anything was
/// reported.
pub(crate) fn validate_price_file(
    raw: Located<RawPriceFile>,
    problems: &mut Problems,
) -> Option<(String, Vec<PriceEntry>)> {
    let mut checker = Checker { problems };
    let taken = checker.required_text(
        raw.value.taken,
        raw.pos,
        "taken",
        "write the date the prices were taken, like 2025-12-01",
    );
    let taken = taken.filter(|t| {
        let ok = t.value.len() == 10
            && t.value.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !ok {
            checker.report(t, "taken", "must be a date written YYYY-MM-DD");
        }
        ok
    });
    let entries = checker.prices(raw.value.models.unwrap_or_default(), "models");
    Some((taken?.value, entries?))
}

impl Checker<'_> {
    /// Price entries (`prices:`, or the built-in table's `models:`): a valid name or glob,
    /// and every price a finite number of dollars, 0 or more.
    pub(super) fn prices(&mut self, raw: RawPrices, parent: &str) -> Option<Vec<PriceEntry>> {
        let mut entries = Vec::with_capacity(raw.0.len());
        let mut complete = true;
        for (name, price) in raw.0 {
            let path = child_path(parent, &name);
            let pattern = match ModelPattern::new(&name) {
                Ok(pattern) => Some(pattern),
                Err(e) => {
                    let message = format!("is not a valid model name or glob: {e}");
                    self.report(&price, &path, message);
                    None
                }
            };
            let price = price.value;
            let mut valid = true;
            for (field, value) in price_fields(&price) {
                if let Some(v) = value.filter(|v| !v.value.is_finite() || v.value < 0.0) {
                    self.report(
                        v,
                        &child_path(&path, field),
                        format!("{} is not a price: write USD per million tokens, 0 or more (like 2.50)", v.value),
                    );
                    valid = false;
                }
            }
            if let Some(max) = price.max_output_tokens.as_ref().filter(|m| m.value == 0) {
                self.report(
                    max,
                    &child_path(&path, "max_output_tokens"),
                    "must be at least 1 (leave it out when unknown)",
                );
                valid = false;
            }
            match pattern {
                Some(pattern) if valid => {
                    entries.push(PriceEntry::new(pattern, model_price(&price)))
                }
                _ => complete = false,
            }
        }
        complete.then_some(entries)
    }
}

/// Every price of the entry with its key, as [`ModelPrice::fields`] lists them.
fn price_fields(price: &RawPrice) -> [(&'static str, Option<&Located<f64>>); 8] {
    [
        ("input", Some(&price.input)),
        ("output", Some(&price.output)),
        ("cached_input", price.cached_input.as_ref()),
        ("cache_write", price.cache_write.as_ref()),
        ("reasoning", price.reasoning.as_ref()),
        ("audio_input", price.audio_input.as_ref()),
        ("audio_output", price.audio_output.as_ref()),
        ("image_input", price.image_input.as_ref()),
    ]
}

/// The prices as the spend ledger uses them.
fn model_price(raw: &RawPrice) -> ModelPrice {
    let value = |price: &Option<Located<f64>>| price.as_ref().map(|p| p.value);
    ModelPrice {
        input: raw.input.value,
        output: raw.output.value,
        cached_input: value(&raw.cached_input),
        cache_write: value(&raw.cache_write),
        reasoning: value(&raw.reasoning),
        audio_input: value(&raw.audio_input),
        audio_output: value(&raw.audio_output),
        image_input: value(&raw.image_input),
        max_output_tokens: raw.max_output_tokens.as_ref().map(|m| m.value),
    }
}
