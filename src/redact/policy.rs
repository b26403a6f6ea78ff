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

/// A detector defined in configuration, beside the built-in ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Everything a [`Redactor`](super::Redactor) is built from. The gateway maps its YAML onto this.
///
/// A per-detector entry in `actions` replaces the category action of that detector in every
/// direction where its category is not [`Action::Off`]; a category that is off stays off.
#[derive(Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// Actions for requests (client → upstream).
    pub request: CategoryActions,
    /// Actions for responses (upstream → client).
    pub response: CategoryActions,
    /// Per-detector overrides, keyed by detector name (built-in or custom).
    pub actions: BTreeMap<String, Action>,
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
