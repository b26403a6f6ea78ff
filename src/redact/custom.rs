//! Detectors from configuration.

use std::sync::Arc;

use regex::RegexBuilder;

use super::derive;
use super::detector::{Anchor, Detector, Matcher, StartRule};
use super::match_checks::Check;
use super::pem::PEM_MAX_LEN;
use super::policy::{CustomDetectorSpec, PolicyError};

/// `max_len` when the spec gives none.
pub(crate) const DEFAULT_MAX_LEN: usize = 64;

/// Compiles a custom detector.
///
/// What the prefilter and the stream redactor need is derived from the pattern (see
/// `derive.rs`): the bytes a match can hold, its shortest and longest length, and the literals
/// every match starts with (`EMP-\d{6}` starts with `EMP-`), which anchor the prefilter. A
/// pattern whose matches are bounded is redacted whole whatever `max_len` says; `max_len`
/// (default 64) bounds only unbounded patterns (`\w+`) and those longer than 16 KiB.
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
    let facts = derive::facts(&spec.pattern).map_err(|reason| PolicyError::InvalidPattern {
        detector: spec.name.clone(),
        reason,
    })?;
    let max_len = match facts.max_len {
        Some(bound) if bound <= PEM_MAX_LEN => bound,
        _ => max_len,
    };
    let (anchors, start) = match facts.prefixes {
        Some(lits) => (
            lits.iter()
                .map(|l| Anchor::Literal(l.as_slice().into()))
                .collect(),
            StartRule::Literals {
                lits: lits.iter().map(|l| l.as_slice().into()).collect(),
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
        alphabet: facts.alphabet,
        min_len: facts.min_len.max(1),
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
    fn facts_come_from_the_pattern() {
        let d = compile(&spec("employee_id", r"EMP-\d{6}")).unwrap();
        assert_eq!(
            (d.min_len, d.max_len),
            (10, 28),
            "Unicode digits: up to 4 bytes each"
        );
        assert!(matches!(&d.start, StartRule::Literals { lits, .. } if lits.len() == 1));
        assert!(d.alphabet.contains(b'E') && !d.alphabet.contains(b' '));
        // Case-insensitive: every case of the prefix anchors it.
        let d = compile(&spec("emp", r"(?i)emp-\d+")).unwrap();
        assert_eq!(d.anchors.len(), 8);
        assert_eq!(
            d.max_len, DEFAULT_MAX_LEN,
            "unbounded: max_len (default) bounds it"
        );
        // No common start: any position.
        let d = compile(&spec("either", r"\d+|x")).unwrap();
        assert!(matches!(d.start, StartRule::Any) && d.anchors.is_empty());
        // A bounded pattern longer than max_len is not cut to it.
        let mut long = spec("acme", r"ACME-[A-Z0-9]{100}");
        long.max_len = Some(16);
        assert_eq!(compile(&long).unwrap().max_len, 105);
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
