//! The scanner: finds the values of one direction's detectors in a text and replaces them.
//!
//! # Which matches win
//!
//! Scanning is greedy, left to right: at position `pos` the scanner takes, over all detectors,
//! the accepted match with the smallest start (ties go to the detector listed first), replaces
//! it, and continues at its end. A detector's candidate at a position depends only on the text
//! around that position (its pattern, its check, one character of look-behind and look-ahead),
//! never on where a search started.
//!
//! # Why streaming gives the same result
//!
//! A stream hands the scanner a prefix `T` of the final text `F`. A match starting at `s` is
//! *decided* once `T` reaches `s + max_len + LOOKAHEAD`, or once `T` holds a byte after `s`
//! outside the detector's alphabet (the match must end before it), or once `T[s..]` cannot be
//! the start of a match (it is not a prefix of a start literal, does not start with a start
//! byte, or breaks an assignment's grammar). The *frontier* is the smallest position where some
//! detector is not decided yet ([`Detector::viable_start`]). Every match starting before the
//! frontier is the same in `T` and in `F`, and so is the absence of matches there; so the
//! greedy choices before the frontier are the final ones. [`Scanner::redact_step`] commits them
//! and everything up to `max(frontier, end of the last committed match)`, and the next step
//! resumes there with a few bytes of look-behind context. Text beyond the commit point is held
//! back: at most the longest `max_len` plus [`LOOKAHEAD`], and in practice only the trailing
//! partial word.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use super::action::{self, HashKey};
use super::builtin::Specific;
use super::byteset::floor_boundary;
use super::detector::{Detector, RawMatch, LOOKAHEAD};
use super::error::RedactError;
use super::policy::{Action, Direction};
use super::prefilter::{Prefilter, ScanWindow};
use super::request_redaction::RequestRedaction;

/// Longest member key given to the detectors as context for its value.
const MAX_KEY_CONTEXT: usize = 128;

/// What a scanner does with a detector's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Treatment {
    /// Apply the action (never `Off`: such detectors are not in the scanner).
    Apply(Action),
    /// Turn a `<LABEL_n>` placeholder back into the value it replaced in the request.
    Restore,
}

/// A detector with its treatment in one direction.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub det: Arc<Detector>,
    pub treatment: Treatment,
    /// `[REDACTED:<name>]`, built once.
    pub redacted: Box<str>,
}

impl Entry {
    pub(crate) fn new(det: Arc<Detector>, treatment: Treatment) -> Entry {
        let redacted = action::redacted(&det.name).into_boxed_str();
        Entry {
            det,
            treatment,
            redacted,
        }
    }
}

/// Where a scan records what it found, besides the text it rewrites: the request's counts and
/// pseudonym table, and whether this scan counts.
pub(crate) struct Recorder<'a> {
    pub cx: &'a mut RequestRedaction,
    /// Record counts (off when re-scanning text already counted, e.g. a stream's `.done` event).
    pub count: bool,
}

/// The compiled detectors of one direction.
pub(crate) struct Scanner {
    direction: Direction,
    entries: Vec<Entry>,
    prefilter: Prefilter,
    /// Detectors a generic match defers to.
    specific: &'static Specific,
    allow: Arc<HashSet<String>>,
    hash_key: Option<HashKey>,
    max_hold: usize,
    /// The shortest match any detector can make: a shorter text holds none.
    min_len: usize,
    /// Tests only: run every detector over all text instead of the prefilter's windows (the
    /// reference the prefilter must agree with).
    exhaustive: bool,
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|e| &*e.det.name).collect();
        f.debug_struct("Scanner")
            .field("direction", &self.direction)
            .field("detectors", &names)
            .field("max_hold", &self.max_hold)
            .finish_non_exhaustive()
    }
}

impl Scanner {
    pub(crate) fn new(
        direction: Direction,
        entries: Vec<Entry>,
        specific: &'static Specific,
        allow: Arc<HashSet<String>>,
        hash_key: Option<HashKey>,
    ) -> Scanner {
        let prefilter = Prefilter::new(entries.iter().map(|e| &*e.det));
        let min_len = entries.iter().map(|e| e.det.min_len).min().unwrap_or(0);
        let max_hold = entries
            .iter()
            .map(|e| e.det.max_len + LOOKAHEAD)
            .max()
            .unwrap_or(0);
        Scanner {
            direction,
            entries,
            prefilter,
            specific,
            allow,
            hash_key,
            max_hold,
            min_len,
            exhaustive: false,
        }
    }

    /// The same scanner without the prefilter: every detector searches all text.
    #[cfg(test)]
    pub(crate) fn exhaustive(mut self) -> Scanner {
        self.exhaustive = true;
        self
    }

    /// Whether any detector runs.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most text a stream can hold back, in bytes.
    pub(crate) fn max_hold(&self) -> usize {
        self.max_hold
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// `text` with every value replaced; borrowed when nothing was.
    ///
    /// # Errors
    ///
    /// [`RedactError::Blocked`] when a blocking detector matches.
    pub(crate) fn would_change(&self, text: &str) -> Result<bool, RedactError> {
        let mut cx = RequestRedaction::new();
        let mut rec = Recorder {
            cx: &mut cx,
            count: false,
        };
        match self.redact_text(text, &mut rec) {
            Ok(out) => Ok(matches!(out, Cow::Owned(_))),
            Err(RedactError::Blocked { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Redacts one plain text.
    pub(crate) fn redact_text<'t>(
        &self,
        text: &'t str,
        rec: &mut Recorder<'_>,
    ) -> Result<Cow<'t, str>, RedactError> {
        if self.entries.is_empty() || text.len() < self.min_len {
            return Ok(Cow::Borrowed(text));
        }
        let mut out: Option<String> = None;
        let mut copied = 0;
        self.scan(text, 0, true, |entry, m| {
            if let Some(rep) = self.replacement(entry, text, m, rec)? {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 32));
                o.push_str(&text[copied..m.span.start]);
                o.push_str(&rep);
                copied = m.span.end;
            }
            Ok(())
        })?;
        Ok(match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.push_str(&text[copied..]);
                Cow::Owned(o)
            }
        })
    }

    /// A JSON member's string value: like [`redact_text`](Self::redact_text), but the
    /// detectors also see the member's `key` before the value (`"db_password": "…"` is an
    /// assignment even when the value alone is not recognizable), and read percent-encoded
    /// text decoded (`token%3Dghp_…`). Only the value is ever replaced.
    ///
    /// # Errors
    ///
    /// [`RedactError::Blocked`] when a blocking detector matches.
    pub(crate) fn redact_member<'t>(
        &self,
        key: Option<&str>,
        value: &'t str,
        rec: &mut Recorder<'_>,
    ) -> Result<Cow<'t, str>, RedactError> {
        if self.entries.is_empty() {
            return Ok(Cow::Borrowed(value));
        }
        let decoded = super::view::percent_decoded(value);
        // The key as the detectors would see it in JSON text, when one of them opens there
        // (checked in a stack buffer: most keys open nothing, and then cost no allocation).
        let head = key
            .filter(|k| k.len() <= MAX_KEY_CONTEXT)
            .filter(|k| {
                let mut buf = [0u8; MAX_KEY_CONTEXT + 5];
                let n = k.len() + 5;
                buf[0] = b'"';
                buf[1..=k.len()].copy_from_slice(k.as_bytes());
                buf[k.len() + 1..n].copy_from_slice(b"\": \"");
                std::str::from_utf8(&buf[..n]).is_ok_and(|h| self.opens_in(h))
            })
            .map(|k| format!("\"{k}\": \""));
        if decoded.is_none() && head.is_none() {
            return self.redact_text(value, rec);
        }
        let (text, map) = match &decoded {
            Some((view, map)) => (view.as_str(), Some(map)),
            None => (value, None),
        };
        let (hay, plen) = match head {
            Some(head) => {
                let plen = head.len();
                (Cow::Owned(head + text), plen)
            }
            None => (Cow::Borrowed(text), 0),
        };
        let back = |i: usize| map.map_or(i, |m| m[i] as usize);
        let mut out: Option<String> = None;
        let mut copied = 0;
        self.scan(&hay, 0, true, |entry, m| {
            // A match inside the key alone is the key's business (keys are scanned too).
            if m.span.end <= plen {
                return Ok(());
            }
            // The member is the assignment (`"access_token": "eyJ…"`): its value is whole here,
            // so a value cut at the grammar's longest is redacted to its end, not only its start.
            let m = &if m.start < plen {
                whole_value(entry, &hay, m)
            } else {
                m.clone()
            };
            let (a, b) = (back(m.span.start.max(plen) - plen), back(m.span.end - plen));
            if a < copied {
                return Ok(());
            }
            if let Some(rep) = self.replacement(entry, &hay, m, rec)? {
                let o = out.get_or_insert_with(|| String::with_capacity(value.len() + 32));
                o.push_str(&value[copied..a]);
                o.push_str(&rep);
                copied = b;
            }
            Ok(())
        })?;
        Ok(match out {
            None => Cow::Borrowed(value),
            Some(mut o) => {
                o.push_str(&value[copied..]);
                Cow::Owned(o)
            }
        })
    }

    /// Whether any detector could start a match inside `text` (the prefilter opens a window).
    fn opens_in(&self, text: &str) -> bool {
        let mut windows = Vec::new();
        self.prefilter.windows(text, 0, &mut windows);
        !windows.is_empty()
    }

    /// One streaming step: `hay[..from]` was already emitted (it is look-behind context),
    /// `hay[from..]` is pending. Appends the redacted form of `hay[from..commit]` to `out` and
    /// returns `commit`; with `at_end` the stream is over and everything is committed.
    ///
    /// # Errors
    ///
    /// [`RedactError::Blocked`] when a blocking detector matches.
    pub(crate) fn redact_step(
        &self,
        hay: &str,
        from: usize,
        at_end: bool,
        out: &mut String,
        rec: &mut Recorder<'_>,
    ) -> Result<usize, RedactError> {
        let mut copied = from;
        let commit = self.scan(hay, from, at_end, |entry, m| {
            if let Some(rep) = self.replacement(entry, hay, m, rec)? {
                out.push_str(&hay[copied..m.span.start]);
                out.push_str(&rep);
                copied = m.span.end;
            }
            Ok(())
        })?;
        out.push_str(&hay[copied..commit]);
        Ok(commit)
    }

    /// The greedy scan of `hay[from..]`; calls `on_match` for every decided match and returns
    /// the commit point.
    fn scan(
        &self,
        hay: &str,
        from: usize,
        at_end: bool,
        mut on_match: impl FnMut(&Entry, &RawMatch) -> Result<(), RedactError>,
    ) -> Result<usize, RedactError> {
        let frontier = if at_end {
            hay.len()
        } else {
            self.frontier(hay, from)
        };
        let mut windows = Vec::new();
        if self.exhaustive {
            windows.extend((0..self.entries.len()).map(|det| ScanWindow {
                det,
                start: from,
                end: hay.len(),
            }));
        } else {
            self.prefilter.windows(hay, from, &mut windows);
        }
        let mut cursors = cursors(&windows);
        let mut pos = from;
        loop {
            let mut best: Option<(usize, usize)> = None; // (cursor, start)
            for (ci, c) in cursors.iter_mut().enumerate() {
                if c.done {
                    continue;
                }
                if c.cached.as_ref().is_none_or(|m| m.start < pos) {
                    c.cached = self.next_in(c, &windows, hay, pos);
                    if c.cached.is_none() {
                        c.done = true;
                        continue;
                    }
                }
                let start = c.cached.as_ref().map_or(usize::MAX, |m| m.start);
                // Cursors are ordered by detector, so on a tie the earlier detector stays best.
                if best.is_none_or(|(_, s)| start < s) {
                    best = Some((ci, start));
                }
            }
            let Some((ci, start)) = best else { break };
            if start >= frontier {
                break;
            }
            let Some(m) = cursors[ci].cached.take() else {
                break;
            };
            on_match(&self.entries[cursors[ci].det], &m)?;
            pos = m.end;
        }
        Ok(pos.max(frontier))
    }

    /// The next accepted match of cursor `c`'s detector starting at or after `pos`.
    fn next_in(
        &self,
        c: &mut Cursor,
        windows: &[ScanWindow],
        hay: &str,
        pos: usize,
    ) -> Option<RawMatch> {
        let det = &self.entries[c.det].det;
        while c.next < c.end {
            let w = windows[c.next];
            let mut start = w.start.max(pos);
            // A match inside the window is at least `min_len` long: after a match, the rest of
            // its window (the look-ahead, usually) is too short to search again.
            while w.end >= start + det.min_len.max(1) {
                let Some(m) = det.find_at(&hay[..w.end], start, self.specific) else {
                    break;
                };
                // A window is sized from its anchor, and a candidate may start after it: the
                // text that decides the candidate (its alphabet run, at most `max_len`, and the
                // look-ahead) can reach past the window's end, where the truncated haystack
                // would read an end of text (a word boundary) that is not there. Such a
                // candidate is decided again on all the text that decides it.
                if decided_within(det, hay, &m, w.end) {
                    return Some(m);
                }
                let needs = decided_by(det, hay, m.start);
                if needs <= w.end {
                    return Some(m);
                }
                match det.find_at(&hay[..needs], m.start, self.specific) {
                    Some(full) if full.start == m.start => return Some(full),
                    _ => start = super::byteset::next_boundary(hay, m.start),
                }
            }
            c.next += 1;
        }
        None
    }

    /// The smallest position in `hay[from..]` where a match may still change with more text.
    fn frontier(&self, hay: &str, from: usize) -> usize {
        let bytes = hay.as_bytes();
        let f = self
            .entries
            .iter()
            .filter_map(|e| e.det.viable_start(bytes, from))
            .min()
            .unwrap_or(hay.len());
        floor_boundary(hay, f)
    }

    /// The text that replaces `m`, or `None` to leave it.
    fn replacement<'s>(
        &self,
        entry: &'s Entry,
        hay: &str,
        m: &RawMatch,
        rec: &mut Recorder<'_>,
    ) -> Result<Option<Cow<'s, str>>, RedactError> {
        let value = &hay[m.span.clone()];
        if !self.allow.is_empty()
            && (self.allow.contains(value) || self.allow.contains(&hay[m.start..m.end]))
        {
            return Ok(None);
        }
        let det = &entry.det;
        let action = match entry.treatment {
            Treatment::Restore => {
                let Some((original, source)) = rec.cx.original(value) else {
                    return Ok(None);
                };
                let (original, source) = (original.to_owned(), Arc::clone(source));
                if rec.count {
                    rec.cx
                        .record(&source, Direction::Response, Action::Pseudonymize);
                }
                return Ok(Some(Cow::Owned(original)));
            }
            Treatment::Apply(action) => action,
        };
        if rec.count {
            rec.cx.record(&det.name, self.direction, action);
        }
        Ok(Some(match action {
            Action::Off => return Ok(None),
            Action::Redact => Cow::Borrowed(&*entry.redacted),
            Action::Mask => Cow::Owned(action::masked(value)),
            Action::Hash => match &self.hash_key {
                Some(key) => Cow::Owned(action::hashed(key, &det.name, value)),
                None => return Err(RedactError::Internal("hash action without a key")),
            },
            Action::Pseudonymize => {
                Cow::Owned(rec.cx.pseudonym(&det.name, &det.label, value).to_owned())
            }
            Action::Block => {
                return Err(RedactError::Blocked {
                    detector: det.name.to_string(),
                    direction: self.direction,
                })
            }
        }))
    }
}

/// Whether the window `..end` holds all the text that decides `m` — the quick answer for
/// nearly every match: the text ends there, the detector's reach ends before it, or a byte
/// outside the alphabet follows the match early enough (a match is made of alphabet bytes, so
/// its run ends there).
fn decided_within(det: &Detector, hay: &str, m: &RawMatch, end: usize) -> bool {
    // Decided within `..end` when the run ends (or the reach stops) at or before `limit`.
    let limit = end.saturating_sub(LOOKAHEAD);
    let bytes = hay.as_bytes();
    end >= bytes.len()
        || m.start + det.max_len <= limit
        || bytes[m.end.min(limit)..=limit.min(bytes.len() - 1)]
            .iter()
            .any(|&b| !det.alphabet.contains(b))
}

/// The end of the text that decides a candidate of `det` starting at `s`: its alphabet run
/// (at most `max_len` long) and the look-ahead after it.
fn decided_by(det: &Detector, hay: &str, s: usize) -> usize {
    let bytes = hay.as_bytes();
    let limit = bytes.len().min(s.saturating_add(det.max_len));
    let run = bytes[s..limit]
        .iter()
        .position(|&b| !det.alphabet.contains(b))
        .map_or(limit, |i| s + i);
    super::byteset::ceil_boundary(hay, run + LOOKAHEAD)
}

/// One detector's progress through its windows.
struct Cursor {
    det: usize,
    next: usize,
    end: usize,
    cached: Option<RawMatch>,
    done: bool,
}

/// Cursors over windows sorted by `(det, start)`: one per detector that has windows.
fn cursors(windows: &[ScanWindow]) -> Vec<Cursor> {
    let mut out: Vec<Cursor> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        match out.last_mut() {
            Some(c) if c.det == w.det => c.end = i + 1,
            _ => out.push(Cursor {
                det: w.det,
                next: i,
                end: i + 1,
                cached: None,
                done: false,
            }),
        }
    }
    out
}

/// `m`, or — when it is an assignment whose value took its grammar's longest value
/// (`value_max` bytes, where values have a range of lengths) and `hay` goes on with value
/// bytes — `m` extended over those bytes. Only for a member whose key is the assignment's
/// keyword: text elsewhere, streamed or not, keeps the bounded match (a stream's hold-back is
/// bounded by it, and a text is redacted alike whole or streamed).
fn whole_value(entry: &Entry, hay: &str, m: &RawMatch) -> RawMatch {
    let super::detector::StartRule::Grammar(g) = &entry.det.start else {
        return m.clone();
    };
    let is_value = |b: &u8| g.value[usize::from(*b)];
    if g.value_min == g.value_max || m.span.len() < g.value_max {
        return m.clone();
    }
    let more = hay.as_bytes()[m.span.end..]
        .iter()
        .take_while(|b| is_value(b))
        .count();
    RawMatch {
        start: m.start,
        end: m.end + more,
        span: m.span.start..m.span.end + more,
    }
}
