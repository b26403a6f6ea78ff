//! The built-in detectors: declared as data in `secrets.rs` and `pii.rs`, compiled once per
//! process.
//!
//! Formats follow public rule sets (gitleaks, detect-secrets) and vendor documentation; the
//! patterns are our own. Every pattern uses ASCII classes and ASCII word boundaries: Unicode
//! `\b` makes the regex crate's lazy DFA give up on non-ASCII text, and the values we look for
//! are ASCII anyway.

mod pii;
mod secrets;

use std::sync::{Arc, OnceLock};

use regex::Regex;

use super::assignment::Grammar;
use super::byteset::ByteSet;
use super::detector::{Anchor, Detector, Matcher, Prefixed, SpanFn, StartRule};
use super::match_checks::Check;
use super::numbers::Number;
use super::pem::{Pem, PEM_MAX_LEN};
use super::policy::{Category, PolicyError};
use super::token::{Form, Token};

/// How a built-in matches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Regex { pattern: &'static str, group: usize },
    Pem,
    Number(Number),
    Assignment(&'static Grammar),
    Jwt,
    EncodedJwt,
}

/// A built-in detector as data. See `detector.rs` for what each declaration promises.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Declaration {
    pub name: &'static str,
    pub category: Category,
    pub kind: Kind,
    pub anchors: &'static [&'static str],
    pub digit_pair: bool,
    pub start: &'static [&'static str],
    pub start_bytes: &'static str,
    pub alphabet: &'static str,
    pub non_ascii: bool,
    pub assignment: Option<(&'static [&'static str], &'static str, usize, usize)>,
    pub min_len: usize,
    pub min_digits: usize,
    pub max_len: usize,
    pub check: Check,
    /// The replaced part, computed from the match instead of captured by `group`.
    pub span: Option<SpanFn>,
    /// The same format as the pattern's, matched by hand (the pattern stays the reference).
    pub token: Option<&'static [Form]>,
}

impl Declaration {
    const fn new(name: &'static str, category: Category, kind: Kind) -> Declaration {
        Declaration {
            name,
            category,
            kind,
            anchors: &[],
            digit_pair: false,
            start: &[],
            start_bytes: "",
            alphabet: "",
            non_ascii: false,
            assignment: None,
            min_len: 1,
            min_digits: 0,
            max_len: 0,
            check: Check::None,
            span: None,
            token: None,
        }
    }

    pub(crate) const fn secret(name: &'static str, pattern: &'static str) -> Declaration {
        Declaration::new(name, Category::Secret, Kind::Regex { pattern, group: 0 })
    }

    pub(crate) const fn pii(name: &'static str, pattern: &'static str) -> Declaration {
        Declaration::new(name, Category::Pii, Kind::Regex { pattern, group: 0 })
    }

    pub(crate) const fn pem(name: &'static str) -> Declaration {
        Declaration::new(name, Category::Secret, Kind::Pem)
    }

    pub(crate) const fn assignment_secret(
        name: &'static str,
        grammar: &'static Grammar,
    ) -> Declaration {
        Declaration::new(name, Category::Secret, Kind::Assignment(grammar))
    }

    pub(crate) const fn jwt(name: &'static str) -> Declaration {
        Declaration::new(name, Category::Secret, Kind::Jwt)
    }

    pub(crate) const fn encoded_jwt(name: &'static str) -> Declaration {
        Declaration::new(name, Category::Secret, Kind::EncodedJwt)
    }

    pub(crate) const fn number(name: &'static str, number: Number) -> Declaration {
        Declaration::new(name, Category::Pii, Kind::Number(number))
    }

    /// Only this capture group is replaced.
    pub(crate) const fn group(self, group: usize) -> Declaration {
        let kind = match self.kind {
            Kind::Regex { pattern, .. } => Kind::Regex { pattern, group },
            other => other,
        };
        Declaration { kind, ..self }
    }

    /// The replaced part follows from the match: `span` gives what capture group `group`
    /// would (a test checks that on the samples), without a capture search.
    pub(crate) const fn span(self, span: SpanFn) -> Declaration {
        Declaration {
            span: Some(span),
            ..self
        }
    }

    /// The pattern's format as token forms, for the hand-written matcher: a property test
    /// holds it to the pattern.
    pub(crate) const fn token(self, forms: &'static [Form]) -> Declaration {
        Declaration {
            token: Some(forms),
            ..self
        }
    }

    /// Every match starts with one of these: they are both anchors and start literals.
    pub(crate) const fn prefixes(self, lits: &'static [&'static str]) -> Declaration {
        Declaration {
            anchors: lits,
            start: lits,
            ..self
        }
    }

    /// Every match starts with one of these (case-sensitive).
    pub(crate) const fn starts(self, lits: &'static [&'static str]) -> Declaration {
        Declaration {
            start: lits,
            ..self
        }
    }

    /// Every match starts with a byte of this set (a [`ByteSet::parse`] spec).
    pub(crate) const fn starts_with_bytes(self, spec: &'static str) -> Declaration {
        Declaration {
            start_bytes: spec,
            ..self
        }
    }

    /// Every match contains one of these.
    pub(crate) const fn anchors(self, lits: &'static [&'static str]) -> Declaration {
        Declaration {
            anchors: lits,
            ..self
        }
    }

    pub(crate) const fn digit_pair(self) -> Declaration {
        Declaration {
            digit_pair: true,
            ..self
        }
    }

    pub(crate) const fn alphabet(self, spec: &'static str) -> Declaration {
        Declaration {
            alphabet: spec,
            ..self
        }
    }

    pub(crate) const fn non_ascii(self) -> Declaration {
        Declaration {
            non_ascii: true,
            ..self
        }
    }

    /// Every match is an assignment to an identifier containing one of `keywords`
    /// (see [`Anchor::Assignment`]).
    pub(crate) const fn assignment(
        self,
        keywords: &'static [&'static str],
        operators: &'static str,
        suffix: usize,
        lead: usize,
    ) -> Declaration {
        Declaration {
            assignment: Some((keywords, operators, suffix, lead)),
            ..self
        }
    }

    /// No match is shorter than `min_len` bytes: shorter stretches are not searched.
    pub(crate) const fn min_len(self, min_len: usize) -> Declaration {
        Declaration { min_len, ..self }
    }

    /// No match has fewer than `min_digits` ASCII digits.
    pub(crate) const fn min_digits(self, min_digits: usize) -> Declaration {
        Declaration { min_digits, ..self }
    }

    pub(crate) const fn max_len(self, max_len: usize) -> Declaration {
        Declaration { max_len, ..self }
    }

    pub(crate) const fn check(self, check: Check) -> Declaration {
        Declaration { check, ..self }
    }
}

/// The compiled built-ins, shared by every redactor of the process.
pub(crate) struct Builtins {
    /// All detectors, in priority order (an earlier one wins when two start at the same byte).
    pub(crate) detectors: Vec<Arc<Detector>>,
    /// The secret detectors a generic `password = …` match defers to.
    pub(crate) specific: Specific,
    /// Finds `<LABEL_n>` placeholders in responses, to restore pseudonymized values.
    pub(crate) placeholder: Arc<Detector>,
}

/// Detectors a generic match defers to: when a generic value *starts with* an accepted match of
/// one of these (`token = ghp_…`), the generic match is dropped and the specific detector
/// reports the value under its own name. Only detectors whose matches start with a literal
/// qualify, so the check is a few byte comparisons and at most one anchored match. A token in
/// the middle of a value is redacted as part of the generic value instead: never less.
#[derive(Default)]
pub(crate) struct Specific {
    detectors: Vec<Arc<Detector>>,
    /// Every start literal with its detector, by the literal's first byte: most values start
    /// with none of them, and the others with one or two.
    by_first: Vec<Vec<(Box<[u8]>, usize)>>,
}

impl Specific {
    fn new(detectors: Vec<Arc<Detector>>) -> Specific {
        let detectors: Vec<Arc<Detector>> = detectors
            .into_iter()
            .filter(|d| matches!(d.start, StartRule::Literals { ci: false, .. }))
            .collect();
        let mut by_first = vec![Vec::new(); 256];
        for (i, d) in detectors.iter().enumerate() {
            if let StartRule::Literals { lits, .. } = &d.start {
                for l in lits {
                    if let Some(&b) = l.first() {
                        by_first[usize::from(b)].push((l.clone(), i));
                    }
                }
            }
        }
        Specific {
            detectors,
            by_first,
        }
    }

    /// Whether `value` starts with an accepted match of one of the detectors.
    pub(crate) fn starts(&self, value: &str) -> bool {
        let Some(lits) = value
            .as_bytes()
            .first()
            .and_then(|&b| self.by_first.get(usize::from(b)))
        else {
            return false;
        };
        let none = Specific::default();
        lits.iter().any(|(lit, d)| {
            let Some(d) = self.detectors.get(*d) else {
                return false;
            };
            value.as_bytes().starts_with(lit)
                && d.matcher
                    .find_at(value, 0)
                    .filter(|m| m.start == 0)
                    .and_then(|m| d.check.apply(value, m, &none))
                    .is_some()
        })
    }
}

/// The placeholder pattern: everything [`Action::Pseudonymize`](super::Action) produces.
const PLACEHOLDER: Declaration =
    Declaration::secret("pseudonym", r"<[A-Z][A-Z0-9_]{0,63}_[1-9][0-9]{0,8}>")
        .prefixes(&["<"])
        .alphabet("<>A-Z0-9_")
        .min_len(5)
        .max_len(80);

/// Names of the built-in detectors, in priority order.
pub(crate) fn names() -> impl Iterator<Item = &'static str> + Clone {
    all_declarations().map(|s| s.name)
}

pub(crate) fn all_declarations() -> impl Iterator<Item = &'static Declaration> + Clone {
    secrets::DECLARATIONS.iter().chain(pii::DECLARATIONS.iter())
}

/// The compiled built-ins.
///
/// # Errors
///
/// [`PolicyError::Internal`] if a built-in pattern does not compile — a bug caught by this
/// module's tests, reported rather than panicking.
pub(crate) fn builtins() -> Result<&'static Builtins, PolicyError> {
    static CELL: OnceLock<Result<Builtins, String>> = OnceLock::new();
    CELL.get_or_init(compile_all)
        .as_ref()
        .map_err(|reason| PolicyError::Internal {
            reason: reason.clone(),
        })
}

fn compile_all() -> Result<Builtins, String> {
    let mut detectors = Vec::new();
    let mut specific = Vec::new();
    for decl in all_declarations() {
        let det = Arc::new(compile(decl)?);
        if decl.category == Category::Secret && decl.check != Check::GenericSecret {
            specific.push(Arc::clone(&det));
        }
        detectors.push(det);
    }
    Ok(Builtins {
        detectors,
        specific: Specific::new(specific),
        placeholder: Arc::new(compile(&PLACEHOLDER)?),
    })
}

fn compile(decl: &Declaration) -> Result<Detector, String> {
    let (matcher, max_len) = match decl.kind {
        Kind::Regex { pattern, group } => {
            // ASCII word boundaries: see the module docs.
            let pattern = pattern.replace(r"\b", r"(?-u:\b)");
            let matcher = if let Some(forms) = decl.token {
                Matcher::Token(Token::new(pattern.starts_with(r"(?-u:\b)"), forms))
            } else if let Some(span) = decl.span {
                let re = Regex::new(&pattern).map_err(|e| format!("{}: {e}", decl.name))?;
                Matcher::Derived { re, span }
            } else if group == 0 && !decl.start.is_empty() {
                let p = Prefixed::new(&pattern, decl.start)
                    .map_err(|e| format!("{}: {e}", decl.name))?;
                Matcher::Prefixed(p)
            } else {
                let re = Regex::new(&pattern).map_err(|e| format!("{}: {e}", decl.name))?;
                Matcher::Regex { re, group }
            };
            (matcher, decl.max_len)
        }
        Kind::Pem => {
            let pem = Pem::new().map_err(|e| format!("{}: {e}", decl.name))?;
            (Matcher::Pem(pem), PEM_MAX_LEN)
        }
        Kind::Number(n) => (Matcher::Number(n), decl.max_len),
        Kind::Assignment(g) => (Matcher::Assignment(g), decl.max_len),
        Kind::Jwt => (Matcher::Jwt, decl.max_len),
        Kind::EncodedJwt => (Matcher::EncodedJwt, decl.max_len),
    };
    let mut anchors: Vec<Anchor> = decl
        .anchors
        .iter()
        .map(|a| Anchor::Literal(a.as_bytes().into()))
        .collect();
    if decl.digit_pair {
        anchors.push(Anchor::DigitPair);
    }
    if let Some((keywords, operators, suffix, lead)) = decl.assignment {
        anchors.push(Anchor::Assignment {
            keywords: keywords.iter().map(|k| k.as_bytes().into()).collect(),
            operators: operators.as_bytes().into(),
            suffix,
            lead,
        });
    }
    let start = if let Kind::Assignment(g) = decl.kind {
        StartRule::Grammar(g)
    } else if !decl.start.is_empty() {
        StartRule::Literals {
            lits: decl.start.iter().map(|s| s.as_bytes().into()).collect(),
            ci: false,
        }
    } else if !decl.start_bytes.is_empty() {
        StartRule::Bytes(ByteSet::parse(decl.start_bytes))
    } else {
        StartRule::Any
    };
    let mut alphabet = ByteSet::parse(decl.alphabet);
    if decl.non_ascii {
        alphabet = alphabet.with_non_ascii();
    }
    Ok(Detector {
        name: Arc::from(decl.name),
        label: decl.name.to_ascii_uppercase().into(),
        category: decl.category,
        matcher,
        anchors,
        start,
        alphabet,
        min_len: decl.min_len,
        min_digits: decl.min_digits,
        max_len,
        check: decl.check,
    })
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the catalog tests.

    use super::*;

    /// The values `name` finds in `text` (scanning the whole text, left to right).
    pub(crate) fn find_all(name: &str, text: &str) -> Vec<String> {
        let b = builtins().unwrap();
        let det = b
            .detectors
            .iter()
            .find(|d| &*d.name == name)
            .unwrap_or_else(|| panic!("no detector {name}"));
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(m) = det.find_at(text, at, &b.specific) {
            check_declarations(det, text, m.start, m.end);
            out.push(text[m.span.clone()].to_owned());
            at = m.end.max(m.start + 1);
        }
        out
    }

    /// Asserts what the detector declares about its matches: length, alphabet, start literal,
    /// anchor. Streaming is exact only if these hold.
    fn check_declarations(det: &Detector, text: &str, start: usize, end: usize) {
        let m = &text.as_bytes()[start..end];
        assert!(
            m.len() <= det.max_len,
            "{}: match longer than max_len",
            det.name
        );
        for &b in m {
            assert!(
                det.alphabet.contains(b),
                "{}: byte {:?} outside the alphabet",
                det.name,
                b as char
            );
        }
        if let StartRule::Bytes(set) = &det.start {
            assert!(
                set.contains(m[0]),
                "{}: match starts outside the start bytes",
                det.name
            );
        }
        if let StartRule::Literals { lits, ci } = &det.start {
            assert!(
                lits.iter().any(|l| m.len() >= l.len()
                    && if *ci {
                        m[..l.len()].eq_ignore_ascii_case(l)
                    } else {
                        m[..l.len()] == **l
                    }),
                "{}: match does not start with a start literal",
                det.name
            );
        }
        assert!(
            m.len() >= det.min_len,
            "{}: match shorter than min_len",
            det.name
        );
        let digits = m.iter().filter(|b| b.is_ascii_digit()).count();
        assert!(
            digits >= det.min_digits,
            "{}: match with fewer digits than min_digits",
            det.name
        );
        if !det.anchors.is_empty() {
            assert!(
                det.anchors.iter().any(|a| match a {
                    Anchor::Literal(l) => m.windows(l.len()).any(|w| w == &**l),
                    Anchor::DigitPair => (0..m.len().saturating_sub(1)).any(|i| {
                        let before = if i == 0 {
                            text.as_bytes()[..start].last()
                        } else {
                            Some(&m[i - 1])
                        };
                        m[i].is_ascii_digit()
                            && m[i + 1].is_ascii_digit()
                            && !before.is_some_and(u8::is_ascii_digit)
                    }),
                    Anchor::Assignment {
                        keywords,
                        operators,
                        suffix,
                        ..
                    } => (0..m.len())
                        .filter(|&i| operators.contains(&m[i]))
                        .any(|op| crate::redact::prefilter::is_assignment(
                            m, op, keywords, *suffix
                        )),
                }),
                "{}: match contains no anchor",
                det.name
            );
        }
    }

    /// Joins a prefix and a body: test tokens are split in the source so that secret scanners
    /// do not flag this repository.
    pub(crate) fn tok(prefix: &str, body: &str) -> String {
        format!("{prefix}{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_compiles() {
        let b = builtins().unwrap();
        assert_eq!(b.detectors.len(), names().count());
        assert!(b
            .specific
            .detectors
            .iter()
            .all(|d| &*d.name != "generic_secret"));
    }

    #[test]
    fn names_are_unique_and_lowercase() {
        let mut names: Vec<_> = names().collect();
        assert!(names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        assert_eq!(names.len(), len);
    }

    #[test]
    fn declarations_are_usable() {
        for decl in all_declarations() {
            assert!(
                decl.max_len > 0 || matches!(decl.kind, Kind::Pem),
                "{}",
                decl.name
            );
            assert!(!decl.alphabet.is_empty(), "{}", decl.name);
            assert!(
                !decl.anchors.is_empty() || decl.digit_pair || decl.assignment.is_some(),
                "{}: unanchored detectors scan all text",
                decl.name
            );
        }
    }

    #[test]
    fn anchored_prefix_matching_equals_plain_regex() {
        let mut texts: Vec<String> = crate::redact::tests::samples()
            .into_iter()
            .map(|(_, t, _)| t)
            .collect();
        texts.extend(
            crate::redact::tests::SURVIVORS
                .iter()
                .map(|s| s.to_string()),
        );
        let joined = texts.join(" ");
        let variants: Vec<String> = texts
            .iter()
            .flat_map(|t| {
                [
                    format!("x{t}"),
                    format!("{t}x"),
                    format!("_{t}_"),
                    format!("({t})"),
                ]
            })
            .chain([joined])
            .collect();
        for decl in all_declarations().chain([&PLACEHOLDER]) {
            let Kind::Regex { pattern, group: 0 } = decl.kind else {
                continue;
            };
            if decl.start.is_empty() {
                continue;
            }
            let pattern = pattern.replace(r"\b", r"(?-u:\b)");
            let plain = Regex::new(&pattern).unwrap();
            let prefixed = Matcher::Prefixed(Prefixed::new(&pattern, decl.start).unwrap());
            let token = decl
                .token
                .map(|forms| Matcher::Token(Token::new(pattern.starts_with(r"(?-u:\b)"), forms)));
            for text in texts.iter().chain(&variants) {
                for start in [0, 1, 3] {
                    if !text.is_char_boundary(start.min(text.len())) {
                        continue;
                    }
                    let start = start.min(text.len());
                    let want = plain.find_at(text, start).map(|m| m.range());
                    for matcher in [Some(&prefixed), token.as_ref()].into_iter().flatten() {
                        let got = matcher.find_at(text, start).map(|m| m.start..m.end);
                        assert_eq!(got, want, "{} on {text:?} from {start}", decl.name);
                    }
                }
            }
        }
    }

    #[test]
    fn derived_spans_equal_capture_groups() {
        let mut texts: Vec<String> = crate::redact::tests::samples()
            .into_iter()
            .map(|(_, t, _)| t)
            .collect();
        texts.extend(
            crate::redact::tests::SURVIVORS
                .iter()
                .map(|s| s.to_string()),
        );
        texts.extend(
            [
                "see postgres://admin:S3cr3tP4ss@db.example.com/app now",
                "a+b.c-d://u:p:q@h and x://:pw@h, http://user:p%40ss:word@host",
                "ftp://a:b@c@d mysql://root:x@y redis://:only-password@cache:6379",
            ]
            .map(String::from),
        );
        let mut checked = 0;
        for decl in all_declarations() {
            let (Some(span), Kind::Regex { pattern, group }) = (decl.span, decl.kind) else {
                continue;
            };
            let re = Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")).unwrap();
            for text in &texts {
                for caps in re.captures_iter(text) {
                    let whole = caps.get(0).unwrap();
                    let want = caps.get(group).map_or(whole.range(), |g| g.range());
                    let part = span(whole.as_str()).unwrap();
                    let got = whole.start() + part.start..whole.start() + part.end;
                    assert_eq!(got, want, "{} on {text:?}", decl.name);
                    checked += 1;
                }
            }
        }
        assert!(checked >= 5, "only {checked} matches checked");
    }

    #[test]
    fn placeholders_are_found() {
        let b = builtins().unwrap();
        let text = "hi <EMAIL_1> and <AWS_ACCESS_KEY_12>, not <email_1> or <EMAIL_0>";
        let none = Specific::default();
        let found: Vec<_> = std::iter::successors(b.placeholder.find_at(text, 0, &none), |m| {
            b.placeholder.find_at(text, m.end, &none)
        })
        .map(|m| &text[m.span])
        .collect();
        assert_eq!(found, ["<EMAIL_1>", "<AWS_ACCESS_KEY_12>"]);
    }
}
