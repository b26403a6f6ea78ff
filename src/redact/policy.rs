//! The policy vocabulary: directions, categories, actions, and the spec a [`Redactor`] is built
//! from.
//!
//! [`Redactor`]: super::Redactor

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Which way text travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client → upstream.
    Request,
    /// Upstream → client.
    Response,
}

impl Direction {
    /// `"request"` or `"response"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of value a detector finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Credentials: API keys, tokens, private keys, passwords.
    Secret,
    /// Personal data: e-mail addresses, phone numbers, card numbers, SSNs, IBANs.
    Pii,
}

impl Category {
    /// `"secret"` or `"pii"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Secret => "secret",
            Category::Pii => "pii",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a detected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Leave it; the detector does not run.
    Off,
    /// Replace it with `[REDACTED:<detector>]`.
    Redact,
    /// Keep the last 4 characters, replace the others with `*`. Values shorter than 8
    /// characters are masked entirely: their last 4 would reveal most of them.
    Mask,
    /// Replace it with `[HASH:<detector>:<12 hex>]`, the first 6 bytes of HMAC-SHA256 keyed by
    /// the policy's `hash_key`: the same value always gives the same tag.
    Hash,
    /// Refuse: the call fails with [`RedactError::Blocked`](super::RedactError::Blocked), which
    /// names the detector and never the value.
    Block,
    /// Replace it with a placeholder such as `<EMAIL_1>` (the same value gets the same
    /// placeholder within a request) and turn placeholders in the response back into the
    /// originals.
    Pseudonymize,
}

impl Action {
    /// The lowercase name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::Redact => "redact",
            Action::Mask => "mask",
            Action::Hash => "hash",
            Action::Block => "block",
            Action::Pseudonymize => "pseudonymize",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The action for each category in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryActions {
    /// Action for [`Category::Secret`] detectors.
    pub secrets: Action,
    /// Action for [`Category::Pii`] detectors.
    pub pii: Action,
}

impl CategoryActions {
    /// The action for `category`.
    pub fn get(&self, category: Category) -> Action {
        match category {
            Category::Secret => self.secrets,
            Category::Pii => self.pii,
        }
    }
}

/// A detector defined in configuration, beside the built-in ones. The built-in catalogue
/// (`builtin/catalogue.yaml`) declares its detectors with the same keys, plus a few only
/// built-ins have (a hand-written matcher, a replaced capture group, a named check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomDetectorSpec {
    /// Lowercase `[a-z][a-z0-9_]*`, at most 48 characters; appears in replacements
    /// (`[REDACTED:<name>]`, `<NAME_1>`), counts and errors. Must not shadow a built-in.
    pub name: String,
    /// A [`regex`](https://docs.rs/regex) pattern. It must not match the empty string.
    pub pattern: String,
    /// Which category's action applies.
    pub category: Category,
    /// The longest value the pattern can match, in bytes (default 64, at most 16 KiB). A longer
    /// match is redacted up to this length only. It also bounds how much streamed text may be
    /// held back for this detector: patterns that start with a literal (`EMP-\d{6}`) hold back
    /// text only after that literal, other patterns always hold back `max_len` bytes.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// Literals every match contains (case-sensitive), as gitleaks' `keywords`: the pattern
    /// runs only around them. Default: the literals every match starts with, derived from
    /// the pattern; a pattern with neither runs everywhere.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The least Shannon entropy (bits per byte, 0–8) of a value: lower ones (`xxxxxxxx`,
    /// `12341234`) are left alone.
    #[serde(default)]
    pub entropy: Option<f64>,
    /// Texts the detector must and must not find something in; checked whenever the policy
    /// is built (`veilgate check`, start, reload).
    #[serde(default)]
    pub examples: Examples,
}

impl CustomDetectorSpec {
    /// A detector with no keywords, entropy floor or examples.
    pub fn new(name: &str, pattern: &str, category: Category) -> CustomDetectorSpec {
        CustomDetectorSpec {
            name: name.to_owned(),
            pattern: pattern.to_owned(),
            category,
            max_len: None,
            keywords: Vec::new(),
            entropy: None,
            examples: Examples::default(),
        }
    }
}

/// A detector's examples: its unit tests, written beside its pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Examples {
    /// Texts the detector must find a value in.
    #[serde(default, rename = "match")]
    pub matches: Vec<Example>,
    /// Texts the detector must find nothing in.
    #[serde(default)]
    pub no_match: Vec<Text>,
}

/// A text the detector must find a value in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Example {
    /// The whole text is the value.
    Whole(Text),
    /// The value found in `text` must be exactly `value`.
    In {
        /// The text searched.
        text: Text,
        /// The value the detector must replace.
        value: Text,
    },
}

impl Example {
    /// The text searched and the value expected in it.
    pub fn text_and_value(&self) -> (String, String) {
        match self {
            Example::Whole(t) => (t.joined(), t.joined()),
            Example::In { text, value } => (text.joined(), value.joined()),
        }
    }
}

/// A string, or a list of strings joined without a separator: test tokens can be written in
/// pieces, so that secret scanners do not flag the file that holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Text {
    /// One string.
    One(String),
    /// Pieces to join.
    Pieces(Vec<String>),
}

impl Text {
    /// The text.
    pub fn joined(&self) -> String {
        match self {
            Text::One(s) => s.clone(),
            Text::Pieces(p) => p.concat(),
        }
    }
}

/// Reads a [`Text`], or (`with_value`) an [`Example`]: written by hand so that a YAML number
/// or boolean is refused with a message that says to quote it (as text it could lose its
/// leading zeros) instead of serde's "no variant matched".
struct ExampleVisitor {
    with_value: bool,
}

impl<'de> serde::de::Visitor<'de> for ExampleVisitor {
    type Value = Example;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.with_value {
            "a string, a list of strings, or a mapping with `text` and `value`"
        } else {
            "a string or a list of strings"
        })
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Example, E> {
        Ok(Example::Whole(Text::One(v.to_owned())))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Example, E> {
        Err(quote_it("a number"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Example, E> {
        Err(quote_it("a number"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Example, E> {
        Err(quote_it("a number"))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Example, E> {
        Err(quote_it("a boolean"))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Example, A::Error> {
        let mut pieces = Vec::new();
        while let Some(piece) = seq.next_element::<TextDe>()? {
            match piece.0 {
                Text::One(s) => pieces.push(s),
                Text::Pieces(_) => {
                    return Err(serde::de::Error::custom("a piece is a string, not a list"))
                }
            }
        }
        Ok(Example::Whole(Text::Pieces(pieces)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Example, A::Error> {
        if !self.with_value {
            return Err(serde::de::Error::custom(
                "a no_match example is a string or a list of strings",
            ));
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct In {
            text: TextDe,
            value: TextDe,
        }
        let i = In::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Example::In {
            text: i.text.0,
            value: i.value.0,
        })
    }
}

/// The error for an example YAML reads as `what` (a number, a boolean) rather than text.
fn quote_it<E: serde::de::Error>(what: &str) -> E {
    E::custom(format!("write the example in quotes: it is read as {what}"))
}

/// A [`Text`] as read (see [`ExampleVisitor`]).
struct TextDe(Text);

impl<'de> Deserialize<'de> for TextDe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(ExampleVisitor { with_value: false })? {
            Example::Whole(t) => Ok(TextDe(t)),
            Example::In { .. } => Err(serde::de::Error::custom("expected text")),
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TextDe::deserialize(d).map(|t| t.0)
    }
}

impl<'de> Deserialize<'de> for Example {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ExampleVisitor { with_value: true })
    }
}

/// A per-detector action: one for both directions, or one per direction (a direction not
/// named keeps its category's action). Written `mask` or `{request: mask, response: off}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DetectorActions {
    /// For requests; `None`: the category's.
    pub request: Option<Action>,
    /// For responses; `None`: the category's.
    pub response: Option<Action>,
}

impl<'de> Deserialize<'de> for DetectorActions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The per-direction form.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PerDirection {
            #[serde(default)]
            request: Option<Action>,
            #[serde(default)]
            response: Option<Action>,
        }

        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = DetectorActions;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an action, or a mapping with `request` and/or `response` actions")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DetectorActions, E> {
                use serde::de::IntoDeserializer;
                Action::deserialize(v.into_deserializer()).map(DetectorActions::both)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<DetectorActions, A::Error> {
                let p =
                    PerDirection::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(DetectorActions {
                    request: p.request,
                    response: p.response,
                })
            }
        }

        d.deserialize_any(Visitor)
    }
}

impl DetectorActions {
    /// `action` both ways.
    pub fn both(action: Action) -> DetectorActions {
        DetectorActions {
            request: Some(action),
            response: Some(action),
        }
    }

    /// The action for `direction`, if this names one.
    pub fn get(&self, direction: Direction) -> Option<Action> {
        match direction {
            Direction::Request => self.request,
            Direction::Response => self.response,
        }
    }

    /// `self` with the directions `over` names replaced.
    pub fn merged(self, over: DetectorActions) -> DetectorActions {
        DetectorActions {
            request: over.request.or(self.request),
            response: over.response.or(self.response),
        }
    }
}

/// Everything a [`Redactor`](super::Redactor) is built from. The gateway maps its YAML onto this.
///
/// A per-detector entry in `actions` replaces the category action of that detector in the
/// directions it names, whatever the category's action there: `email: mask` masks e-mail
/// addresses even where personal data is off, and `phone: off` turns one detector off.
#[derive(Clone, PartialEq)]
pub struct PolicySpec {
    /// Actions for requests (client → upstream).
    pub request: CategoryActions,
    /// Actions for responses (upstream → client).
    pub response: CategoryActions,
    /// Per-detector overrides, keyed by detector name (built-in or custom).
    pub actions: BTreeMap<String, DetectorActions>,
    /// Custom detectors, checked after the built-in ones.
    pub detectors: Vec<CustomDetectorSpec>,
    /// Literals never redacted: a match whose value (or whole match) equals one is left as is.
    pub allow: Vec<String>,
    /// Key for [`Action::Hash`]; required (non-empty) when any action is `hash`.
    pub hash_key: Vec<u8>,
}

impl Default for PolicySpec {
    /// Secrets redacted both ways, personal data left alone both ways.
    fn default() -> Self {
        let actions = CategoryActions {
            secrets: Action::Redact,
            pii: Action::Off,
        };
        PolicySpec {
            request: actions,
            response: actions,
            actions: BTreeMap::new(),
            detectors: Vec::new(),
            allow: Vec::new(),
            hash_key: Vec::new(),
        }
    }
}

impl PolicySpec {
    /// The actions for `direction`.
    pub fn direction(&self, direction: Direction) -> CategoryActions {
        match direction {
            Direction::Request => self.request,
            Direction::Response => self.response,
        }
    }
}

impl fmt::Debug for PolicySpec {
    /// The hash key and the allow-list are not printed: both may be sensitive.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySpec")
            .field("request", &self.request)
            .field("response", &self.response)
            .field("actions", &self.actions)
            .field("detectors", &self.detectors)
            .field("allow", &format_args!("<{} literals>", self.allow.len()))
            .field("hash_key", &format_args!("<{} bytes>", self.hash_key.len()))
            .finish()
    }
}

/// Why a [`PolicySpec`] cannot become a [`Redactor`](super::Redactor).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `actions` names a detector that does not exist.
    #[error("unknown detector `{name}` in redaction actions")]
    UnknownDetector {
        /// The name as written.
        name: String,
    },
    /// A custom detector's name is not `[a-z][a-z0-9_]*` (at most 48 characters).
    #[error("invalid detector name `{name}`: use lowercase letters, digits and `_`, starting with a letter")]
    InvalidName {
        /// The name as written.
        name: String,
    },
    /// Two detectors share a name, or a custom one shadows a built-in.
    #[error("duplicate detector name `{name}`")]
    DuplicateDetector {
        /// The repeated name.
        name: String,
    },
    /// A custom pattern does not compile.
    #[error("detector `{detector}`: invalid pattern: {reason}")]
    InvalidPattern {
        /// The detector's name.
        detector: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// A custom pattern matches the empty string.
    #[error("detector `{detector}`: pattern matches the empty string")]
    EmptyMatch {
        /// The detector's name.
        detector: String,
    },
    /// A custom detector's `max_len` is 0 or above 16 KiB.
    #[error("detector `{detector}`: max_len must be between 1 and 16384")]
    InvalidMaxLen {
        /// The detector's name.
        detector: String,
    },
    /// An action is `hash` but `hash_key` is empty.
    #[error("redaction action `hash` needs a non-empty hash_key")]
    MissingHashKey,
    /// An `allow` entry is empty.
    #[error("redaction allow-list entries must not be empty")]
    EmptyAllowEntry,
    /// A custom detector's `keywords` has an empty entry, or its `entropy` is outside 0–8.
    #[error("detector `{detector}`: {reason}")]
    InvalidSpec {
        /// The detector's name.
        detector: String,
        /// What is wrong, without the pattern or any example.
        reason: String,
    },
    /// A detector's example is not found, or is found where it must not be. The message names
    /// the example by its place in the list, never its text (it may be a real value).
    #[error("detector `{detector}`: example {example} {reason}")]
    ExampleFailed {
        /// The detector's name.
        detector: String,
        /// `match[2]` or `no_match[0]`.
        example: String,
        /// What went wrong.
        reason: String,
    },
    /// A built-in detector failed to compile: a bug in this crate.
    #[error("internal error building built-in detectors: {reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_secrets_redacted_pii_off_both_ways() {
        let spec = PolicySpec::default();
        for dir in [Direction::Request, Direction::Response] {
            assert_eq!(spec.direction(dir).get(Category::Secret), Action::Redact);
            assert_eq!(spec.direction(dir).get(Category::Pii), Action::Off);
        }
    }

    #[test]
    fn serde_names_are_lowercase() {
        let a: Action = serde_json::from_str("\"pseudonymize\"").unwrap();
        assert_eq!(a, Action::Pseudonymize);
        let c: Category = serde_json::from_str("\"pii\"").unwrap();
        assert_eq!(c, Category::Pii);
        assert_eq!(
            serde_json::to_string(&Direction::Response).unwrap(),
            "\"response\""
        );
        let ca: CategoryActions =
            serde_json::from_str(r#"{"secrets":"redact","pii":"off"}"#).unwrap();
        assert_eq!(ca.pii, Action::Off);
    }

    #[test]
    fn debug_hides_key_and_allow_list() {
        let spec = PolicySpec {
            allow: vec!["sk-live-allowed-literal".into()],
            hash_key: b"super-secret-hash-key".to_vec(),
            ..PolicySpec::default()
        };
        let dbg = format!("{spec:?}");
        assert!(!dbg.contains("super-secret-hash-key"));
        assert!(!dbg.contains("sk-live-allowed-literal"));
        assert!(dbg.contains("<1 literals>"));
    }
}
