//! What replaces a value: the text forms of [`Action`](super::Action)s.
//!
//! No replacement contains `"` or `\`, so a value inside JSON text (tool-call arguments) stays
//! valid JSON after replacement.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The keyed hash behind [`Action::Hash`](super::Action::Hash).
pub(crate) type HashKey = Hmac<Sha256>;

/// `[REDACTED:<detector>]`.
pub(crate) fn redacted(detector: &str) -> String {
    format!("[REDACTED:{detector}]")
}

/// All but the last 4 characters replaced by `*`; values shorter than 8 characters entirely.
pub(crate) fn masked(value: &str) -> String {
    let n = value.chars().count();
    if n < 8 {
        return "*".repeat(n);
    }
    let keep_from = value
        .char_indices()
        .nth(n - 4)
        .map_or(value.len(), |(i, _)| i);
    let mut out = "*".repeat(n - 4);
    out.push_str(&value[keep_from..]);
    out
}

/// `[HASH:<detector>:<12 hex>]`: the first 6 bytes of HMAC-SHA256(key, value).
pub(crate) fn hashed(key: &HashKey, detector: &str, value: &str) -> String {
    let mut mac = key.clone();
    mac.update(value.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = format!("[HASH:{detector}:");
    for b in digest.iter().take(6) {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_last_four() {
        assert_eq!(masked("4111 1111 1111 1111"), "***************1111");
        assert_eq!(masked("jöhn@example.com"), "************.com");
        assert_eq!(masked("short12"), "*******");
    }

    #[test]
    fn hash_is_stable_and_keyed() {
        let k1 = HashKey::new_from_slice(b"key one").unwrap();
        let k2 = HashKey::new_from_slice(b"key two").unwrap();
        let a = hashed(&k1, "email", "a@example.com");
        // The first 6 bytes of HMAC-SHA256("key one", "a@example.com"), computed elsewhere
        // (Python's hmac module).
        assert_eq!(a, "[HASH:email:28a8d2180324]");
        assert_ne!(a, hashed(&k1, "email", "b@example.com"));
        assert_ne!(a, hashed(&k2, "email", "a@example.com"));
        assert!(a.starts_with("[HASH:email:") && a.len() == "[HASH:email:]".len() + 12);
    }
}
