//! A detector: one kind of value, how to find it, and how far a match can reach.
//!
//! Besides its matcher, every detector declares what the prefilter and the stream redactor need
//! to stay exact (see `scanner.rs` for why these make streaming equal to one-shot scanning);
//! the catalog tests check every declaration against real matches:
//!
//! - `anchors`: something every match contains — a literal, the first two digits of a digit
//!   run, or an assignment's keyword and operator. The prefilter runs the matcher only near
//!   anchors.
//! - `min_len`, `min_digits`, `max_len`: bounds on every match (longer regex matches are cut to
//!   `max_len`).
//! - `alphabet`: every byte a match can contain.
//! - `start`: what every match starts with — literals, a byte set, or an assignment grammar.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use regex::Regex;

use super::assignment::Grammar;
use super::builtin::Specific;
use super::byteset::{floor_boundary, is_word, next_boundary, ByteSet};
use super::match_checks::Check;
use super::numbers::Number;
use super::pem::Pem;
use super::policy::Category;
use super::token::Token;
use super::{encoded_jwt, jwt};

/// Bytes after a match that can still decide it: one character of look-ahead (`\b`, `$`).
pub(crate) const LOOKAHEAD: usize = 4;

/// A match in haystack coordinates: `start..end` is what the matcher consumed, `span` (inside
/// it) is the value an action replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawMatch {
    pub start: usize,
    pub end: usize,
    pub span: Range<usize>,
}

impl RawMatch {
    /// For the hand-written matchers of tokens that open with a literal (`jwt.rs`,
    /// `encoded_jwt.rs`): the leftmost candidate at or after `start` that starts with `lit`
    /// at a word start (no word byte before it) and that `end` accepts, `end` giving where the
    /// token at that offset ends; the whole token is replaced.
    pub(crate) fn leftmost_at_word_start(
        bytes: &[u8],
        start: usize,
        lit: &[u8],
        mut end: impl FnMut(usize) -> Option<usize>,
    ) -> Option<RawMatch> {
        let mut s = start;
        while let Some(i) = memchr::memmem::find(bytes.get(s..)?, lit) {
            s += i;
            if s == 0 || !is_word(bytes[s - 1]) {
                if let Some(e) = end(s) {
                    return Some(RawMatch {
                        start: s,
                        end: e,
                        span: s..e,
                    });
                }
            }
            s += 1;
        }
        None
    }
}

/// How a detector finds candidates.
pub(crate) enum Matcher {
    /// A regex; `group` 0 replaces the whole match, another group only that group (when it took
    /// part in the match).
    Regex { re: Regex, group: usize },
    /// PEM private-key blocks (hand-written: see `pem.rs`).
    Pem(Pem),
    /// Cards, SSNs, phone numbers, IBANs (hand-written: see `numbers.rs`).
    Number(Number),
    /// Assignments such as `password = value` (hand-written: see `assignment.rs`).
    Assignment(&'static Grammar),
    /// A regex whose matches start with known literals, tried only there.
    Prefixed(Prefixed),
    /// A regex whose replaced part follows from the matched text alone (`span`, relative to
    /// the match): found with the regex's DFAs, without a capture search. A capture search
    /// here cost more than the rest of the match (the bounded backtracker clears a visited
    /// set for every search).
    Derived { re: Regex, span: SpanFn },
    /// JSON Web Tokens (hand-written: see `jwt.rs`).
    Jwt,
    /// JSON Web Tokens in base64 (hand-written: see `encoded_jwt.rs`).
    EncodedJwt,
    /// A prefix and a run of one byte class (hand-written: see `token.rs`).
    Token(Token),
}

/// The part of a match (given as text) that an action replaces, relative to the match.
pub(crate) type SpanFn = fn(&str) -> Option<Range<usize>>;

/// A regex whose every match starts with one of `prefixes`, run anchored at each occurrence.
///
/// An unanchored search costs a prefilter scan, a forward and a reverse DFA pass; anchored at a
/// known start it is one forward pass, well under half the time (the figures are in the
/// README's Performance section, "Figures behind design choices").
pub(crate) struct Prefixed {
    /// `\A(?:pattern)`, the pattern without its leading word boundary.
    pub(crate) anchored: Regex,
    /// The pattern started with a word boundary: the byte before a match is not a word byte.
    pub(crate) boundary: bool,
    pub(crate) prefixes: Vec<Box<[u8]>>,
    pub(crate) first: ByteSet,
}

impl Prefixed {
    /// Compiles `pattern` (ASCII word boundaries already in place, leading `\b` optional).
    ///
    /// # Errors
    ///
    /// The regex compiler's error.
    pub(crate) fn new(pattern: &str, prefixes: &[&str]) -> Result<Prefixed, regex::Error> {
        let (boundary, rest) = match pattern.strip_prefix(r"(?-u:\b)") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let mut first = ByteSet::EMPTY;
        for p in prefixes {
            if let Some(&b) = p.as_bytes().first() {
                first.insert(b);
            }
        }
        Ok(Prefixed {
            anchored: Regex::new(&format!(r"\A(?:{rest})"))?,
            boundary,
            prefixes: prefixes.iter().map(|p| p.as_bytes().into()).collect(),
            first,
        })
    }

    fn find_at(&self, hay: &str, start: usize) -> Option<RawMatch> {
        let bytes = hay.as_bytes();
        (start..bytes.len()).find_map(|s| {
            let candidate = self.first.contains(bytes[s])
                && self.prefixes.iter().any(|p| bytes[s..].starts_with(p))
                && !(self.boundary && s > 0 && is_word(bytes[s - 1]));
            if !candidate {
                return None;
            }
            // `s` is at an ASCII prefix byte, so a char boundary.
            let m = self.anchored.find(hay.get(s..)?)?;
            Some(RawMatch {
                start: s,
                end: s + m.end(),
                span: s..s + m.end(),
            })
        })
    }
}

impl Matcher {
    /// The leftmost match starting at or after `start`.
    pub(crate) fn find_at(&self, hay: &str, start: usize) -> Option<RawMatch> {
        match self {
            Matcher::Regex { re, group: 0 } => re.find_at(hay, start).map(|m| RawMatch {
                start: m.start(),
                end: m.end(),
                span: m.range(),
            }),
            Matcher::Regex { re, group } => {
                let caps = re.captures_at(hay, start)?;
                let whole = caps.get(0)?;
                let span = caps.get(*group).map_or(whole.range(), |g| g.range());
                Some(RawMatch {
                    start: whole.start(),
                    end: whole.end(),
                    span,
                })
            }
            Matcher::Derived { re, span } => {
                let m = re.find_at(hay, start)?;
                let part = span(m.as_str())?;
                Some(RawMatch {
                    start: m.start(),
                    end: m.end(),
                    span: m.start() + part.start..m.start() + part.end,
                })
            }
            Matcher::Pem(pem) => pem.find_at(hay, start),
            Matcher::Number(n) => n.find_at(hay, start),
            Matcher::Assignment(grammar) => grammar.find_at(hay, start),
            Matcher::Prefixed(p) => p.find_at(hay, start),
            Matcher::Jwt => jwt::find_at(hay, start),
            Matcher::EncodedJwt => encoded_jwt::find_at(hay, start),
            Matcher::Token(t) => t.find_at(hay, start),
        }
    }
}

/// Something every match contains; the prefilter looks for these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// A case-sensitive literal.
    Literal(Box<[u8]>),
    /// The first two digits of a run of ASCII digits (two digits, no digit before them). Holds
    /// for any pattern with two consecutive digits that starts at a word boundary or before its
    /// first digit.
    DigitPair,
    /// An assignment: one of `keywords` (lower-case, matched ASCII case-insensitively) inside
    /// an identifier (`[A-Za-z0-9_.-]`) with at most `suffix` identifier bytes after the keyword,
    /// then an optional backslash, an optional quote (`"`, `'`, `` ` ``), at most 3 spaces or
    /// tabs, and one of the `operators` bytes: `password = …`, `"DB_TOKEN": …`. Every match
    /// starts inside that identifier or at most `lead` bytes before it.
    Assignment {
        keywords: Vec<Box<[u8]>>,
        operators: Box<[u8]>,
        suffix: usize,
        lead: usize,
    },
}

/// What every match starts with.
#[derive(Debug, Clone)]
pub(crate) enum StartRule {
    /// Nothing known.
    Any,
    /// One of these literals (ASCII case-insensitively when `ci`).
    Literals { lits: Vec<Box<[u8]>>, ci: bool },
    /// A byte of this set.
    Bytes(ByteSet),
    /// A prefix of an assignment (see [`Grammar::could_start`]).
    Grammar(&'static Grammar),
}

/// One kind of secret or personal data.
pub(crate) struct Detector {
    pub(crate) name: Arc<str>,
    /// Upper-case name used in pseudonyms: `<LABEL_1>`.
    pub(crate) label: Box<str>,
    pub(crate) category: Category,
    pub(crate) matcher: Matcher,
    /// Empty: the matcher runs over all text.
    pub(crate) anchors: Vec<Anchor>,
    pub(crate) start: StartRule,
    pub(crate) alphabet: ByteSet,
    /// No match is shorter.
    pub(crate) min_len: usize,
    /// No match has fewer ASCII digits.
    pub(crate) min_digits: usize,
    pub(crate) max_len: usize,
    pub(crate) check: Check,
    /// Public values this detector leaves alone (the catalogue's `allow:`).
    pub(crate) allow: Box<[Box<str>]>,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("name", &self.name)
            .field("category", &self.category)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// The leftmost accepted match that starts at or after `start`. `specific` are the detectors
    /// a generic detector defers to.
    ///
    /// A candidate the check rejects is skipped by one character, so the result depends only on
    /// the text around each start position — the property streaming relies on.
    pub(crate) fn find_at(&self, hay: &str, start: usize, specific: &Specific) -> Option<RawMatch> {
        let mut at = start;
        while at <= hay.len() {
            let mut m = self.matcher.find_at(hay, at)?;
            if m.end - m.start > self.max_len {
                m.end = floor_boundary(hay, m.start + self.max_len);
                m.span = m.span.start.min(m.end)..m.span.end.min(m.end);
            }
            if m.span.start < m.span.end {
                if let Some(ok) = self.check.apply(hay, m.clone(), specific) {
                    // A public value this detector allows is no match (a few comparisons, for
                    // the one detector that lists any).
                    if !self.allow.iter().any(|a| **a == hay[ok.span.clone()]) {
                        return Some(ok);
                    }
                }
            }
            at = next_boundary(hay, m.start);
        }
        None
    }

    /// The smallest position in `from..hay.len()` where a match could start that more text
    /// might still change — or `None` if every match starting there is already decided.
    ///
    /// A match starting at `s` is decided once `max_len + LOOKAHEAD` bytes follow `s`, or once
    /// a byte outside the alphabet follows `s` (the match must end before it).
    pub(crate) fn viable_start(&self, hay: &[u8], from: usize) -> Option<usize> {
        let end = hay.len();
        let reach = self.max_len + LOOKAHEAD;
        let lo = from.max((end + 1).saturating_sub(reach));
        let mut s = end;
        while s > lo && self.alphabet.contains(hay[s - 1]) {
            s -= 1;
        }
        if s == end {
            return None;
        }
        match &self.start {
            StartRule::Any => Some(s),
            StartRule::Bytes(set) => (s..end).find(|&i| set.contains(hay[i])),
            StartRule::Grammar(g) => (s..end).find(|&i| g.could_start(&hay[i..])),
            StartRule::Literals { lits, ci } => {
                (s..end).find(|&i| lits.iter().any(|lit| starts_partially(&hay[i..], lit, *ci)))
            }
        }
    }
}

/// Whether `tail` starts with `lit`, or is a (possibly empty-suffix) prefix of it.
fn starts_partially(tail: &[u8], lit: &[u8], ci: bool) -> bool {
    let n = tail.len().min(lit.len());
    if ci {
        tail[..n].eq_ignore_ascii_case(&lit[..n])
    } else {
        tail[..n] == lit[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(pattern: &str, start: StartRule, alphabet: &str, max_len: usize) -> Detector {
        Detector {
            name: Arc::from("t"),
            label: "T".into(),
            category: Category::Secret,
            matcher: Matcher::Regex {
                re: Regex::new(pattern).unwrap(),
                group: 0,
            },
            anchors: vec![],
            start,
            alphabet: ByteSet::parse(alphabet),
            min_len: 1,
            min_digits: 0,
            max_len,
            check: Check::None,
            allow: Box::default(),
        }
    }

    #[test]
    fn viable_start_follows_alphabet_and_reach() {
        let d = det("[a-z]+@[a-z]+", StartRule::Any, "a-z@", 10);
        assert_eq!(d.viable_start(b"hello wor", 0), Some(6));
        assert_eq!(d.viable_start(b"hello wor ", 0), None);
        assert_eq!(d.viable_start(b"hello wor", 7), Some(7));
        // 20 letters: only the last max_len + LOOKAHEAD - 1 = 13 positions can still change.
        assert_eq!(d.viable_start(b"abcdefghijklmnopqrst", 0), Some(7));
    }

    #[test]
    fn viable_start_with_start_literals() {
        let lits = vec![b"ghp_".to_vec().into_boxed_slice()];
        let d = det(
            "ghp_[a-z]{4}",
            StartRule::Literals { lits, ci: false },
            "a-z_ghp",
            8,
        );
        assert_eq!(d.viable_start(b"say ghp_ab", 0), Some(4));
        assert_eq!(d.viable_start(b"say hello", 0), None);
        assert_eq!(d.viable_start(b"say gh", 0), Some(4));
    }

    #[test]
    fn long_matches_are_cut_to_max_len() {
        let d = det("x+", StartRule::Any, "x", 5);
        let m = d.find_at("  xxxxxxxxx", 0, &Specific::default()).unwrap();
        assert_eq!((m.start, m.end), (2, 7));
    }
}
