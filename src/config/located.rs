//! [`Located<T>`]: a value of the raw schema together with where it was written.
//!
//! Validation reports each problem at the position of the offending value, and names a value
//! that came from `${VAR}` by what was written in the file. So the values carry both: a schema
//! field of type `Located<T>` is deserialized like `T`, and also gets its node's position, the
//! `${VAR}` source text when expansion changed it, and whether expansion failed.
//!
//! This works like `toml::Spanned`: `Located<T>` asks the deserializer for a struct with a
//! reserved name ([`NAME`]); the tree deserializer in `de` recognises it and hands over the
//! node's position and expansion facts as fields, then the node itself as `value`. Any other
//! deserializer sees an ordinary struct with those fields.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::error::Pos;
use super::tree::quote;

/// The struct name the tree deserializer recognises as a request for a [`Located`] value.
pub(crate) const NAME: &str = "$veilgate::config::Located";

/// The fields of the [`NAME`] struct, in the order the tree deserializer hands them over
/// (`source` only when expansion changed the value).
pub(crate) const FIELDS: &[&str] = &["line", "column", "source", "failed", "value"];

/// A value with its position in the file and what `${VAR}` expansion did to it.
///
/// For a key that may be written empty (`key:` or `key: ~`), use `Option<Located<Option<T>>>`
/// with `#[serde(default, deserialize_with = "written")]` (see [`written`]): a plain
/// `Option<Located<T>>` is `None` for an empty value as for an absent key.
///
/// No `Debug`: values may be API keys.
#[derive(Clone, PartialEq)]
pub(crate) struct Located<T> {
    /// The value, deserialized as if it were not wrapped.
    pub value: T,
    /// Where the value starts (a mapping or list: its first key or item, or its `{`/`[`).
    pub pos: Pos,
    /// The scalar as written, when `${VAR}` expansion changed it. Messages quote this, never
    /// the value: expanded values are often secrets.
    pub source: Option<String>,
    /// `${VAR}` expansion failed here (already reported): later stages stay quiet about it.
    pub failed: bool,
}

impl<T> Located<T> {
    /// The same position and expansion facts around another value.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Located<U> {
        Located {
            value: f(self.value),
            pos: self.pos,
            source: self.source,
            failed: self.failed,
        }
    }

    /// Where this value is, without the value: for checks that report here later.
    pub(crate) fn at(&self) -> Located<()> {
        Located {
            value: (),
            pos: self.pos,
            source: self.source.clone(),
            failed: self.failed,
        }
    }

    /// Quotes `text` (this value, or part of it, as text) for a message; a value from
    /// `${VAR}` is named by its source instead, so that no expanded text is printed.
    pub(crate) fn show(&self, text: &str) -> String {
        match &self.source {
            Some(source) => format!("the expansion of {}", quote(source)),
            None => quote(text),
        }
    }
}

impl<T> Located<Option<T>> {
    /// The value if there is one (the key was not written empty), keeping its position.
    pub(crate) fn transpose(self) -> Option<Located<T>> {
        let Located {
            value,
            pos,
            source,
            failed,
        } = self;
        value.map(|value| Located {
            value,
            pos,
            source,
            failed,
        })
    }
}

/// For `#[serde(default, deserialize_with = "written")]` on an `Option<Located<T>>` field:
/// `Some` whenever the key is written, even with an empty value, so that "is empty" can be
/// told from "missing required key" (and an empty value is checked as a `T`: with `T` an
/// `Option`, it is a `Located` `None`).
pub(crate) fn written<'de, D, T>(deserializer: D) -> Result<Option<Located<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Located::deserialize(deserializer).map(Some)
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(NAME, FIELDS, LocatedVisitor(PhantomData))
    }
}

/// The fields of [`NAME`], as keys.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Line,
    Column,
    Source,
    Failed,
    Value,
}

struct LocatedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LocatedVisitor<T> {
    type Value = Located<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value with its position")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Located<T>, A::Error> {
        let (mut line, mut column, mut source, mut failed, mut value) =
            (None, None, None, false, None);
        while let Some(field) = map.next_key()? {
            match field {
                Field::Line => line = Some(map.next_value()?),
                Field::Column => column = Some(map.next_value()?),
                Field::Source => source = Some(map.next_value()?),
                Field::Failed => failed = map.next_value()?,
                Field::Value => value = Some(map.next_value()?),
            }
        }
        let missing = |field| <A::Error as de::Error>::missing_field(field);
        Ok(Located {
            value: value.ok_or_else(|| missing("value"))?,
            pos: Pos {
                line: line.ok_or_else(|| missing("line"))?,
                column: column.ok_or_else(|| missing("column"))?,
            },
            source,
            failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::de::from_tree;
    use crate::config::error::Problems;
    use crate::config::expand::expand_tree;
    use crate::config::tree::parse;

    #[derive(Deserialize)]
    struct Doc {
        name: Option<Located<String>>,
        count: Option<Located<u16>>,
        list: Option<Located<Vec<Located<String>>>>,
        inner: Option<Located<Inner>>,
        #[serde(default, deserialize_with = "written")]
        maybe: Option<Located<Option<String>>>,
        #[serde(default, deserialize_with = "written")]
        absent: Option<Located<Option<String>>>,
        by_name: Option<BTreeMap<String, Located<String>>>,
    }

    #[derive(Deserialize)]
    struct Inner {
        a: Option<Located<i32>>,
    }

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "sk-secret".to_owned())
    }

    fn load(text: &str) -> (Option<Located<Doc>>, Vec<String>) {
        let mut problems = Problems::new("t");
        let mut root = parse(text, &mut problems).unwrap_or_else(|| panic!("parse failed"));
        expand_tree(&mut root, "", &env, &mut problems);
        let doc = from_tree(&root, &mut problems);
        let problems = problems
            .into_sorted()
            .iter()
            .map(ToString::to_string)
            .collect();
        (doc, problems)
    }

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn values_carry_the_position_of_their_node() {
        let text = "name: x\ncount: 3\nlist:\n  - a\n  - 'b'\ninner: {a: -1}\nby_name:\n  k: v\n";
        let (doc, problems) = load(text);
        assert!(problems.is_empty(), "{problems:?}");
        let doc = doc.unwrap_or_else(|| panic!("no document"));
        assert_eq!(doc.pos, at(1, 1), "the root mapping");
        let name = doc.value.name.unwrap_or_else(|| panic!("no name"));
        assert_eq!((name.value.as_str(), name.pos), ("x", at(1, 7)));
        assert_eq!(name.source, None);
        assert!(!name.failed);
        let count = doc.value.count.unwrap_or_else(|| panic!("no count"));
        assert_eq!((count.value, count.pos), (3, at(2, 8)));
        let list = doc.value.list.unwrap_or_else(|| panic!("no list"));
        assert_eq!(list.pos, at(4, 3), "a block list starts at its first item");
        let items: Vec<(&str, Pos)> = list
            .value
            .iter()
            .map(|item| (item.value.as_str(), item.pos))
            .collect();
        assert_eq!(items, [("a", at(4, 5)), ("b", at(5, 5))]);
        let inner = doc.value.inner.unwrap_or_else(|| panic!("no inner"));
        assert_eq!(inner.pos, at(6, 8), "a flow mapping starts at its brace");
        let a = inner.value.a.unwrap_or_else(|| panic!("no a"));
        assert_eq!((a.value, a.pos), (-1, at(6, 12)));
        let by_name = doc.value.by_name.unwrap_or_default();
        assert_eq!(by_name.get("k").map(|v| v.pos), Some(at(8, 6)));
    }

    #[test]
    fn an_expanded_value_carries_its_source_and_a_failed_one_is_marked() {
        let (doc, problems) = load("name: ${KEY}\ncount: ${NOPE}\n");
        assert_eq!(
            problems,
            ["t:2:8: count: ${NOPE} is not set and has no default"]
        );
        let doc = doc.unwrap_or_else(|| panic!("no document")).value;
        let name = doc.name.unwrap_or_else(|| panic!("no name"));
        assert_eq!(name.value, "sk-secret");
        assert_eq!(name.pos, at(1, 7));
        assert_eq!(name.source.as_deref(), Some("${KEY}"));
        assert_eq!(name.show(&name.value), "the expansion of \"${KEY}\"");
        let count = doc.count.unwrap_or_else(|| panic!("no count"));
        assert!(count.failed, "reported by expansion, quiet afterwards");
        assert_eq!(count.pos, at(2, 8));
    }

    #[test]
    fn a_written_key_is_told_from_an_absent_one_even_when_empty() {
        let (doc, problems) = load("name:\nmaybe:\n");
        assert!(problems.is_empty(), "{problems:?}");
        let doc = doc.unwrap_or_else(|| panic!("no document")).value;
        assert!(doc.name.is_none(), "a plain Option: empty is None");
        let maybe = doc.maybe.unwrap_or_else(|| panic!("maybe is written"));
        assert_eq!(
            (maybe.value.as_deref(), maybe.pos),
            (None, at(2, 6)),
            "an empty value is placed at its key's colon"
        );
        assert!(maybe.transpose().is_none());
        assert!(doc.absent.is_none());
    }

    #[test]
    fn wrong_types_inside_located_are_reported_as_before() {
        let (doc, problems) = load("count: many\nlist: x\n");
        assert_eq!(
            problems,
            [
                "t:1:8: count: expected an integer, found \"many\"",
                "t:2:7: list: expected a list (like [a, b]), found \"x\"",
            ]
        );
        let doc = doc.unwrap_or_else(|| panic!("no document")).value;
        let count = doc.count.unwrap_or_else(|| panic!("no count"));
        assert_eq!((count.value, count.pos), (0, at(1, 8)));
        assert!(doc.list.is_some_and(|l| l.value.is_empty()));
    }
}
