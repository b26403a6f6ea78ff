//! What the catalogue cannot say as a regex: the hand-written matchers a catalogue entry names
//! with `matcher:`, with the facts the prefilter and the stream redactor need about their
//! matches (a regex detector's are derived from its pattern), and the hand-written
//! accelerators of regex detectors — each tested against its regex (`token.rs`,
//! `builtin::tests::derived_spans_equal_capture_groups`).

use crate::redact::assignment::{
    Grammar, AWS_SECRET, AWS_SECRET_MAX, CONNECTION_STRING, CONNECTION_STRING_MAX, GENERIC,
    GENERIC_MAX,
};
use crate::redact::detector::SpanFn;
use crate::redact::encoded_jwt::ENCODED_JWT_MAX;
use crate::redact::jwt::JWT_MAX;
use crate::redact::numbers::{Number, CARD_MAX, IBAN_MAX, PHONE_MAX, SSN_LEN};
use crate::redact::pem::PEM_MAX_LEN;
use crate::redact::token::Form;

/// A hand-written matcher.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HandKind {
    Pem,
    Number(Number),
    Assignment(&'static Grammar),
    Jwt,
    EncodedJwt,
}

/// A hand-written matcher and what every one of its matches satisfies (see `detector.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hand {
    /// The catalogue's `matcher:` value.
    pub name: &'static str,
    pub kind: HandKind,
    /// Literals every match contains.
    pub anchors: &'static [&'static str],
    /// Every match holds a run of two digits or more.
    pub digit_pair: bool,
    /// Literals every match starts with.
    pub start: &'static [&'static str],
    /// Bytes every match starts with (a [`ByteSet::parse`] spec).
    ///
    /// [`ByteSet::parse`]: crate::redact::byteset::ByteSet::parse
    pub start_bytes: &'static str,
    /// Every byte of every match (a `ByteSet::parse` spec), plus non-ASCII if `non_ascii`.
    pub alphabet: &'static str,
    pub non_ascii: bool,
    /// Every match is an assignment to an identifier containing one of these keywords:
    /// `(keywords, operators, suffix, lead)` (see [`Anchor::Assignment`]).
    ///
    /// [`Anchor::Assignment`]: crate::redact::detector::Anchor::Assignment
    pub assignment: Option<(&'static [&'static str], &'static str, usize, usize)>,
    pub min_len: usize,
    pub min_digits: usize,
    pub max_len: usize,
}

impl Hand {
    const fn new(name: &'static str, kind: HandKind) -> Hand {
        Hand {
            name,
            kind,
            anchors: &[],
            digit_pair: false,
            start: &[],
            start_bytes: "",
            alphabet: "",
            non_ascii: false,
            assignment: None,
            min_len: 1,
            min_digits: 0,
            max_len: 0,
        }
    }

    /// Every match starts with one of these: they are both anchors and start literals.
    const fn prefixes(self, lits: &'static [&'static str]) -> Hand {
        Hand {
            anchors: lits,
            start: lits,
            ..self
        }
    }

    const fn anchors(self, lits: &'static [&'static str]) -> Hand {
        Hand {
            anchors: lits,
            ..self
        }
    }

    const fn digit_pair(self) -> Hand {
        Hand {
            digit_pair: true,
            ..self
        }
    }

    const fn starts_with_bytes(self, spec: &'static str) -> Hand {
        Hand {
            start_bytes: spec,
            ..self
        }
    }

    const fn alphabet(self, spec: &'static str) -> Hand {
        Hand {
            alphabet: spec,
            ..self
        }
    }

    const fn non_ascii(self) -> Hand {
        Hand {
            non_ascii: true,
            ..self
        }
    }

    const fn assignment(
        self,
        keywords: &'static [&'static str],
        operators: &'static str,
        suffix: usize,
        lead: usize,
    ) -> Hand {
        Hand {
            assignment: Some((keywords, operators, suffix, lead)),
            ..self
        }
    }

    const fn min_len(self, min_len: usize) -> Hand {
        Hand { min_len, ..self }
    }

    const fn min_digits(self, min_digits: usize) -> Hand {
        Hand { min_digits, ..self }
    }

    const fn max_len(self, max_len: usize) -> Hand {
        Hand { max_len, ..self }
    }
}

/// The hand-written matchers, by the catalogue's `matcher:` name.
pub(crate) const MATCHERS: &[Hand] = &[
    Hand::new("pem", HandKind::Pem)
        .prefixes(&["-----BEGIN"])
        .alphabet(r"\t\n\r -~")
        .min_len(27)
        .max_len(PEM_MAX_LEN),
    Hand::new("aws_secret", HandKind::Assignment(&AWS_SECRET))
        .assignment(&["secret"], ":=,", 11, 0)
        .alphabet(r#"A-Za-z0-9_"'`\\ \t=:>/+,"#)
        .min_len(50)
        .max_len(AWS_SECRET_MAX),
    Hand::new("jwt", HandKind::Jwt)
        .prefixes(&["eyJ"])
        .alphabet(r"A-Za-z0-9_.\-")
        .min_len(31)
        .max_len(JWT_MAX),
    Hand::new("encoded_jwt", HandKind::EncodedJwt)
        .prefixes(&["ZXlK"])
        .alphabet(r"A-Za-z0-9/_+=\-")
        // `ZXlK`, the shortest header parameter (`url`, 7 bytes), 40 more.
        .min_len(51)
        .max_len(ENCODED_JWT_MAX),
    Hand::new(
        "connection_string",
        HandKind::Assignment(&CONNECTION_STRING),
    )
    .assignment(&["password", "pwd"], "=", 0, 4)
    .alphabet(r#"^\r\n"'\\"#)
    .non_ascii()
    .min_len(6)
    .max_len(CONNECTION_STRING_MAX),
    // Every keyword form contains one of these anchor keywords, at most 23 identifier bytes
    // before the end of the identifier (`passw` + `ord` + 20).
    Hand::new("generic_assignment", HandKind::Assignment(&GENERIC))
        .assignment(
            &["passw", "pwd", "secret", "token", "key", "credential"],
            ":=>,",
            23,
            0,
        )
        .alphabet(r#"A-Za-z0-9_.\-\\"'` \t\r\n=>:/+~!@#$%^&*?,"#)
        .min_len(12)
        .max_len(GENERIC_MAX),
    Hand::new("card", HandKind::Number(Number::Card))
        .digit_pair()
        .starts_with_bytes("1-6")
        .alphabet(r"0-9 \-")
        .min_len(13)
        .min_digits(13)
        .max_len(CARD_MAX),
    Hand::new("iban", HandKind::Number(Number::Iban))
        .digit_pair()
        .starts_with_bytes("A-Z")
        .alphabet(r"A-Z0-9 \-")
        .min_len(15)
        .max_len(IBAN_MAX),
    Hand::new("ssn", HandKind::Number(Number::Ssn))
        .digit_pair()
        .starts_with_bytes("0-9")
        .alphabet(r"0-9 .\-")
        .min_len(10)
        .min_digits(9)
        .max_len(SSN_LEN),
    // Every North American number has a 3-digit area code; international ones start with `+`.
    Hand::new("phone", HandKind::Number(Number::Phone))
        .anchors(&["+"])
        .digit_pair()
        .starts_with_bytes("0-9+(")
        .alphabet(r"0-9 .()+\-")
        .min_len(9)
        .min_digits(8)
        .max_len(PHONE_MAX),
];

const GITLAB: &[&str] = &[
    "glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glimt-", "glsoat-", "glcbt-", "glffct-",
    "glagent-", "gloas-",
];
const STRIPE: &[&str] = &["sk_live_", "sk_test_", "rk_live_", "rk_test_"];
const SHOPIFY: &[&str] = &["shpat_", "shpca_", "shppa_", "shpss_"];

/// Regex detectors also matched by hand as a prefix and a run of one byte class (`token.rs`):
/// the regex's format as token forms, by detector name. A property test holds each to its
/// regex.
pub(crate) const TOKENS: &[(&str, &[Form])] = &[
    (
        "aws_access_key",
        &[Form::new(&["AKIA", "ASIA", "ABIA", "ACCA"], "A-Z2-7", 16, 16).word_end()],
    ),
    (
        "github_token",
        &[
            Form::new(
                &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
                "A-Za-z0-9",
                36,
                251,
            )
            .word_end(),
            Form::new(&["github_pat_"], "A-Za-z0-9_", 22, 244).word_end(),
        ],
    ),
    (
        "gitlab_token",
        &[Form::new(GITLAB, r"A-Za-z0-9_.\-", 20, 255).last(r"A-Za-z0-9_\-")],
    ),
    (
        "stripe_key",
        &[Form::new(STRIPE, "A-Za-z0-9", 10, 247).word_end()],
    ),
    (
        "google_api_key",
        &[Form::new(&["AIza"], r"0-9A-Za-z_\-", 35, 35)],
    ),
    (
        "npm_token",
        &[Form::new(&["npm_"], "A-Za-z0-9", 36, 36).word_end()],
    ),
    (
        "pypi_token",
        &[Form::new(
            &["pypi-AgEIcHlwaS5vcmc"],
            r"A-Za-z0-9_\-",
            50,
            1000,
        )],
    ),
    (
        "huggingface_token",
        &[Form::new(&["hf_", "api_org_"], "A-Za-z", 34, 34).word_end()],
    ),
    (
        "shopify_token",
        &[Form::new(SHOPIFY, "a-fA-F0-9", 32, 32).word_end()],
    ),
    (
        "twilio_api_key",
        &[Form::new(&["SK"], "0-9a-fA-F", 32, 32).word_end()],
    ),
    (
        "mailgun_key",
        &[Form::new(&["key-"], "0-9a-zA-Z", 32, 32).word_end()],
    ),
];

/// The password of a `url_password` match `scheme://user:password@`: neither the scheme nor
/// the user contains a `:`, so it runs from the first `:` after `://` to the final `@`.
fn url_password(m: &str) -> Option<std::ops::Range<usize>> {
    let user = m.find("://")? + 3;
    let colon = user + m[user..].find(':')?;
    Some(colon + 1..m.len().checked_sub(1)?)
}

/// The `user:password` of a `curl_user` match: after the last blank (before `-u`/`--user`, or
/// between it and the credentials), that option and one opening quote.
fn curl_credentials(m: &str) -> Option<std::ops::Range<usize>> {
    let mut start = m.rfind([' ', '\t']).map_or(0, |i| i + 1);
    let rest = &m[start..];
    if let Some(after) = rest
        .strip_prefix("--user")
        .or_else(|| rest.strip_prefix("-u"))
    {
        start = m.len() - after.len();
    }
    if m[start..].starts_with(['"', '\'']) {
        start += 1;
    }
    Some(start..m.len())
}

/// Detectors whose replaced capture group follows from the matched text alone, by detector
/// name: found with the regex's DFAs, without a capture search (`Matcher::Derived`), which for
/// patterns with long counted repetitions costs a bounded backtracker's visited set per search
/// (an `Authorization:` header detector tried that way tripled the instructions of dense
/// text). A test holds each to its capture group, on samples and on generated text.
pub(crate) const SPANS: &[(&str, SpanFn)] = &[
    ("url_password", url_password),
    ("curl_user", curl_credentials),
];
