//! The built-in detectors: declared as data in `catalogue.yaml` (with the keys of a custom
//! detector in the config, read by the config's own YAML reader), compiled once per process.
//!
//! A regex detector's facts — the bytes a match can hold, its shortest and longest length, the
//! literals or bytes it starts with — are derived from its pattern (`derive.rs`); a
//! hand-written matcher declares them in `hand.rs`, beside the hand-written accelerators of
//! regex detectors. Every `\b` is an ASCII word boundary: a Unicode `\b` makes the regex
//! crate's lazy DFA give up on non-ASCII text, and the values we look for are ASCII anyway.

mod hand;
#[cfg(test)]
mod pii;
#[cfg(test)]
mod secrets;

use std::sync::{Arc, OnceLock};

use regex::Regex;
use serde::Deserialize;

use super::byteset::ByteSet;
use super::derive;
use super::detector::{Anchor, Detector, Matcher, Prefixed, SpanFn, StartRule};
use super::examples;
use super::match_checks::Check;
use super::numbers::Number;
use super::pem::Pem;
use super::policy::{Category, Examples, PolicyError, Text};
use super::token::{Form, Token};
use crate::config::{de::from_tree, error::Problems, tree};
use hand::{HandKind, MATCHERS, SPANS, TOKENS};

pub(crate) use super::assignment::Grammar;

/// The catalogue, built into the binary.
const CATALOGUE: &str = include_str!("catalogue.yaml");

/// How a built-in matches.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Regex { pattern: String, group: usize },
    Pem,
    Number(Number),
    Assignment(&'static Grammar),
    Jwt,
    EncodedJwt,
}

/// A built-in detector with everything derived: what [`compile`] turns into a [`Detector`].
/// See `detector.rs` for what each fact promises.
#[derive(Debug, Clone)]
pub(crate) struct Declaration {
    pub name: String,
    pub category: Category,
    pub kind: Kind,
    pub anchors: Vec<String>,
    pub digit_pair: bool,
    pub start: Vec<String>,
    pub start_bytes: Option<ByteSet>,
    pub alphabet: ByteSet,
    pub assignment: Option<(&'static [&'static str], &'static str, usize, usize)>,
    pub min_len: usize,
    pub min_digits: usize,
    pub max_len: usize,
    pub check: Check,
    /// The replaced part, computed from the match instead of captured by `group`.
    pub span: Option<SpanFn>,
    /// The same format as the pattern's, matched by hand (the pattern stays the reference).
    pub token: Option<&'static [Form]>,
    pub examples: Examples,
    /// Public values this detector leaves alone.
    pub allow: Vec<String>,
}

/// One entry of `catalogue.yaml`.
#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    category: Category,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    matcher: Option<String>,
    #[serde(default)]
    group: Option<usize>,
    #[serde(default)]
    keywords: Option<Vec<String>>,
    #[serde(default)]
    entropy: Option<f64>,
    #[serde(default)]
    check: Option<NamedCheck>,
    #[serde(default)]
    examples: Examples,
    /// Public values this detector must leave alone (sample keys printed in vendors'
    /// documentation, as gitleaks allow-lists them).
    #[serde(default)]
    allow: Vec<Text>,
}

/// The checks an entry can name besides `entropy` (see `match_checks.rs`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum NamedCheck {
    Email,
    Password,
    TokenEnd,
    GenericSecret,
    UserPassword,
}

#[derive(Debug, Deserialize)]
struct Catalogue {
    detectors: Vec<Entry>,
}

/// The catalogue's declarations, in priority order.
///
/// # Errors
///
/// What is wrong with `catalogue.yaml`, by line and key path: a bug caught by this module's
/// tests.
fn load(text: &str) -> Result<Vec<Declaration>, String> {
    let mut problems = Problems::new("builtin/catalogue.yaml");
    let catalogue = tree::parse(text, &mut problems)
        .and_then(|root| from_tree::<Catalogue>(&root, &mut problems));
    if !problems.is_empty() {
        let list: Vec<String> = problems
            .into_sorted()
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(list.join("; "));
    }
    let catalogue = catalogue.ok_or("builtin/catalogue.yaml: unreadable")?;
    catalogue
        .detectors
        .into_iter()
        .map(|e| declare(e).map_err(|reason| format!("catalogue: {reason}")))
        .collect()
}

/// An entry's declaration: its facts taken from its hand-written matcher or derived from its
/// pattern.
fn declare(e: Entry) -> Result<Declaration, String> {
    let name = e.name.clone();
    let check = match (e.entropy, e.check) {
        (Some(_), Some(_)) => return Err(format!("{name}: both entropy and check")),
        (Some(min), None) => Check::MinEntropy(min),
        (None, Some(NamedCheck::Email)) => Check::Email,
        (None, Some(NamedCheck::Password)) => Check::Password,
        (None, Some(NamedCheck::TokenEnd)) => Check::TokenEnd,
        (None, Some(NamedCheck::GenericSecret)) => Check::GenericSecret,
        (None, Some(NamedCheck::UserPassword)) => Check::UserPassword,
        (None, None) => Check::None,
    };
    if let Some(matcher) = &e.matcher {
        let hand = MATCHERS
            .iter()
            .find(|h| h.name == matcher)
            .ok_or_else(|| format!("{name}: unknown matcher `{matcher}`"))?;
        if e.pattern.is_some() || e.group.is_some() || e.keywords.is_some() {
            return Err(format!(
                "{name}: a hand-written matcher takes no pattern, group or keywords"
            ));
        }
        let kind = match hand.kind {
            HandKind::Pem => Kind::Pem,
            HandKind::Number(n) => Kind::Number(n),
            HandKind::Assignment(g) => Kind::Assignment(g),
            HandKind::Jwt => Kind::Jwt,
            HandKind::EncodedJwt => Kind::EncodedJwt,
        };
        let mut alphabet = ByteSet::parse(hand.alphabet);
        if hand.non_ascii {
            alphabet = alphabet.with_non_ascii();
        }
        let strings = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        return Ok(Declaration {
            kind,
            anchors: strings(hand.anchors),
            digit_pair: hand.digit_pair,
            start: strings(hand.start),
            start_bytes: (!hand.start_bytes.is_empty()).then(|| ByteSet::parse(hand.start_bytes)),
            alphabet,
            assignment: hand.assignment,
            min_len: hand.min_len,
            min_digits: hand.min_digits,
            max_len: hand.max_len,
            check,
            span: None,
            token: None,
            examples: e.examples,
            allow: e.allow.iter().map(Text::joined).collect(),
            name,
            category: e.category,
        });
    }
    let pattern = e
        .pattern
        .ok_or_else(|| format!("{name}: neither pattern nor matcher"))?;
    regex_declaration(
        name,
        e.category,
        pattern,
        e.group.unwrap_or(0),
        e.keywords,
        check,
    )
    .map(|d| Declaration {
        examples: e.examples,
        allow: e.allow.iter().map(Text::joined).collect(),
        ..d
    })
}

/// A regex detector's declaration, its facts derived from `pattern`.
fn regex_declaration(
    name: String,
    category: Category,
    pattern: String,
    group: usize,
    keywords: Option<Vec<String>>,
    check: Check,
) -> Result<Declaration, String> {
    let facts = derive::facts(&ascii_boundaries(&pattern)).map_err(|e| format!("{name}: {e}"))?;
    let max_len = facts
        .max_len
        .ok_or_else(|| format!("{name}: the pattern's matches have no longest length"))?;
    // Start literals when every match starts with one of a few (a longer literal or a single
    // one): they anchor the matcher. Otherwise the bytes a match starts with.
    let literals = facts
        .prefixes
        .filter(|lits| lits.len() == 1 || lits.iter().all(|l| l.len() >= 2));
    let start: Vec<String> = literals
        .iter()
        .flatten()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let anchors = match keywords {
        Some(k) if k.iter().any(String::is_empty) || k.is_empty() => {
            return Err(format!("{name}: an empty keyword"))
        }
        Some(k) => {
            let proven = derive::every_match_contains(&ascii_boundaries(&pattern), &k)
                .map_err(|e| format!("{name}: {e}"))?;
            if !proven {
                return Err(format!("{name}: keywords are not in every match"));
            }
            k
        }
        None if !start.is_empty() => start.clone(),
        None => return Err(format!("{name}: no anchor: give keywords")),
    };
    Ok(Declaration {
        token: TOKENS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f),
        span: SPANS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f),
        kind: Kind::Regex { pattern, group },
        anchors,
        digit_pair: false,
        start_bytes: start.is_empty().then_some(facts.first),
        start,
        alphabet: facts.alphabet,
        assignment: None,
        min_len: facts.min_len.max(1),
        min_digits: 0,
        max_len,
        check,
        examples: Examples::default(),
        allow: Vec::new(),
        name,
        category,
    })
}

/// `pattern` with every `\b` an ASCII word boundary (see the module docs).
fn ascii_boundaries(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)")
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
const PLACEHOLDER: &str = r"<[A-Z][A-Z0-9_]{0,63}_[1-9][0-9]{0,8}>";

fn placeholder() -> Result<Declaration, String> {
    regex_declaration(
        "pseudonym".to_owned(),
        Category::Secret,
        PLACEHOLDER.to_owned(),
        0,
        None,
        Check::None,
    )
}

/// The catalogue, read once per process.
fn declarations() -> &'static Result<Vec<Declaration>, String> {
    static CELL: OnceLock<Result<Vec<Declaration>, String>> = OnceLock::new();
    CELL.get_or_init(|| load(CATALOGUE))
}

/// Names of the built-in detectors, in priority order.
pub(crate) fn names() -> impl Iterator<Item = &'static str> + Clone {
    all_declarations().map(|s| s.name.as_str())
}

/// The built-in declarations in priority order (none if the catalogue is broken, which
/// [`builtins`] reports).
pub(crate) fn all_declarations() -> impl Iterator<Item = &'static Declaration> + Clone {
    declarations().as_deref().unwrap_or_default().iter()
}

/// The compiled built-ins.
///
/// # Errors
///
/// [`PolicyError::Internal`] if the catalogue is broken or a built-in pattern does not
/// compile — a bug caught by this module's tests, reported rather than panicking.
pub(crate) fn builtins() -> Result<&'static Builtins, PolicyError> {
    static CELL: OnceLock<Result<Builtins, String>> = OnceLock::new();
    CELL.get_or_init(compile_all)
        .as_ref()
        .map_err(|reason| PolicyError::Internal {
            reason: reason.clone(),
        })
}

fn compile_all() -> Result<Builtins, String> {
    let declarations = declarations().as_ref().map_err(Clone::clone)?;
    let mut detectors = Vec::new();
    let mut specific = Vec::new();
    for decl in declarations {
        let det = Arc::new(compile(decl)?);
        if decl.category == Category::Secret && decl.check != Check::GenericSecret {
            specific.push(Arc::clone(&det));
        }
        detectors.push(det);
    }
    let builtins = Builtins {
        detectors,
        specific: Specific::new(specific),
        placeholder: Arc::new(compile(&placeholder()?)?),
    };
    // Every example holds, here as in the tests: a catalogue that says one thing and does
    // another never runs (it costs well under a millisecond, once per process).
    for (decl, det) in declarations.iter().zip(&builtins.detectors) {
        if decl.examples.matches.is_empty() || decl.examples.no_match.is_empty() {
            return Err(format!(
                "catalogue: {}: needs at least one match and one no_match example",
                decl.name
            ));
        }
        examples::run(det, &decl.examples, &builtins.specific).map_err(|e| e.to_string())?;
    }
    Ok(builtins)
}

fn compile(decl: &Declaration) -> Result<Detector, String> {
    let matcher = match &decl.kind {
        Kind::Regex { pattern, group } => {
            let pattern = ascii_boundaries(pattern);
            if let Some(forms) = decl.token {
                Matcher::Token(Token::new(pattern.starts_with(r"(?-u:\b)"), forms))
            } else if let Some(span) = decl.span {
                let re = Regex::new(&pattern).map_err(|e| format!("{}: {e}", decl.name))?;
                Matcher::Derived { re, span }
            } else if *group == 0 && !decl.start.is_empty() {
                let start: Vec<&str> = decl.start.iter().map(String::as_str).collect();
                let p =
                    Prefixed::new(&pattern, &start).map_err(|e| format!("{}: {e}", decl.name))?;
                Matcher::Prefixed(p)
            } else {
                let re = Regex::new(&pattern).map_err(|e| format!("{}: {e}", decl.name))?;
                Matcher::Regex { re, group: *group }
            }
        }
        Kind::Pem => Matcher::Pem(Pem::new().map_err(|e| format!("{}: {e}", decl.name))?),
        Kind::Number(n) => Matcher::Number(*n),
        Kind::Assignment(g) => Matcher::Assignment(g),
        Kind::Jwt => Matcher::Jwt,
        Kind::EncodedJwt => Matcher::EncodedJwt,
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
    } else if let Some(bytes) = decl.start_bytes {
        StartRule::Bytes(bytes)
    } else {
        StartRule::Any
    };
    Ok(Detector {
        name: Arc::from(decl.name.as_str()),
        label: decl.name.to_ascii_uppercase().into(),
        category: decl.category,
        matcher,
        anchors,
        start,
        alphabet: decl.alphabet,
        min_len: decl.min_len,
        min_digits: decl.min_digits,
        max_len: decl.max_len,
        check: decl.check,
        allow: decl.allow.iter().map(|a| a.as_str().into()).collect(),
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

    /// Asserts that `name` finds exactly `expected` in `text`.
    pub(crate) fn finds(name: &str, text: &str, expected: &str) {
        assert_eq!(
            find_all(name, text),
            vec![expected.to_owned()],
            "{name} in {text:?}"
        );
    }

    /// Asserts that `name` finds nothing in `text`.
    pub(crate) fn misses(name: &str, text: &str) {
        let found = find_all(name, text);
        assert!(found.is_empty(), "{name} matched {text:?}: {found:?}");
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
    use crate::redact::policy::{Example, Text};

    /// The catalogue as a policy author would break it: each mistake is named with its place.
    #[test]
    fn a_broken_catalogue_says_where() {
        let entry =
            |body: &str| format!("detectors:\n  - name: acme\n    category: secret\n{body}");
        let err = |body: &str| match load(&entry(body)) {
            Ok(_) => panic!("loaded: {body}"),
            Err(e) => e,
        };
        let e = err("    pattern: 'ACME_[0-9]{8}'\n    entrpy: 3\n");
        assert!(e.contains(":5:") && e.contains("entrpy"), "{e}");
        let e = err("    matcher: pme\n");
        assert!(e.contains("acme: unknown matcher `pme`"), "{e}");
        let e = err("    pattern: '[A-Z]{8}'\n");
        assert!(e.contains("acme: no anchor: give keywords"), "{e}");
        let e = err("    pattern: 'ACME_[0-9]+'\n");
        assert!(
            e.contains("acme: the pattern's matches have no longest length"),
            "{e}"
        );
        let e = err("    pattern: 'ACME_[0-9]{8}'\n    entropy: 3\n    check: email\n");
        assert!(e.contains("acme: both entropy and check"), "{e}");
        let e = err("    pattern: '[A-Z]{4}_[0-9]{8}'\n    keywords: [ACME]\n");
        assert!(e.contains("acme: keywords are not in every match"), "{e}");
        let e = err("    matcher: pem\n    pattern: x\n");
        assert!(e.contains("takes no pattern"), "{e}");
        let ok = load(&entry("    pattern: '\\bACME_[0-9]{8}'\n")).unwrap();
        assert_eq!(ok[0].start, ["ACME_"]);
        assert_eq!((ok[0].min_len, ok[0].max_len), (13, 13));
    }

    /// Every entry has examples both ways, and they hold.
    #[test]
    fn every_catalogue_example_holds() {
        let b = builtins().unwrap();
        let mut examples = 0;
        for (decl, det) in all_declarations().zip(&b.detectors) {
            assert!(!decl.examples.matches.is_empty(), "{}", decl.name);
            assert!(!decl.examples.no_match.is_empty(), "{}", decl.name);
            examples::run(det, &decl.examples, &b.specific).unwrap();
            examples += decl.examples.matches.len() + decl.examples.no_match.len();
        }
        assert!(examples >= 90, "{examples}");
    }

    /// An example that does not hold is caught, whichever way it fails.
    #[test]
    fn a_failing_example_is_caught() {
        let b = builtins().unwrap();
        let npm = b
            .detectors
            .iter()
            .find(|d| &*d.name == "npm_token")
            .unwrap();
        let token = testing::tok("npm_", "zy3Lex7BWr2drgd1QsO7jprBGumXxY9B4bZW");
        let run = |matches: Vec<Example>, no_match: Vec<Text>| {
            examples::run(npm, &Examples { matches, no_match }, &b.specific)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            run(vec![Example::Whole(Text::One(token.clone()))], vec![]),
            Ok(())
        );
        let e = run(vec![Example::Whole(Text::One("npm_short".into()))], vec![]).unwrap_err();
        assert_eq!(e, "detector `npm_token`: example match[0] is not found");
        let e = run(
            vec![Example::Whole(Text::One(format!("x {token}")))],
            vec![],
        )
        .unwrap_err();
        assert!(
            e.contains("match[0] is found, but not as the whole value"),
            "{e}"
        );
        assert!(!e.contains(&token), "never quotes an example");
        let e = run(vec![], vec![Text::One(token.clone())]).unwrap_err();
        assert_eq!(
            e,
            "detector `npm_token`: example no_match[0] is found, and must not be"
        );
    }

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
            assert_ne!(decl.alphabet, ByteSet::default(), "{}", decl.name);
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
        let placeholder = placeholder().unwrap();
        let mut declarations: Vec<&Declaration> = all_declarations().collect();
        declarations.push(&placeholder);
        for decl in declarations {
            let Kind::Regex { pattern, group } = &decl.kind else {
                continue;
            };
            if decl.start.is_empty() || *group != 0 {
                continue;
            }
            let pattern = ascii_boundaries(pattern);
            let plain = Regex::new(&pattern).unwrap();
            let start: Vec<&str> = decl.start.iter().map(String::as_str).collect();
            let prefixed = Matcher::Prefixed(Prefixed::new(&pattern, &start).unwrap());
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
                "curl -H 'Authorization: Basic YnJvd3Nlcjo6aHVudGVyMg==' -u a:b https://x",
                "curl --user \"{acd3c08b}\":\"{ZqL5kVrX1n8tA2}\" -u'x:y' -uuser:pw --user  a:b",
                "curl -X POST https://x \\\n  -u developer:yqDVtkqPECriaLRi and curl -u :p -u q:",
            ]
            .map(String::from),
        );
        let mut checked = 0;
        for decl in all_declarations() {
            let (Some(span), Kind::Regex { pattern, group }) = (decl.span, &decl.kind) else {
                continue;
            };
            let group = *group;
            let re = Regex::new(&ascii_boundaries(pattern)).unwrap();
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
        assert!(checked >= 10, "only {checked} matches checked");
    }

    /// The derived-span detectors with their reference regex, compiled once.
    fn derived() -> &'static [(String, Regex, usize, SpanFn)] {
        static ALL: std::sync::OnceLock<Vec<(String, Regex, usize, SpanFn)>> =
            std::sync::OnceLock::new();
        ALL.get_or_init(|| {
            all_declarations()
                .filter_map(|decl| match (decl.span, &decl.kind) {
                    (Some(span), Kind::Regex { pattern, group }) => Some((
                        decl.name.clone(),
                        Regex::new(&ascii_boundaries(pattern)).unwrap(),
                        *group,
                        span,
                    )),
                    _ => None,
                })
                .collect()
        })
    }

    /// Text from pieces of the derived-span detectors' syntax, for the property below.
    fn span_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let pieces = [
            "curl",
            " -u",
            "--user",
            " ",
            "\t",
            "'",
            "\"",
            ":",
            "::",
            "user",
            "p@ss",
            "-",
            "u",
            "\\\n",
            "\n",
            "abc123XYZ",
            "\\",
            "<",
            ",",
            ";",
            "=",
            "x",
            "9",
            "://",
            "@",
            "pg://a:b@h",
        ];
        (prop::collection::vec(prop::sample::select(pieces.to_vec()), 0..40))
            .prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(crate::redact::proptests::config(512))]

        /// Every derived span is its capture group, on generated text too.
        #[test]
        fn derived_spans_equal_capture_groups_on_any_text(text in span_text()) {
            for (name, re, group, span) in derived().iter() {
                for caps in re.captures_iter(&text) {
                    let whole = caps.get(0).unwrap();
                    let want = caps.get(*group).map_or(whole.range(), |g| g.range());
                    let part = span(whole.as_str()).unwrap();
                    let got = whole.start() + part.start..whole.start() + part.end;
                    proptest::prop_assert_eq!(got, want, "{} on {:?}", name, text);
                }
            }
        }
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
