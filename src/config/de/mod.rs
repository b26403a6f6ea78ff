//! A serde `Deserializer` over the positioned tree that records problems and keeps going.
//!
//! serde's own deserializers stop at the first error; ops want every problem at once. This one
//! records a problem (with position and key path) and substitutes a value of the requested type:
//! unknown struct keys are reported and skipped (`deserialize_struct` knows the field names), a
//! wrong type is reported and replaced by `0`, `false`, `""`, an empty list or an empty mapping.
//! Errors that still abort (a visitor's own error, such as a missing required field) carry the
//! position and path of the node being deserialized. The schema makes every field an `Option`
//! so that nothing aborts in practice; required keys are checked by validation.
//!
//! A struct requested under [`located::NAME`](crate::config::located::NAME) is a
//! [`Located`](crate::config::located::Located) value: it gets the node's position and
//! `${VAR}` facts as fields, then the node itself as its value (see `located.rs` here).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, Expected, Unexpected};

use super::error::{Pos, Problems};
use super::tree::Node;
use node::NodeDe;

mod access;
mod located;
mod node;
#[cfg(test)]
mod tests;

/// Deserializes `T` from the tree; every problem goes to `problems`.
///
/// Returns `None` only when an error aborted deserialization (it is recorded too).
pub(crate) fn from_tree<T: DeserializeOwned>(root: &Node, problems: &mut Problems) -> Option<T> {
    let recorder = Recorder {
        problems: RefCell::new(problems),
    };
    let root_de = NodeDe {
        node: root,
        path: String::new(),
        rec: &recorder,
    };
    match T::deserialize(root_de) {
        Ok(value) => Some(value),
        Err(err) => {
            if !err.reported {
                let (pos, path) = err.location.unwrap_or((root.pos, String::new()));
                recorder.push(pos, &path, err.message);
            }
            None
        }
    }
}

/// Where problems go while serde holds only shared references.
struct Recorder<'p> {
    problems: RefCell<&'p mut Problems>,
}

impl Recorder<'_> {
    fn push(&self, pos: Pos, path: &str, message: String) {
        self.problems.borrow_mut().push(pos, path, message);
    }

    fn quiet(&self, path: &str) {
        self.problems.borrow_mut().quiet(path);
    }
}

/// An error that aborts deserialization of the current value.
#[derive(Debug)]
pub(crate) struct DeError {
    message: String,
    /// Position and key path, filled in by the innermost node that sees the error.
    location: Option<(Pos, String)>,
    /// Already recorded as a problem (the error only unwinds a substitute value).
    reported: bool,
}

impl DeError {
    fn silenced(mut self) -> DeError {
        self.reported = true;
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            location: None,
            reported: false,
        }
    }

    // serde's default messages quote the value found; ours name only its kind (it may be secret).
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DeError::custom(format_args!("expected {exp}, found {}", kind_of(&unexp)))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DeError::custom(format_args!(
            "invalid value: expected {exp}, found {}",
            kind_of(&unexp)
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::custom(format_args!("missing required key `{field}`"))
    }
}

fn kind_of(unexp: &Unexpected<'_>) -> &'static str {
    match unexp {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "an integer",
        Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "an empty value",
        Unexpected::Seq => "a list",
        Unexpected::Map => "a mapping",
        _ => "another kind of value",
    }
}
