//! A node handed to [`Located`](crate::config::located::Located): its position and expansion
//! facts as the reserved struct's fields, then the node itself as `value`.

use serde::de::value::{BoolDeserializer, StrDeserializer, UsizeDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess};

use super::node::NodeDe;
use super::DeError;
use crate::config::tree::Value;

/// The fields of a located node, handed over one by one.
pub(super) struct LocatedDe<'a, 'p> {
    /// The node, handed over as the last field.
    node: Option<NodeDe<'a, 'p>>,
    /// The fields still to hand over, last first.
    fields: Vec<&'static str>,
    /// The field whose key was just handed over.
    current: Option<&'static str>,
}

impl<'a, 'p> LocatedDe<'a, 'p> {
    /// The fields of `node`: `source` only when `${VAR}` expansion changed its scalar.
    pub(super) fn new(node: NodeDe<'a, 'p>) -> Self {
        let has_source = matches!(&node.node.value, Value::Scalar(s) if s.source.is_some());
        let mut fields = vec!["value", "failed"];
        if has_source {
            fields.push("source");
        }
        fields.extend(["column", "line"]);
        LocatedDe {
            node: Some(node),
            fields,
            current: None,
        }
    }
}

impl<'de> MapAccess<'de> for LocatedDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(field) = self.fields.pop() else {
            return Ok(None);
        };
        self.current = Some(field);
        let key: StrDeserializer<'_, DeError> = field.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (Some(field), Some(node)) = (self.current.take(), self.node.as_ref()) else {
            return Err(de::Error::custom(
                "a located value was requested before its key",
            ));
        };
        let tree_node = node.node;
        match field {
            "line" => seed.deserialize(UsizeDeserializer::new(tree_node.pos.line)),
            "column" => seed.deserialize(UsizeDeserializer::new(tree_node.pos.column)),
            "failed" => seed.deserialize(BoolDeserializer::new(tree_node.failed())),
            "source" => {
                let source = match &tree_node.value {
                    Value::Scalar(s) => s.source.as_deref().unwrap_or_default(),
                    _ => "",
                };
                let source: StrDeserializer<'_, DeError> = source.into_deserializer();
                seed.deserialize(source)
            }
            _ => match self.node.take() {
                Some(node) => seed.deserialize(node),
                None => Err(de::Error::custom("a located value was requested twice")),
            },
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len())
    }
}
