//! JSON Web Tokens encoded once more in base64 (gitleaks' `jwt-base64`), hand-matched:
//!
//! ```text
//! \bZXlK(?:<a JOSE header parameter>)[A-Za-z0-9/_+\-]{40,}={0,2}
//! ```
//!
//! `ZXlK` is `eyJ` in base64; the header parameter (`alg`, `typ`, `kid`, …, as gitleaks lists
//! them) is the header's first member, encoded twice. The regex has no upper bound, which a
//! detector must have (the stream redactor waits for at most `max_len` bytes), and a bounded
//! repetition of ~10,000 is more than the regex crate compiles cheaply; so the run is read
//! here, once, up to [`ENCODED_JWT_MAX`] bytes from the candidate, and a longer token is cut
//! there. The tests compare it with the regex on inputs within that bound.

use super::detector::RawMatch;
use super::jwt::JWT_MAX;

/// The longest token matched, in bytes: a [`JWT_MAX`] token in base64.
pub(crate) const ENCODED_JWT_MAX: usize = JWT_MAX / 3 * 4 + 4;

/// `eyJ` in base64.
const START: &[u8] = b"ZXlK";

/// The header parameters after `ZXlK`, as gitleaks' rule lists them (`alg`, `apu`, `apv`,
/// `aud`, `b64`, `crit`, `cty`, `epk`, `enc`, `jku`, `jwk`, `iss`, `iv`, `kid`, `key_ops`,
/// `kty`, `nonce`, `p2c`, `p2s`, `ppt`, `sub`, `svt`, `tag`, `typ`, `url`, `use`, `ver`,
/// `version`, `x`, `x5c`, `x5t`, `x5t#S256`, `x5u`, `zip`).
const HEADERS: &[&str] = &[
    "aGJHY2lPaU",
    "aGNIVWlPaU",
    "aGNIWWlPaU",
    "aGRXUWlPaU",
    "aU5qUWlP",
    "amNtbDBJanBi",
    "amRIa2lPaU",
    "bGNHc2lPbn",
    "bGJtTWlPaU",
    "cWEzVWlPaU",
    "cWQyc2lPb",
    "cGMzTWlPaU",
    "cGRpSTZJ",
    "cmFXUWlP",
    "clpYbGZiM0J6SWpwY",
    "cmRIa2lPaUp",
    "dWIyNWpaU0k2",
    "d01tTWlP",
    "d01uTWlPaU",
    "d2NIUWlPaU",
    "emRXSWlPaU",
    "emRuUWlP",
    "MFlXY2lPaU",
    "MGVYQWlPaUp",
    "MWNtd2l",
    "MWMyVWlPaUp",
    "MlpYSWlPaU",
    "MlpYSnphVzl1SWpv",
    "NElqb2",
    "NE5XTWlP",
    "NE5YUWlPaU",
    "NE5YUWpVekkxTmlJNkl",
    "NE5YVWlPaU",
    "NmFYQWlPaU",
];

/// The fewest run bytes after the header parameter.
const MIN_RUN: usize = 40;

fn is_run(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'+' | b'-')
}

/// The leftmost token starting at or after `start`.
pub(crate) fn find_at(hay: &str, start: usize) -> Option<RawMatch> {
    let bytes = hay.as_bytes();
    RawMatch::leftmost_at_word_start(bytes, start, START, |s| token_end(bytes, s))
}

/// The end of the token starting at `s` (which holds `ZXlK`), cut at [`ENCODED_JWT_MAX`].
fn token_end(bytes: &[u8], s: usize) -> Option<usize> {
    let limit = bytes.len().min(s + ENCODED_JWT_MAX);
    let after = s + START.len();
    let rest = &bytes[after..limit];
    // The shortest header parameter that fits leaves the most run after it.
    let header = HEADERS
        .iter()
        .filter(|h| rest.starts_with(h.as_bytes()))
        .map(|h| h.len())
        .min()?;
    // Header parameters are made of run bytes: the run starts at `after`.
    let run_end = after
        + bytes[after..limit]
            .iter()
            .position(|&b| !is_run(b))
            .unwrap_or(limit - after);
    if run_end - (after + header) < MIN_RUN {
        return None;
    }
    let pad = bytes[run_end..limit]
        .iter()
        .take(2)
        .take_while(|&&b| b == b'=')
        .count();
    Some(run_end + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gitleaks' own regex (`cmd/generate/config/rules/jwt.go`, `JWTBase64`).
    const GITLEAKS: &str = r"\bZXlK(?:aGJHY2lPaU|aGNIVWlPaU|aGNIWWlPaU|aGRXUWlPaU|aU5qUWlP|amNtbDBJanBi|amRIa2lPaU|bGNHc2lPbn|bGJtTWlPaU|cWEzVWlPaU|cWQyc2lPb|cGMzTWlPaU|cGRpSTZJ|cmFXUWlP|clpYbGZiM0J6SWpwY|cmRIa2lPaUp|dWIyNWpaU0k2|d01tTWlP|d01uTWlPaU|d2NIUWlPaU|emRXSWlPaU|emRuUWlP|MFlXY2lPaU|MGVYQWlPaUp|MWNtd2l|MWMyVWlPaUp|MlpYSWlPaU|MlpYSnphVzl1SWpv|NElqb2|NE5XTWlP|NE5YUWlPaU|NE5YUWpVekkxTmlJNkl|NE5YVWlPaU|NmFYQWlPaU)[a-zA-Z0-9/_+\-]{40,}={0,2}";

    fn encoded(jwt: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(jwt)
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn finds_an_encoded_token_whole() {
        let token = encoded(JWT);
        assert!(token.starts_with("ZXlKaGJHY2lPaU"), "{token}");
        let text = format!("token: {token}\n");
        let m = find_at(&text, 0).unwrap();
        assert_eq!(&text[m.start..m.end], token);
        assert!(find_at(&format!("x{token}"), 0).is_none(), "word boundary");
        // `eyJ` followed by something that is no JOSE header parameter.
        assert!(find_at(
            &encoded(&format!("eyJmb28iOiJiYXIifQ.{}", "a".repeat(80))),
            0
        )
        .is_none());
        assert!(find_at(&token[..30], 0).is_none(), "too short");
    }

    #[test]
    fn never_reads_past_max_len() {
        let long = format!("ZXlKaGJHY2lPaU{}", "A".repeat(2 * ENCODED_JWT_MAX));
        assert_eq!(find_at(&long, 0).map(|m| m.end), Some(ENCODED_JWT_MAX));
    }

    #[test]
    fn agrees_with_gitleaks_regex() {
        let re = regex::Regex::new(GITLEAKS).unwrap();
        let token = encoded(JWT);
        let mut cases = vec![
            token.clone(),
            format!("a {token}== b"),
            format!("{token}==="),
            format!("_{token} {token}"),
            format!("ZXlK ZXlKaGJHY2lPaU {token}"),
            format!("ZXlKaGJHY2lPaU{}", "x".repeat(39)),
            format!("ZXlKaGJHY2lPaU{}", "x".repeat(40)),
            format!("ZXlKNElqb2{}=", "y".repeat(40)),
            format!("ZXlKNE5YUWpVekkxTmlJNkl{}", "z".repeat(30)),
        ];
        // Every header parameter, at the shortest and one byte short.
        for h in HEADERS {
            cases.push(format!(
                "({START}{h}{})",
                "Q".repeat(MIN_RUN),
                START = "ZXlK"
            ));
            cases.push(format!(
                "({START}{h}{})",
                "Q".repeat(MIN_RUN - 1),
                START = "ZXlK"
            ));
        }
        for case in cases {
            let ours = find_at(&case, 0).map(|m| &case[m.start..m.end]);
            let theirs = re.find(&case).map(|m| m.as_str());
            assert_eq!(ours, theirs, "{case}");
        }
    }
}
