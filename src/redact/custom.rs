//! Detectors from configuration.

use std::sync::Arc;

use regex::RegexBuilder;

use super::builtin::Specific;
use super::derive;
use super::detector::{Anchor, Detector, Matcher, StartRule};
use super::examples;
use super::match_checks::Check;
use super::pem::PEM_MAX_LEN;
use super::policy::{CustomDetectorSpec, PolicyError};

/// `max_len` when the spec gives none.
pub(crate) const DEFAULT_MAX_LEN: usize = 64;

/// At most this many keywords, each at most this long.
const MAX_KEYWORDS: usize = 32;
const MAX_KEYWORD_LEN: usize = 64;

/// At most this many examples, each at most this long: they run whenever a policy is built.
const MAX_EXAMPLES: usize = 64;
const MAX_EXAMPLE_LEN: usize = 4096;

/// Compiles a custom detector.
///
/// What the prefilter and the stream redactor need is derived from the pattern (see
/// `derive.rs`): the bytes a match can hold, its shortest and longest length, and the literals
/// every match starts with (`EMP-\d{6}` starts with `EMP-`), which anchor the prefilter. A
/// pattern whose matches are bounded is redacted whole whatever `max_len` says; `max_len`
/// (default 64) bounds only unbounded patterns (`\w+`) and those longer than 16 KiB.
/// `keywords`, when given, replace the start literals as anchors; they must be proven in every
/// match ([`derive::every_match_contains`]), or a match without one would pass unseen. Then
/// the examples run.
///
/// # Errors
///
/// [`PolicyError::InvalidName`], [`PolicyError::InvalidMaxLen`],
/// [`PolicyError::InvalidPattern`], [`PolicyError::EmptyMatch`], [`PolicyError::InvalidSpec`]
/// and [`PolicyError::ExampleFailed`], each naming the detector.
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
    let invalid = |reason: String| PolicyError::InvalidSpec {
        detector: spec.name.clone(),
        reason,
    };
    if let Some(e) = spec.entropy {
        if !(0.0..=8.0).contains(&e) {
            return Err(invalid(
                "entropy must be between 0 and 8 (bits per byte)".into(),
            ));
        }
    }
    if spec.keywords.len() > MAX_KEYWORDS
        || spec
            .keywords
            .iter()
            .any(|k| k.is_empty() || k.len() > MAX_KEYWORD_LEN)
    {
        return Err(invalid(format!(
            "keywords: at most {MAX_KEYWORDS}, each 1 to {MAX_KEYWORD_LEN} bytes"
        )));
    }
    let examples = &spec.examples;
    let texts = examples
        .matches
        .iter()
        .map(|e| e.text_and_value().0)
        .chain(examples.no_match.iter().map(|t| t.joined()));
    if examples.matches.len() + examples.no_match.len() > MAX_EXAMPLES
        || texts.clone().any(|t| t.len() > MAX_EXAMPLE_LEN)
    {
        return Err(invalid(format!(
            "examples: at most {MAX_EXAMPLES}, each at most {MAX_EXAMPLE_LEN} bytes"
        )));
    }
    let (mut anchors, start) = match facts.prefixes {
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
    if !spec.keywords.is_empty() {
        let proven =
            derive::every_match_contains(&spec.pattern, &spec.keywords).map_err(|reason| {
                PolicyError::InvalidPattern {
                    detector: spec.name.clone(),
                    reason,
                }
            })?;
        if !proven {
            return Err(invalid(
                "keywords: every match must contain one of them, written as a literal part of \
                 the pattern on every alternative (keywords are case-sensitive)"
                    .into(),
            ));
        }
        anchors = spec
            .keywords
            .iter()
            .map(|k| Anchor::Literal(k.as_bytes().into()))
            .collect();
    }
    let detector = Detector {
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
        check: spec.entropy.map_or(Check::None, Check::MinEntropy),
        allow: Box::default(),
    };
    examples::run(&detector, examples, &Specific::default())?;
    Ok(detector)
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
        CustomDetectorSpec::new(name, pattern, Category::Pii)
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
