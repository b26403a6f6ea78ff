//! The members of a JSON object read without building a tree: each key, and where its value
//! lies in the text, untouched.
//!
//! `serde_json::Value` refuses documents that are valid JSON text but not valid Unicode or
//! `f64` values (a lone surrogate escape such as `"\ud800"`, a number such as `1e400`); a
//! request the gateway cannot read that way must still be accounted for (see
//! [`super::chat::ask_for_usage`]). Values are borrowed as [`RawValue`]s, which
//! serde_json skips without decoding, and keys are read as bytes, which it does not validate
//! as Unicode either.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One member of an object.
#[derive(Debug)]
pub struct Member<'a> {
    /// The key, escapes decoded (lone surrogates are not refused).
    pub key: Cow<'a, [u8]>,
    /// The value as written.
    pub value: &'a RawValue,
    /// Where the value lies in the text.
    pub span: Range<usize>,
}

/// The members of the object `text` holds, in order, duplicates included; `None` when `text`
/// is not a JSON object.
pub fn members(text: &[u8]) -> Option<Vec<Member<'_>>> {
    let Entries(entries) = serde_json::from_slice(text).ok()?;
    let base = text.as_ptr() as usize;
    Some(
        entries
            .into_iter()
            .map(|(Key(key), value)| {
                // Borrowed from `text` (from_slice never copies a RawValue).
                let start = value.get().as_ptr() as usize - base;
                Member {
                    key,
                    value,
                    span: start..start + value.get().len(),
                }
            })
            .collect(),
    )
}

/// Where the members of the object `text` holds begin: just after its `{`.
pub fn body_start(text: &[u8]) -> Option<usize> {
    let open = text.iter().position(|b| !b.is_ascii_whitespace())?;
    (text[open] == b'{').then_some(open + 1)
}

/// Whether the object `text` holds (it must be one) has no member.
pub fn is_empty_object(text: &[u8]) -> bool {
    body_start(text).is_some_and(|start| {
        text[start..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'}')
    })
}

struct Key<'a>(Cow<'a, [u8]>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_vec())))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.as_bytes().to_vec())))
            }
        }
        // As bytes: serde_json then decodes escapes without refusing lone surrogates.
        d.deserialize_bytes(KeyVisitor)
    }
}

struct Entries<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_a_body_serde_json_value_refuses() {
        let text =
            br#" {"model":"m", "user":"\ud800", "n": 1e400, "\ud800k":[1,{"a":2}] ,"model":"x"}"#;
        assert!(serde_json::from_slice::<serde_json::Value>(text).is_err());
        let m = members(text).unwrap();
        let keys: Vec<&[u8]> = m.iter().map(|m| &*m.key).collect();
        assert_eq!(keys.len(), 5);
        assert_eq!(keys[0], b"model");
        assert_eq!(keys[1], b"user");
        assert_eq!(keys[4], b"model");
        for member in &m {
            assert_eq!(&text[member.span.clone()], member.value.get().as_bytes());
        }
        assert_eq!(m[2].value.get(), "1e400");
        assert_eq!(m[3].value.get(), r#"[1,{"a":2}]"#);
        assert_eq!(body_start(text), Some(2));
        assert!(!is_empty_object(text));
        assert!(is_empty_object(b" { } "));
    }

    #[test]
    fn not_an_object() {
        assert!(members(b"[1,2]").is_none());
        assert!(members(b"{\"a\":").is_none());
        assert!(members(b"").is_none());
        assert_eq!(body_start(b"[]"), None);
        assert!(members(b"{}").unwrap().is_empty());
    }
}
