//! Views of a text that the detectors read instead of the text itself, with the way back:
//! a match in the view is replaced in the original.
//!
//! - **Percent-decoded**: `token%3Dghp_…` hides the token behind `%3D` (the `D` glues it to a
//!   word). The view decodes escapes of printable ASCII (`%20`–`%7E`); any other escape stays
//!   as it is, so the view is valid UTF-8 whatever the input.

/// `text` with its printable-ASCII percent escapes decoded, and for every byte of the view
/// (and one past its end) the offset in `text` it comes from; `None` when `text` has no such
/// escape.
pub(crate) fn percent_decoded(text: &str) -> Option<(String, Vec<u32>)> {
    let bytes = text.as_bytes();
    let first = memchr::memchr(b'%', bytes)?;
    if !bytes[first..].windows(3).any(|w| escape(w).is_some()) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    let mut i = 0;
    while i < bytes.len() {
        map.push(i as u32);
        match bytes.get(i..i + 3).and_then(escape) {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    map.push(bytes.len() as u32);
    // Only ASCII bytes replaced ASCII escapes: the result is UTF-8 if `text` was.
    let out = String::from_utf8(out).ok()?;
    Some((out, map))
}

/// The printable ASCII byte a `%XX` escape stands for.
fn escape(w: &[u8]) -> Option<u8> {
    if w[0] != b'%' {
        return None;
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let b = (hex(w[1])? * 16 + hex(w[2])?) as u8;
    (0x20..=0x7e).contains(&b).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_printable_escapes_and_maps_back() {
        let (view, map) = percent_decoded("a%3Db%20c%e2%82%ac").unwrap();
        assert_eq!(view, "a=b c%e2%82%ac");
        assert_eq!(map.len(), view.len() + 1);
        assert_eq!(map[1], 1); // '=' comes from "%3D"
        assert_eq!(map[2], 4); // 'b'
        assert_eq!(map[view.len()], 18);
    }

    #[test]
    fn no_escape_no_view() {
        assert!(percent_decoded("100% sure").is_none());
        assert!(percent_decoded("%zz").is_none());
        assert!(percent_decoded("%0A").is_none());
        assert!(percent_decoded("plain").is_none());
    }

    #[test]
    fn multibyte_text_survives() {
        let (view, _) = percent_decoded("é%41€").unwrap();
        assert_eq!(view, "éA€");
    }
}
