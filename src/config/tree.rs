//! The YAML document as a small tree of positioned nodes, built from saphyr-parser events.
//!
//! Why our own tree: serde stops at the first error, and ops need every problem with its line and
//! column. Each node keeps its position; scalars keep their text and whether they were plain (so
//! `123` may be an integer) or quoted (so `"123"` is always a string).

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use super::error::{Pos, Problems};
pub(crate) use super::scalar::is_null;

/// How a scalar was written: plain scalars are typed by their text, quoted ones are strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `abc`, `123`, `true`, `~`: typed by the YAML 1.2 core schema.
    Plain,
    /// `'…'`, `"…"`, block scalars (`|`, `>`) and `!!str`: always a string.
    Quoted,
}

/// A scalar value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    /// The text, after `${VAR}` expansion.
    pub text: String,
    pub style: Style,
    /// The text as written, when `${VAR}` expansion changed it. Messages quote this, never `text`,
    /// so expanded values (often secrets) are not printed.
    pub source: Option<String>,
    /// Expansion failed (already reported): later stages stay quiet about this value.
    pub failed: bool,
}

/// The three shapes of YAML content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// A map entry; keys are scalars and are never expanded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// A positioned YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    /// Whether this is a scalar whose `${VAR}` expansion failed.
    pub(crate) fn failed(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.failed)
    }

    /// How the value is named in messages, without printing expanded (possibly secret) text.
    pub(crate) fn describe(&self) -> String {
        match &self.value {
            Value::Map(_) => "a mapping".to_owned(),
            Value::Seq(_) => "a list".to_owned(),
            Value::Scalar(s) => match (&s.source, s.style) {
                (Some(source), _) => format!("the expansion of {}", quote(source)),
                (None, Style::Plain) if is_null(&s.text) => "an empty value".to_owned(),
                (None, Style::Plain) => quote(&s.text),
                (None, Style::Quoted) => format!("the string {}", quote(&s.text)),
            },
        }
    }
}

/// Quotes text for a message: double quotes, escapes, and at most 80 characters.
pub(crate) fn quote(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() > MAX {
        let head: String = text.chars().take(MAX).collect();
        format!("{:?}…", head)
    } else {
        format!("{text:?}")
    }
}

/// Appends a map key or a list index to a key path.
pub(crate) fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Appends a list index to a key path.
pub(crate) fn item_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Parses one YAML document into a tree. Returns `None` (with the problem recorded) on a syntax
/// error, an empty document, or more than one document.
pub(crate) fn parse(text: &str, problems: &mut Problems) -> Option<Node> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        match event {
            Ok((event, span)) => {
                if !builder.event(event, span, problems) {
                    return None;
                }
            }
            Err(err) => {
                let pos = Pos {
                    line: err.marker().line(),
                    column: err.marker().col() + 1,
                };
                problems.push(pos, "", format!("YAML syntax error: {}", err.info()));
                return None;
            }
        }
    }
    if builder.root.is_none() {
        problems.push(
            Pos::START,
            "",
            "the config is empty; expected a mapping with listen, upstreams and routes",
        );
    }
    builder.root
}

/// A collection being built.
#[derive(Debug)]
enum Frame {
    Seq {
        pos: Pos,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        entries: Vec<Entry>,
        /// The key waiting for its value; `Some(None)` when the key was invalid (value is dropped).
        key: Option<Option<(String, Pos)>>,
    },
}

#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
}

fn pos_of(span: Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// Deeper documents are refused: the later passes recurse, and a config needs a handful of levels.
const MAX_DEPTH: usize = 64;

/// The `!!` handle as saphyr-parser resolves it.
const CORE_TAG_HANDLE: &str = "tag:yaml.org,2002:";

impl Builder {
    /// Handles one event; returns false to stop parsing.
    fn event(&mut self, event: Event<'_>, span: Span, problems: &mut Problems) -> bool {
        let pos = pos_of(span);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    problems.push(
                        pos,
                        "",
                        "only one YAML document is allowed; remove the second `---`",
                    );
                    return false;
                }
            }
            Event::Scalar(text, style, _anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    _ => Style::Quoted,
                };
                let style = self.tagged(tag.as_deref(), style, pos, problems);
                let scalar = Scalar {
                    text: text.into_owned(),
                    style,
                    source: None,
                    failed: false,
                };
                self.add(
                    Node {
                        pos,
                        value: Value::Scalar(scalar),
                    },
                    problems,
                );
            }
            Event::Alias(_) => {
                problems.push(
                    pos,
                    "",
                    "YAML aliases (*name) are not supported; repeat the value instead",
                );
                let placeholder = Scalar {
                    text: String::new(),
                    style: Style::Plain,
                    source: None,
                    failed: true,
                };
                self.add(
                    Node {
                        pos,
                        value: Value::Scalar(placeholder),
                    },
                    problems,
                );
            }
            Event::SequenceStart(_, ref tag) | Event::MappingStart(_, ref tag) => {
                if self.stack.len() >= MAX_DEPTH {
                    let message = format!("the document is nested deeper than {MAX_DEPTH} levels");
                    problems.push(pos, "", message);
                    return false;
                }
                self.tagged(tag.as_deref(), Style::Plain, pos, problems);
                self.stack.push(match &event {
                    Event::SequenceStart(..) => Frame::Seq {
                        pos,
                        items: Vec::new(),
                    },
                    _ => Frame::Map {
                        pos,
                        entries: Vec::new(),
                        key: None,
                    },
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq { pos, items }) => Node {
                        pos,
                        value: Value::Seq(items),
                    },
                    Some(Frame::Map { pos, entries, .. }) => Node {
                        pos,
                        value: Value::Map(entries),
                    },
                    None => return true,
                };
                self.add(node, problems);
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        true
    }

    /// Applies a tag: `!!str` makes a scalar a string, other core tags are accepted as written,
    /// anything else is reported.
    fn tagged(&self, tag: Option<&Tag>, style: Style, pos: Pos, problems: &mut Problems) -> Style {
        match tag {
            None => style,
            Some(tag) if tag.handle == CORE_TAG_HANDLE && tag.suffix == "str" => Style::Quoted,
            Some(tag) if tag.handle == CORE_TAG_HANDLE => style,
            Some(tag) => {
                problems.push(
                    pos,
                    "",
                    format!(
                        "YAML tag {}{} is not supported; remove it",
                        tag.handle, tag.suffix
                    ),
                );
                style
            }
        }
    }

    /// Adds a finished node to the collection being built (or makes it the root).
    fn add(&mut self, node: Node, problems: &mut Problems) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    *key = Some(match node.value {
                        Value::Scalar(s) => Some((s.text, node.pos)),
                        _ => {
                            problems.push(
                                node.pos,
                                "",
                                "a mapping key must be a plain string, not a list or a mapping",
                            );
                            None
                        }
                    });
                }
                Some(None) => {}
                Some(Some((name, key_pos))) => {
                    if let Some(first) = entries.iter().find(|e| e.key == name) {
                        let message = format!(
                            "duplicate key {} (first defined at line {}); remove one of them",
                            quote(&name),
                            first.key_pos.line
                        );
                        problems.push(key_pos, "", message);
                    } else {
                        entries.push(Entry {
                            key: name,
                            key_pos,
                            value: node,
                        });
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        let mut problems = Problems::new("t");
        let node = parse(text, &mut problems);
        assert!(problems.is_empty(), "{:?}", problems.into_sorted());
        node.unwrap_or_else(|| panic!("no root"))
    }

    fn problems_of(text: &str) -> Vec<String> {
        let mut problems = Problems::new("t");
        parse(text, &mut problems);
        problems
            .into_sorted()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn scalar(node: &Node) -> &Scalar {
        match &node.value {
            Value::Scalar(s) => s,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based_line_and_column() {
        let root = parse_ok("a: 1\nb:\n  - x\n  - {c: 'd'}\n");
        let entry = |node: &Node, key: &str| match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.clone()),
            _ => None,
        };
        let item = |node: &Node, i: usize| match &node.value {
            Value::Seq(items) => items.get(i).cloned(),
            _ => None,
        };
        let pos = |node: Option<Node>| node.map(|n| n.pos);
        let b = entry(&root, "b");
        let b1 = b.as_ref().and_then(|b| item(b, 1));
        assert_eq!(root.pos, Pos { line: 1, column: 1 });
        assert_eq!(pos(entry(&root, "a")), Some(Pos { line: 1, column: 4 }));
        assert_eq!(
            pos(b.as_ref().and_then(|b| item(b, 0))),
            Some(Pos { line: 3, column: 5 })
        );
        assert_eq!(pos(b1.clone()), Some(Pos { line: 4, column: 5 }));
        assert_eq!(
            pos(b1.and_then(|b1| entry(&b1, "c"))),
            Some(Pos { line: 4, column: 9 })
        );
    }

    #[test]
    fn quoted_block_and_str_tagged_scalars_are_strings() {
        let root = parse_ok("a: 1\nb: '1'\nc: \"1\"\nd: |\n  1\ne: !!str 1\n");
        let Value::Map(entries) = &root.value else {
            panic!("not a map")
        };
        let styles: Vec<Style> = entries.iter().map(|e| scalar(&e.value).style).collect();
        assert_eq!(
            styles,
            [
                Style::Plain,
                Style::Quoted,
                Style::Quoted,
                Style::Quoted,
                Style::Quoted
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_reported_at_the_second_key() {
        assert_eq!(
            problems_of("a: 1\nb:\n  c: 1\n  c: 2\n"),
            ["t:4:3: duplicate key \"c\" (first defined at line 3); remove one of them"]
        );
    }

    #[test]
    fn aliases_are_rejected_and_parsing_goes_on() {
        assert_eq!(
            problems_of("a: &x 1\nb: *x\nc: [*x]\n"),
            [
                "t:2:4: YAML aliases (*name) are not supported; repeat the value instead",
                "t:3:5: YAML aliases (*name) are not supported; repeat the value instead",
            ]
        );
    }

    #[test]
    fn syntax_errors_report_their_position() {
        assert_eq!(
            problems_of("a: 1\n  b: 2\n"),
            ["t:2:4: YAML syntax error: mapping values are not allowed in this context"]
        );
        assert_eq!(
            problems_of("a: \"x\n"),
            ["t:1:4: YAML syntax error: while scanning a quoted scalar, found unexpected end of stream"]
        );
    }

    #[test]
    fn empty_and_multi_document_files_are_reported() {
        assert_eq!(
            problems_of("# nothing\n"),
            ["t:1:1: the config is empty; expected a mapping with listen, upstreams and routes"]
        );
        assert_eq!(
            problems_of("a: 1\n---\nb: 2\n"),
            ["t:2:1: only one YAML document is allowed; remove the second `---`"]
        );
    }

    #[test]
    fn custom_tags_and_complex_keys_are_reported() {
        assert_eq!(
            problems_of("a: !secret x\n? [k]\n: v\n"),
            [
                "t:1:4: YAML tag !secret is not supported; remove it",
                "t:2:3: a mapping key must be a plain string, not a list or a mapping",
            ]
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(
            problems_of(&deep),
            ["t:1:65: the document is nested deeper than 64 levels"]
        );
        let ok = format!("a: {}{}", "[".repeat(60), "]".repeat(60));
        assert!(problems_of(&ok).is_empty());
    }

    #[test]
    fn describe_never_prints_expanded_text() {
        let node = Node {
            pos: Pos::START,
            value: Value::Scalar(Scalar {
                text: "sk-secret".into(),
                style: Style::Plain,
                source: Some("${KEY}".into()),
                failed: false,
            }),
        };
        assert_eq!(node.describe(), "the expansion of \"${KEY}\"");
    }
}
