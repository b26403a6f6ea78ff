//! Spend: what each request costs in dollars, from the upstream's real usage and a price
//! table, and what each key and route has spent.
//!
//! * [`PriceTable`]: prices per model in USD per million tokens — the built-in table
//!   (`conf/prices.yaml`, compiled in, dated) under the configuration's `prices:`.
//! * [`ModelPrice::cost`]: one request's usage (cached, cache-write, reasoning, audio and image
//!   tokens each at its price) in USD; [`ModelPrice::worst_case`]: what a USD budget reserves
//!   before the request is sent.
//! * [`Ledger`]: per key and per route, requests, tokens by kind and dollars in the current
//!   hour, day and month, for `GET /usage` on the admin listener.
//!
//! USD budgets themselves (`usd_per_hour`, `usd_per_day`, `usd_per_month`) are budgets like
//! the others, in [`crate::limits`]: they count micro-dollars in calendar windows.

mod ledger;
mod prices;

pub use crate::limits::Period;
pub use ledger::{Ledger, LedgerEntry, Tally, TokenTally};
pub use prices::{
    strip_snapshot_date, ModelPrice, PriceEntry, PriceSource, PriceTable, Priced, BUILTIN_PRICES,
    DEFAULT_MAX_OUTPUT_TOKENS,
};

/// Micro-dollars in a dollar: budgets count whole micro-dollars.
pub const MICROS_PER_USD: f64 = 1_000_000.0;

/// `usd` as whole micro-dollars, rounded up (a budget is never charged less than the cost);
/// negative, NaN and infinite amounts count as 0 and `u64::MAX`.
pub fn to_micros(usd: f64) -> u64 {
    if usd.is_nan() || usd <= 0.0 {
        return 0;
    }
    let exact = usd * MICROS_PER_USD;
    // 0.00608 × 10⁶ is 6080.000000000001 in binary: what is a whole number but for the float's
    // last digits is that number, anything more is rounded up.
    let nearest = exact.round();
    let micros = if (exact - nearest).abs() < 1e-6 {
        nearest
    } else {
        exact.ceil()
    };
    if micros >= u64::MAX as f64 {
        u64::MAX
    } else {
        micros as u64
    }
}

/// `micros` micro-dollars as a decimal dollar amount for messages: `$12.50`, `$0.000125`.
pub fn format_usd(micros: u64) -> String {
    let dollars = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    if fraction % 10_000 == 0 {
        format!("${dollars}.{:02}", fraction / 10_000)
    } else {
        let digits = format!("{fraction:06}");
        format!("${dollars}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_up_and_format_without_noise() {
        assert_eq!(to_micros(0.006_08), 6_080);
        assert_eq!(
            to_micros(0.000_000_1),
            1,
            "a cost is never rounded to nothing"
        );
        assert_eq!(to_micros(-1.0), 0);
        assert_eq!(to_micros(f64::NAN), 0);
        assert_eq!(to_micros(f64::INFINITY), u64::MAX);
        assert_eq!(format_usd(12_500_000), "$12.50");
        assert_eq!(format_usd(125), "$0.000125");
        assert_eq!(format_usd(0), "$0.00");
        assert_eq!(format_usd(1_234_560), "$1.23456");
    }
}
