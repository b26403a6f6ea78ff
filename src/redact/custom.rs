//! Detectors from configuration.

use std::sync::Arc;

use regex::RegexBuilder;

use super::byteset::ByteSet;
use super::checks::Check;
use super::detector::{Anchor, Detector, Matcher, StartRule};
use super::pem::PEM_MAX_LEN;
use super::policy::{CustomDetectorSpec, PolicyError};

/// `max_len` when the spec gives none.
pub(crate) const DEFAULT_MAX_LEN: usize = 64;

/// Compiles a custom detector.
///
/// Nothing is known about the bytes a user pattern can match, so its alphabet is every byte.
/// When the pattern starts with a plain literal (`EMP-\d{6}` starts with `EMP-`), that literal
/// anchors the prefilter and tells the stream redactor where a match can start.
///
/// # Errors
///
/// [`PolicyError::InvalidName`], [`PolicyError::InvalidMaxLen`],
/// [`PolicyError::InvalidPattern`] and [`PolicyError::EmptyMatch`], each naming the detector.
pub(crate) fn compile(spec: &CustomDetectorSpec) -> Result<Detector, PolicyError> {
    if !valid_name(&spec.name) {
        return Err(PolicyError::InvalidName {
            name: spec.name.clone(),
        });
    }
    let max_len = spec.max_len.unwrap_or(DEFAULT_MAX_LEN);
    if max_len == 0 || max_len > PEM_MAX_LEN {
        return Err(PolicyError::InvalidMaxLen {
            detector: spec.name.clone(),
        });
    }
    let re = RegexBuilder::new(&spec.pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| PolicyError::InvalidPattern {
            detector: spec.name.clone(),
            reason: e.to_string(),
        })?;
    if re.is_match("") {
        return Err(PolicyError::EmptyMatch {
            detector: spec.name.clone(),
        });
    }
    let prefix = literal_prefix(&spec.pattern);
    let (anchors, start) = match prefix {
        Some(lit) => (
            vec![Anchor::Literal(lit.as_bytes().into())],
            StartRule::Literals {
                lits: vec![lit.as_bytes().into()],
                ci: false,
            },
        ),
        None => (Vec::new(), StartRule::Any),
    };
    Ok(Detector {
        name: Arc::from(spec.name.as_str()),
        label: spec.name.to_ascii_uppercase().into(),
        category: spec.category,
        matcher: Matcher::Regex { re, group: 0 },
        anchors,
        start,
        alphabet: ByteSet::ALL,
        min_len: 1,
        min_digits: 0,
        max_len,
        check: Check::None,
    })
}

/// `[a-z][a-z0-9_]*`, at most 48 bytes.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 48
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The literal every match of `pattern` starts with, when that is plain to see: the leading
/// run of characters that are literal in any regex context, minus the last one if a quantifier
/// makes it optional. Patterns with an alternation anywhere get none (an alternative could
/// start differently), as do patterns starting with a group, class, escape or flag.
pub(crate) fn literal_prefix(pattern: &str) -> Option<String> {
    if pattern.contains('|') {
        return None;
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-:@%=/,!~<>'\"".contains(c);
    let mut lit: String = pattern.chars().take_while(|&c| plain(c)).collect();
    if matches!(pattern[lit.len()..].chars().next(), Some('?' | '*' | '{')) {
        lit.pop();
    }
    (!lit.is_empty()).then_some(lit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::policy::Category;

    fn spec(name: &str, pattern: &str) -> CustomDetectorSpec {
        CustomDetectorSpec {
            name: name.into(),
            pattern: pattern.into(),
            category: Category::Pii,
            max_len: None,
        }
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix(r"EMP-\d{6}").as_deref(), Some("EMP-"));
        assert_eq!(literal_prefix(r"ACME_[0-9]+").as_deref(), Some("ACME_"));
        assert_eq!(literal_prefix(r"EMPX?-\d").as_deref(), Some("EMP"));
        assert_eq!(literal_prefix(r"AB{2}").as_deref(), Some("A"));
        assert_eq!(literal_prefix(r"(?i)emp-\d+"), None);
        assert_eq!(literal_prefix(r"EMP-\d|XYZ"), None);
        assert_eq!(literal_prefix(r"\d+"), None);
    }

    #[test]
    fn errors_name_the_detector() {
        let e = compile(&spec("employee_id", "EMP-(")).unwrap_err();
        assert!(
            matches!(&e, PolicyError::InvalidPattern { detector, .. } if detector == "employee_id")
        );
        assert!(e.to_string().contains("employee_id"));
        assert_eq!(
            compile(&spec("maybe", "x*")).unwrap_err(),
            PolicyError::EmptyMatch {
                detector: "maybe".into()
            }
        );
        assert!(matches!(
            compile(&spec("Bad-Name", "x")).unwrap_err(),
            PolicyError::InvalidName { .. }
        ));
        let mut long = spec("huge", "x");
        long.max_len = Some(0);
        assert!(matches!(
            compile(&long).unwrap_err(),
            PolicyError::InvalidMaxLen { .. }
        ));
    }

    #[test]
    fn names() {
        assert!(valid_name("employee_id"));
        assert!(valid_name("x1"));
        assert!(!valid_name("1x"));
        assert!(!valid_name(""));
        assert!(!valid_name("Employee"));
        assert!(!valid_name(&"a".repeat(49)));
    }
}
