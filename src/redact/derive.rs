//! What the prefilter and the stream redactor need to know about a detector, derived from its
//! regex by `regex-syntax` (its high-level IR), as ripgrep derives its prefilters: the bytes a
//! match can contain, its shortest and longest length, and the literals every match starts
//! with.
//!
//! Every regex detector, built-in or custom, takes all of it from here; hand-written matchers
//! declare theirs (`builtin/hand.rs`). It also proves a detector's `keywords` are in every
//! match ([`every_match_contains`]).

use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, Hir, HirKind};
use regex_syntax::ParserBuilder;

use super::byteset::ByteSet;

/// At most this many start literals: more say little and cost the prefilter.
const MAX_PREFIXES: usize = 16;

/// A class with more characters than this ends a start literal.
const MAX_CLASS: usize = 8;

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
    /// Every match starts with one of these bytes (a subset of `alphabet`).
    pub first: ByteSet,
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
    // A class of more than a few characters ends a literal rather than multiplying it
    // (`ACME_[0-9]` starts with `ACME_`, not with ten spellings); case classes still expand.
    extractor.limit_class(MAX_CLASS);
    let seq = extractor.extract(&hir);
    let prefixes = seq.literals().and_then(|lits| {
        let mut all: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
        // At most `MAX_PREFIXES`, cut shorter if need be: every match still starts with one.
        while all.len() > MAX_PREFIXES {
            let Some(keep) = all.iter().map(Vec::len).max().filter(|&k| k > 1) else {
                break;
            };
            for l in &mut all {
                l.truncate(keep - 1);
            }
            all.sort_unstable();
            all.dedup();
        }
        (!all.is_empty() && all.len() <= MAX_PREFIXES && all.iter().all(|l| !l.is_empty()))
            .then_some(all)
    });
    let mut first = ByteSet::default();
    firsts(&hir, &mut first);
    Ok(Facts {
        first,
        alphabet,
        min_len: props.minimum_len().unwrap_or(0),
        max_len: props.maximum_len(),
        prefixes,
    })
}

/// Whether every match of `pattern` contains one of `keywords` (a keyword is an anchor of the
/// prefilter: a match without one would never be looked for). Proven on the pattern's
/// structure, conservatively: a literal part of the pattern on every alternative, or a
/// sequence of parts with few enough spellings (`sk-(?:proj|admin)-`) that each contains one.
///
/// # Errors
///
/// The parser's message when the pattern is not a valid regex.
pub(crate) fn every_match_contains(pattern: &str, keywords: &[String]) -> Result<bool, String> {
    let hir = ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    Ok(contains(&hir, keywords, &mut 4096))
}

/// The finite set of strings `hirs` (concatenated) matches, if it is small.
fn spellings(hirs: &[Hir]) -> Option<Vec<Vec<u8>>> {
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix);
    let seq = extractor.extract(&Hir::concat(hirs.to_vec()));
    if !seq.is_exact() {
        return None;
    }
    let lits = seq.literals()?;
    (lits.len() <= 64).then(|| lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// Whether every match of `hir` contains a keyword; `budget` bounds the work (what is left
/// when it runs out is not proven).
fn contains(hir: &Hir, keywords: &[String], budget: &mut usize) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let has = |s: &[u8]| {
        keywords
            .iter()
            .any(|k| s.windows(k.len().max(1)).any(|w| w == k.as_bytes()))
    };
    match hir.kind() {
        HirKind::Literal(lit) => has(&lit.0),
        HirKind::Capture(cap) => contains(&cap.sub, keywords, budget),
        HirKind::Repetition(rep) => rep.min >= 1 && contains(&rep.sub, keywords, budget),
        HirKind::Alternation(subs) => subs.iter().all(|sub| contains(sub, keywords, budget)),
        HirKind::Concat(subs) => {
            if subs.iter().any(|sub| contains(sub, keywords, budget)) {
                return true;
            }
            // A keyword may straddle parts: a run of parts with few spellings, each of which
            // holds one.
            let straddles = (0..subs.len()).any(|i| {
                (i + 1..=subs.len())
                    .rev()
                    .any(|j| spellings(&subs[i..j]).is_some_and(|all| all.iter().all(|s| has(s))))
            });
            if straddles {
                return true;
            }
            // Or each alternative of an alternation inside, with the parts around it
            // (`\bsk-(?:proj-…|…T3BlbkFJ…)`, as the parser factors a common prefix out).
            let Some(i) = subs
                .iter()
                .position(|s| matches!(unwrap_capture(s).kind(), HirKind::Alternation(_)))
            else {
                return false;
            };
            let HirKind::Alternation(alts) = unwrap_capture(&subs[i]).kind() else {
                return false;
            };
            alts.iter().all(|alt| {
                let mut parts = subs[..i].to_vec();
                parts.push(alt.clone());
                parts.extend_from_slice(&subs[i + 1..]);
                contains(&Hir::concat(parts), keywords, budget)
            })
        }
        HirKind::Empty | HirKind::Look(_) | HirKind::Class(_) => false,
    }
}

/// `hir` without the capture groups around it.
fn unwrap_capture(mut hir: &Hir) -> &Hir {
    while let HirKind::Capture(cap) = hir.kind() {
        hir = &cap.sub;
    }
    hir
}

/// Adds the bytes a non-empty match of `hir` can start with to `set`; returns whether `hir`
/// can match the empty string (then what follows it can start a match too).
fn firsts(hir: &Hir, set: &mut ByteSet) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(lit) => match lit.0.first() {
            Some(&b) => {
                set.insert(b);
                false
            }
            None => true,
        },
        HirKind::Class(_) => {
            // A class's first byte: its ASCII members, every non-ASCII lead byte.
            let mut bytes = ByteSet::default();
            collect(hir, &mut bytes);
            for b in 0..=255u8 {
                if bytes.contains(b) {
                    set.insert(b);
                }
            }
            false
        }
        HirKind::Repetition(rep) => firsts(&rep.sub, set) || rep.min == 0,
        HirKind::Capture(cap) => firsts(&cap.sub, set),
        HirKind::Concat(subs) => subs.iter().all(|sub| firsts(sub, set)),
        HirKind::Alternation(subs) => {
            // Every alternative adds its first bytes (no short-circuit).
            let mut empty = false;
            for sub in subs {
                empty |= firsts(sub, set);
            }
            empty
        }
    }
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
        let f = facts(r"sk-ant-(?:api|admin)[0-9]{3}-").unwrap();
        let prefixes = f.prefixes.unwrap();
        assert!(prefixes.len() <= MAX_PREFIXES, "cut to 16 or fewer");
        assert!(prefixes.iter().all(|p| p.starts_with(b"sk-ant-a")));
        assert_eq!(
            facts(r"ACME_[0-9]{8}").unwrap().prefixes,
            Some(vec![b"ACME_".to_vec()])
        );
        let f = facts(r"shp(?:at|ca)_[a-f]{4}").unwrap();
        assert_eq!(f.prefixes.map(|p| p.len()), Some(2), "not cut to `shp`");
        let f = facts(r"(?:ghp|gho)_[a-z]{4}|github_pat_[a-z]{4}").unwrap();
        assert_eq!(f.prefixes.map(|p| p.len()), Some(3), "not cut to `gh`");
        let f = facts(r"\b[a-c]?(?:x|[0-2]*)-").unwrap();
        assert_eq!(
            f.first,
            set("a-cx0-2\\-"),
            "optional parts let what follows start"
        );
        assert!(facts("(").is_err());
    }

    #[test]
    fn keywords_are_proven_in_every_match() {
        let kw = |k: &[&str]| k.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let yes = |p: &str, k: &[&str]| assert!(every_match_contains(p, &kw(k)).unwrap(), "{p}");
        let no = |p: &str, k: &[&str]| assert!(!every_match_contains(p, &kw(k)).unwrap(), "{p}");
        yes(r"EMP-\d{6}", &["EMP-"]);
        yes(r"x[0-9]{4}Q~[a-z]+", &["Q~"]);
        yes(
            r"\bsk-(?:proj|admin)-\w{20}|\bsk-\w{20}T3BlbkFJ\w{20}",
            &["sk-proj-", "sk-admin-", "T3BlbkFJ"],
        );
        yes(r"(?:a|b)(?:KEY|TOKEN)=\w+", &["KEY", "TOKEN"]);
        yes(r"(?:acme_){1,3}\d+", &["acme_"]);
        yes(r"x(?:a(?:b|c)|d)y\w+", &["xaby", "xacy", "xdy"]);
        // A keyword on one alternative only, an optional one, one only some cases spell.
        no(r"EMP-\d{6}|\d{8}", &["EMP-"]);
        no(r"(?:EMP-)?\d{6}", &["EMP-"]);
        no(r"(?i)emp-\d{6}", &["emp-"]);
        no(r"[A-Z]{4}\d{6}", &["EMP"]);
    }
}
