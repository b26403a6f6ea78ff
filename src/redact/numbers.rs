//! Hand-written matchers for numbers: payment cards, US SSNs, phone numbers, IBANs.
//!
//! Regexes for these need alternations that the regex crate cannot accelerate (no common
//! literal), which made every search slow (the figure is in the README's Performance section,
//! "Figures behind design choices"); and two of them need a checksum that picks
//! where the number ends anyway. These matchers walk the digits directly. Like any detector
//! they find the leftmost valid match, and whether a match starts at `s` depends only on the
//! byte before `s` and at most `max_len + 1` bytes from `s`.
//!
//! A *boundary* is a position whose neighbour on that side is not a word byte
//! (`[A-Za-z0-9_]`), or the end of the text — so `x4111…` or `4111…x` is not a card.

use super::byteset::is_word;
use super::detector::RawMatch;

/// Longest match of each kind, in bytes (also the detectors' `max_len`).
pub(crate) const CARD_MAX: usize = 32;
pub(crate) const SSN_LEN: usize = 11;
pub(crate) const PHONE_MAX: usize = 40;
pub(crate) const IBAN_MAX: usize = 64;

/// Which number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Number {
    /// 13–19 digits passing Luhn, starting with 2–6, or UATP's 15 starting with 1 (whole or
    /// 4-4-4-3), in groups
    /// separated by single spaces or dashes (`4111 1111 1111 1111`, `378282246310005`). A
    /// longer run is cut at a separator. Digits inside an IBAN-shaped run (`DE89 3704 …` whose
    /// check digits fail) are not a card.
    Card,
    /// `ddd-dd-dddd`, `ddd dd dddd` or `ddd.dd.dddd`, and the mistyped `ddd-dddddd` and
    /// `ddddd-dddd`, without area 000, 666 or 9xx, group 00 or serial 0000.
    Ssn,
    /// North American `(415) 555-2671`, `415.555.2671`, `+1 415 555 2671`, `1-800-555-1234`
    /// (area and exchange start with 2–9); international `+` country code and groups with
    /// single ` `, `.`, `-` separators and one optional group in parentheses (`(0)`, `(20)`):
    /// 8–15 digits in all; or national with a trunk `0` (`090-1234-5678`, `09-7625400`,
    /// `020 7123 4567`): 9–11 digits in groups with one kind of separator, at least two groups.
    Phone,
    /// Two letters, two check digits, then upper-case letters and digits with single spaces:
    /// 15–34 characters passing ISO 7064 mod 97. A longer run is cut at a space.
    Iban,
}

impl Number {
    /// The leftmost match starting at or after `start`.
    pub(crate) fn find_at(self, hay: &str, start: usize) -> Option<RawMatch> {
        match self {
            Number::Card => find(
                hay,
                start,
                |b, word| !word && matches!(b, b'1'..=b'6'),
                card_at,
            ),
            Number::Ssn => find(hay, start, |b, word| !word && b.is_ascii_digit(), ssn_at),
            Number::Iban => find(
                hay,
                start,
                |b, word| !word && b.is_ascii_uppercase(),
                iban_at,
            ),
            // North American numbers start at `+1`, `(` or a digit at a boundary,
            // international ones at `+`.
            Number::Phone => find(
                hay,
                start,
                |b, word| b == b'+' || b == b'(' || (!word && b.is_ascii_digit()),
                phone_at,
            ),
        }
    }

    /// Whether a match of this kind may begin at the run of digits that starts at `at` (two
    /// digits, no digit before them) — the prefilter's test before it opens a window there.
    ///
    /// Every match has such a run at a fixed place near its start, and the test is exact there:
    /// a card or an SSN starts with its run; an IBAN's run is its check digits, two bytes in;
    /// a North American phone number's first run is its area code (or `1` and the area code),
    /// at most 3 bytes in (`1-(415)`); a national one starts with its run, `0` and a non-zero
    /// digit. Phone numbers starting with `+` are left to the `+`
    /// anchor: their first digit pair can be anywhere (`+7 9 12…`). Most digit runs of dense
    /// text — dates, times, versions, addresses — fail this test in a few comparisons.
    #[inline]
    pub(crate) fn may_start_near(self, bytes: &[u8], at: usize) -> bool {
        // Each test first looks at the few bytes that reject most runs, inline (this function
        // is called for every digit run of the text); the matchers themselves, and the rarer
        // shapes' tests, are kept out of line.
        let upper = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_uppercase);
        match self {
            Number::Card => {
                matches!(bytes[at], b'1'..=b'6')
                    && digits(bytes, at + 2, 2)
                    && (bytes[at] != b'1' || uatp_shape(bytes, at))
                    && boundary_before(bytes, at)
                    && card_at(bytes, at).is_some()
            }
            Number::Ssn => {
                (matches!(bytes.get(at + 3), Some(b' ' | b'-' | b'.'))
                    || bytes.get(at + 5) == Some(&b'-'))
                    && boundary_before(bytes, at)
                    && ssn_at(bytes, at).is_some()
            }
            Number::Iban => {
                at >= 2 && upper(at - 1) && upper(at - 2) && iban_at(bytes, at - 2).is_some()
            }
            // The run is the area code (2–9 and two digits), or `1` directly followed by it;
            // before it only `1`, `(`, `+1` and separators.
            Number::Phone => {
                let area = |i: usize| {
                    bytes.get(i).is_some_and(|b| matches!(b, b'2'..=b'9'))
                        && digits(bytes, i + 1, 2)
                };
                (bytes[at] == b'0' && bytes[at + 1] != b'0' && national(bytes, at).is_some())
                    || (area(at) || (bytes[at] == b'1' && area(at + 1)))
                        && (at.saturating_sub(3)..=at).any(|s| {
                            let lead = if s == at {
                                matches!(bytes[at], b'1'..=b'9')
                            } else {
                                matches!(bytes[s], b'1' | b'(' | b'+')
                                    && matches!(bytes[at], b'2'..=b'9')
                            };
                            lead && north_american(bytes, s).is_some()
                        })
            }
        }
    }
}

/// The leftmost match of `at` starting at or after `start`, trying only starts that `may`
/// accepts (given the byte and whether the byte before it is a word byte): a necessary
/// condition of `at`, checked in one pass — most bytes of a window cannot start a number.
fn find(
    hay: &str,
    start: usize,
    may: impl Fn(u8, bool) -> bool,
    at: fn(&[u8], usize) -> Option<usize>,
) -> Option<RawMatch> {
    let bytes = hay.as_bytes();
    let mut word = start > 0 && bytes.get(start - 1).is_some_and(|&b| is_word(b));
    for (s, &b) in bytes.iter().enumerate().skip(start) {
        if may(b, word) {
            if let Some(end) = at(bytes, s) {
                return Some(RawMatch {
                    start: s,
                    end,
                    span: s..end,
                });
            }
        }
        word = is_word(b);
    }
    None
}

fn boundary_before(bytes: &[u8], s: usize) -> bool {
    s == 0 || !is_word(bytes[s - 1])
}

fn boundary_after(bytes: &[u8], e: usize) -> bool {
    bytes.get(e).is_none_or(|&b| !is_word(b))
}

fn digit(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_some_and(u8::is_ascii_digit)
}

fn digits(bytes: &[u8], i: usize, n: usize) -> bool {
    (i..i + n).all(|j| digit(bytes, j))
}

fn card_at(bytes: &[u8], s: usize) -> Option<usize> {
    if !boundary_before(bytes, s) || !matches!(bytes[s], b'1'..=b'6') || !digits(bytes, s, 4) {
        return None;
    }
    // UATP numbers are the only ones starting with 1: 15 digits, whole or 4-4-4-3.
    if bytes[s] == b'1' && !uatp_shape(bytes, s) {
        return None;
    }
    let lengths = if bytes[s] == b'1' { 15..=15 } else { 13..=19 };
    // Walk digit groups separated by single spaces or dashes; every group end followed by a
    // separator (or the run's end at a boundary) is a possible end of the number, and the
    // last one with 13–19 digits passing Luhn is the match.
    let limit = bytes.len().min(s + CARD_MAX);
    let mut luhn = Luhn::default();
    let mut best = None;
    let mut i = s;
    loop {
        while i < limit && bytes[i].is_ascii_digit() {
            luhn.push(bytes[i]);
            i += 1;
        }
        let separated =
            i + 1 < limit && matches!(bytes[i], b' ' | b'-') && bytes[i + 1].is_ascii_digit();
        if (separated || boundary_after(bytes, i)) && lengths.contains(&luhn.count) && luhn.valid()
        {
            best = Some(i);
        }
        if !separated {
            break;
        }
        i += 1;
    }
    best.filter(|_| !inside_iban_shape(bytes, s))
}

/// Whether a UATP card number's shape starts at `s`: 15 digits, whole or grouped 4-4-4-3 by
/// one kind of separator, and no digit after. Most runs starting with 1 (years, counts) fail
/// in the first few bytes.
#[inline(never)]
fn uatp_shape(bytes: &[u8], s: usize) -> bool {
    let whole = digits(bytes, s, 15) && !digit(bytes, s + 15);
    let grouped = || {
        let sep = bytes.get(s + 4).copied();
        matches!(sep, Some(b' ' | b'-'))
            && digits(bytes, s, 4)
            && digits(bytes, s + 5, 4)
            && bytes.get(s + 9).copied() == sep
            && digits(bytes, s + 10, 4)
            && bytes.get(s + 14).copied() == sep
            && digits(bytes, s + 15, 3)
            && !digit(bytes, s + 18)
    };
    whole || grouped()
}

/// Whether `s` follows groups of an IBAN's shape: walking back over single-separated groups of
/// up-to-four upper-case letters and digits reaches `CCkk` (country and check digits) at a
/// boundary. Such a run failed mod 97 or its country's length (else the IBAN detector has it);
/// the card-shaped digits in it are part of a malformed account number, not a card.
fn inside_iban_shape(bytes: &[u8], s: usize) -> bool {
    let alnum = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut end = s;
    // An IBAN has at most 34 characters: 8 groups of 4 before a card's 16 digits.
    for _ in 0..8 {
        if end < 2 || !matches!(bytes[end - 1], b' ' | b'-') {
            return false;
        }
        let sep_at = end - 1;
        let mut start = sep_at;
        while start > 0 && sep_at - start < 4 && alnum(bytes[start - 1]) {
            start -= 1;
        }
        if start == sep_at
            || !boundary_before(bytes, start) && !matches!(bytes[start - 1], b' ' | b'-')
        {
            return false;
        }
        let group = &bytes[start..sep_at];
        if group.len() == 4
            && boundary_before(bytes, start)
            && group[..2].iter().all(u8::is_ascii_uppercase)
            && group[2..].iter().all(u8::is_ascii_digit)
        {
            return true;
        }
        end = start;
    }
    false
}

/// The Luhn checksum of a growing digit string, valid for every prefix: the digit doubled are
/// the ones at an odd distance from the last, so two sums are kept, one per parity of the
/// position, and the prefix's length picks which one is its checksum.
#[derive(Default)]
struct Luhn {
    count: usize,
    /// `sums[0]` doubles the digits at odd positions, `sums[1]` those at even positions.
    sums: [u32; 2],
}

impl Luhn {
    fn push(&mut self, d: u8) {
        let v = u32::from(d - b'0');
        let doubled = if v > 4 { 2 * v - 9 } else { 2 * v };
        let odd = self.count % 2;
        self.sums[odd] += v;
        self.sums[1 - odd] += doubled;
        self.count += 1;
    }

    /// Whether the digits pushed so far pass: the last digit is not doubled, so the sum that
    /// doubles the other parity.
    fn valid(&self) -> bool {
        self.count > 0 && self.sums[(self.count - 1) % 2] % 10 == 0
    }
}

fn ssn_at(bytes: &[u8], s: usize) -> Option<usize> {
    if !boundary_before(bytes, s) {
        return None;
    }
    // Area, group and serial with their separators: `ddd-dd-dddd` with one kind of separator
    // (` `, `-`, `.`), or `ddd-dddddd` / `ddddd-dddd` with one dash.
    let sep = *bytes.get(s + 3)?;
    let (group, serial, end) = if matches!(sep, b'-' | b' ' | b'.')
        && digits(bytes, s + 4, 2)
        && bytes.get(s + 6) == Some(&sep)
    {
        (s + 4, s + 7, s + SSN_LEN)
    } else if sep == b'-' {
        (s + 4, s + 6, s + 10)
    } else if bytes.get(s + 5) == Some(&b'-') {
        (s + 3, s + 6, s + 10)
    } else {
        return None;
    };
    let shaped = digits(bytes, s, 3)
        && digits(bytes, group, 2)
        && digits(bytes, serial, 4)
        && boundary_after(bytes, end)
        // `123-456789-0`, `123.45.6789.1`: part of a longer number.
        && !(matches!(bytes.get(end), Some(b'-' | b'.')) && digit(bytes, end + 1));
    if !shaped {
        return None;
    }
    let (area, group, serial) = (
        &bytes[s..s + 3],
        &bytes[group..group + 2],
        &bytes[serial..serial + 4],
    );
    let possible =
        area != b"000" && area != b"666" && area[0] != b'9' && group != b"00" && serial != b"0000";
    possible.then_some(end)
}

fn phone_at(bytes: &[u8], s: usize) -> Option<usize> {
    let na = north_american(bytes, s);
    let intl = international(bytes, s);
    na.max(intl).or_else(|| national(bytes, s))
}

/// A national number with its trunk `0`: `0` and a non-zero digit at a boundary, then groups
/// of digits with one kind of single separator (` ` or `-`) — a first group of 2–5 digits and
/// one to three more of 3–8, 9–11 digits in all, the whole run (`090-1234-5678`, `09-7625400`,
/// `020 7123 4567`). Dates, versions and malformed SSNs (`078-05-0000`) have shorter groups
/// or other separators; the groups of an IBAN-shaped run are an account number.
#[inline(never)]
fn national(bytes: &[u8], s: usize) -> Option<usize> {
    if bytes.get(s) != Some(&b'0')
        || !matches!(bytes.get(s + 1), Some(b'1'..=b'9'))
        || !boundary_before(bytes, s)
    {
        return None;
    }
    let limit = bytes.len().min(s + PHONE_MAX);
    let mut i = s;
    let mut count = 0;
    let mut groups = 0;
    let mut separator = None;
    loop {
        let group = i;
        while i < limit && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let len = i - group;
        let fits = if groups == 0 {
            (2..=5).contains(&len)
        } else {
            (3..=8).contains(&len)
        };
        if !fits {
            return None;
        }
        count += len;
        groups += 1;
        let next = i + 1 < limit
            && matches!(bytes[i], b' ' | b'-')
            && separator.is_none_or(|sep| sep == bytes[i])
            && bytes[i + 1].is_ascii_digit();
        if !next {
            break;
        }
        separator = Some(bytes[i]);
        i += 1;
    }
    // The run must end here: not at a word byte, nor at another separator and digit.
    let ends = boundary_after(bytes, i)
        && !(i + 1 < bytes.len()
            && matches!(bytes[i], b' ' | b'-' | b'.')
            && bytes[i + 1].is_ascii_digit());
    let fits = (2..=4).contains(&groups) && (9..=11).contains(&count) && ends;
    (fits && !inside_iban_shape(bytes, s)).then_some(i)
}

/// `[+1 sep | 1 sep] (area | (area)) [sep] exchange [sep] line`.
fn north_american(bytes: &[u8], s: usize) -> Option<usize> {
    let sep = |i: usize| {
        bytes
            .get(i)
            .is_some_and(|&b| matches!(b, b' ' | b'.' | b'-'))
    };
    let skip_sep = |i: usize| if sep(i) { i + 1 } else { i };
    let mut i = s;
    if bytes.get(i) == Some(&b'+') && bytes.get(i + 1) == Some(&b'1') {
        i = skip_sep(i + 2);
    } else if bytes.get(i) == Some(&b'1') && boundary_before(bytes, i) {
        i = skip_sep(i + 1);
    } else if bytes.get(i) != Some(&b'(') && !boundary_before(bytes, i) {
        return None;
    }
    let area_ok = |i: usize| matches!(bytes.get(i), Some(b'2'..=b'9')) && digits(bytes, i, 3);
    if bytes.get(i) == Some(&b'(') {
        if !area_ok(i + 1) || bytes.get(i + 4) != Some(&b')') {
            return None;
        }
        i = skip_sep(i + 5);
    } else {
        if !area_ok(i) {
            return None;
        }
        i = skip_sep(i + 3);
    }
    if !area_ok(i) {
        return None;
    }
    i = skip_sep(i + 3);
    if !digits(bytes, i, 4) || !boundary_after(bytes, i + 4) {
        return None;
    }
    Some(i + 4)
}

/// `+` country code (1–3 digits, not starting with 0), then digit groups separated by single
/// ` `, `.`, `-`, with one optional group of 1–4 digits in parentheses (the trunk `(0)`,
/// which is not counted, or an area code `(20)`): the longest prefix with 8–15 digits that
/// ends at a boundary.
fn international(bytes: &[u8], s: usize) -> Option<usize> {
    if bytes.get(s) != Some(&b'+') || !matches!(bytes.get(s + 1), Some(b'1'..=b'9')) {
        return None;
    }
    let limit = bytes.len().min(s + PHONE_MAX);
    let sep = |i: usize| i < limit && matches!(bytes[i], b' ' | b'.' | b'-');
    let mut i = s + 1;
    let mut count = 0;
    let mut best = None;
    let mut parenthesized = false;
    loop {
        while i < limit && bytes[i].is_ascii_digit() {
            i += 1;
            count += 1;
        }
        if count > 15 {
            break;
        }
        if count >= 8 && boundary_after(bytes, i) {
            best = Some(i);
        }
        let mut j = if sep(i) { i + 1 } else { i };
        if !parenthesized && j < limit && bytes[j] == b'(' {
            let inner = bytes[j + 1..limit]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if !(1..=4).contains(&inner) || bytes.get(j + 1 + inner) != Some(&b')') {
                break;
            }
            parenthesized = true;
            if &bytes[j + 1..j + 1 + inner] != b"0" {
                count += inner;
            }
            j += inner + 2;
            if sep(j) {
                j += 1;
            }
        }
        if j == i || j >= limit || !bytes[j].is_ascii_digit() {
            break;
        }
        i = j;
    }
    best
}

/// The length of an IBAN of `country` in the SWIFT IBAN registry, for the countries whose
/// length has been fixed for years; `None` for any other code (their IBANs are taken at any
/// length from 15 to 34, as before the table). A registry country's IBAN of another length is
/// malformed, not redacted on the prefix that happens to pass mod 97.
fn iban_length(country: &[u8]) -> Option<usize> {
    const LENGTHS: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"LY", 25),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"RU", 33),
        (b"SA", 24),
        (b"SC", 31),
        (b"SD", 18),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    LENGTHS
        .iter()
        .find(|(c, _)| c.as_slice() == country)
        .map(|&(_, n)| n)
}

fn iban_at(bytes: &[u8], s: usize) -> Option<usize> {
    let upper = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_uppercase);
    if !boundary_before(bytes, s) || !upper(s) || !upper(s + 1) || !digits(bytes, s + 2, 2) {
        return None;
    }
    let length = iban_length(&bytes[s..s + 2]);
    // ISO 7064 mod 97 over BBAN + country + check digits, kept incrementally over the BBAN so
    // each possible end (before a space, or the run's end at a boundary) costs O(1). The
    // country and check digits are six decimal digits (`DE89` → 131489) appended to the BBAN.
    let mut head = Mod97::default();
    for &c in &bytes[s..s + 4] {
        head.push(c);
    }
    let head = head.acc;
    let limit = bytes.len().min(s + IBAN_MAX);
    let alnum = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let valid = |bban: &Mod97, count: usize| {
        length.map_or((15..=34).contains(&count), |n| count == n)
            && (bban.acc % 97 * 1_000_000 + head) % 97 == 1
    };
    let mut rem = Mod97::default();
    let mut count = 4;
    let mut best = None;
    let mut i = s + 4;
    // Groups are separated by one space or one dash, the same all along (`DE89-3704-…`).
    let mut separator = None;
    loop {
        while i < limit && alnum(bytes[i]) {
            rem.push(bytes[i]);
            count += 1;
            i += 1;
        }
        let spaced = i + 1 < limit
            && matches!(bytes[i], b' ' | b'-')
            && separator.is_none_or(|sep| sep == bytes[i])
            && alnum(bytes[i + 1]);
        if !spaced {
            break;
        }
        separator = Some(bytes[i]);
        if valid(&rem, count) {
            best = Some(i);
        }
        i += 1;
    }
    if boundary_after(bytes, i) && valid(&rem, count) {
        best = Some(i);
    }
    best
}

/// A string of IBAN characters (digits, and letters as two digits each) as a number, reduced
/// mod 97 only when it nears the top of a `u64`: `acc % 97` is the string's remainder.
#[derive(Default)]
struct Mod97 {
    acc: u64,
}

impl Mod97 {
    fn push(&mut self, c: u8) {
        if self.acc >= 1 << 56 {
            self.acc %= 97;
        }
        self.acc = match c {
            b'0'..=b'9' => self.acc * 10 + u64::from(c - b'0'),
            _ => self.acc * 100 + u64::from(c - b'A') + 10,
        };
    }
}

/// Luhn checksum over ASCII digits (the reference for [`Luhn`]).
#[cfg(test)]
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// ISO 7064 mod 97 over an IBAN without spaces (`CCkk` + BBAN, upper-case alphanumerics).
#[cfg(test)]
pub(crate) fn iban_mod97(iban: &[u8]) -> bool {
    iban.len() >= 5
        && iban
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && {
            // The textbook way, one character at a time.
            iban[4..]
                .iter()
                .chain(&iban[..4])
                .fold(0u32, |r, &c| match c {
                    b'0'..=b'9' => (r * 10 + u32::from(c - b'0')) % 97,
                    _ => (r * 100 + u32::from(c - b'A') + 10) % 97,
                })
                == 1
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(kind: Number, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(m) = kind.find_at(text, at) {
            out.push(&text[m.start..m.end]);
            at = m.end;
        }
        out
    }

    #[test]
    fn checksums() {
        assert!(luhn(b"4111111111111111") && luhn(b"378282246310005"));
        assert!(!luhn(b"4111111111111112"));
        // The running checksum agrees with the reference on every prefix.
        for number in [
            "4111111111111111",
            "378282246310005",
            "2024050110223312",
            "79927398713",
        ] {
            let mut running = Luhn::default();
            for (i, d) in number.bytes().enumerate() {
                running.push(d);
                assert_eq!(
                    running.valid(),
                    luhn(&number.as_bytes()[..=i]),
                    "{number}[..={i}]"
                );
            }
        }
        assert!(iban_mod97(b"DE89370400440532013000") && iban_mod97(b"GB29NWBK60161331926819"));
        assert!(!iban_mod97(b"DE89370400440532013001"));
    }

    #[test]
    fn long_ibans_pass_the_running_checksum() {
        // 34 characters, letters among them: the running value is reduced several times. `ZZ`
        // is no registry country, so any length from 15 to 34 is taken.
        for bban in [
            "000100010012001200023015000000",
            "ABCD1234EFGH5678IJKL9012MNOP34",
        ] {
            let check = (0..100)
                .find(|k| iban_mod97(format!("ZZ{k:02}{bban}").as_bytes()))
                .unwrap();
            let iban = format!("ZZ{check:02}{bban}");
            assert_eq!(all(Number::Iban, &iban), [iban.as_str()]);
            let wrong = format!("ZZ{:02}{bban}", (check + 1) % 100);
            assert_eq!(all(Number::Iban, &wrong), Vec::<&str>::new());
        }
    }

    #[test]
    fn cards_are_cut_at_separators() {
        assert_eq!(
            all(Number::Card, "4111 1111 1111 1111 5 times"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(all(Number::Card, "4111111111111111x"), Vec::<&str>::new());
        assert_eq!(
            all(Number::Card, "41111111111111111111111"),
            Vec::<&str>::new()
        );
        assert_eq!(
            all(Number::Card, "4111 1111 1111 1111 2222 3333 4444"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            all(Number::Card, "4111--1111-1111-1111"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn uatp_cards_have_15_digits() {
        assert_eq!(
            all(Number::Card, "card 122000000000003."),
            ["122000000000003"]
        );
        assert_eq!(
            all(Number::Card, "1220 0000 0000 003"),
            ["1220 0000 0000 003"]
        );
        // Luhn-valid, but 16 digits starting with 1: no card.
        assert!(luhn(b"1000000000000008"));
        assert_eq!(all(Number::Card, "1000000000000008"), Vec::<&str>::new());
        // Only whole or 4-4-4-3.
        assert_eq!(all(Number::Card, "12200 0000 0000 03"), Vec::<&str>::new());
        assert_eq!(
            all(Number::Card, "1220-0000-0000-003"),
            ["1220-0000-0000-003"]
        );
        assert_eq!(all(Number::Card, "1220-0000 0000-003"), Vec::<&str>::new());
    }

    #[test]
    fn card_digits_inside_a_malformed_iban_are_no_card() {
        // Presidio's IBAN negatives: the check digits fail, and the digits after the country
        // used to pass as a card. The IBAN detector refuses them; so does the card detector.
        for text in [
            "DE89 3704 0044 0532 0130 01",
            "IS14 A159 2600 7654 5510 7303 39",
            "MK07 2501 2000 0058 985",
            "RS35 2600 0560 1001 6113 70",
            "DE89-3704-0044-0532-0130-01",
        ] {
            assert_eq!(all(Number::Card, text), Vec::<&str>::new(), "{text}");
        }
        // A card after other words and numbers is still a card.
        for text in [
            "qty 2 4111 1111 1111 1111",
            "AB12 card 4111 1111 1111 1111",
            "REF 4111 1111 1111 1111",
        ] {
            assert_eq!(all(Number::Card, text), ["4111 1111 1111 1111"], "{text}");
        }
    }

    #[test]
    fn phones() {
        assert_eq!(
            all(Number::Phone, "+1 (415) 555-2671."),
            ["+1 (415) 555-2671"]
        );
        assert_eq!(
            all(Number::Phone, "x+44 20 7946 0958, ok"),
            ["+44 20 7946 0958"]
        );
        assert_eq!(
            all(Number::Phone, "+49 (0)30 12345678"),
            ["+49 (0)30 12345678"]
        );
        assert_eq!(all(Number::Phone, "a1-800-555-1234"), ["800-555-1234"]);
        assert_eq!(all(Number::Phone, "415-555-26710"), Vec::<&str>::new());
        assert_eq!(all(Number::Phone, "+12345"), Vec::<&str>::new());
        // An area code in parentheses after the country code.
        assert_eq!(
            all(Number::Phone, "+44 (20) 7123 4567"),
            ["+44 (20) 7123 4567"]
        );
        assert_eq!(all(Number::Phone, "+44 (20)) 7123"), Vec::<&str>::new());
    }

    #[test]
    fn national_phones_with_a_trunk_zero() {
        for phone in [
            "090-1234-5678",
            "09-7625400",
            "020 7123 4567",
            "0331 123 4567",
        ] {
            let text = format!("call {phone}, please");
            assert_eq!(all(Number::Phone, &text), [phone]);
        }
        for other in [
            "01-05-2024",
            "05 12 2024",
            "0.9.12345",
            "0901234567",
            "090-1234-5678-9",
            "090-1234 5678",
            "00-1234-56789",
            "090-1234-56789012",
            "x090-1234-5678",
            "078 00 1123",
            "078-05-0000",
            "01 23 45 67 89",
            "DE89 3704 0044 0532 0130",
            "NL91 ABNA 0417 1643 011",
        ] {
            assert_eq!(all(Number::Phone, other), Vec::<&str>::new(), "{other}");
        }
    }

    /// The probe accepts the first digit run of every North American form (the prefilter
    /// opens no window elsewhere, so a miss here is a number left in the text).
    #[test]
    fn the_phone_probe_accepts_every_form() {
        for phone in [
            "(415) 555-2671",
            "415-555-2671",
            "415.555.2671",
            "4155552671",
            "14155552671",
            "1-415-555-2671",
            "1 (415) 555-2671",
            "1(415)555-2671",
            "+1 415 555 2671",
            "+1-(415)-555-2671",
            "+14155552671",
            "090-1234-5678",
            "09-7625400",
        ] {
            let text = format!("call {phone} now");
            let bytes = text.as_bytes();
            let m = Number::Phone.find_at(&text, 0).expect(phone);
            assert_eq!(&text[m.start..m.end], phone);
            let run = (m.start..m.end)
                .find(|&i| bytes[i].is_ascii_digit() && bytes[i + 1].is_ascii_digit())
                .unwrap();
            // `+` numbers also have their own `+` anchor; the rest rely on the probe.
            if !phone.starts_with('+') || phone.starts_with("+1") {
                assert!(Number::Phone.may_start_near(bytes, run), "{phone}");
            }
        }
        for other in [
            "2024-05-01",
            "10:22:33.123Z",
            "v1.4.2",
            "1999",
            "10.42.7.19",
        ] {
            let bytes = other.as_bytes();
            assert!(!Number::Phone.may_start_near(bytes, 0), "{other}");
        }
    }

    #[test]
    fn ssns_and_ibans() {
        assert_eq!(
            all(Number::Ssn, "123-45-6789 and 123 45 6789 not 123-45 6789"),
            ["123-45-6789", "123 45 6789"]
        );
        // Dots, and the two mistyped dash forms Presidio's tests use.
        assert_eq!(
            all(Number::Ssn, "078.05.1123, 078-051121 07805-1121"),
            ["078.05.1123", "078-051121", "07805-1121"]
        );
        for other in [
            "123-456789-0",
            "123.45.6789.1",
            "123.45-6789",
            "12345-67890",
            "000-451121",
            "078051121",
        ] {
            assert_eq!(all(Number::Ssn, other), Vec::<&str>::new(), "{other}");
        }
        assert_eq!(
            all(Number::Iban, "DE89 3704 0044 0532 0130 00 AB12"),
            ["DE89 3704 0044 0532 0130 00"]
        );
        assert_eq!(
            all(Number::Iban, "xDE89370400440532013000"),
            Vec::<&str>::new()
        );
        // Dashes between the groups, one kind of separator all along.
        assert_eq!(
            all(Number::Iban, "DE89-3704-0044-0532-0130-00."),
            ["DE89-3704-0044-0532-0130-00"]
        );
        assert_eq!(
            all(Number::Iban, "DE89-3704 0044-0532 0130-00"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_registry_country_takes_its_own_length_only() {
        // HR is 21 characters. Presidio's negative `HR12 001 0051 8630 0016 A` used to lose its
        // first 15 characters, a prefix that happens to pass mod 97: a registry country's IBAN
        // of another length is malformed, and nothing of it is redacted.
        assert_eq!(
            all(Number::Iban, "HR12 001 0051 8630 0016 A"),
            Vec::<&str>::new()
        );
        let short = (0..100)
            .map(|k| format!("HR{k:02}10010051863"))
            .find(|c| iban_mod97(c.as_bytes()))
            .unwrap();
        assert_eq!(short.len(), 15);
        assert_eq!(all(Number::Iban, &short), Vec::<&str>::new());
        assert_eq!(
            all(Number::Iban, "HR1210010051863000160"),
            ["HR1210010051863000160"]
        );
        assert_eq!(
            all(Number::Iban, "HR12 1001 0051 8630 0016 0"),
            ["HR12 1001 0051 8630 0016 0"]
        );
    }
}
