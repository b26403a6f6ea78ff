//! Virtual keys: the keys clients present, and who they are.
//!
//! A [`KeyStore`] keeps only SHA-256 digests of the keys, whether they were configured in the
//! clear (`key:`) or as a digest (`key_sha256:`). Authenticating a presented key hashes it once
//! and compares the digest with *every* stored digest in constant time, so the time taken says
//! nothing about which key, or how much of one, matched. That is linear in the number of keys,
//! and cheap enough for the hundreds a gateway has (`limits/keys/authenticate among 100` in
//! `benches/limits.rs`; the figure is in the README's Performance section).
//!
//! No type here prints a key: [`KeySecret`]'s `Debug` is redacted, and the store's `Debug`
//! lists only the configured names.

use std::fmt;
use std::hint::black_box;

use sha2::{Digest, Sha256};

use super::LimitError;

/// A configured key: in the clear, or as the hex SHA-256 digest of the key.
///
/// `Debug` never shows the key or its digest.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret {
    digest: [u8; 32],
}

impl KeySecret {
    /// A key given in the clear (`key: ${CHECKOUT_WEB_KEY}`). Only its digest is kept.
    ///
    /// # Errors
    ///
    /// [`LimitError::EmptyKey`] for an empty key; `name` is used only in the error.
    pub fn clear(name: &str, key: &str) -> Result<KeySecret, LimitError> {
        if key.is_empty() {
            return Err(LimitError::EmptyKey { name: name.into() });
        }
        Ok(KeySecret {
            digest: sha256(key),
        })
    }

    /// A key given as its SHA-256 digest in hexadecimal (`key_sha256: 9f86d0…`), either case.
    ///
    /// # Errors
    ///
    /// [`LimitError::BadKeyDigest`] unless `hex` is exactly 64 hex digits; `name` is used only
    /// in the error.
    pub fn sha256_hex(name: &str, hex: &str) -> Result<KeySecret, LimitError> {
        let bad = || LimitError::BadKeyDigest { name: name.into() };
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
            let hi = hex_value(pair[0]).ok_or_else(bad)?;
            let lo = hex_value(pair[1]).ok_or_else(bad)?;
            *byte = (hi << 4) | lo;
        }
        Ok(KeySecret { digest })
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(<redacted>)")
    }
}

/// The configured virtual keys, each with the gateway's value for it (its name, budgets,
/// allowed models…).
///
/// ```
/// use veilgate::limits::{KeySecret, KeyStore};
///
/// let mut keys = KeyStore::new();
/// keys.insert("checkout-web", KeySecret::clear("checkout-web", "sk-live-123")?, "checkout-web")?;
/// assert_eq!(keys.authenticate("sk-live-123"), Some(&"checkout-web"));
/// assert_eq!(keys.authenticate("sk-live-124"), None);
/// # Ok::<(), veilgate::limits::LimitError>(())
/// ```
#[derive(Clone)]
pub struct KeyStore<T> {
    entries: Vec<Entry<T>>,
}

#[derive(Clone)]
struct Entry<T> {
    name: String,
    digest: [u8; 32],
    value: T,
}

impl<T> KeyStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        KeyStore {
            entries: Vec::new(),
        }
    }

    /// Adds a key named `name` (the name shows in logs and errors, never the key).
    ///
    /// # Errors
    ///
    /// [`LimitError::DuplicateKey`] when the same key is already in the store.
    pub fn insert(&mut self, name: &str, secret: KeySecret, value: T) -> Result<(), LimitError> {
        if let Some(other) = self.entries.iter().find(|e| e.digest == secret.digest) {
            return Err(LimitError::DuplicateKey {
                first: other.name.clone(),
                second: name.into(),
            });
        }
        self.entries.push(Entry {
            name: name.into(),
            digest: secret.digest,
            value,
        });
        Ok(())
    }

    /// The value of the key `presented`, if it is one of ours.
    ///
    /// Constant time in the key and in which entry matches: every stored digest is compared.
    pub fn authenticate(&self, presented: &str) -> Option<&T> {
        let digest = sha256(presented);
        let mut found = 0usize;
        let mut any = 0usize;
        for (i, entry) in self.entries.iter().enumerate() {
            // All ones when equal, all zeros otherwise; no branch on the comparison.
            let mask = usize::from(digests_equal(&entry.digest, &digest)).wrapping_neg();
            found |= i & mask;
            any |= mask;
        }
        if black_box(any) == 0 {
            return None;
        }
        self.entries.get(found).map(|e| &e.value)
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store holds no key (the gateway then needs none).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The configured names, in insertion order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }
}

impl<T> Default for KeyStore<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for KeyStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The key a client presented: `Authorization: Bearer <key>` (scheme in any case), else the
/// `api-key` header (Azure OpenAI's), else the `x-api-key` header (what the Anthropic SDKs
/// send). Pass the header values as received, or `None`.
///
/// Returns `None` when none carries a non-empty key.
pub fn presented_key<'a>(
    authorization: Option<&'a str>,
    api_key: Option<&'a str>,
    x_api_key: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization.and_then(|value| {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace)?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    let nonempty = |key: &&str| !key.is_empty();
    bearer
        .filter(nonempty)
        .or_else(|| api_key.map(str::trim).filter(nonempty))
        .or_else(|| x_api_key.map(str::trim).filter(nonempty))
}

fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Compares two digests without an early exit.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into a short-circuiting compare.
    black_box(diff) == 0
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-256("test").
    const TEST_SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn store() -> KeyStore<&'static str> {
        let mut keys = KeyStore::new();
        keys.insert(
            "checkout-web",
            KeySecret::clear("checkout-web", "sk-checkout").unwrap(),
            "checkout-web",
        )
        .unwrap();
        keys.insert(
            "batch-jobs",
            KeySecret::sha256_hex("batch-jobs", TEST_SHA256).unwrap(),
            "batch-jobs",
        )
        .unwrap();
        keys.insert(
            "upper",
            KeySecret::sha256_hex("upper", &sha_hex("other").to_uppercase()).unwrap(),
            "upper",
        )
        .unwrap();
        keys
    }

    fn sha_hex(key: &str) -> String {
        sha256(key).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn clear_and_digest_keys_authenticate() {
        let keys = store();
        assert_eq!(keys.authenticate("sk-checkout"), Some(&"checkout-web"));
        assert_eq!(keys.authenticate("test"), Some(&"batch-jobs"));
        assert_eq!(keys.authenticate("other"), Some(&"upper"));
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn unknown_and_near_keys_do_not() {
        let keys = store();
        for wrong in [
            "",
            "sk-checkou",
            "sk-checkoutt",
            "Test",
            TEST_SHA256,
            " test",
        ] {
            assert_eq!(keys.authenticate(wrong), None, "{wrong:?}");
        }
        assert_eq!(KeyStore::<()>::new().authenticate("test"), None);
    }

    #[test]
    fn bad_digests_empty_and_duplicate_keys_are_refused() {
        for bad in [
            "",
            "abc",
            &TEST_SHA256[1..],
            &format!("{}g", &TEST_SHA256[1..]),
        ] {
            assert_eq!(
                KeySecret::sha256_hex("k", bad),
                Err(LimitError::BadKeyDigest { name: "k".into() })
            );
        }
        assert!(KeySecret::clear("k", "").is_err());
        let mut keys = store();
        let err = keys
            .insert("again", KeySecret::clear("again", "test").unwrap(), "again")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "keys batch-jobs and again are the same key"
        );
    }

    #[test]
    fn no_key_in_debug_output() {
        let secret = KeySecret::clear("k", "sk-supersecret").unwrap();
        let shown = format!("{secret:?} {:?}", store());
        assert!(!shown.contains("sk-"), "{shown}");
        assert!(!shown.contains(&sha_hex("sk-supersecret")[..8]), "{shown}");
        assert!(!shown.contains(&TEST_SHA256[..8]), "{shown}");
        assert!(shown.contains("checkout-web"));
        let err = LimitError::BadKeyDigest { name: "k".into() };
        assert!(!err.to_string().contains("sk-"));
    }

    #[test]
    fn presented_key_reads_bearer_then_api_key_then_x_api_key() {
        assert_eq!(presented_key(Some("Bearer sk-1"), None, None), Some("sk-1"));
        assert_eq!(
            presented_key(Some("bearer   sk-1 "), Some("sk-2"), Some("sk-3")),
            Some("sk-1")
        );
        assert_eq!(
            presented_key(Some("Basic abc"), Some("sk-2"), None),
            Some("sk-2")
        );
        assert_eq!(presented_key(None, Some(" sk-2"), None), Some("sk-2"));
        assert_eq!(presented_key(None, None, Some(" sk-3 ")), Some("sk-3"));
        assert_eq!(
            presented_key(Some("Bearer "), Some(""), Some("sk-3")),
            Some("sk-3")
        );
        assert_eq!(
            presented_key(None, Some("sk-2"), Some("sk-3")),
            Some("sk-2")
        );
        assert_eq!(presented_key(Some("Bearer "), None, None), None);
        assert_eq!(presented_key(Some("Bearer"), Some(""), Some(" ")), None);
        assert_eq!(presented_key(None, None, None), None);
    }
}
