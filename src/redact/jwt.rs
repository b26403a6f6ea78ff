//! JSON Web Tokens, hand-matched: `eyJ` + segment `.` `ey` + segment `.` segment, segments of
//! at least 8 `[A-Za-z0-9_-]` bytes, a word boundary before.
//!
//! As a regex (`eyJ[…]{8,}\.ey[…]{8,}\.[…]{8,}`) every `eyJ` in a long run of token bytes
//! rescans the run to its end, so text like `eyJeyJeyJ…` cost O(n · run); here the end of a
//! segment run is found once and shared by all candidates in it. The matcher also never reads
//! past `max_len` bytes from a candidate: a token whose dots lie further away is not a match
//! (whether a match exists must not depend on text beyond what the stream redactor waits for),
//! and a longer token is cut at `max_len`.

use super::detector::RawMatch;

/// The longest token matched, in bytes.
pub(crate) const JWT_MAX: usize = 8192;

fn is_segment(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The leftmost token starting at or after `start`.
pub(crate) fn find_at(hay: &str, start: usize) -> Option<RawMatch> {
    let bytes = hay.as_bytes();
    // The end of the segment run that starts at or before `run.0` (all bytes in
    // `run.0..run.1` are segment bytes, `run.1` is not).
    let mut run: Option<(usize, usize)> = None;
    let mut run_end = |from: usize| -> usize {
        if let Some((s, e)) = run {
            if s <= from && from <= e {
                return e;
            }
        }
        let e = (from..bytes.len())
            .find(|&i| !is_segment(bytes[i]))
            .unwrap_or(bytes.len());
        run = Some((from, e));
        e
    };
    RawMatch::leftmost_at_word_start(bytes, start, b"eyJ", |s| {
        let limit = bytes.len().min(s + JWT_MAX);
        let first = run_end(s + 3);
        rest(bytes, s, first, limit)
    })
}

/// Given a candidate at `s` whose first segment ends at `first`, the token's end (cut at
/// `limit`).
fn rest(bytes: &[u8], s: usize, first: usize, limit: usize) -> Option<usize> {
    let seg = |from: usize| {
        (from..limit)
            .find(|&i| !is_segment(bytes[i]))
            .unwrap_or(limit)
    };
    if first - (s + 3) < 8 || first >= limit || bytes[first] != b'.' {
        return None;
    }
    let second_start = first + 1;
    if !bytes.get(second_start..limit)?.starts_with(b"ey") {
        return None;
    }
    let second = seg(second_start);
    if second - second_start < 10 || second >= limit || bytes[second] != b'.' {
        return None;
    }
    let third = seg(second + 1);
    (third - (second + 1) >= 8).then_some(third)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn finds_tokens() {
        let text = format!("Bearer {TOKEN} rest");
        let m = find_at(&text, 0).unwrap();
        assert_eq!(&text[m.start..m.end], TOKEN);
        assert!(
            find_at(&format!("x{TOKEN}"), 0).is_none(),
            "needs a word boundary"
        );
        assert!(find_at("eyJhbGciOiJIUzI1NiJ9", 0).is_none());
        assert!(find_at("eyJ.eyJ.sig", 0).is_none());
    }

    #[test]
    fn never_reads_past_max_len() {
        let far = format!(
            "eyJ{}.eyJ{}.{}",
            "a".repeat(JWT_MAX),
            "b".repeat(20),
            "c".repeat(20)
        );
        assert!(find_at(&far, 0).is_none(), "the first dot is out of reach");
        let long = format!(
            "eyJ{}.eyJ{}.{}",
            "a".repeat(20),
            "b".repeat(20),
            "c".repeat(JWT_MAX)
        );
        assert_eq!(find_at(&long, 0).map(|m| m.end), Some(JWT_MAX));
    }

    #[test]
    fn dense_candidates_are_linear() {
        // Quadratic rescanning took ~2.5 s per MiB in release builds; linear takes ~1 ms. The
        // bound is generous for debug builds on loaded machines.
        let text = "eyJ".repeat(1 << 16);
        let started = std::time::Instant::now();
        assert!(find_at(&text, 0).is_none());
        assert!(started.elapsed().as_secs() < 10, "quadratic scan");
    }
}
