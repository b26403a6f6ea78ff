//! Price tables: `prices:` in the config, and the built-in table's file.

use super::Checker;
use crate::config::error::Problems;
use crate::config::model::ModelPattern;
use crate::config::schema::{RawPriceFile, RawPrices};
use crate::config::tree::{child_path, Index};
use crate::spend::PriceEntry;

/// Checks a price table file and returns its date and entries; `None` when anything was
/// reported.
pub(crate) fn validate_price_file(
    raw: RawPriceFile,
    index: &Index,
    problems: &mut Problems,
) -> Option<(String, Vec<PriceEntry>)> {
    let mut checker = Checker { index, problems };
    let taken = checker.required_text(
        raw.taken,
        "taken",
        "write the date the prices were taken, like 2025-12-01",
    );
    let taken = taken.filter(|t| {
        let ok = t.len() == 10
            && t.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !ok {
            checker.report("taken", "must be a date written YYYY-MM-DD");
        }
        ok
    });
    let entries = checker.prices(raw.models.unwrap_or_default(), "models");
    Some((taken?, entries?))
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
                    self.report(&path, format!("is not a valid model name or glob: {e}"));
                    None
                }
            };
            let mut valid = true;
            for (field, value) in price.fields() {
                if let Some(v) = value.filter(|v| !v.is_finite() || *v < 0.0) {
                    self.report(
                        &child_path(&path, field),
                        format!("{v} is not a price: write USD per million tokens, 0 or more (like 2.50)"),
                    );
                    valid = false;
                }
            }
            if price.max_output_tokens == Some(0) {
                self.report(
                    &child_path(&path, "max_output_tokens"),
                    "must be at least 1 (leave it out when unknown)",
                );
                valid = false;
            }
            match pattern {
                Some(pattern) if valid => entries.push(PriceEntry::new(pattern, price)),
                _ => complete = false,
            }
        }
        complete.then_some(entries)
    }
}
