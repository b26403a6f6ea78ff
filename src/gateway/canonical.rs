//! Canonical request paths: a path that a server could read as another path is refused before
//! it is authenticated or routed.
//!
//! A `paths:` route matches a prefix and forwards the path as it is. Were
//! `/v1/files/../chat/completions` forwarded, an upstream that resolves `..` would serve a
//! chat completion that was never redacted, never checked against the key's models and never
//! charged. So any path a server could normalise into a different one is refused: dot
//! segments (plain or percent-encoded), encoded slashes and backslashes, literal backslashes
//! (some servers read them as `/`), empty segments (`//`, which some collapse) and NUL bytes.
//!
//! What Pingora 0.9.1 does first (found by the end-to-end tests in `tests/gate.rs`): it
//! forwards the request target as received; it does not resolve dot segments or decode
//! anything. A request line httparse refuses (a control byte such as NUL, a space, `"`, `<`,
//! `>`) is rewritten with those bytes percent-encoded (`escape_illegal_request_line` in
//! `pingora-core/src/protocols/http/v1/server.rs`), so a NUL arrives here as `%00`.

use crate::wire::ApiError;

/// What makes a path non-canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// A `.` or `..` segment.
    DotSegment,
    /// `%2e` (any case): an encoded dot.
    EncodedDot,
    /// `%2f` (any case): an encoded slash.
    EncodedSlash,
    /// `\` or `%5c`.
    Backslash,
    /// `//`: an empty segment.
    EmptySegment,
    /// A NUL byte, or `%00`.
    Nul,
}

impl PathProblem {
    /// What was wrong, for the client (the path itself is not quoted).
    pub fn message(self) -> &'static str {
        match self {
            PathProblem::DotSegment => {
                "The request path contains a `.` or `..` segment. Send the canonical path (without dot segments)."
            }
            PathProblem::EncodedDot => {
                "The request path contains a percent-encoded dot (%2e). Send the canonical path, with dots unencoded and no dot segments."
            }
            PathProblem::EncodedSlash => {
                "The request path contains a percent-encoded slash (%2f). Paths with encoded slashes are not accepted."
            }
            PathProblem::Backslash => {
                "The request path contains a backslash (\\ or %5c). Use / to separate path segments."
            }
            PathProblem::EmptySegment => {
                "The request path contains an empty segment (//). Send the canonical path."
            }
            PathProblem::Nul => "The request path contains a NUL byte (or %00).",
        }
    }

    /// The 400 answer for it.
    pub fn to_api_error(self) -> ApiError {
        ApiError::invalid_request(self.message()).code("invalid_path")
    }
}

/// Checks that `path` (the path of a request target, without its query) is canonical.
///
/// A trailing `/` is allowed (`/v1/models/`); a path that does not start with `/` (`*`) is
/// left for routing to refuse.
///
/// # Errors
/// The first problem found, in the order: NUL, backslash, encoded slash, encoded dot, dot
/// segment, empty segment.
pub fn check_path(path: &str) -> Result<(), PathProblem> {
    let bytes = path.as_bytes();
    if bytes.contains(&0) {
        return Err(PathProblem::Nul);
    }
    if bytes.contains(&b'\\') {
        return Err(PathProblem::Backslash);
    }
    let mut encoded: Option<PathProblem> = None;
    for (i, _) in path.match_indices('%') {
        let pair = bytes.get(i + 1..i + 3).unwrap_or_default();
        let problem = match [pair.first(), pair.get(1)] {
            [Some(b'0'), Some(b'0')] => PathProblem::Nul,
            [Some(b'5'), Some(b'c' | b'C')] => PathProblem::Backslash,
            [Some(b'2'), Some(b'f' | b'F')] => PathProblem::EncodedSlash,
            [Some(b'2'), Some(b'e' | b'E')] => PathProblem::EncodedDot,
            _ => continue,
        };
        // Report the most telling problem when there are several.
        encoded = Some(match encoded {
            Some(seen) if rank(seen) <= rank(problem) => seen,
            _ => problem,
        });
    }
    if let Some(problem) = encoded {
        return Err(problem);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Ok(());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => return Err(PathProblem::DotSegment),
            "" if i != last => return Err(PathProblem::EmptySegment),
            _ => {}
        }
    }
    Ok(())
}

fn rank(p: PathProblem) -> u8 {
    match p {
        PathProblem::Nul => 0,
        PathProblem::Backslash => 1,
        PathProblem::EncodedSlash => 2,
        PathProblem::EncodedDot => 3,
        PathProblem::DotSegment => 4,
        PathProblem::EmptySegment => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_pass() {
        for p in [
            "/",
            "/v1/chat/completions",
            "/v1/models/",
            "/v1/files/file-abc.jsonl",
            "/v1/files/a..b",
            "/v1/files/.hidden",
            "/v1/files/a%20b",
            "/v1/models/gpt-4o%3Amini",
            "*",
        ] {
            assert_eq!(check_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn each_problem_is_named() {
        use PathProblem::*;
        for (p, want) in [
            ("/v1/files/../chat/completions", DotSegment),
            ("/v1/files/./x", DotSegment),
            ("/v1/files/..", DotSegment),
            ("/..", DotSegment),
            ("/v1/files/%2e%2e/chat/completions", EncodedDot),
            ("/v1/files/%2E./chat", EncodedDot),
            ("/v1/files/.%2E/chat", EncodedDot),
            ("/v1/files/..%2fchat/completions", EncodedSlash),
            ("/v1/files/a%2Fb", EncodedSlash),
            ("/v1/files/..\\chat", Backslash),
            ("/v1/files/a%5cb", Backslash),
            ("/v1/files/a%5Cb", Backslash),
            ("/v1//chat/completions", EmptySegment),
            ("//v1/files", EmptySegment),
            ("/v1/files/a\0", Nul),
            ("/v1/files/a%00", Nul),
            // several: the most telling one
            ("/v1/%2e%2e%2fchat", EncodedSlash),
            ("/v1/%2e%00", Nul),
        ] {
            assert_eq!(check_path(p), Err(want), "{p}");
        }
    }

    #[test]
    fn the_error_is_openai_shaped_and_does_not_quote_the_path() {
        let err = PathProblem::DotSegment.to_api_error();
        assert_eq!(err.status, 400);
        assert_eq!(err.kind, "invalid_request_error");
        assert_eq!(err.code, Some("invalid_path"));
        assert_eq!(err.param, None);
        assert!(err.message.contains("`.` or `..` segment"));
    }
}
