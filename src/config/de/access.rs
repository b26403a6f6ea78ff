//! serde's access traits over mappings, lists and enum variants of the tree.

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use super::node::NodeDe;
use super::{DeError, Recorder};
use crate::config::suggest::closest;
use crate::config::tree::{child_path, item_path, quote, Entry, Node};

/// A mapping's entries; with `fields`, unknown keys are reported and skipped.
pub(super) struct MapDe<'a, 'p, 'x> {
    pub(super) all: &'a [Entry],
    pub(super) entries: std::slice::Iter<'a, Entry>,
    pub(super) fields: Option<&'static [&'static str]>,
    pub(super) path: &'x str,
    pub(super) rec: &'a Recorder<'p>,
    pub(super) value: Option<&'a Entry>,
}

impl MapDe<'_, '_, '_> {
    fn unknown_key(&self, entry: &Entry, fields: &[&str]) {
        let mut message = format!("unknown key {}", quote(&entry.key));
        if let Some(similar) = closest(&entry.key, fields.iter().copied()) {
            message.push_str(&format!(" (did you mean {}?)", quote(similar)));
            // A misspelt key also leaves the intended one missing: one message is enough.
            if !self.all.iter().any(|e| e.key == similar) {
                self.rec.quiet(&child_path(self.path, similar));
            }
        }
        if fields.is_empty() {
            message.push_str("; no keys are expected here");
        } else {
            message.push_str(&format!("; expected one of: {}", fields.join(", ")));
        }
        let path = child_path(self.path, &entry.key);
        self.rec.push(entry.key_pos, &path, message);
    }
}

impl<'de> MapAccess<'de> for MapDe<'_, '_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        while let Some(entry) = self.entries.next() {
            if let Some(fields) = self.fields {
                if !fields.contains(&entry.key.as_str()) {
                    self.unknown_key(entry, fields);
                    continue;
                }
            }
            self.value = Some(entry);
            let key: StrDeserializer<'_, DeError> = entry.key.as_str().into_deserializer();
            return seed.deserialize(key).map(Some).map_err(|mut e| {
                e.location
                    .get_or_insert_with(|| (entry.key_pos, child_path(self.path, &entry.key)));
                e
            });
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.value.take() else {
            return Err(de::Error::custom(
                "a mapping value was requested before its key",
            ));
        };
        seed.deserialize(NodeDe {
            node: &entry.value,
            path: child_path(self.path, &entry.key),
            rec: self.rec,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A list's items.
pub(super) struct SeqDe<'a, 'p, 'x> {
    pub(super) items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    pub(super) path: &'x str,
    pub(super) rec: &'a Recorder<'p>,
}

impl<'de> SeqAccess<'de> for SeqDe<'_, '_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((i, node)) = self.items.next() else {
            return Ok(None);
        };
        let item = NodeDe {
            node,
            path: item_path(self.path, i),
            rec: self.rec,
        };
        seed.deserialize(item).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// An enum written as a one-entry mapping: `variant: content`.
pub(super) struct VariantDe<'a, 'p, 'x> {
    pub(super) entry: &'a Entry,
    pub(super) parent: &'x NodeDe<'a, 'p>,
}

impl<'a, 'p> VariantDe<'a, 'p, '_> {
    fn content(&self) -> NodeDe<'a, 'p> {
        NodeDe {
            node: &self.entry.value,
            path: child_path(&self.parent.path, &self.entry.key),
            rec: self.parent.rec,
        }
    }
}

impl<'de, 'a, 'p, 'x> EnumAccess<'de> for VariantDe<'a, 'p, 'x> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self), DeError> {
        let key: StrDeserializer<'_, DeError> = self.entry.key.as_str().into_deserializer();
        let variant = seed.deserialize(key)?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for VariantDe<'_, '_, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        de::Deserialize::deserialize(self.content())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self.content())
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self.content(), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self.content(), "", fields, visitor)
    }
}

/// An empty list or mapping, substituted for a value of the wrong shape.
pub(super) struct Empty;

impl<'de> SeqAccess<'de> for Empty {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        _seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        Ok(None)
    }
}

impl<'de> MapAccess<'de> for Empty {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        _seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _seed: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom("an empty mapping has no values"))
    }
}
