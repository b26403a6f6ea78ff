//! Typing plain scalars by the YAML 1.2 core schema: `~` is null, `true` a boolean, `12` an
//! integer, `1.5` a float, anything else a string. Quoted scalars are always strings.

/// The YAML 1.2 core schema's null: `~`, `null`, or nothing.
pub(crate) fn is_null(plain: &str) -> bool {
    matches!(plain, "" | "~" | "null" | "Null" | "NULL")
}

/// A plain scalar typed by the YAML 1.2 core schema.
#[derive(Debug, PartialEq)]
pub(crate) enum Plain<'t> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'t str),
}

pub(crate) fn resolve(text: &str) -> Plain<'_> {
    if is_null(text) {
        return Plain::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Plain::Int(n);
    }
    match parse_float(text) {
        Some(f) => Plain::Float(f),
        None => Plain::Str(text),
    }
}

/// `[-+]?[0-9]+`, `0x[0-9a-fA-F]+`, `0o[0-7]+`.
fn parse_int(text: &str) -> Option<i128> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits.strip_prefix("0x") {
        (16, hex)
    } else if let Some(octal) = digits.strip_prefix("0o") {
        (8, octal)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i128::from_str_radix(digits, radix).ok()?;
    Some(if negative { -n } else { n })
}

/// Decimal floats (`1.5`, `-2e3`, `.5`) and `.inf`, `-.inf`, `.nan`.
fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || ".eE+-".contains(c));
    if numeric && text.chars().any(|c| c.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_by_the_core_schema() {
        assert_eq!(resolve(""), Plain::Null);
        assert_eq!(resolve("~"), Plain::Null);
        assert_eq!(resolve("True"), Plain::Bool(true));
        assert_eq!(resolve("-12"), Plain::Int(-12));
        assert_eq!(resolve("0o17"), Plain::Int(15));
        assert_eq!(resolve("1e3"), Plain::Float(1000.0));
        assert_eq!(resolve("1.2.3"), Plain::Str("1.2.3"));
        assert_eq!(resolve("yes"), Plain::Str("yes"));
        assert_eq!(resolve("0x"), Plain::Str("0x"));
        assert_eq!(resolve("-"), Plain::Str("-"));
    }
}
