//! The upstream's own API key never reaches a client: wherever an answer repeats it (an error
//! that echoes the key it was given, in a JSON body, a text body or a stream event), it becomes
//! `[REDACTED:upstream_key]` — whatever the redaction policy, even with redaction off.

use bytes::Bytes;

use crate::config::Upstream;

/// What replaces the key.
pub const MARK: &[u8] = b"[REDACTED:upstream_key]";

/// Keys shorter than this are not searched for (a short key would match ordinary text).
const MIN_KEY: usize = 8;

/// Scrubs one answer, whole or as it streams.
#[derive(Debug, Default)]
pub struct KeyScrubber {
    key: Option<Vec<u8>>,
    /// The end of what was pushed so far when it is the start of the key: sent with the next
    /// chunk, or at the end.
    held: Vec<u8>,
}

impl KeyScrubber {
    /// A scrubber for answers of `upstream` (a no-op when it has no key of its own).
    pub fn new(upstream: &Upstream) -> Self {
        KeyScrubber {
            key: upstream
                .api_key
                .as_deref()
                .filter(|k| k.len() >= MIN_KEY)
                .map(|k| k.as_bytes().to_vec()),
            held: Vec::new(),
        }
    }

    /// A whole answer, scrubbed.
    pub fn whole(&self, body: Bytes) -> Bytes {
        match &self.key {
            Some(key) if memchr::memmem::find(&body, key).is_some() => {
                Bytes::from(replace(&body, key))
            }
            _ => body,
        }
    }

    /// The next piece of a streamed answer: what can be sent now. A key split across pieces is
    /// still found: only a tail that could be the key's beginning is held back (usually
    /// nothing: stream pieces end with an event's blank line).
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        let Some(key) = &self.key else {
            return chunk;
        };
        let joined: Vec<u8> = if self.held.is_empty() {
            if memchr::memmem::find(&chunk, key).is_none() && partial_tail(&chunk, key) == 0 {
                return chunk;
            }
            chunk.to_vec()
        } else {
            let mut j = std::mem::take(&mut self.held);
            j.extend_from_slice(&chunk);
            j
        };
        let mut out = replace(&joined, key);
        // What follows the last replacement may still be the beginning of a key.
        let hold = partial_tail(&out, key);
        self.held = out.split_off(out.len() - hold);
        Bytes::from(out)
    }

    /// The end of the stream: what was held back.
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.held))
    }
}

/// `text` with every occurrence of `key` replaced by [`MARK`].
fn replace(text: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    for i in memchr::memmem::find_iter(text, key) {
        if i < at {
            continue;
        }
        out.extend_from_slice(&text[at..i]);
        out.extend_from_slice(MARK);
        at = i + key.len();
    }
    out.extend_from_slice(&text[at..]);
    out
}

/// The length of the longest end of `text` that is a proper beginning of `key`.
fn partial_tail(text: &[u8], key: &[u8]) -> usize {
    let longest = text.len().min(key.len() - 1);
    (1..=longest)
        .rev()
        .find(|&n| text[text.len() - n..] == key[..n])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber(key: &str) -> KeyScrubber {
        KeyScrubber {
            key: Some(key.as_bytes().to_vec()),
            held: Vec::new(),
        }
    }

    #[test]
    fn whole_answers() {
        let s = scrubber("sk-upstream-0123");
        let body =
            Bytes::from_static(b"{\"error\":\"bad key sk-upstream-0123 and sk-upstream-0123\"}");
        assert_eq!(
            s.whole(body),
            Bytes::from_static(
                b"{\"error\":\"bad key [REDACTED:upstream_key] and [REDACTED:upstream_key]\"}"
            )
        );
        let clean = Bytes::from_static(b"{\"ok\":true}");
        assert_eq!(s.whole(clean.clone()), clean);
        assert_eq!(KeyScrubber::default().whole(clean.clone()), clean);
    }

    #[test]
    fn a_key_split_across_any_pieces_never_goes_out() {
        let key = "sk-upstream-0123";
        let stream = format!(
            "data: {{\"error\":\"key {key} refused\"}}\n\ndata: s\n\ndata: {key}{key}\n\nsk-up"
        );
        let expected = stream.replace(key, "[REDACTED:upstream_key]");
        for size in 1..stream.len() {
            let mut s = scrubber(key);
            let mut out = Vec::new();
            for piece in stream.as_bytes().chunks(size) {
                let sent = s.push(Bytes::copy_from_slice(piece));
                out.extend_from_slice(&sent);
                assert!(!String::from_utf8_lossy(&out).contains(key), "size {size}");
            }
            out.extend_from_slice(&s.finish());
            assert_eq!(String::from_utf8(out).unwrap(), expected, "size {size}");
        }
    }

    #[test]
    fn only_a_possible_key_start_is_held() {
        let mut s = scrubber("sk-upstream-0123");
        assert_eq!(
            s.push(Bytes::from_static(b"data: x\n\n")),
            Bytes::from_static(b"data: x\n\n")
        );
        assert_eq!(
            s.push(Bytes::from_static(b"abc sk-up")),
            Bytes::from_static(b"abc ")
        );
        assert_eq!(
            s.push(Bytes::from_static(b"per")),
            Bytes::from_static(b"sk-upper")
        );
        assert!(s.finish().is_empty());
    }
}
