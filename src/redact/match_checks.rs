//! Checks a candidate must pass after its pattern matched: entropy and placeholder heuristics.
//! (Checksums of numbers are part of their matchers, in `numbers.rs`.)
//!
//! Every check looks only at the matched text, so its verdict cannot change when more text
//! arrives after the match.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

use super::builtin::Specific;
use super::detector::RawMatch;

/// A check attached to a detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Check {
    /// Accept every match.
    None,
    /// The value's Shannon entropy (bits per byte) is at least this: rejects `AKIAAAAA…` and
    /// other placeholders with a real prefix.
    MinEntropy(f64),
    /// `password = value` and friends: entropy, character classes, placeholders, and the value
    /// not starting with a specific secret (which then reports it under its own name).
    GenericSecret,
    /// Not an image name like `icon@2x.png`.
    Email,
    /// A password in a URL or connection string that is not a template (`${DB_PASS}`, `****`).
    Password,
    /// The token ends where the match does: the next character (the one of look-ahead every
    /// match has) is not a token character `[A-Za-z0-9_-]`, which `\b` cannot say after a
    /// `-`. Rejects a fixed-length shape cut out of a longer run.
    TokenEnd,
    /// `user:password` given to a command (`curl -u`): the secret half (the password, or the
    /// user when the password is empty, as a Stripe key is given) is no placeholder.
    UserPassword,
}

impl Check {
    /// The match if it passes (possibly shortened), otherwise `None`.
    pub(crate) fn apply(self, hay: &str, m: RawMatch, specific: &Specific) -> Option<RawMatch> {
        let value = &hay[m.span.clone()];
        let keep = match self {
            Check::None => true,
            Check::MinEntropy(min) => shannon(value.as_bytes()) >= min,
            Check::GenericSecret => generic_secret(value, specific),
            Check::Email => email(value),
            Check::Password => password(value),
            Check::UserPassword => user_password(value),
            Check::TokenEnd => !hay
                .as_bytes()
                .get(m.end)
                .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        };
        keep.then_some(m)
    }
}

/// Shannon entropy in bits per byte.
pub(crate) fn shannon(bytes: &[u8]) -> f64 {
    let n = bytes.len();
    if n == 0 {
        return 0.0;
    }
    // H = log2(n) - Σ c·log2(c) / n, over the count c of each distinct byte. The sum grows
    // with the counts, by (c+1)·log2(c+1) - c·log2(c) from a table: one pass, no logarithm
    // per byte.
    let steps = steps();
    let mut counts = [0u32; 256];
    let mut sum = 0.0;
    for &b in bytes {
        let c = &mut counts[usize::from(b)];
        sum += steps.get(*c as usize).copied().unwrap_or_else(|| step(*c));
        *c += 1;
    }
    (n as f64).log2() - sum / n as f64
}

/// `(c+1)·log2(c+1) - c·log2(c)`.
fn step(c: u32) -> f64 {
    let x_log2_x = |x: f64| if x == 0.0 { 0.0 } else { x * x.log2() };
    x_log2_x(f64::from(c) + 1.0) - x_log2_x(f64::from(c))
}

/// [`step`] for the counts most values have.
fn steps() -> &'static [f64; 64] {
    static TABLE: OnceLock<[f64; 64]> = OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|c| step(c as u32)))
}

fn email(value: &str) -> bool {
    const FILE_TYPES: [&str; 10] = [
        "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff",
    ];
    let tld = value.rsplit('.').next().unwrap_or("");
    !FILE_TYPES.iter().any(|t| t.eq_ignore_ascii_case(tld))
}

fn password(value: &str) -> bool {
    let template = value.starts_with("${") || value.starts_with("{{") || value.starts_with('%');
    let filler = value.bytes().all(|b| b == b'*') || value.bytes().all(|b| b == b'x' || b == b'X');
    !(template || reference(value) || filler)
}

/// Placeholder passwords of documentation (`user:pass`, `admin:changeme`), lower-case.
const PLACEHOLDER_PASSWORDS: [&str; 9] = [
    "pass", "password", "passwd", "pwd", "test", "token", "secret", "changeit", "changeme",
];

fn user_password(value: &str) -> bool {
    let Some((user, pass)) = value.split_once(':') else {
        return false;
    };
    let (user, pass) = (unquote(user), unquote(pass));
    let secret = if pass.is_empty() { user } else { pass };
    let bracketed = |s: &str| {
        (s.starts_with('<') && s.ends_with('>')) || (s.starts_with('[') && s.ends_with(']'))
    };
    let placeholder = bracketed(secret)
        || bracketed(value)
        || value.starts_with('<')
        || secret.bytes().all(|b| b == secret.as_bytes()[0])
        || PLACEHOLDER_PASSWORDS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(secret))
        || user == pass
        || has_placeholder(secret);
    secret.len() >= 3 && !placeholder && password(secret) && !reference(secret)
}

fn unquote(s: &str) -> &str {
    s.trim_matches(|c| c == '"' || c == '\'')
}

/// A variable of the shell or of Windows in place of a value (`$API_TOKEN`, `$USER:$PASS`,
/// `%NUGET_PASSWORD%`): the secret is elsewhere.
fn reference(value: &str) -> bool {
    let name = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let variable = |s: &str| {
        s.strip_prefix('$').is_some_and(name)
            || s.strip_prefix('%')
                .and_then(|s| s.strip_suffix('%'))
                .is_some_and(name)
    };
    // `$(command)`, and a template's `{name}` or `{function(…`.
    let substitution = value.starts_with("$(")
        || value.strip_prefix('{').is_some_and(|rest| {
            let n = rest
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            n > 0
                && rest.as_bytes()[0].is_ascii_lowercase()
                && matches!(rest.as_bytes().get(n), Some(b'}' | b'('))
        });
    substitution
        || variable(value)
        || value
            .split_once(':')
            .is_some_and(|(u, p)| variable(u) && variable(p))
}

/// Words that mark a value as a placeholder, lower-case.
const PLACEHOLDERS: [&str; 14] = [
    "xxxx",
    "****",
    "....",
    "your",
    "example",
    "changeme",
    "change_me",
    "placeholder",
    "redacted",
    "dummy",
    "sample",
    "${",
    "{{",
    "replace",
];

/// The shortest all-digit value a secret-sounding name holds that is taken for a secret.
const NUMERIC_SECRET_MIN: usize = 16;

fn generic_secret(value: &str, specific: &Specific) -> bool {
    let bytes = value.as_bytes();
    let (mut lower, mut upper, mut digit, mut symbol) = (false, false, false, false);
    for &b in bytes {
        match b {
            b'a'..=b'z' => lower = true,
            b'A'..=b'Z' => upper = true,
            b'0'..=b'9' => digit = true,
            b'.' | b'_' | b'-' => {}
            _ => symbol = true,
        }
    }
    let classes = [lower, upper, digit, symbol].iter().filter(|&&c| c).count();
    if classes < 2 {
        // A long run of digits is a numeric secret (Asana's and Discord's are 16 to 32): one
        // class, so the entropy floor is lower than for letters (log2(10) is 3.32 at most).
        // Shorter ones are counts, ports, timestamps.
        return bytes.len() >= NUMERIC_SECRET_MIN
            && bytes.iter().all(u8::is_ascii_digit)
            && shannon(bytes) >= 2.5
            && !specific.starts(value);
    }
    // Identifiers such as `os.environ` or `getTokenFromEnv` are values too; without a digit or
    // symbol only a clearly random string counts.
    let entropy = shannon(bytes);
    if entropy < 3.0 || !(digit || symbol || entropy >= 3.8) {
        return false;
    }
    // A URL is a location (`access_token_url = https://…`); the password a URL may carry is
    // `url_password`'s.
    if value.contains("://") {
        return false;
    }
    // Specific tokens first: in configuration text they are most candidates
    // (`GITHUB_TOKEN=ghp_…`), and for other values the test ends at their first byte.
    !specific.starts(value)
        && !has_placeholder(value)
        && !reference(value)
        && !names_something(value)
}

/// Secret-sounding words that end the *name* of a secret (`NEXUS-GPT4-API-KEY`).
const SECRET_WORDS: [&str; 9] = [
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "credential",
    "credentials",
    "apikey",
];

/// File extensions of key stores and configuration files: a value ending in one names a file.
const FILE_EXTENSIONS: [&str; 16] = [
    "cer",
    "crt",
    "pem",
    "der",
    "p12",
    "pfx",
    "jks",
    "keystore",
    "json",
    "yaml",
    "yml",
    "xml",
    "txt",
    "properties",
    "conf",
    "ini",
];

/// Whether a value with a secret's entropy names or points to something instead of holding
/// a secret. Each shape is narrow — a random string does not take it by chance — because a
/// value refused here is left in the text:
/// - the name of a secret: words joined by `-` or `_`, the last a secret word
///   (`NEXUS-GPT4-API-KEY`, `prod_db_password`);
/// - a member path: identifiers joined by `.`, the last lower-case words joined by `_`
///   (`X25519.secret_length`, `settings.api_token`);
/// - a file name with a key-store or configuration extension (`RTL_INST_CODE.cer`);
/// - a package and its version (`jjwt-jackson-0.11.2`);
/// - a host name, with at least two dots or a port (`dev-lb1.api.f4ke.com:5215`).
fn names_something(value: &str) -> bool {
    // Most candidates are random strings: one pass finds which shapes are possible at all.
    let (mut dot, mut separator) = (false, false);
    for &b in value.as_bytes() {
        dot |= b == b'.';
        separator |= b == b'-' || b == b'_';
    }
    let last = value.as_bytes().last().copied().unwrap_or(0);
    (separator && last.is_ascii_alphabetic() && secret_name(value))
        || (dot && (member_path(value) || file_name(value) || host(value)))
        || (dot && separator && last.is_ascii_digit() && versioned(value))
}

fn secret_name(value: &str) -> bool {
    let mut words = value.split(['-', '_']);
    let last = words.next_back().unwrap_or("");
    SECRET_WORDS.iter().any(|s| s.eq_ignore_ascii_case(last))
        && value.contains(['-', '_'])
        && words.all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn member_path(value: &str) -> bool {
    let identifier = |s: &str| {
        s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    // Lower-case words joined by `_`: a random segment has digits or runs no word has.
    let snake_words = |s: &str| {
        s.contains('_')
            && s.split('_')
                .all(|w| (1..=12).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()))
    };
    let mut parts = value.split('.');
    let last = parts.next_back().unwrap_or("");
    value.contains('.') && snake_words(last) && parts.all(identifier)
}

fn file_name(value: &str) -> bool {
    value.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && FILE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext))
    })
}

fn versioned(value: &str) -> bool {
    value.rsplit_once('-').is_some_and(|(name, version)| {
        let version = version.strip_prefix('v').unwrap_or(version);
        let numbers = version.split('.');
        let dotted = version.contains('.')
            && numbers.clone().count() <= 4
            && numbers
                .clone()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        dotted
            && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && name.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    })
}

fn host(value: &str) -> bool {
    let (name, port) = match value.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (value, None),
    };
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let labels = name.split('.');
    let dots = labels.clone().count() - 1;
    let tld = name.rsplit('.').next().unwrap_or("");
    port_ok
        && (dots >= 2 || (dots == 1 && port.is_some()))
        && (2..=6).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_lowercase())
        && labels.clone().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Whether `value` contains a placeholder word, ASCII case-insensitively. Candidates are
/// frequent in configuration text: one automaton pass, no lower-cased copy.
fn has_placeholder(value: &str) -> bool {
    static FINDER: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    let finder = FINDER.get_or_init(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(PLACEHOLDERS)
            .ok()
    });
    match finder {
        Some(f) => f.is_match(value),
        // Fourteen short words always build; this only keeps the check total.
        None => {
            let lower = value.to_ascii_lowercase();
            PLACEHOLDERS.iter().any(|p| lower.contains(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_placeholders_is_low() {
        assert!(shannon(b"AKIAAAAAAAAAAAAAAAAA") < 1.0);
        assert!(shannon(b"AKIAIOSFODNN7EXAMPLE") > 3.0);
    }

    #[test]
    fn entropy_equals_the_textbook_formula() {
        let long = "ab".repeat(100) + "c";
        for text in ["a", "ab", "aab", "abcdefgh", "Xk9#mP2$vL8q", &long] {
            let n = text.len() as f64;
            let mut counts = std::collections::HashMap::new();
            for b in text.bytes() {
                *counts.entry(b).or_insert(0.0) += 1.0;
            }
            let want: f64 = counts.values().map(|c| -(c / n) * (c / n).log2()).sum();
            let got = shannon(text.as_bytes());
            assert!((got - want).abs() < 1e-9, "{text}: {got} vs {want}");
        }
    }

    #[test]
    fn generic_values() {
        let none = Specific::default();
        assert!(generic_secret("Xk9#mP2$vL8q", &none));
        assert!(generic_secret("s3cr3t-P4ssw0rd!", &none));
        assert!(!generic_secret("your-api-key-here", &none));
        assert!(!generic_secret("os.environ", &none));
        assert!(!generic_secret("12345678", &none));
        assert!(!generic_secret("aaaaaaaaaaaa", &none));
        // gitleaks' curl-auth-header negative: `-H "apikey: $API_KEY"`.
        assert!(!generic_secret("$API_KEY", &none));
        assert!(!generic_secret("$api_key_2", &none));
    }

    /// gitleaks' generic-api-key negatives: values with a secret's entropy that name or point
    /// to something.
    #[test]
    fn names_paths_files_versions_and_hosts_are_no_secrets() {
        let none = Specific::default();
        for value in [
            "NEXUS-GPT4-API-KEY",
            "prod_db_password",
            "X25519.secret_length",
            "settings.api_token",
            "RTL_INST_CODE.cer",
            "client-2024.p12",
            "jjwt-jackson-0.11.2",
            "aws-sdk-v2.17.3",
            "dev-lb1.api.f4ke.com:5215",
            "vault2.internal.acme.io",
            "db1.acme.io:5432",
        ] {
            assert!(
                generic_secret_shape(value),
                "{value}: passes the entropy test"
            );
            assert!(!generic_secret(value, &none), "{value}");
        }
        // Secrets that look a little like those shapes are still secrets.
        for value in [
            "Xk9#mP2$vL8q-key",
            "s3cr3t.Pass_w0rd",
            "a8F3k2Lq9.zP4x",
            "9f8e7d6c5b4a-1.2.x",
            "Kq8vN2mZ.x7Rp.Wl3t",
            "f4ke.Com:5215",
            "aB3dE5gH7jK9.json2",
            "sc_tzys2auezm.hay1.acc_ki9zyk0q3z.fdr_j9siidrn2ymgbvge7_yuyfbsuuu0v01n5zl4",
            "SG.dpwh6vo7cw_pc_8mnlzuvmomy8geooac0ems5185lypu90mm9mbdx9f25db7hj0svo",
        ] {
            assert!(generic_secret(value, &none), "{value}");
        }
    }

    /// Whether `value` passes the class and entropy tests of [`generic_secret`] (so that the
    /// test above shows the shape rules at work, not the entropy floor).
    fn generic_secret_shape(value: &str) -> bool {
        let entropy = shannon(value.as_bytes());
        let digit_or_symbol = value.bytes().any(|b| !b.is_ascii_alphabetic());
        entropy >= 3.0 && (digit_or_symbol || entropy >= 3.8)
    }

    #[test]
    fn placeholders_are_found_in_any_case() {
        assert!(has_placeholder("MY-EXAMPLE-KEY"));
        assert!(has_placeholder("a${X}"));
        assert!(has_placeholder("ChangeMe123"));
        assert!(!has_placeholder("exampl"));
        assert!(!has_placeholder(""));
    }

    #[test]
    fn password_templates() {
        assert!(password("hunter2"));
        assert!(!password("${DB_PASSWORD}"));
        assert!(!password("$DB_PASSWORD"));
        assert!(!password("****"));
        assert!(!password("%NUGET_PASSWORD%"));
        assert!(!password("$USER:$PASSWORD"));
        assert!(!password("$api_token"));
        assert!(password("$ecr3t!"));
        assert!(password("P@ss%word%"));
        assert!(!password("$(gcloud"));
        assert!(!password("{base64(email"));
        assert!(!password("{api_token}"));
        assert!(password("{ZqL5kVrX1n8tA2}"));
    }

    /// gitleaks' curl-auth-user cases.
    #[test]
    fn user_passwords() {
        for secret in [
            "elastic:P@ssw0rd$1",
            "\":d2LkV78zLx!t\"",
            "d2LkV78zLx!t:",
            "'johns:h0pk1ns~21s'",
            "\"{acd3c08b-74e8-4f44-a2d0-80694le24f46}\":\"{ZqL5kVrX1n8tA2}\"",
            "kevin:'pRf7vG2h1L8nQkW9'",
        ] {
            assert!(user_password(secret), "{secret}");
        }
        for placeholder in [
            "username:password",
            "xxx:yyy",
            "neo4j:[PASSWORD]",
            "test:test",
            "SRVC_JENKINS:${APPID}",
            "<user:password>",
            ":",
            "username:token",
            "user:pass",
            "admin:$ADMIN_PASSWORD",
            "api:your-api-key",
            "src@gmail.com",
        ] {
            assert!(!user_password(placeholder), "{placeholder}");
        }
    }
}
