//! The gateway's configuration: YAML in, a validated [`Config`] out, or every problem at once.
//!
//! Loading runs in stages, each in its own file:
//!
//! 1. `tree`: saphyr-parser events → a small tree of nodes that keep their line and column
//!    (syntax errors, duplicate keys, aliases and tags are reported here);
//! 2. `expand`: `${VAR}` and `${VAR:-default}` in every scalar value, per scalar so a value can
//!    never change the document's structure; a changed scalar keeps its source text, a failed
//!    one is marked;
//! 3. `de`: a serde deserializer over the tree into the raw `schema` that records problems
//!    (unknown keys, wrong types) and keeps going instead of stopping at the first. Schema
//!    values whose problems are reported later are `located::Located`: the deserializer fills
//!    in their node's position and expansion facts, so positions travel with the values;
//! 4. `validate` (one file per domain: upstreams, routes, keys, redaction, limits, telemetry,
//!    prices): semantic checks (unknown upstreams, urls, durations, globs, duplicate route
//!    names) that build the runtime model ([`Config`]) the proxy uses. Each problem is
//!    reported at the position its value carries, or, for a missing required key, at the
//!    mapping that should hold it; key paths are built along the way for the messages.
//!
//! Every problem is reported as `file:line:column: key.path: message`, sorted by position.
//! Messages never contain secrets: API keys are never shown, and a value that came from `${VAR}`
//! is named by what was written in the file, not by what it expanded to.

mod base_url;
pub(crate) mod de;
mod duration;
pub(crate) mod error;
mod expand;
mod located;
mod model;
mod scalar;
mod schema;
mod suggest;
pub(crate) mod tree;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use duration::{parse_duration, DurationError};
pub use error::{display_problems, ConfigError, Problem};
pub use model::*;

use error::Problems;
use located::Located;

/// Reads the file at `path`, expands `${VAR}` from the process environment, and validates it.
///
/// # Errors
///
/// [`ConfigError::Io`] when the file cannot be read (or is not UTF-8), and
/// [`ConfigError::Invalid`] listing every problem found, each with the file's path, line and
/// column.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: origin.clone(),
        source,
    })?;
    load_str(&text, &origin, &|name| std::env::var(name).ok())
}

/// Parses and validates a price table (the format of `conf/prices.yaml`): its `taken:` date
/// and its entries.
///
/// # Errors
///
/// [`ConfigError::Invalid`] listing every problem found, sorted by position.
pub fn load_price_file(
    text: &str,
    origin: &str,
) -> Result<(String, Vec<crate::spend::PriceEntry>), ConfigError> {
    let mut problems = Problems::new(origin);
    let table = tree::parse(text, &mut problems).and_then(|root| {
        let raw: Located<schema::RawPriceFile> = de::from_tree(&root, &mut problems)?;
        validate::validate_price_file(raw, &mut problems)
    });
    finish(table, problems, "price table")
}

/// The loaded value, or every problem found. Never success without a value, nor failure
/// without a reason (unreachable in practice: every `None` records why).
fn finish<T>(value: Option<T>, mut problems: Problems, what: &str) -> Result<T, ConfigError> {
    match value {
        Some(value) if problems.is_empty() => Ok(value),
        _ => {
            if problems.is_empty() {
                let origin = problems.origin().to_owned();
                problems.push(
                    error::Pos::START,
                    "",
                    format!("{origin} is not a valid {what}"),
                );
            }
            Err(ConfigError::Invalid(problems.into_sorted()))
        }
    }
}

/// Parses and validates config `text`. `origin` names it in messages (usually the file path);
/// `env` looks up `${VAR}` values (inject a fake in tests).
///
/// # Errors
///
/// [`ConfigError::Invalid`] listing every problem found, sorted by position.
pub fn load_str(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut problems = Problems::new(origin);
    let config = tree::parse(text, &mut problems).and_then(|mut root| {
        expand::expand_tree(&mut root, "", env, &mut problems);
        let raw: Located<schema::RawConfig> = de::from_tree(&root, &mut problems)?;
        validate::validate(raw, &mut problems)
    });
    finish(config, problems, "config")
}
