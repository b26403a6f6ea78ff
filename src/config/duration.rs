//! Durations written like `250ms`, `2s`, `5m`, `1h` or `1m30s`.

use std::fmt;
use std::time::Duration;

/// Why a duration did not parse. Messages never repeat the text (it may come from `${VAR}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing was written.
    Empty,
    /// A number without a unit, like `30`.
    NoUnit,
    /// A unit other than `ms`, `s`, `m`, `h`.
    UnknownUnit,
    /// A unit without a number before it, or a stray character.
    Malformed,
    /// A decimal point, like `1.5s`.
    Fraction,
    /// More than `u64::MAX` milliseconds.
    TooLarge,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DurationError::Empty => "a duration is empty",
            DurationError::NoUnit => "a bare number has no unit",
            DurationError::UnknownUnit => "unknown unit; units are ms, s, m and h",
            DurationError::Malformed => "expected a number followed by a unit",
            DurationError::Fraction => {
                "fractions are not supported; use a smaller unit (1500ms, not 1.5s)"
            }
            DurationError::TooLarge => "the duration is too large",
        })
    }
}

impl std::error::Error for DurationError {}

/// Parses one or more `<integer><unit>` groups with units `ms`, `s`, `m`, `h`, summed:
/// `250ms`, `30s`, `5m`, `1h30m`. No spaces, no fractions, and a bare number is an error.
///
/// # Errors
///
/// Returns a [`DurationError`] saying what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::NoUnit);
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Malformed);
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::TooLarge)?;
        rest = &rest[digits..];
        if rest.starts_with('.') {
            return Err(DurationError::Fraction);
        }
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let per_unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(DurationError::Malformed),
            _ => return Err(DurationError::UnknownUnit),
        };
        rest = &rest[unit_len..];
        total_ms = number
            .checked_mul(per_unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or(DurationError::TooLarge)?;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums() {
        let ok = |t: &str| parse_duration(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1h1m1s1ms"), Duration::from_millis(3_661_001));
        assert_eq!(ok("0s"), Duration::ZERO);
    }

    #[test]
    fn errors() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("30"), Err(DurationError::NoUnit));
        assert_eq!(parse_duration("30sec"), Err(DurationError::UnknownUnit));
        assert_eq!(parse_duration("5d"), Err(DurationError::UnknownUnit));
        assert_eq!(parse_duration("s"), Err(DurationError::Malformed));
        assert_eq!(parse_duration("10s5"), Err(DurationError::Malformed));
        assert_eq!(parse_duration("1 s"), Err(DurationError::Malformed));
        assert_eq!(parse_duration("-1s"), Err(DurationError::Malformed));
        assert_eq!(parse_duration("1.5s"), Err(DurationError::Fraction));
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::TooLarge)
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::TooLarge)
        );
    }
}
