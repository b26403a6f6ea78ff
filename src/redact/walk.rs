//! The JSON walker: every string of a document goes through the detectors, whatever its key,
//! its depth or the endpoint, unless the opaque table below says it is a binary payload or the
//! model name. Deny by default: a field, part type or item type nobody has heard of is scanned,
//! never skipped.
//!
//! What is visited, in a document that `serde_json` has first accepted as valid:
//!
//! - **every string value**, scanned with its member's key as context (so `"db_password":
//!   "…"` is recognized as an assignment even when the value alone says nothing), with
//!   percent-encoded text decoded first (`token%3Dghp_…`);
//! - **JSON inside a string** (tool arguments, tool results): a string value that is itself a
//!   JSON object or array is walked as a document of its own, escapes decoded (`\/` included),
//!   up to [`MAX_NESTING`] levels deep; deeper ones are scanned as text;
//! - **every object key** (a value can be smuggled as a key);
//! - **numbers of 13 digits or more** (a card number sent as a JSON number, in a tool's
//!   arguments say), which become a redacted string when a detector matches them. Shorter
//!   numbers are timestamps, counts and phone-shaped seeds far more often than personal data,
//!   and turning them into strings would break the request; a `seed` is never scanned.

//!
//! Only the strings that change are rewritten: every other byte of the document is kept as it
//! was (`Edits`). When any text changed, `logprobs` values are cleared as well: they repeat the
//! text token by token.
//!
//! # The opaque table
//!
//! The only strings not scanned, reviewed here and in the API family modules of
//! [`crate::wire`] (each family's `OPAQUE_KEYS`) and nowhere else:
//!
//! | where                                                   | what it must look like          |
//! |---------------------------------------------------------|---------------------------------|
//! | the top-level `model`                                   | anything (it is routed, and checked against the key's allow-list) |
//! | any string                                              | a `data:…;base64,` URL whose payload is base64 |
//! | a member named in the family's opaque keys ([`Family::opaque_keys`]: `data`, `b64_json`, `file_data`, `encrypted_content`, …) | 64 or more base64 characters and nothing else |
//!
//! A value at an opaque place that does not have the opaque shape is scanned like any other.
//!
//! # Streams
//!
//! Stream events are walked in [`Mode::Stream`]: each string is scanned as plain text (no key
//! context, no percent decoding, no JSON-in-a-string), which is exactly what the stream's text
//! channels do with deltas, so a `.done` or `completed` event carries the same redacted text as
//! the deltas that built it.

use std::borrow::Cow;
use std::ops::Range;

use super::error::RedactError;
use super::json::{parse, Edits};
use super::scanner::{Recorder, Scanner};
use crate::wire::Family;

/// How many levels of JSON-inside-a-string are walked as JSON; deeper ones are scanned as text.
pub(crate) const MAX_NESTING: u8 = 4;

/// Fewest digits of a JSON number that is scanned (the shortest card number).
const MIN_NUMBER_DIGITS: usize = 13;

/// Shortest string taken for a base64 payload at an opaque member.
const MIN_BASE64: usize = 64;

/// How strings are scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A whole request or answer: key context, percent decoding, JSON inside strings.
    Body,
    /// A stream event: each string as plain text, as the stream's channels scan deltas.
    Stream,
}

/// What to do with `logprobs` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logprobs {
    /// Clear them when any text of the document changed.
    WhenChanged,
    /// Always clear them (stream events: their text may have changed in an earlier delta).
    Always,
}

/// Walks `src` (one JSON document) and returns it redacted, or `None` when nothing changed.
/// Strings whose span starts at an offset in `skip` were handled by the caller (a stream's
/// text channels) and are left alone.
///
/// # Errors
///
/// [`RedactError::NotJson`] / [`RedactError::UnexpectedShape`] when `src` is not JSON or holds a
/// string that cannot be decoded (a lone surrogate), and whatever the scanner fails with
/// ([`RedactError::Blocked`]).
pub(crate) fn document(
    src: &str,
    family: Family,
    scanner: &Scanner,
    rec: &mut Recorder<'_>,
    mode: Mode,
    logprobs: Logprobs,
) -> Result<Option<String>, RedactError> {
    parse::<serde::de::IgnoredAny>(src)?;
    let how = How {
        opaque: family.opaque_keys(),
        mode,
        logprobs,
    };
    let edits = walk_into(src, scanner, rec, how, &[], 0, Edits::new(src))?;
    Ok((!edits.is_empty()).then(|| edits.apply()))
}

/// Walks `src` into `edits` (which may already hold the caller's edits of `src`), leaving the
/// strings that start at an offset in `skip` alone: a stream's text channels, which the
/// caller redacted. `src` must be JSON that `serde_json` accepted (the caller parsed it).
///
/// # Errors
///
/// As for [`document`].
pub(crate) fn event<'s>(
    src: &'s str,
    family: Family,
    scanner: &Scanner,
    rec: &mut Recorder<'_>,
    skip: &[usize],
    edits: Edits<'s>,
) -> Result<Edits<'s>, RedactError> {
    let how = How {
        opaque: family.opaque_keys(),
        mode: Mode::Stream,
        logprobs: Logprobs::Always,
    };
    walk_into(src, scanner, rec, how, skip, 0, edits)
}

/// How a document is walked.
#[derive(Debug, Clone, Copy)]
struct How {
    /// The API family's opaque member names.
    opaque: &'static [&'static str],
    mode: Mode,
    logprobs: Logprobs,
}

fn walk_into<'s>(
    src: &'s str,
    scanner: &Scanner,
    rec: &mut Recorder<'_>,
    how: How,
    skip: &[usize],
    nesting: u8,
    edits: Edits<'s>,
) -> Result<Edits<'s>, RedactError> {
    // serde_json has decided that `src` is valid JSON (and bounded its depth), before this
    // call; the walk below relies on it.
    let mut w = Walker {
        src,
        bytes: src.as_bytes(),
        scanner,
        rec,
        how,
        skip,
        nesting,
        edits,
        logprobs: Vec::new(),
    };
    let start = skip_ws(w.bytes, 0);
    if start < w.bytes.len() {
        w.value(start, None, 0)?;
    }
    let clear = match how.logprobs {
        Logprobs::Always => true,
        Logprobs::WhenChanged => !w.edits.is_empty(),
    };
    let mut edits = w.edits;
    if clear {
        for (range, empty) in w.logprobs {
            edits.set_range(range, empty.to_owned());
        }
    }
    Ok(edits)
}

struct Walker<'s, 'c, 'e> {
    src: &'s str,
    bytes: &'s [u8],
    scanner: &'c Scanner,
    rec: &'c mut Recorder<'e>,
    how: How,
    skip: &'c [usize],
    nesting: u8,
    edits: Edits<'s>,
    /// Non-null `logprobs` values and what replaces them (`[]` for arrays, else `null`).
    logprobs: Vec<(Range<usize>, &'static str)>,
}

impl<'s> Walker<'s, '_, '_> {
    /// Walks the value at `i` (the member `key` holds it, if any); returns its end.
    fn value(&mut self, i: usize, key: Option<&str>, depth: u32) -> Result<usize, RedactError> {
        match self.bytes[i] {
            b'{' => self.object(i, depth + 1),
            b'[' => self.array(i, depth + 1),
            b'"' => {
                let end = string_end(self.bytes, i);
                if !self.skip.contains(&i) {
                    self.string(i..end, key, depth)?;
                }
                Ok(end)
            }
            _ => {
                let end = scalar_end(self.bytes, i);
                if key != Some("seed") {
                    self.number(i..end)?;
                }
                Ok(end)
            }
        }
    }

    fn object(&mut self, open: usize, depth: u32) -> Result<usize, RedactError> {
        let mut i = open + 1;
        loop {
            i = skip_ws(self.bytes, i);
            match self.bytes[i] {
                b'}' => return Ok(i + 1),
                b',' => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let key_end = string_end(self.bytes, i);
            let key = self.key(i..key_end)?;
            i = skip_ws(self.bytes, key_end) + 1; // the colon
            let start = skip_ws(self.bytes, i);
            let end = self.value(start, Some(&key), depth)?;
            if key == "logprobs" {
                let empty = match self.bytes[start] {
                    b'n' => None,
                    b'[' => Some("[]"),
                    _ => Some("null"),
                };
                if let Some(empty) = empty {
                    self.logprobs.push((start..end, empty));
                }
            }
            i = end;
        }
    }

    fn array(&mut self, open: usize, depth: u32) -> Result<usize, RedactError> {
        let mut i = open + 1;
        loop {
            i = skip_ws(self.bytes, i);
            match self.bytes[i] {
                b']' => return Ok(i + 1),
                b',' => i += 1,
                _ => i = self.value(i, None, depth)?,
            }
        }
    }

    /// Scans a member key (plain text); returns it decoded.
    fn key(&mut self, span: Range<usize>) -> Result<Cow<'s, str>, RedactError> {
        let key = decode(self.src, span.clone())?;
        if let Cow::Owned(new) = self.scanner.redact_text(&key, self.rec)? {
            self.edits.set_string_range(span, &new);
        }
        Ok(key)
    }

    fn string(
        &mut self,
        span: Range<usize>,
        key: Option<&str>,
        depth: u32,
    ) -> Result<(), RedactError> {
        let text = decode(self.src, span.clone())?;
        if is_opaque(self.how.opaque, key, depth, &text) {
            return Ok(());
        }
        let new = match self.how.mode {
            Mode::Stream => self.scanner.redact_text(&text, self.rec)?,
            Mode::Body => {
                if self.nesting < MAX_NESTING && looks_like_json(&text) && is_json(&text) {
                    let how = How {
                        logprobs: Logprobs::WhenChanged,
                        ..self.how
                    };
                    let edits = walk_into(
                        &text,
                        self.scanner,
                        self.rec,
                        how,
                        &[],
                        self.nesting + 1,
                        Edits::new(&text),
                    )?;
                    if !edits.is_empty() {
                        let inner = edits.apply();
                        self.edits.set_string_range(span, &inner);
                    }
                    return Ok(());
                }
                self.scanner.redact_member(key, &text, self.rec)?
            }
        };
        if let Cow::Owned(new) = new {
            self.edits.set_string_range(span, &new);
        }
        Ok(())
    }

    /// A number long enough to be a card number is scanned as text; a match turns it into a
    /// (redacted) string.
    fn number(&mut self, span: Range<usize>) -> Result<(), RedactError> {
        let raw = &self.src[span.clone()];
        if raw.bytes().filter(u8::is_ascii_digit).count() < MIN_NUMBER_DIGITS {
            return Ok(());
        }
        if let Cow::Owned(new) = self.scanner.redact_text(raw, self.rec)? {
            self.edits.set_string_range(span, &new);
        }
        Ok(())
    }
}

/// Whether a string at this place is in the opaque table (see the module docs); `opaque` is
/// the API family's opaque member names.
fn is_opaque(opaque: &[&str], key: Option<&str>, depth: u32, text: &str) -> bool {
    match key {
        Some("model") if depth == 1 => true,
        Some(k) if opaque.contains(&k) && text.len() >= MIN_BASE64 && is_base64(text) => true,
        _ => is_base64_data_url(text),
    }
}

/// `data:<media type>[;params];base64,<base64>`.
pub(crate) fn is_base64_data_url(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("data:") else {
        return false;
    };
    let Some((meta, payload)) = rest.split_once(',') else {
        return false;
    };
    meta.len() <= 256
        && meta.ends_with(";base64")
        && !meta.contains(|c: char| c.is_whitespace() || c == '"')
        && is_base64(payload)
}

/// Base64 (standard or URL-safe alphabet, optional padding) and nothing else.
pub(crate) fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

fn looks_like_json(text: &str) -> bool {
    let t = text.trim();
    matches!(
        (t.as_bytes().first(), t.as_bytes().last()),
        (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
    )
}

fn is_json(text: &str) -> bool {
    parse::<serde::de::IgnoredAny>(text).is_ok()
}

/// The decoded content of the JSON string at `span` (quotes included); borrowed when it has
/// no escapes.
fn decode(src: &str, span: Range<usize>) -> Result<Cow<'_, str>, RedactError> {
    let inner = &src[span.start + 1..span.end - 1];
    if !inner.as_bytes().contains(&b'\\') {
        return Ok(Cow::Borrowed(inner));
    }
    parse::<String>(&src[span]).map(Cow::Owned)
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end (one past the closing quote) of the string that opens at `open`, in valid JSON.
fn string_end(bytes: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    while let Some(k) = memchr::memchr2(b'"', b'\\', &bytes[i..]) {
        i += k;
        if bytes[i] == b'\\' {
            i += 2;
        } else {
            return i + 1;
        }
    }
    bytes.len()
}

/// The end of a number, `true`, `false` or `null` at `i`, in valid JSON.
fn scalar_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && !matches!(bytes[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
    {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_shapes() {
        assert!(is_base64("QUJD"));
        assert!(is_base64("QUI="));
        assert!(is_base64("a-b_c+d/e=="));
        assert!(!is_base64("QU JD"));
        assert!(!is_base64("QUJD==="));
        assert!(!is_base64("ghp:x"));
        assert!(is_base64_data_url("data:image/png;base64,iVBORw0KGgo="));
        assert!(!is_base64_data_url("data:text/plain,ghp_secret"));
        assert!(!is_base64_data_url("data:image/png;base64,not base64"));
        assert!(!is_base64_data_url("https://example.com/a.png"));
    }

    #[test]
    fn opaque_table() {
        let b64 = "A".repeat(64);
        let other = Family::Other.opaque_keys();
        assert!(is_opaque(other, Some("model"), 1, "gpt-4o"));
        assert!(!is_opaque(other, Some("model"), 2, "gpt-4o"));
        assert!(is_opaque(other, Some("data"), 5, &b64));
        assert!(!is_opaque(other, Some("data"), 5, "short"));
        assert!(!is_opaque(other, Some("text"), 5, &b64));
        assert!(is_opaque(
            other,
            Some("url"),
            4,
            "data:audio/wav;base64,UklGRg=="
        ));
        assert!(!is_opaque(other, Some("url"), 4, "data:audio/wav,UklGRg"));
        // Each family's table is its own: a base64 `signature` is a payload on the Messages
        // API and text to scan on Chat Completions; the model and data URLs are opaque on all.
        let messages = Family::Messages.opaque_keys();
        let chat = Family::ChatCompletions.opaque_keys();
        assert!(is_opaque(messages, Some("signature"), 4, &b64));
        assert!(!is_opaque(chat, Some("signature"), 4, &b64));
        assert!(is_opaque(chat, Some("embedding"), 3, &b64));
        assert!(!is_opaque(messages, Some("embedding"), 3, &b64));
        for family in Family::ALL {
            let keys = family.opaque_keys();
            assert!(is_opaque(keys, Some("model"), 1, "m"));
            assert!(is_opaque(
                keys,
                Some("x"),
                3,
                "data:image/png;base64,iVBORw0KGgo="
            ));
        }
    }

    #[test]
    fn string_and_scalar_ends() {
        let s = br#""a\"b\\" , 12.5e3}"#;
        assert_eq!(string_end(s, 0), 8);
        assert_eq!(scalar_end(s, 11), 17);
    }

    #[test]
    fn json_in_strings() {
        assert!(looks_like_json(" {\"a\":1} "));
        assert!(looks_like_json("[1]"));
        assert!(!looks_like_json("{a"));
        assert!(!looks_like_json("plain"));
    }
}
