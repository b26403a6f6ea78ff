//! `${VAR}` expansion in scalar values.
//!
//! Expansion runs per scalar on the parsed tree, so a value can never change the YAML structure;
//! the expanded text is then typed as if it had been written there (`${MAX:-1024}` is an integer
//! when plain). Keys are never expanded.
//!
//! Syntax: `${NAME}` (an error when unset), `${NAME:-default}` (the default when unset or
//! empty; it may be empty, and is taken literally up to the first `}`), `$$` for a literal `$`.
//! A `$` followed by anything else is kept as is.

use super::error::Problems;
use super::tree::{child_path, item_path, quote, Node, Value};

/// Looks an environment variable up; injectable so tests need no real environment.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands every scalar value in the tree, reporting each failure at its scalar's position.
///
/// A failed scalar keeps its source text and is marked failed so later stages do not report it
/// again.
pub(crate) fn expand_tree(node: &mut Node, path: &str, env: Env<'_>, problems: &mut Problems) {
    match &mut node.value {
        Value::Scalar(scalar) => {
            if !scalar.text.contains('$') {
                return;
            }
            match expand(&scalar.text, env) {
                Ok(expanded) => {
                    if expanded != scalar.text {
                        let source = std::mem::replace(&mut scalar.text, expanded);
                        scalar.source = Some(source);
                    }
                }
                Err(errors) => {
                    for message in errors {
                        problems.push(node.pos, path, message);
                    }
                    problems.quiet(path);
                    scalar.failed = true;
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &item_path(path, i), env, problems);
            }
        }
        Value::Map(entries) => {
            for entry in entries {
                expand_tree(
                    &mut entry.value,
                    &child_path(path, &entry.key),
                    env,
                    problems,
                );
            }
        }
    }
}

/// Expands `${NAME}`, `${NAME:-default}` and `$$` in `text`.
///
/// # Errors
///
/// Returns one message per unset variable without a default, bad name or unterminated `${`.
/// Messages name the variable, never its value.
pub(crate) fn expand(text: &str, env: Env<'_>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                errors.push(format!(
                    "unterminated {} (missing `}}`); write ${{NAME}} or ${{NAME:-default}}, or $$ for a literal $",
                    quote(&rest[dollar..])
                ));
                rest = "";
                break;
            };
            match lookup(&body[..close], env) {
                Ok(value) => out.push_str(&value),
                Err(message) => errors.push(message),
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Resolves the inside of one `${…}`.
fn lookup(reference: &str, env: Env<'_>) -> Result<String, String> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    if !is_variable_name(name) {
        return Err(format!(
            "invalid variable reference ${{{reference}}}; write ${{NAME}} or ${{NAME:-default}} \
             (NAME: letters, digits, _), or $$ for a literal $"
        ));
    }
    match (env(name), default) {
        (Some(value), None) => Ok(value),
        (Some(value), Some(_)) if !value.is_empty() => Ok(value),
        (_, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(format!("${{{name}}} is not set and has no default")),
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            "KEY" => Some("sk-secret".into()),
            _ => None,
        }
    }

    fn ok(text: &str) -> String {
        expand(text, &env).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn err(text: &str) -> Vec<String> {
        match expand(text, &env) {
            Ok(v) => panic!("{text} expanded to {v}"),
            Err(e) => e,
        }
    }

    #[test]
    fn variables_and_defaults() {
        assert_eq!(ok("https://${HOST}/v1"), "https://example.com/v1");
        assert_eq!(ok("${HOST:-other}"), "example.com");
        assert_eq!(ok("${UNSET:-fallback}"), "fallback");
        assert_eq!(ok("${EMPTY:-fallback}"), "fallback");
        assert_eq!(ok("${UNSET:-}"), "");
        assert_eq!(ok("${EMPTY}"), "");
        assert_eq!(ok("${UNSET:-a:-b}"), "a:-b");
        assert_eq!(ok("${HOST}${HOST}"), "example.comexample.com");
    }

    #[test]
    fn dollars() {
        assert_eq!(ok("$$"), "$");
        assert_eq!(ok("cost: $$5 and $$${HOST}"), "cost: $5 and $example.com");
        assert_eq!(ok("$$${UNSET:-x}"), "$x");
        assert_eq!(ok("a $ b $5 $"), "a $ b $5 $");
        assert_eq!(ok("$${HOST}"), "${HOST}");
    }

    #[test]
    fn unset_without_default_names_the_variable() {
        assert_eq!(
            err("${CHECKOUT_WEB_KEY}"),
            ["${CHECKOUT_WEB_KEY} is not set and has no default"]
        );
        assert_eq!(err("${A}-${KEY}-${B}").len(), 2);
    }

    #[test]
    fn bad_references() {
        assert_eq!(
            err("${}"),
            ["invalid variable reference ${}; write ${NAME} or ${NAME:-default} (NAME: letters, digits, _), or $$ for a literal $"]
        );
        assert_eq!(err("${1X}").len(), 1);
        assert_eq!(err("${A:?msg}").len(), 1);
        assert_eq!(
            err("x ${HOST"),
            ["unterminated \"${HOST\" (missing `}`); write ${NAME} or ${NAME:-default}, or $$ for a literal $"]
        );
    }

    #[test]
    fn errors_never_contain_values() {
        for text in ["${KEY} ${NOPE}", "${KEY}${"] {
            for message in err(text) {
                assert!(!message.contains("sk-secret"), "{message}");
            }
        }
    }
}
