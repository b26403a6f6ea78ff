//! A 256-bit set of bytes, and char-boundary helpers for byte offsets into `str`.

use std::fmt;

/// A set of byte values (empty by default).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ByteSet([u64; 4]);

impl ByteSet {
    /// No bytes.
    pub(crate) const EMPTY: ByteSet = ByteSet([0; 4]);

    /// Every byte.
    pub(crate) const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    /// Parses a class-like spec of ASCII characters: `a-z` is a range, `\` escapes the next
    /// character (`\t`, `\n`, `\r` are the control characters), a leading `^` complements the
    /// ASCII part. Non-ASCII bytes are never included; see [`ByteSet::with_non_ascii`].
    pub(crate) fn parse(spec: &str) -> ByteSet {
        let (negate, spec) = match spec.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let mut chars: Vec<u8> = Vec::with_capacity(spec.len());
        let mut escaped: Vec<bool> = Vec::with_capacity(spec.len());
        let mut it = spec.bytes();
        while let Some(b) = it.next() {
            if b == b'\\' {
                let e = it.next().unwrap_or(b'\\');
                chars.push(match e {
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'r' => b'\r',
                    other => other,
                });
                escaped.push(true);
            } else {
                chars.push(b);
                escaped.push(false);
            }
        }
        let mut set = ByteSet::EMPTY;
        let mut i = 0;
        while i < chars.len() {
            let is_range = i + 2 < chars.len() && chars[i + 1] == b'-' && !escaped[i + 1];
            if is_range {
                for b in chars[i]..=chars[i + 2] {
                    set.insert(b);
                }
                i += 3;
            } else {
                set.insert(chars[i]);
                i += 1;
            }
        }
        if negate {
            set.0[0] = !set.0[0];
            set.0[1] = !set.0[1];
        }
        set.0[2] = 0;
        set.0[3] = 0;
        set
    }

    /// The same set plus every byte ≥ 0x80 (for patterns that can match non-ASCII text).
    pub(crate) fn with_non_ascii(mut self) -> ByteSet {
        self.0[2] = u64::MAX;
        self.0[3] = u64::MAX;
        self
    }

    pub(crate) fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    #[inline]
    pub(crate) fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

impl fmt::Debug for ByteSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        write!(f, "ByteSet({n} bytes)")
    }
}

/// The first two bytes of a set of keywords, ASCII case-insensitive: a 64 Ki-bit set of byte
/// pairs, tested before any keyword is compared. Every pair is in it once a keyword is shorter
/// than two bytes.
#[derive(Clone)]
pub(crate) struct Openings([u64; 1024]);

impl Openings {
    pub(crate) const EMPTY: Openings = Openings([0; 1024]);

    /// The openings of `keywords`, at compile time.
    pub(crate) const fn of(keywords: &[&str]) -> Openings {
        let mut set = Openings::EMPTY;
        let mut i = 0;
        while i < keywords.len() {
            set.insert(keywords[i].as_bytes());
            i += 1;
        }
        set
    }

    /// Adds the opening of `keyword`, in all four cases.
    pub(crate) const fn insert(&mut self, keyword: &[u8]) {
        let [a, b, ..] = *keyword else {
            self.0 = [u64::MAX; 1024];
            return;
        };
        let firsts = [a.to_ascii_lowercase(), a.to_ascii_uppercase()];
        let seconds = [b.to_ascii_lowercase(), b.to_ascii_uppercase()];
        let mut f = 0;
        while f < 2 {
            let mut g = 0;
            while g < 2 {
                let pair = (firsts[f] as usize) << 8 | seconds[g] as usize;
                self.0[pair / 64] |= 1 << (pair % 64);
                g += 1;
            }
            f += 1;
        }
    }

    /// Whether a keyword may start with `a`, `b`.
    #[inline]
    pub(crate) fn contains(&self, a: u8, b: u8) -> bool {
        let pair = usize::from(a) << 8 | usize::from(b);
        self.0[pair / 64] & (1 << (pair % 64)) != 0
    }
}

// Byte-lane arithmetic on 8-byte words (SWAR): the functions set the high bit of each lane
// that qualifies.

pub(crate) const LO: u64 = 0x0101_0101_0101_0101;
pub(crate) const HI: u64 = 0x8080_8080_8080_8080;

/// High bit of each byte lane set where the lane equals `b`. Exact: the per-lane additions
/// cannot carry into the next lane.
#[inline]
pub(crate) fn eq_mask(x: u64, b: u8) -> u64 {
    let t = x ^ (LO * u64::from(b));
    !(((t & !HI) + !HI) | t) & HI
}

/// High bit of each byte lane set where the lane is at least `k` (ASCII lanes only).
#[inline]
pub(crate) fn at_least(low7: u64, k: u8) -> u64 {
    // Adding 0x80 - k to a 7-bit lane sets its high bit exactly when the lane is ≥ k; the sum
    // stays below 0x100, so no carry crosses into the next lane.
    (low7 + LO * u64::from(0x80 - k)) & HI
}

/// An ASCII word byte (`[A-Za-z0-9_]`), as `(?-u:\b)` sees it.
#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The largest char boundary ≤ `i` (clamped to the length).
pub(crate) fn floor_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary ≥ `i` (clamped to the length).
pub(crate) fn ceil_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The char boundary after the character that starts at `i` (or `i + 1` past the end).
pub(crate) fn next_boundary(s: &str, i: usize) -> usize {
    ceil_boundary(s, i + 1).max(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ranges_escapes_and_negation() {
        let s = ByteSet::parse(r"A-Z0-9_\-\t");
        for b in [b'A', b'Q', b'Z', b'0', b'9', b'_', b'-', b'\t'] {
            assert!(s.contains(b), "{}", b as char);
        }
        for b in [b'a', b' ', b'.', 0x80, 0xff] {
            assert!(!s.contains(b));
        }
        let trailing_dash = ByteSet::parse("a-c-");
        assert!(trailing_dash.contains(b'-') && trailing_dash.contains(b'b'));
        let not_space = ByteSet::parse("^ \t\r\n");
        assert!(not_space.contains(b'x') && !not_space.contains(b' ') && !not_space.contains(0xc3));
        assert!(not_space.with_non_ascii().contains(0xc3));
        assert!(ByteSet::ALL.contains(0) && ByteSet::ALL.contains(0xff));
    }

    #[test]
    fn boundaries() {
        let s = "aé€b"; // a(0) é(1..3) €(3..6) b(6)
        assert_eq!(floor_boundary(s, 2), 1);
        assert_eq!(ceil_boundary(s, 2), 3);
        assert_eq!(ceil_boundary(s, 4), 6);
        assert_eq!(next_boundary(s, 1), 3);
        assert_eq!(next_boundary(s, 6), 7);
        assert_eq!(floor_boundary(s, 99), 7);
    }
}
