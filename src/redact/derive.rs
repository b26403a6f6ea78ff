//! What the prefilter and the stream redactor need to know about a detector, derived from its
//! regex by `regex-syntax` (its high-level IR), as ripgrep derives its prefilters: the bytes a
//! match can contain, its shortest and longest length, and the literals every match starts
//! with.
//!
//! Custom detectors take all of it from here. The built-in ones still declare theirs beside
//! their patterns (some on purpose: a wider alphabet for a word-boundary check); a test holds
//! every declaration to the derived facts, so that none can skip or cut a match the regex
//! finds.

use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, Hir, HirKind};
use regex_syntax::ParserBuilder;

use super::byteset::ByteSet;

/// Facts about every match of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    /// Every byte of every match is in it (non-ASCII characters as all bytes 0x80–0xFF).
    pub alphabet: ByteSet,
    /// No match is shorter (bytes).
    pub min_len: usize,
    /// No match is longer (bytes); `None` when unbounded.
    pub max_len: Option<usize>,
    /// Every match starts with one of these (non-empty) literals; `None` when no finite set
    /// says so.
    pub prefixes: Option<Vec<Vec<u8>>>,
}

/// The facts of `pattern`, parsed as the `regex` crate parses it.
///
/// # Errors
///
/// The parser's message when the pattern is not a valid regex.
pub(crate) fn facts(pattern: &str) -> Result<Facts, String> {
    let hir = ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    let mut alphabet = ByteSet::default();
    collect(&hir, &mut alphabet);
    let props = hir.properties();
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix);
    let seq = extractor.extract(&hir);
    let prefixes = seq.literals().and_then(|lits| {
        let all: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
        (!all.is_empty() && all.iter().all(|l| !l.is_empty())).then_some(all)
    });
    Ok(Facts {
        alphabet,
        min_len: props.minimum_len().unwrap_or(0),
        max_len: props.maximum_len(),
        prefixes,
    })
}

/// Adds the bytes `hir` can match to `set`.
fn collect(hir: &Hir, set: &mut ByteSet) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => {
            for &b in lit.0.iter() {
                set.insert(b);
            }
        }
        HirKind::Class(Class::Unicode(class)) => {
            for range in class.ranges() {
                let (start, end) = (u32::from(range.start()), u32::from(range.end()));
                for c in start..=end.min(0x7F) {
                    set.insert(c as u8);
                }
                if end >= 0x80 {
                    *set = set.with_non_ascii();
                }
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            for range in class.ranges() {
                for b in range.start()..=range.end() {
                    set.insert(b);
                }
            }
        }
        HirKind::Repetition(rep) => collect(&rep.sub, set),
        HirKind::Capture(cap) => collect(&cap.sub, set),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            for sub in subs {
                collect(sub, set);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::builtin::{all_declarations, Kind};

    fn set(spec: &str) -> ByteSet {
        ByteSet::parse(spec)
    }

    #[test]
    fn facts_of_simple_patterns() {
        // `\d` is Unicode, as in the `regex` crate: a digit can take up to 4 bytes.
        let f = facts(r"EMP-\d{6}").unwrap();
        assert_eq!((f.min_len, f.max_len), (10, Some(28)));
        assert_eq!(f.prefixes, Some(vec![b"EMP-".to_vec()]));
        assert_eq!(f.alphabet, set("EMP\\-0-9").with_non_ascii());
        let f = facts(r"(?-u)EMP-\d{6}").unwrap();
        assert_eq!((f.max_len, f.alphabet), (Some(10), set("EMP\\-0-9")));
        let f = facts(r"(?:ghp|gho)_[A-Za-z0-9]{36,251}").unwrap();
        assert_eq!((f.min_len, f.max_len), (40, Some(255)));
        let mut prefixes = f.prefixes.unwrap();
        prefixes.sort();
        assert_eq!(prefixes, [b"gho_".to_vec(), b"ghp_".to_vec()]);
        let f = facts(r"tok_\w+").unwrap();
        assert_eq!(f.max_len, None, "unbounded");
        assert!(f.alphabet.contains(0xC3), "\\w is Unicode: non-ASCII bytes");
        let f = facts(r"(?i)emp-\d").unwrap();
        assert_eq!(f.prefixes.map(|p| p.len()), Some(8), "every case of emp-");
        assert_eq!(facts(r"\d+|x").unwrap().prefixes, None);
        assert!(facts("(").is_err());
    }

    /// Every hand-declared alphabet, minimum and maximum of a built-in regex detector is safe
    /// against the facts derived from its regex: the alphabet holds every byte a match can
    /// have, no match is shorter than the declared minimum, and none longer than the declared
    /// maximum (which bounds what a stream holds back and what is replaced).
    #[test]
    fn built_in_declarations_are_safe_against_their_regexes() {
        let mut checked = 0;
        let mut problems = Vec::new();
        for decl in all_declarations() {
            let Kind::Regex { pattern, .. } = decl.kind else {
                continue;
            };
            let f = facts(pattern).unwrap_or_else(|e| panic!("{}: {e}", decl.name));
            let mut declared = ByteSet::parse(decl.alphabet);
            if decl.non_ascii {
                declared = declared.with_non_ascii();
            }
            let missing: Vec<char> = (0..=255u8)
                .filter(|&b| f.alphabet.contains(b) && !declared.contains(b))
                .map(char::from)
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "{}: its regex can match {missing:?}, which its alphabet lacks",
                    decl.name
                ));
            }
            if decl.min_len > f.min_len {
                problems.push(format!(
                    "{}: declared min_len {} > the regex's {}",
                    decl.name, decl.min_len, f.min_len
                ));
            }
            if decl.max_len < f.max_len.unwrap_or(usize::MAX) {
                problems.push(format!(
                    "{}: declared max_len {} < the regex's {:?}",
                    decl.name, decl.max_len, f.max_len
                ));
            }
            checked += 1;
        }
        assert_eq!(problems, Vec::<String>::new());
        assert!(checked >= 20, "{checked}");
    }
}
