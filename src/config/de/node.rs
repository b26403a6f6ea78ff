//! Deserializing one node: typed scalars, and stand-ins for values of the wrong type.

use serde::de::value::StrDeserializer;
use serde::de::{self, IntoDeserializer, Visitor};

use super::access::{Empty, MapDe, SeqDe, VariantDe};
use super::located::LocatedDe;
use super::{DeError, Recorder};
use crate::config::located;
use crate::config::scalar::{resolve, Plain};
use crate::config::suggest::closest;
use crate::config::tree::{is_null, quote, Entry, Node, Scalar, Style, Value};

/// Deserializes one node.
pub(super) struct NodeDe<'a, 'p> {
    pub(super) node: &'a Node,
    pub(super) path: String,
    pub(super) rec: &'a Recorder<'p>,
}

impl<'a, 'p> NodeDe<'a, 'p> {
    /// Reports a problem with this value, which gets a stand-in: validation stays quiet about it.
    fn record(&self, message: String) {
        if !self.node.failed() {
            self.rec.push(self.node.pos, &self.path, message);
        }
        self.rec.quiet(&self.path);
    }

    /// Records "expected X, found Y", with a hint for quoted numbers and booleans.
    fn mismatch(&self, expected: &str) {
        let mut message = format!("expected {expected}, found {}", self.node.describe());
        if let Some(number) = self.number_with_unit() {
            let key = self.path.rsplit('.').next().unwrap_or_default();
            message.push_str(&format!(
                "; it takes a number alone, the window is in its name: {key}: {number}"
            ));
            self.record(message);
            return;
        }
        if let Some(s) = self.scalar() {
            let typed = !matches!(resolve(&s.text), Plain::Str(_) | Plain::Null);
            if s.style == Style::Quoted && s.source.is_none() && typed {
                message.push_str(" (remove the quotes)");
            }
        }
        self.record(message);
    }

    fn locate(&self, mut err: DeError) -> DeError {
        if err.location.is_none() {
            err.location = Some((self.node.pos, self.path.clone()));
        }
        err
    }

    fn scalar(&self) -> Option<&'a Scalar> {
        match &self.node.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The plain scalar's typed value; quoted scalars are always strings.
    fn plain(&self) -> Option<Plain<'a>> {
        match self.scalar() {
            Some(s) if s.style == Style::Plain => Some(resolve(&s.text)),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.plain(), Some(Plain::Null))
    }

    /// The integer in `min..=max`, or 0 with a problem recorded.
    fn integer(&self, min: i128, max: i128) -> i128 {
        match self.plain() {
            Some(Plain::Int(n)) if (min..=max).contains(&n) => n,
            Some(Plain::Int(_)) => {
                self.record(format!(
                    "expected an integer from {min} to {max}, found {}",
                    self.node.describe()
                ));
                0
            }
            _ => {
                self.mismatch("an integer");
                0
            }
        }
    }

    /// For a budget such as `requests_per_minute: '600/min'`, where the window is already in
    /// the key's name: the number to write instead (`600`).
    fn number_with_unit(&self) -> Option<&'a str> {
        let key = self.path.rsplit('.').next()?;
        if !key.contains("_per_") {
            return None;
        }
        let text = self.scalar()?.text.trim();
        let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        (digits > 0 && digits < text.len()).then(|| &text[..digits])
    }

    fn float(&self) -> f64 {
        match self.plain() {
            Some(Plain::Float(f)) => f,
            // Precision loss is fine: configs hold small numbers.
            Some(Plain::Int(n)) => n as f64,
            _ => {
                self.mismatch("a number");
                0.0
            }
        }
    }

    fn string(&self) -> &'a str {
        match self.scalar() {
            Some(s) if !(s.style == Style::Plain && is_null(&s.text)) => &s.text,
            _ => {
                self.mismatch("a string");
                ""
            }
        }
    }

    fn map<'x>(
        &'x self,
        entries: &'a [Entry],
        fields: Option<&'static [&'static str]>,
    ) -> MapDe<'a, 'p, 'x> {
        MapDe {
            all: entries,
            entries: entries.iter(),
            fields,
            path: &self.path,
            rec: self.rec,
            value: None,
        }
    }

    fn seq<'x>(&'x self, items: &'a [Node]) -> SeqDe<'a, 'p, 'x> {
        SeqDe {
            items: items.iter().enumerate(),
            path: &self.path,
            rec: self.rec,
        }
    }
}

macro_rules! deserialize_integer {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n = self.integer(i128::from(<$ty>::MIN), i128::from(<$ty>::MAX));
            let n = <$ty>::try_from(n).unwrap_or_default();
            visitor.$visit(n).map_err(|e| self.locate(e))
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Map(entries) => visitor.visit_map(self.map(entries, None)),
            Value::Seq(items) => visitor.visit_seq(self.seq(items)),
            Value::Scalar(s) => match self.plain() {
                None => visitor.visit_str(&s.text),
                Some(Plain::Null) => visitor.visit_unit(),
                Some(Plain::Bool(b)) => visitor.visit_bool(b),
                Some(Plain::Int(n)) => match (u64::try_from(n), i64::try_from(n)) {
                    (Ok(u), _) => visitor.visit_u64(u),
                    (_, Ok(i)) => visitor.visit_i64(i),
                    _ => visitor.visit_str(&s.text),
                },
                Some(Plain::Float(f)) => visitor.visit_f64(f),
                Some(Plain::Str(text)) => visitor.visit_str(text),
            },
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let b = match self.plain() {
            Some(Plain::Bool(b)) => b,
            _ => {
                self.mismatch("true or false");
                false
            }
        };
        visitor.visit_bool(b).map_err(|e| self.locate(e))
    }

    deserialize_integer!(deserialize_i8, visit_i8, i8);
    deserialize_integer!(deserialize_i16, visit_i16, i16);
    deserialize_integer!(deserialize_i32, visit_i32, i32);
    deserialize_integer!(deserialize_i64, visit_i64, i64);
    deserialize_integer!(deserialize_u8, visit_u8, u8);
    deserialize_integer!(deserialize_u16, visit_u16, u16);
    deserialize_integer!(deserialize_u32, visit_u32, u32);
    deserialize_integer!(deserialize_u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let f = self.float() as f32;
        visitor.visit_f32(f).map_err(|e| self.locate(e))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let f = self.float();
        visitor.visit_f64(f).map_err(|e| self.locate(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.string();
        let mut chars = text.chars();
        let c = match (chars.next(), chars.next()) {
            (Some(c), None) => c,
            _ => {
                if !text.is_empty() {
                    self.mismatch("a single character");
                }
                ' '
            }
        };
        visitor.visit_char(c).map_err(|e| self.locate(e))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.string();
        visitor.visit_str(text).map_err(|e| self.locate(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.string();
        visitor
            .visit_bytes(text.as_bytes())
            .map_err(|e| self.locate(e))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_null() {
            visitor.visit_none().map_err(|e| self.locate(e))
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if !self.is_null() {
            self.mismatch("an empty value");
        }
        visitor.visit_unit().map_err(|e| self.locate(e))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => visitor
                .visit_seq(self.seq(items))
                .map_err(|e| self.locate(e)),
            _ => {
                self.mismatch("a list (like [a, b])");
                visitor.visit_seq(Empty).map_err(DeError::silenced)
            }
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(entries) => visitor
                .visit_map(self.map(entries, None))
                .map_err(|e| self.locate(e)),
            _ => {
                self.mismatch("a mapping");
                visitor.visit_map(Empty).map_err(DeError::silenced)
            }
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == located::NAME {
            return visitor.visit_map(LocatedDe::new(self));
        }
        match &self.node.value {
            Value::Map(entries) => visitor
                .visit_map(self.map(entries, Some(fields)))
                .map_err(|e| self.locate(e)),
            _ => {
                self.mismatch(&format!("a mapping with keys {}", fields.join(", ")));
                visitor.visit_map(Empty).map_err(DeError::silenced)
            }
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let expected = format!("one of: {}", variants.join(", "));
        match (&self.node.value, self.is_null()) {
            (Value::Scalar(s), false) => {
                if variants.contains(&s.text.as_str()) {
                    let variant: StrDeserializer<'_, DeError> = s.text.as_str().into_deserializer();
                    return visitor.visit_enum(variant).map_err(|e| self.locate(e));
                }
                let mut message = format!("unknown value {}", self.node.describe());
                if let Some(similar) = closest(&s.text, variants.iter().copied()) {
                    message.push_str(&format!(" (did you mean {}?)", quote(similar)));
                }
                self.record(format!("{message}; expected {expected}"));
            }
            (Value::Map(entries), _) if entries.len() == 1 => {
                let access = VariantDe {
                    entry: &entries[0],
                    parent: &self,
                };
                return visitor.visit_enum(access).map_err(|e| self.locate(e));
            }
            _ => self.mismatch(&expected),
        }
        // Substitute the first variant so the rest of the document is still checked.
        let first = variants.first().copied().unwrap_or_default();
        let variant: StrDeserializer<'_, DeError> = first.into_deserializer();
        visitor.visit_enum(variant).map_err(DeError::silenced)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}
