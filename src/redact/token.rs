//! Token formats of one common shape, matched by hand instead of by a regex.
//!
//! Most vendor tokens are a literal prefix and then a run of one byte class: `ghp_` and 36
//! alphanumerics, `AKIA` and 16 of `A-Z2-7`, sometimes with a different class for the last
//! byte (Slack tokens end with an alphanumeric) or a word boundary after it. For that shape the
//! regex crate's anchored search costs a few hundred instructions of set-up per candidate,
//! more than the match itself; the matcher here walks the run once.
//!
//! Each detector built this way keeps its regex in the catalog as the reference: a property
//! test holds the two to the same matches on random text built from the format's pieces.

use super::byteset::{is_word, ByteSet};
use super::detector::RawMatch;

/// One alternative of a token format: `(?:prefix|…)[body]{min,max}`, where with `last` the
/// final byte of the body is of that class instead (`[body]{min-1,max-1}[last]`), and with
/// `word_end` a word boundary follows. Classes are [`ByteSet::parse`] specs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Form {
    pub prefixes: &'static [&'static str],
    pub body: &'static str,
    /// Bounds on the body's length, the `last` byte included.
    pub min: usize,
    pub max: usize,
    /// `""`: no separate last class.
    pub last: &'static str,
    pub word_end: bool,
}

impl Form {
    /// `prefixes`, then `min..=max` bytes of `body`.
    pub(crate) const fn new(
        prefixes: &'static [&'static str],
        body: &'static str,
        min: usize,
        max: usize,
    ) -> Form {
        Form {
            prefixes,
            body,
            min,
            max,
            last: "",
            word_end: false,
        }
    }

    /// The body's last byte is of this class.
    pub(crate) const fn last(self, last: &'static str) -> Form {
        Form { last, ..self }
    }

    /// A word boundary follows the body.
    pub(crate) const fn word_end(self) -> Form {
        Form {
            word_end: true,
            ..self
        }
    }
}

struct Compiled {
    prefixes: Vec<Box<[u8]>>,
    body: ByteSet,
    last: Option<ByteSet>,
    min: usize,
    max: usize,
    word_end: bool,
}

/// A matcher for a list of [`Form`]s, tried in order like the alternatives of a regex, with an
/// optional word boundary before all of them.
pub(crate) struct Token {
    word_start: bool,
    forms: Vec<Compiled>,
    /// The first bytes of all prefixes.
    first: ByteSet,
}

impl Token {
    pub(crate) fn new(word_start: bool, forms: &[Form]) -> Token {
        let mut first = ByteSet::EMPTY;
        let forms = forms
            .iter()
            .map(|f| {
                for p in f.prefixes {
                    if let Some(&b) = p.as_bytes().first() {
                        first.insert(b);
                    }
                }
                Compiled {
                    prefixes: f.prefixes.iter().map(|p| p.as_bytes().into()).collect(),
                    body: ByteSet::parse(f.body),
                    last: (!f.last.is_empty()).then(|| ByteSet::parse(f.last)),
                    min: f.min.max(1),
                    max: f.max,
                    word_end: f.word_end,
                }
            })
            .collect();
        Token {
            word_start,
            forms,
            first,
        }
    }

    /// The leftmost match starting at or after `start`: at the first position where a form
    /// matches, the first form in order, with its longest body (regex leftmost-first semantics
    /// with greedy repetition).
    pub(crate) fn find_at(&self, hay: &str, start: usize) -> Option<RawMatch> {
        let bytes = hay.as_bytes();
        (start..bytes.len()).find_map(|s| {
            if !self.first.contains(bytes[s]) || (self.word_start && !boundary(bytes, s)) {
                return None;
            }
            let end = self.forms.iter().find_map(|f| {
                let p = f.prefixes.iter().find(|p| bytes[s..].starts_with(p))?;
                f.body_end(bytes, s + p.len())
            })?;
            Some(RawMatch {
                start: s,
                end,
                span: s..end,
            })
        })
    }
}

impl Compiled {
    /// The end of the longest acceptable body starting at `from`.
    fn body_end(&self, bytes: &[u8], from: usize) -> Option<usize> {
        let limit = bytes.len().min(from + self.max);
        let run = bytes[from..limit]
            .iter()
            .take_while(|&&b| self.body.contains(b))
            .count();
        // With a last class, the last byte may lie just past the run of body bytes.
        let longest = match self.last {
            Some(_) if from + run < limit => run + 1,
            _ => run,
        };
        (self.min..=longest)
            .rev()
            .map(|len| from + len)
            .find(|&end| {
                self.last.is_none_or(|l| l.contains(bytes[end - 1]))
                    && (!self.word_end || boundary(bytes, end))
            })
    }
}

/// An ASCII word boundary at `at`: the bytes on either side differ in being word bytes (the
/// ends of the text count as non-word).
fn boundary(bytes: &[u8], at: usize) -> bool {
    let before = at > 0 && is_word(bytes[at - 1]);
    let after = bytes.get(at).is_some_and(|&b| is_word(b));
    before != after
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Regex;

    use super::*;
    use crate::redact::builtin::Kind;

    const SLACK: &[Form] = &[Form::new(&["xoxb-"], r"A-Za-z0-9\-", 10, 250).last("A-Za-z0-9")];

    fn found<'h>(forms: &[Form], hay: &'h str) -> Option<&'h str> {
        let m = Token::new(true, forms).find_at(hay, 0)?;
        Some(&hay[m.start..m.end])
    }

    #[test]
    fn the_body_is_the_longest_that_ends_well() {
        assert_eq!(
            found(SLACK, "xoxb-123456789a--- x"),
            Some("xoxb-123456789a")
        );
        assert_eq!(found(SLACK, "xoxb-12345678-"), None);
        let npm = &[Form::new(&["npm_"], "A-Za-z0-9", 4, 4).word_end()];
        assert_eq!(found(npm, "npm_abcd"), Some("npm_abcd"));
        assert_eq!(found(npm, "npm_abcde"), None);
        assert_eq!(found(npm, "xnpm_abcd npm_wxyz."), Some("npm_wxyz"));
    }

    /// Text from the pieces of one token format: its prefixes, bytes of its classes, word and
    /// non-word bytes, each piece repeated.
    fn token_text(forms: &'static [Form]) -> impl Strategy<Value = String> {
        let mut pieces: Vec<String> = Vec::new();
        for f in forms {
            pieces.extend(f.prefixes.iter().map(|p| p.to_string()));
            for class in [f.body, f.last] {
                let set = ByteSet::parse(class);
                pieces.extend(
                    (0..128u8)
                        .filter(|&b| set.contains(b))
                        .map(|b| char::from(b).to_string()),
                );
            }
        }
        pieces.extend([" ", "_", "-", ".", "x", "Z", "9", "é", "\n"].map(String::from));
        let piece = (prop::sample::select(pieces), 1usize..24).prop_map(|(p, n)| p.repeat(n));
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    fn token_specs() -> Vec<(&'static str, &'static str, &'static [Form])> {
        crate::redact::builtin::all_declarations()
            .filter_map(|decl| match (&decl.kind, decl.token) {
                (Kind::Regex { pattern, .. }, Some(forms)) => {
                    Some((decl.name.as_str(), pattern.as_str(), forms))
                }
                _ => None,
            })
            .collect()
    }

    proptest! {
        #![proptest_config(crate::redact::proptests::config(256))]

        /// Every hand-matched format finds exactly what its reference regex finds, from every
        /// start position.
        #[test]
        fn token_matchers_equal_their_regexes(
            (i, text) in (0..token_specs().len()).prop_flat_map(|i| (Just(i), token_text(token_specs()[i].2)))
        ) {
            let (name, pattern, forms) = token_specs()[i];
            let pattern = pattern.replace(r"\b", r"(?-u:\b)");
            let re = Regex::new(&pattern).unwrap();
            let token = Token::new(pattern.starts_with(r"(?-u:\b)"), forms);
            for start in (0..=text.len()).filter(|&s| text.is_char_boundary(s)) {
                let want = re.find_at(&text, start).map(|m| m.range());
                let got = token.find_at(&text, start).map(|m| m.start..m.end);
                prop_assert_eq!(got, want, "{} on {:?} from {}", name, text, start);
            }
        }
    }

    #[test]
    fn every_token_format_is_tested() {
        assert_eq!(token_specs().len(), 11);
    }

    /// The prefilter anchors on a declaration's start literals: they must be exactly the prefixes its
    /// forms match.
    #[test]
    fn token_prefixes_are_the_start_literals() {
        for decl in crate::redact::builtin::all_declarations() {
            let Some(forms) = decl.token else { continue };
            let mut prefixes: Vec<&str> = forms
                .iter()
                .flat_map(|f| f.prefixes.iter().copied())
                .collect();
            let mut start: Vec<&str> = decl.start.iter().map(String::as_str).collect();
            prefixes.sort_unstable();
            start.sort_unstable();
            assert_eq!(prefixes, start, "{}", decl.name);
        }
    }

    #[test]
    fn forms_are_tried_in_order() {
        let forms = &[
            Form::new(&["gh_"], "a-z", 3, 3).word_end(),
            Form::new(&["gh_"], "a-z_", 3, 8).word_end(),
        ];
        assert_eq!(found(forms, "gh_abc_de"), Some("gh_abc_de"));
        assert_eq!(found(forms, "gh_abc de"), Some("gh_abc"));
    }
}
