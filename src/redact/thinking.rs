//! Anthropic's extended thinking returns `thinking` blocks signed by the upstream; a client must
//! send them back unchanged in its next turn, or the upstream refuses it. Redaction and that
//! signature meet here.
//!
//! When the gateway changes a thinking block's text for the client (a secret in the model's
//! thinking), or when the request policy would change it on its way back, the client gets the
//! redacted text and, in place of the upstream's signature, a **sealed** one: the original text
//! and signature, encrypted and authenticated (ChaCha20-Poly1305) with a key only the gateway
//! holds. The client keeps the block as it does any other and sends it back; the gateway opens
//! the seal *after* redacting the request and puts back the block the upstream signed. The
//! original never reaches the client, and the upstream gets back exactly what it issued (its
//! own text, which the request policy does not scan again).
//!
//! A sealed signature is base64 like the upstream's (`VkdUM…`: the bytes `VGT1`, a nonce, the
//! ciphertext), so clients store and return it untouched. The key is derived from the
//! policy's `hash_key` when there is one (every instance with the same key opens every seal,
//! across restarts), else drawn at random once per process (a seal is then opened only by the
//! process that made it: after a restart, or on another instance, such a block cannot be
//! restored and the request is refused with a clear error).
//!
//! Blocks whose text the gateway leaves alone keep the upstream's signature, untouched.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use sha2::Sha256;

/// The first bytes of a sealed signature (before base64).
const MAGIC: &[u8; 4] = b"VGT1";
/// `MAGIC` in base64: how a sealed signature starts.
pub(crate) const SEALED_PREFIX: &str = "VkdUM";
/// Bound to every seal: a sealed text is a thinking block, nothing else.
const AAD: &[u8] = b"veilgate thinking block v1";

/// The key thinking blocks are sealed with.
pub(crate) struct Seal {
    key: LessSafeKey,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(<key>)")
    }
}

/// Why a sealed block could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsealed {
    /// It names the gateway's seal but does not open with this key (another key, a restart
    /// without `hash_key`, or a changed text).
    WrongKey,
}

fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        // The system's generator cannot fail on a supported platform; a zero key would only
        // make seals openable by another process without `hash_key`, never leak a text.
        let _ = SystemRandom::new().fill(&mut key);
        key
    })
}

impl Seal {
    /// The key derived from `hash_key`, or the process's own when it is empty.
    pub(crate) fn new(hash_key: &[u8]) -> Seal {
        let key: [u8; 32] = if hash_key.is_empty() {
            *process_key()
        } else {
            // HMAC takes keys of any length: this cannot fail.
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(hash_key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
            mac.update(b"veilgate thinking seal");
            mac.finalize().into_bytes().into()
        };
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key)
            .unwrap_or_else(|_| unreachable!("a 32-byte ChaCha20-Poly1305 key"));
        Seal {
            key: LessSafeKey::new(unbound),
        }
    }

    /// `thinking` and `signature`, sealed into a base64 signature.
    pub(crate) fn seal(&self, thinking: &str, signature: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        let _ = SystemRandom::new().fill(&mut nonce);
        let mut data = Vec::with_capacity(8 + thinking.len() + signature.len() + 16);
        data.extend_from_slice(&(thinking.len() as u64).to_le_bytes());
        data.extend_from_slice(thinking.as_bytes());
        data.extend_from_slice(signature.as_bytes());
        // Sealing in place cannot fail for inputs under the algorithm's 256 GiB bound.
        let _ = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(AAD),
            &mut data,
        );
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + data.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        STANDARD.encode(out)
    }

    /// The original `(thinking, signature)` of a sealed signature; `None` when `signature` is
    /// not sealed (an upstream's own).
    pub(crate) fn open(&self, signature: &str) -> Option<Result<(String, String), Unsealed>> {
        if !signature.starts_with(SEALED_PREFIX) {
            return None;
        }
        let bytes = STANDARD.decode(signature).ok()?;
        let rest = bytes.strip_prefix(MAGIC)?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let Ok(plain) = self.key.open_in_place(nonce, Aad::from(AAD), &mut sealed) else {
            return Some(Err(Unsealed::WrongKey));
        };
        let split = plain
            .get(..8)
            .map(|n| u64::from_le_bytes(n.try_into().unwrap_or_default()) as usize);
        let opened = split.and_then(|n| {
            let text = plain.get(8..8usize.checked_add(n)?)?;
            let sig = plain.get(8 + n..)?;
            Some((
                String::from_utf8(text.to_vec()).ok()?,
                String::from_utf8(sig.to_vec()).ok()?,
            ))
        });
        Some(opened.ok_or(Unsealed::WrongKey))
    }
}

/// The thinking blocks of a Messages API answer (`content[]`), as `(index, text, signature)`.
pub(crate) fn answer_blocks(answer: &Value) -> Vec<(usize, &str, &str)> {
    let Some(content) = answer.get("content").and_then(Value::as_array) else {
        return Vec::new();
    };
    content
        .iter()
        .enumerate()
        .filter(|(_, b)| b.get("type").and_then(Value::as_str) == Some("thinking"))
        .filter_map(|(i, b)| {
            Some((
                i,
                b.get("thinking")?.as_str()?,
                b.get("signature")?.as_str()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_with_their_key_only() {
        let a = Seal::new(b"key-a");
        let sealed = a.seal("the model thought of sk-secret", "EqQBCkgIARABGAIiQL");
        assert!(sealed.starts_with(SEALED_PREFIX), "{sealed}");
        assert!(crate::redact::walk::is_base64(&sealed));
        assert!(!sealed.contains("secret"));
        assert_eq!(
            a.open(&sealed),
            Some(Ok((
                "the model thought of sk-secret".to_owned(),
                "EqQBCkgIARABGAIiQL".to_owned()
            )))
        );
        assert_eq!(
            Seal::new(b"key-a").open(&sealed).map(|r| r.is_ok()),
            Some(true),
            "the same hash_key opens it in another process"
        );
        assert_eq!(
            Seal::new(b"key-b").open(&sealed),
            Some(Err(Unsealed::WrongKey))
        );
        // A changed byte anywhere is refused.
        let mut bytes = STANDARD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            a.open(&STANDARD.encode(bytes)),
            Some(Err(Unsealed::WrongKey))
        );
        // An upstream's signature is not a seal.
        assert_eq!(a.open("EqQBCkgIARABGAIiQLmZ"), None);
        // Two seals of the same block differ (random nonces).
        assert_ne!(a.seal("t", "s"), a.seal("t", "s"));
        // Without a hash_key, the process's own key.
        let p = Seal::new(b"");
        assert!(matches!(p.open(&p.seal("", "")), Some(Ok(_))));
    }
}
