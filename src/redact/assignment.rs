//! Assignments — `password = value`, `"aws_secret_access_key": "…"`, `;Password=…` — matched
//! by a small hand-written grammar instead of regexes.
//!
//! As regexes these need a capture group for the value, and a capture search is costly per
//! candidate (the figure is in the README's Performance section, "Figures behind design
//! choices"); candidates are frequent in configuration text and most are then rejected
//! (placeholders, low entropy, a specific token inside). The same grammar also answers the stream redactor's
//! question "could a match still start here?" precisely, so streamed prose that merely
//! mentions a password is not held back.
//!
//! ```text
//! lead? [ \t]{0,3}  keyword  ident{0,ident_max}  (\? quote?)  [ \t]{0,3}
//!       (string [ \t]{1,3})?  operator  [ \t]{0,3}  (\? quote?)  value{value_min,value_max}
//! ```
//!
//! Keywords match ASCII case-insensitively, the longest wins; ident is `[A-Za-z0-9_.-]`; quote
//! is one of `"'` and backtick (only where the grammar allows quoting); a `string` type name
//! may stand between a name and its operator (Go's `var apiToken string = "…"`) in grammars
//! with identifiers. The match runs from the
//! lead or keyword to the end of the value; only the value is replaced.

use super::byteset::Openings;
use super::detector::RawMatch;

/// One assignment grammar.
pub(crate) struct Grammar {
    /// A byte that must precede the keyword (then up to 3 blanks), e.g. `;` in connection
    /// strings.
    pub lead: Option<u8>,
    /// Complete keyword forms, lower-case.
    pub keywords: &'static [&'static str],
    /// Identifier bytes allowed after the keyword (`DB_PASSWORD_PROD`).
    pub ident_max: usize,
    /// Whether an optional backslash and quote may follow the identifier and precede the value.
    pub quotes: bool,
    /// Operators, longest first.
    pub operators: &'static [&'static str],
    /// The bytes a value may contain (a table: values are walked byte by byte).
    pub value: [bool; 256],
    pub value_min: usize,
    pub value_max: usize,
    /// Trailing `.` is not part of the value (the end of a sentence).
    pub trim_dots: bool,
    /// The bytes a match can start with (the lead, or keyword initials in both cases): a quick
    /// filter before walking.
    pub first: [bool; 256],
    /// The first two bytes of the keywords, in any case, as a 64 Ki-bit set (`a << 8 | b`):
    /// a finer filter where no lead byte comes first.
    pub openings: Openings,
    /// The first bytes of the operators.
    pub operator_first: [bool; 256],
}

/// A `[bool; 256]` table of the bytes for which the expression holds, built at compile time.
macro_rules! byte_table {
    (|$b:ident| $accept:expr) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            table[i] = $accept;
            i += 1;
        }
        table
    }};
}

/// The `operator_first` table for a grammar.
const fn operator_bytes(operators: &[&str]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < operators.len() {
        table[operators[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    table
}

/// The `first` table for a grammar.
const fn first_bytes(lead: Option<u8>, keywords: &[&str]) -> [bool; 256] {
    let mut table = [false; 256];
    if let Some(b) = lead {
        table[b as usize] = true;
        return table;
    }
    let mut i = 0;
    while i < keywords.len() {
        let b = keywords[i].as_bytes()[0];
        table[b.to_ascii_lowercase() as usize] = true;
        table[b.to_ascii_uppercase() as usize] = true;
        i += 1;
    }
    table
}

/// `key = value`, `key: value`, `key := value`, `key => value`, Makefile's `?=`, `::=` and
/// `:::=`, PHP's `.=`; longest first. `,` separates a call's quoted name and quoted value
/// (`System.setProperty("X_TOKEN", "…")`, `os.Setenv("DB_PASSWORD", "…")`): only between
/// quotes.
///
/// `>` ends an XML element's start tag: `<apiToken>…</apiToken>`, the value on the same line or
/// the next (up to 8 blanks and line ends after the `>`).
const ASSIGNMENT_OPERATORS: &[&str] = &[":::=", "::=", "=>", ":=", "?=", ".=", "=", ":", ">", ","];

const GENERIC_KEYWORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "credentials",
    "credential",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "authkey",
    "auth_key",
    "auth-key",
    "privatekey",
    "private_key",
    "private-key",
    "clientsecret",
    "client_secret",
    "client-secret",
];

const AWS_SECRET_KEYWORDS: &[&str] = &[
    "aws_secret_access_key",
    "aws_secret_accesskey",
    "aws_secretaccess_key",
    "aws_secretaccesskey",
    "aws_secret_key",
    "aws_secretkey",
    "awssecret_access_key",
    "awssecret_accesskey",
    "awssecretaccess_key",
    "awssecretaccesskey",
    "awssecret_key",
    "awssecretkey",
    "secret_access_key",
    "secret_accesskey",
    "secretaccess_key",
    "secretaccesskey",
    "secret_key",
    "secretkey",
];

/// `password = "…"`, `DB_TOKEN: …`, `"client_secret": "…"`, `apiKey => '…'`.
pub(crate) static GENERIC: Grammar = Grammar {
    lead: None,
    keywords: GENERIC_KEYWORDS,
    ident_max: 20,
    quotes: true,
    operators: ASSIGNMENT_OPERATORS,
    value: byte_table!(|b| generic_value(b)),
    value_min: 8,
    value_max: 128,
    trim_dots: true,
    first: first_bytes(None, GENERIC_KEYWORDS),
    openings: Openings::of(GENERIC_KEYWORDS),
    operator_first: operator_bytes(ASSIGNMENT_OPERATORS),
};

/// The longest generic match: keyword 13 + ident 20 + quoting and blanks 10 + `string` and
/// its blanks 9 + operator 4 + value 128, and 5 for the line break an XML element may have
/// after its `>`.
pub(crate) const GENERIC_MAX: usize = 192;

/// `aws_secret_access_key = …`, `secretAccessKey: "…"`: exactly 40 base64 bytes.
pub(crate) static AWS_SECRET: Grammar = Grammar {
    lead: None,
    keywords: AWS_SECRET_KEYWORDS,
    ident_max: 0,
    quotes: true,
    operators: ASSIGNMENT_OPERATORS,
    value: byte_table!(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+'),
    value_min: 40,
    value_max: 40,
    trim_dots: false,
    first: first_bytes(None, AWS_SECRET_KEYWORDS),
    openings: Openings::of(AWS_SECRET_KEYWORDS),
    operator_first: operator_bytes(ASSIGNMENT_OPERATORS),
};

/// The longest AWS secret match: keyword 21 + quoting and blanks 10 + operator 2 + value 40.
pub(crate) const AWS_SECRET_MAX: usize = 73;

/// `;Password=…` in ADO/ODBC connection strings.
pub(crate) static CONNECTION_STRING: Grammar = Grammar {
    lead: Some(b';'),
    keywords: &["password", "pwd"],
    ident_max: 0,
    quotes: false,
    operators: &["="],
    value: byte_table!(|b| !matches!(
        b,
        b';' | b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'\\'
    )),
    value_min: 1,
    value_max: 128,
    trim_dots: false,
    first: first_bytes(Some(b';'), &["password", "pwd"]),
    openings: Openings::of(&["password", "pwd"]),
    operator_first: operator_bytes(&["="]),
};

/// The longest connection-string match: `;` + 3 + `password` + 3 + `=` + 3 + value 128.
pub(crate) const CONNECTION_STRING_MAX: usize = 147;

const fn generic_value(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'_' | b'-'
                | b'.'
                | b':'
                | b'/'
                | b'+'
                | b'='
                | b'~'
                | b'!'
                | b'@'
                | b'#'
                | b'$'
                | b'%'
                | b'^'
                | b'&'
                | b'*'
        )
}

/// Identifier bytes, `[A-Za-z0-9_.-]`: a table, as identifiers are walked byte by byte.
static IDENT: [bool; 256] =
    byte_table!(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));

fn is_ident(b: u8) -> bool {
    IDENT[usize::from(b)]
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Blanks and line ends between an XML element's `>` and its value.
const XML_SPACE: usize = 8;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn is_quote(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'`')
}

/// How a walk over the grammar ended.
enum Walk {
    /// A complete match; `growable` when its value ran to the end of the text (trailing dots
    /// included) below `value_max`, so more text could extend it.
    Match { m: RawMatch, growable: bool },
    /// The text ended while the grammar could still continue.
    Open,
    /// Not a match, whatever follows.
    Fail,
}

impl Grammar {
    /// The leftmost match starting at or after `start`.
    ///
    /// No operator byte can occur between a match's start and its operator, so the leftmost
    /// match belongs to the first operator that has one: the walk jumps from operator to
    /// operator and tries only the identifier (and lead) just before each.
    pub(crate) fn find_at(&self, hay: &str, start: usize) -> Option<RawMatch> {
        let bytes = hay.as_bytes();
        let lead = if self.lead.is_some() { 4 } else { 0 };
        let mut from = start;
        while let Some(op) = (from..bytes.len()).find(|&i| self.operator_byte(bytes[i])) {
            let (id_start, _) = identifier_before(bytes, start, op);
            let lo = id_start.saturating_sub(lead).max(start);
            for s in (lo..op).filter(|&s| self.may_start(bytes, s)) {
                if let Walk::Match { m, .. } = self.walk(bytes, s) {
                    return Some(m);
                }
            }
            from = op + 1;
        }
        None
    }

    /// Whether a complete match could start at `s`: its lead byte, or a keyword's first two
    /// bytes. Most identifier bytes fail this, and `walk` is not called for them.
    fn may_start(&self, bytes: &[u8], s: usize) -> bool {
        match (self.lead, bytes.get(s + 1)) {
            (Some(_), _) => self.first[usize::from(bytes[s])],
            (None, Some(&next)) => self.openings.contains(bytes[s], next),
            (None, None) => false,
        }
    }

    fn operator_byte(&self, b: u8) -> bool {
        self.operator_first[usize::from(b)]
    }

    /// A bound on the end of every match whose operator starts at `op`: the operator (at most
    /// two bytes, any operator byte), at most 3 blanks, an optional backslash and quote, and at
    /// most `value_max` value bytes. The prefilter ends such an anchor's window here instead of
    /// `max_len` bytes on: in configuration text the next lines are full of operators, and
    /// every one of them would otherwise be tried again after the match.
    ///
    /// Skipping each part greedily never ends early: where the real operator is shorter, the
    /// byte skipped in excess is either a value byte (the value run then ends at the same
    /// place) or not (the real value is then empty, and no match exists).
    pub(crate) fn reach(&self, bytes: &[u8], op: usize) -> usize {
        let operator = |b: u8| self.operators.iter().any(|o| o.as_bytes().contains(&b));
        let op_max = self.operators.iter().map(|o| o.len()).max().unwrap_or(0);
        let mut i = skip(bytes, op, op_max, operator);
        i = skip(bytes, i, XML_SPACE, is_space);
        if self.quotes {
            i = skip(bytes, i, 1, |b| b == b'\\');
            i = skip(bytes, i, 1, is_quote);
        }
        skip(bytes, i, self.value_max, |b| self.value[usize::from(b)])
    }

    /// Whether `tail` — the text from a candidate start to the end of what has arrived — can
    /// still become (or grow into) a match when more text arrives.
    pub(crate) fn could_start(&self, tail: &[u8]) -> bool {
        match self.walk(tail, 0) {
            Walk::Open => true,
            Walk::Match { growable, .. } => growable,
            Walk::Fail => false,
        }
    }

    fn walk(&self, bytes: &[u8], s: usize) -> Walk {
        let n = bytes.len();
        match bytes.get(s) {
            None => return Walk::Open,
            Some(&b) if !self.first[usize::from(b)] => return Walk::Fail,
            Some(_) => {}
        }
        let mut i = s;
        if let Some(lead) = self.lead {
            match bytes.get(i) {
                None => return Walk::Open,
                Some(&b) if b == lead => i += 1,
                Some(_) => return Walk::Fail,
            }
            i = skip(bytes, i, 3, is_blank);
            if i == n {
                return Walk::Open;
            }
        }
        match self.keyword(&bytes[i..]) {
            Keyword::Complete(len) => i += len,
            Keyword::Partial => return Walk::Open,
            Keyword::None => return Walk::Fail,
        }
        let ident_end = skip(bytes, i, self.ident_max + 1, is_ident);
        if ident_end - i > self.ident_max {
            return Walk::Fail;
        }
        if ident_end < n
            && ident_end - i >= 2
            && bytes[ident_end - 2..ident_end].eq_ignore_ascii_case(b"id")
        {
            // `token_id`, `secretId`, `<UserSecretsId>`: the name of an identifier, not of a
            // secret.
            return Walk::Fail;
        }
        i = ident_end;
        if i == n {
            return Walk::Open;
        }
        let mut name_quoted = false;
        if self.quotes {
            i = skip(bytes, i, 1, |b| b == b'\\');
            let quote_end = skip(bytes, i, 1, is_quote);
            name_quoted = quote_end > i;
            i = quote_end;
        }
        i = skip(bytes, i, 3, is_blank);
        if i == n {
            return Walk::Open;
        }
        if self.ident_max > 0 {
            // Go's `var apiToken string = "…"`: the type between the name and `=`.
            const TYPE: &[u8] = b"string";
            let rest = &bytes[i..];
            let k = rest.len().min(TYPE.len());
            if rest[..k].eq_ignore_ascii_case(&TYPE[..k]) {
                if rest.len() <= TYPE.len() {
                    return Walk::Open;
                }
                if is_blank(rest[TYPE.len()]) {
                    i = skip(bytes, i + TYPE.len(), 3, is_blank);
                    if i == n {
                        return Walk::Open;
                    }
                }
            }
        }
        let rest = &bytes[i..];
        let call = match self
            .operators
            .iter()
            .find(|op| rest.starts_with(op.as_bytes()))
        {
            // A call's arguments: a quoted name only.
            Some(&",") if !name_quoted => return Walk::Fail,
            // `=` might still become `=>`: a match found now could change.
            Some(op) if rest.len() == op.len() => return Walk::Open,
            Some(op) => {
                i += op.len();
                *op == ","
            }
            None if self
                .operators
                .iter()
                .any(|op| op.as_bytes().starts_with(rest)) =>
            {
                return Walk::Open
            }
            None => return Walk::Fail,
        };
        i = if bytes[i - 1] == b'>' {
            skip(bytes, i, XML_SPACE, is_space)
        } else {
            skip(bytes, i, 3, is_blank)
        };
        if self.quotes {
            i = skip(bytes, i, 1, |b| b == b'\\');
            if call {
                // And a quoted value.
                match bytes.get(i) {
                    None => return Walk::Open,
                    Some(&b) if is_quote(b) => i += 1,
                    Some(_) => return Walk::Fail,
                }
            } else {
                i = skip(bytes, i, 1, is_quote);
            }
        }
        if i == n {
            return Walk::Open;
        }
        let value_start = i;
        let run_end = skip(bytes, i, self.value_max, |b| self.value[usize::from(b)]);
        let growable = run_end == n && run_end - value_start < self.value_max;
        let mut end = run_end;
        if self.trim_dots {
            while end > value_start && bytes[end - 1] == b'.' {
                end -= 1;
            }
        }
        if end - value_start < self.value_min {
            // Too short so far: more value bytes may still arrive.
            return if growable { Walk::Open } else { Walk::Fail };
        }
        Walk::Match {
            m: RawMatch {
                start: s,
                end,
                span: value_start..end,
            },
            growable,
        }
    }

    fn keyword(&self, text: &[u8]) -> Keyword {
        let mut best = None;
        let mut partial = false;
        let first = text.first().map(u8::to_ascii_lowercase);
        for k in self.keywords {
            let k = k.as_bytes();
            if first.is_some_and(|f| f != k[0]) {
                continue;
            }
            if text.len() >= k.len() {
                // The second byte first: most keywords sharing the first byte differ there.
                if (k.len() < 2 || text[1].eq_ignore_ascii_case(&k[1]))
                    && text[..k.len()].eq_ignore_ascii_case(k)
                {
                    best = best.max(Some(k.len()));
                }
            } else if k[..text.len()].eq_ignore_ascii_case(text) {
                partial = true;
            }
        }
        match (best, partial) {
            // A longer keyword could still complete: with ident bytes allowed it makes no
            // difference to the match; without, it could.
            (Some(_), true) if self.ident_max == 0 => Keyword::Partial,
            (Some(len), _) => Keyword::Complete(len),
            (None, true) => Keyword::Partial,
            (None, false) => Keyword::None,
        }
    }
}

impl std::fmt::Debug for Grammar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammar")
            .field("lead", &self.lead)
            .field("keywords", &self.keywords)
            .finish_non_exhaustive()
    }
}

enum Keyword {
    Complete(usize),
    Partial,
    None,
}

/// The identifier that ends before the operator at `op`, not reaching before `from`: skips up
/// to 3 spaces or tabs, a quote and a backslash, then walks back over `[A-Za-z0-9_.-]` (at
/// most [`IDENTIFIER_MAX`] bytes). Returns `(start, end)`.
pub(crate) fn identifier_before(bytes: &[u8], from: usize, op: usize) -> (usize, usize) {
    let mut i = op;
    // The rest of an operator ending at `op`: `?=`, `.=`, `::=`, `:::=` (anchored at `=`).
    let mut prefix = 0;
    while i > from && prefix < 3 && matches!(bytes[i - 1], b'?' | b'.' | b':') {
        i -= 1;
        prefix += 1;
    }
    let mut spaces = 0;
    while i > from && spaces < 3 && is_blank(bytes[i - 1]) {
        i -= 1;
        spaces += 1;
    }
    if i > from && is_quote(bytes[i - 1]) {
        i -= 1;
    }
    if i > from && bytes[i - 1] == b'\\' {
        i -= 1;
    }
    let end = i;
    let lo = from.max(end.saturating_sub(IDENTIFIER_MAX));
    while i > lo && is_ident(bytes[i - 1]) {
        i -= 1;
    }
    // Go's `var apiToken string = …`: the name is the identifier before the `string` type.
    if bytes[i..end].eq_ignore_ascii_case(b"string") {
        let mut j = i;
        let mut blanks = 0;
        while j > from && blanks < 3 && is_blank(bytes[j - 1]) {
            j -= 1;
            blanks += 1;
        }
        let lo = from.max(j.saturating_sub(IDENTIFIER_MAX));
        let mut k = j;
        while k > lo && is_ident(bytes[k - 1]) {
            k -= 1;
        }
        if blanks > 0 && k < j {
            i = k;
        }
    }
    (i, end)
}

/// How far back an identifier is followed. Identifiers are short; a longer one is cut, which is
/// harmless: a match starts at most keyword + `ident_max` bytes before the identifier's end.
pub(crate) const IDENTIFIER_MAX: usize = 96;

/// The position after at most `max` bytes from `i` accepted by `accept`.
fn skip(bytes: &[u8], i: usize, max: usize, accept: impl Fn(u8) -> bool) -> usize {
    let limit = bytes.len().min(i + max);
    (i..limit).find(|&j| !accept(bytes[j])).unwrap_or(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'t>(g: &Grammar, text: &'t str) -> Vec<&'t str> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(m) = g.find_at(text, at) {
            out.push(&text[m.span.clone()]);
            at = m.end;
        }
        out
    }

    #[test]
    fn generic_grammar() {
        let g = &GENERIC;
        assert_eq!(values(g, r#"password = "Xk9#mP2$vL8q""#), ["Xk9#mP2$vL8q"]);
        assert_eq!(values(g, "DB_PASSWORD_PROD=s3cr3t-P4ss."), ["s3cr3t-P4ss"]);
        assert_eq!(
            values(g, r#"{\"client_secret\": \"abcd1234efgh\"}"#),
            ["abcd1234efgh"]
        );
        assert_eq!(values(g, "apiKeyV2 => 'zz9911aa8877'"), ["zz9911aa8877"]);
        assert_eq!(values(g, "Api-Key:\tq1w2e3r4t5"), ["q1w2e3r4t5"]);
        assert_eq!(values(g, "token:=abcdefgh1"), ["abcdefgh1"]);
        assert_eq!(values(g, "x.pAsSwd = Xk9#mP2$vL8q"), ["Xk9#mP2$vL8q"]);
        // Makefile, PHP and Go assignments.
        for text in [
            "API_TOKEN ?= Xk9mP2vL8qR4",
            "API_TOKEN ::= Xk9mP2vL8qR4",
            "API_TOKEN :::= Xk9mP2vL8qR4",
            "$apiToken .= 'Xk9mP2vL8qR4';",
            "var apiToken string = \"Xk9mP2vL8qR4\"",
            "const dbPassword String = \"Xk9mP2vL8qR4\"",
        ] {
            assert_eq!(values(g, text), ["Xk9mP2vL8qR4"], "{text}");
        }
        assert_eq!(
            values(g, "<apiToken>\n    Xk9mP2vL8qR4\n</apiToken>"),
            ["Xk9mP2vL8qR4"]
        );
        assert_eq!(
            values(g, "<db_password>Xk9mP2vL8qR4</db_password>"),
            ["Xk9mP2vL8qR4"]
        );
        assert!(values(g, "password > 8 characters").is_empty());
        for id in [
            "<UserSecretsId>79a3edd0-2092-40a2-a04d-dcb46d5ca9ed</UserSecretsId>",
            "token_id = Xk9mP2vL8qR4",
            "\"secretId\": \"Xk9mP2vL8qR4\"",
        ] {
            assert!(values(g, id).is_empty(), "{id}");
        }
        assert!(values(g, "token strings are short").is_empty());
        assert!(values(g, "var token string").is_empty());
        assert!(values(g, "the password is strong").is_empty());
        assert!(values(g, "password: short").is_empty());
        assert!(values(g, "token_with_a_very_long_identifier_name = abcdefgh12").is_empty());
        assert!(values(g, "password    = four-blanks-are-too-many").is_empty());
        let long = format!("secret={}", "a".repeat(300));
        assert_eq!(g.find_at(&long, 0).map(|m| m.span.len()), Some(128));
    }

    #[test]
    fn other_grammars() {
        let secret = "9Pu2njHkAm1+5wDr16EpLLJIVGHz4FxFEtKyPiYG";
        assert_eq!(
            values(&AWS_SECRET, &format!("AWS_SECRET_ACCESS_KEY={secret}")),
            [secret]
        );
        assert_eq!(
            values(&AWS_SECRET, &format!(r#""secretAccessKey": "{secret}""#)),
            [secret]
        );
        assert!(values(&AWS_SECRET, "aws_secret_access_key = tooShort").is_empty());
        assert_eq!(
            values(&CONNECTION_STRING, "Server=x; Password = p@ss w0rd;"),
            ["p@ss"]
        );
        assert_eq!(values(&CONNECTION_STRING, "a;pwd=s3cret"), ["s3cret"]);
        assert!(values(&CONNECTION_STRING, "Password=s3cret").is_empty());
    }

    #[test]
    fn could_start() {
        let g = &GENERIC;
        for open in [
            "pass",
            "password",
            "PASSWORD_DB",
            "token ",
            "token :",
            "token =",
            "token: \"abc",
            "api_k",
        ] {
            assert!(g.could_start(open.as_bytes()), "{open:?}");
        }
        for decided in [
            "passport",
            "token is",
            "pwd: abcdefghij ",
            "the",
            "token: short ",
        ] {
            assert!(!g.could_start(decided.as_bytes()), "{decided:?}");
        }
        assert!(CONNECTION_STRING.could_start(b";"));
        assert!(CONNECTION_STRING.could_start(b"; pass"));
        assert!(!CONNECTION_STRING.could_start(b"; and"));
        assert!(
            AWS_SECRET.could_start(b"secret_key"),
            "an operator may follow"
        );
        assert!(
            g.could_start(b"token: abcdefgh."),
            "the value may continue after the dot"
        );
        assert!(!g.could_start(b"token: abcdefgh. "));
    }
}
