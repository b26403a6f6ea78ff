//! Tests of the recovering deserializer on small documents.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;
use crate::config::tree::parse;

#[derive(Debug, Deserialize, PartialEq, Default)]
struct Outer {
    name: Option<String>,
    count: Option<u16>,
    ratio: Option<f64>,
    on: Option<bool>,
    tags: Option<Vec<String>>,
    inner: Option<Inner>,
    items: Option<Vec<Inner>>,
    by_name: Option<BTreeMap<String, Inner>>,
    kind: Option<Kind>,
}

#[derive(Debug, Deserialize, PartialEq, Default)]
struct Inner {
    a: Option<i32>,
    b: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Plain,
    Fancy,
    Sized { size: u8 },
}

#[derive(Debug, Deserialize)]
struct Required {
    #[allow(dead_code)]
    must: String,
}

fn load<T: DeserializeOwned>(text: &str) -> (Option<T>, Vec<String>) {
    let mut problems = Problems::new("t");
    let root = parse(text, &mut problems).unwrap_or_else(|| panic!("parse failed"));
    let value = from_tree(&root, &mut problems);
    let messages = problems
        .into_sorted()
        .iter()
        .map(ToString::to_string)
        .collect();
    (value, messages)
}

#[test]
fn a_clean_document_deserializes() {
    let text = "name: x\ncount: 0x10\nratio: 1.5\non: true\ntags: [a, 'b', 3]\ninner: {a: -3}\n\
                items:\n  - b: y\nby_name:\n  k: {a: 1}\nkind: fancy\n";
    let (value, problems) = load::<Outer>(text);
    assert!(problems.is_empty(), "{problems:?}");
    let value = value.unwrap_or_default();
    assert_eq!(value.count, Some(16));
    assert_eq!(value.ratio, Some(1.5));
    assert_eq!(value.on, Some(true));
    assert_eq!(value.tags, Some(vec!["a".into(), "b".into(), "3".into()]));
    assert_eq!(
        value.inner,
        Some(Inner {
            a: Some(-3),
            b: None
        })
    );
    assert_eq!(
        value.items,
        Some(vec![Inner {
            a: None,
            b: Some("y".into())
        }])
    );
    assert_eq!(value.by_name.map(|m| m.len()), Some(1));
    assert_eq!(value.kind, Some(Kind::Fancy));
}

#[test]
fn unknown_keys_at_every_level_are_reported_and_skipped() {
    let text =
        "nmae: x\ninner:\n  a: 1\n  c: 2\nitems:\n  - {b: y, zz: 1}\nby_name:\n  k: {bb: 1}\n";
    let (value, problems) = load::<Outer>(text);
    assert_eq!(
        problems,
        [
            "t:1:1: nmae: unknown key \"nmae\" (did you mean \"name\"?); expected one of: name, count, ratio, on, tags, inner, items, by_name, kind",
            "t:4:3: inner.c: unknown key \"c\"; expected one of: a, b",
            "t:6:12: items[0].zz: unknown key \"zz\"; expected one of: a, b",
            "t:8:7: by_name.k.bb: unknown key \"bb\"; expected one of: a, b",
        ]
    );
    let value = value.unwrap_or_default();
    assert_eq!(
        value.inner,
        Some(Inner {
            a: Some(1),
            b: None
        })
    );
}

#[test]
fn wrong_types_are_reported_and_substituted() {
    let text = "name: [x]\ncount: abc\nratio: yes\non: 1\ntags: solo\ninner: 5\nkind: fancyy\n";
    let (value, problems) = load::<Outer>(text);
    assert_eq!(
        problems,
        [
            "t:1:7: name: expected a string, found a list",
            "t:2:8: count: expected an integer, found \"abc\"",
            "t:3:8: ratio: expected a number, found \"yes\"",
            "t:4:5: on: expected true or false, found \"1\"",
            "t:5:7: tags: expected a list (like [a, b]), found \"solo\"",
            "t:6:8: inner: expected a mapping with keys a, b, found \"5\"",
            "t:7:7: kind: unknown value \"fancyy\" (did you mean \"fancy\"?); expected one of: plain, fancy, sized",
        ]
    );
    let value = value.unwrap_or_default();
    assert_eq!(value.count, Some(0));
    assert_eq!(value.tags, Some(vec![]));
}

#[test]
fn quoted_numbers_are_strings() {
    let (_, problems) = load::<Outer>("count: \"123\"\non: 'true'\nname: 123\n");
    assert_eq!(
        problems,
        [
            "t:1:8: count: expected an integer, found the string \"123\" (remove the quotes)",
            "t:2:5: on: expected true or false, found the string \"true\" (remove the quotes)",
        ]
    );
}

#[test]
fn integers_out_of_range() {
    let (_, problems) = load::<Outer>("count: 70000\ninner: {a: -99999999999}\n");
    assert_eq!(
        problems,
        [
            "t:1:8: count: expected an integer from 0 to 65535, found \"70000\"",
            "t:2:12: inner.a: expected an integer from -2147483648 to 2147483647, found \"-99999999999\"",
        ]
    );
}

#[test]
fn empty_values_are_none() {
    let (value, problems) = load::<Outer>("name:\ncount: ~\ninner: null\n");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(value, Some(Outer::default()));
}

#[test]
fn enum_variants_with_content() {
    let (value, problems) = load::<Outer>("kind: {sized: {size: 3}}\n");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(value.and_then(|v| v.kind), Some(Kind::Sized { size: 3 }));
}

#[test]
fn aborting_errors_carry_position_and_path() {
    let (value, problems) = load::<BTreeMap<String, Required>>("x:\n  other: 1\n");
    assert!(value.is_none());
    assert_eq!(
        problems,
        [
            "t:2:3: x.other: unknown key \"other\"; expected one of: must",
            "t:2:3: x: missing required key `must`",
        ]
    );
}
