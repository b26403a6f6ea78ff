//! Rewriting JSON in place: string fields are located as borrowed [`RawValue`]s, decoded,
//! redacted, and spliced back; every other byte of the document is kept as it was.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{Deserializer as _, Visitor};
use serde_json::value::RawValue;

use super::byteset::{at_least, eq_mask, HI};
use super::error::RedactError;

/// Replacements of whole JSON values inside `src`.
pub(crate) struct Edits<'s> {
    src: &'s str,
    list: Vec<(Range<usize>, String)>,
}

impl<'s> Edits<'s> {
    pub(crate) fn new(src: &'s str) -> Edits<'s> {
        Edits {
            src,
            list: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Replaces the value `raw` (which must borrow from `src`) with the JSON string `text`.
    ///
    /// # Errors
    ///
    /// [`RedactError::Internal`] if `raw` is not part of `src`.
    pub(crate) fn set_string(&mut self, raw: &RawValue, text: &str) -> Result<(), RedactError> {
        let mut json = String::with_capacity(text.len() + 2);
        encode_str(text, &mut json);
        self.set_json(raw, json)
    }

    /// Replaces the value `raw` with the JSON text `json`.
    ///
    /// # Errors
    ///
    /// [`RedactError::Internal`] if `raw` is not part of `src`.
    pub(crate) fn set_json(&mut self, raw: &RawValue, json: String) -> Result<(), RedactError> {
        let range = range_of(self.src, raw)?;
        self.list.push((range, json));
        Ok(())
    }

    /// Replaces the bytes `range` of the document with the JSON string `text`.
    pub(crate) fn set_string_range(&mut self, range: Range<usize>, text: &str) {
        let mut json = String::with_capacity(text.len() + 2);
        encode_str(text, &mut json);
        self.list.push((range, json));
    }

    /// Replaces the bytes `range` of the document with the JSON text `json`.
    pub(crate) fn set_range(&mut self, range: Range<usize>, json: String) {
        self.list.push((range, json));
    }

    /// The edited document.
    pub(crate) fn apply(mut self) -> String {
        self.list.sort_by_key(|(r, _)| r.start);
        let mut out = String::with_capacity(self.src.len() + 64);
        let mut at = 0;
        for (range, json) in &self.list {
            // Walkers never report a value twice or nested values; skip overlaps defensively.
            if range.start < at {
                continue;
            }
            out.push_str(&self.src[at..range.start]);
            out.push_str(json);
            at = range.end;
        }
        out.push_str(&self.src[at..]);
        out
    }
}

/// The byte range of `raw` inside `src`.
///
/// `raw` was deserialized from `src` with `serde_json::from_str`, so it borrows a slice of
/// `src`: its offset is the pointer difference. The result is verified before use.
fn range_of(src: &str, raw: &RawValue) -> Result<Range<usize>, RedactError> {
    let s = raw.get();
    let start = (s.as_ptr() as usize)
        .checked_sub(src.as_ptr() as usize)
        .ok_or(RedactError::Internal("JSON value outside its document"))?;
    let range = start..start + s.len();
    match src.get(range.clone()) {
        Some(found) if found.as_ptr() == s.as_ptr() => Ok(range),
        _ => Err(RedactError::Internal("JSON value outside its document")),
    }
}

/// Decodes a JSON string value; borrowed when it has no escapes.
///
/// # Errors
///
/// [`RedactError::UnexpectedShape`] if `raw` is not a string.
pub(crate) fn decode_str(raw: &RawValue) -> Result<Cow<'_, str>, RedactError> {
    struct StrVisitor;
    impl<'de> Visitor<'de> for StrVisitor {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_str(StrVisitor)
        .map_err(|e| RedactError::from_json(&e))
}

/// Appends `s` as a JSON string literal.
pub(crate) fn encode_str(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time to the next byte that needs an escape: in prose that is most
        // of the string.
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
        {
            let lanes = escaped_lanes(u64::from_le_bytes(word));
            if lanes == 0 {
                i += 8;
                continue;
            }
            i += (lanes.trailing_zeros() / 8) as usize;
        }
        let b = bytes[i];
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[run..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        i += 1;
        run = i;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// The lanes of an 8-byte word that JSON escapes: `"`, `\\` and control bytes below 0x20.
fn escaped_lanes(x: u64) -> u64 {
    let control = !at_least(x & !HI, 0x20) & !x & HI;
    control | eq_mask(x, b'"') | eq_mask(x, b'\\')
}

/// Parses `src` as `T`, mapping errors without their message.
///
/// # Errors
///
/// [`RedactError::NotJson`] or [`RedactError::UnexpectedShape`].
pub(crate) fn parse<'a, T: serde::Deserialize<'a>>(src: &'a str) -> Result<T, RedactError> {
    serde_json::from_str(src).map_err(|e| RedactError::from_json(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trips() {
        for s in [
            "plain",
            "quote \" back \\ nl \n tab \t",
            "ctl \u{1} \u{1f}",
            "ünï €",
            "",
        ] {
            let mut json = String::new();
            encode_str(s, &mut json);
            let back: String = serde_json::from_str(&json).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn encode_equals_serde_json_at_every_position() {
        // Every byte that needs an escape, and some that do not, at every offset within and
        // across the 8-byte words, next to multi-byte characters.
        let specials: Vec<char> = (0u8..0x20)
            .map(char::from)
            .chain(['"', '\\', '/', ' ', 'a', '\u{7f}', 'é', '€', '😀'])
            .collect();
        for &c in &specials {
            for lead in 0..17 {
                for tail in [0, 1, 7, 8, 9] {
                    let s = format!("{}{c}{}", "x".repeat(lead), "€".repeat(tail));
                    let mut json = String::new();
                    encode_str(&s, &mut json);
                    assert_eq!(json, serde_json::to_string(&s).unwrap(), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn decode_borrows_without_escapes() {
        let raw: &RawValue = serde_json::from_str(r#""hello""#).unwrap();
        assert!(matches!(decode_str(raw).unwrap(), Cow::Borrowed("hello")));
        let raw: &RawValue = serde_json::from_str(r#""a\nb""#).unwrap();
        assert_eq!(decode_str(raw).unwrap(), "a\nb");
        let raw: &RawValue = serde_json::from_str("12").unwrap();
        assert!(decode_str(raw).is_err());
    }

    #[test]
    fn edits_splice_values_and_keep_the_rest() {
        #[derive(serde::Deserialize)]
        struct Doc<'a> {
            #[serde(borrow)]
            a: &'a RawValue,
        }
        let src = r#"{ "z": 1.50,  "a" : "old", "b": [1,2] }"#;
        let doc: Doc = parse(src).unwrap();
        let mut edits = Edits::new(src);
        edits.set_string(doc.a, "new \"x\"").unwrap();
        assert_eq!(
            edits.apply(),
            r#"{ "z": 1.50,  "a" : "new \"x\"", "b": [1,2] }"#
        );
    }

    #[test]
    fn foreign_values_are_refused() {
        let other: &RawValue = serde_json::from_str(r#""x""#).unwrap();
        let mut edits = Edits::new(r#"{"a":"x"}"#);
        assert!(edits.set_string(other, "y").is_err());
    }
}
