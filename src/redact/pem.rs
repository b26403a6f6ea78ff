//! PEM private-key blocks, hand-matched.
//!
//! A regex cannot express "through the END line, or — when there is none — through the end of
//! the key material, but never past a cap" without an enormous counted repetition, so this is a
//! small loop. A block is `-----BEGIN … PRIVATE KEY-----`, then body bytes (base64, whitespace,
//! `Proc-Type:`/`DEK-Info:` header lines, and newlines that arrive JSON-escaped as a literal
//! backslash-n), then `-----END … PRIVATE KEY-----`. A block without its END line is matched up
//! to the last body byte, so a truncated key is still removed. A block with fewer than
//! [`MIN_MATERIAL`] base64 characters in its body holds no key (`…KEY-----\nanything\n-----END…`,
//! a placeholder in documentation) and is left alone. Matches never exceed
//! [`PEM_MAX_LEN`]; key material past the cap (no real key is that long) is not covered.

use regex::Regex;

use super::byteset::floor_boundary;
use super::detector::RawMatch;

/// The longest PEM block matched, in bytes: room for an RSA-16384 key with escaped newlines.
pub(crate) const PEM_MAX_LEN: usize = 16 * 1024;

/// The fewest base64 characters in a block's body for it to hold key material: the smallest
/// real key (Ed25519 in PKCS #8) has 64.
pub(crate) const MIN_MATERIAL: usize = 16;

const BEGIN: &str = "-----BEGIN";
const END: &[u8] = b"-----END";

/// The PEM matcher.
pub(crate) struct Pem {
    header: Regex,
    footer: Regex,
}

impl Pem {
    /// Compiles the header and footer patterns.
    pub(crate) fn new() -> Result<Pem, regex::Error> {
        Ok(Pem {
            header: Regex::new(r"\A-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")?,
            footer: Regex::new(r"\A-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")?,
        })
    }

    /// The leftmost block starting at or after `start`.
    pub(crate) fn find_at(&self, hay: &str, start: usize) -> Option<RawMatch> {
        let mut from = start;
        while let Some(i) = hay.get(from..)?.find(BEGIN) {
            let s = from + i;
            if let Some(end) = self.block_end(hay, s) {
                return Some(RawMatch {
                    start: s,
                    end,
                    span: s..end,
                });
            }
            from = s + 1;
        }
        None
    }

    /// Where the block starting at `s` ends, reading at most `PEM_MAX_LEN` bytes.
    fn block_end(&self, hay: &str, s: usize) -> Option<usize> {
        let limit = floor_boundary(hay, s + PEM_MAX_LEN);
        // Only ASCII is ever consumed, so every position reached is a char boundary.
        let window = hay.get(s..limit)?;
        let header = self.header.find(window)?;
        let bytes = hay.as_bytes();
        let mut i = s + header.end();
        let mut material = 0;
        let mut end = None;
        while i < limit {
            if bytes[i..limit].starts_with(END) {
                end = hay
                    .get(i..limit)
                    .and_then(|w| self.footer.find(w))
                    .map(|footer| i + footer.end());
                break;
            }
            match bytes[i] {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {
                    material += 1;
                    i += 1;
                }
                b' ' | b'\t' | b'\r' | b'\n' | b':' | b',' | b'.' | b'-' => i += 1,
                b'\\' => {
                    // JSON-escaped line breaks (`\n`, `\r`, doubly escaped `\\n`) and `\/`.
                    let mut j = i;
                    while j < limit && bytes[j] == b'\\' {
                        j += 1;
                    }
                    if j < limit && matches!(bytes[j], b'n' | b'r' | b'/') {
                        i = j + 1;
                    } else {
                        break;
                    }
                }
                _ => break,
            }
        }
        (material >= MIN_MATERIAL).then_some(end.unwrap_or(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\naFDrBz9vFqU4yVh7uTHVvHmrkGnFbmDHT0Lc/XtQG5d8Q8xB0l8NsI+7JtV0v3Yl\n-----END RSA PRIVATE KEY-----";

    #[test]
    fn whole_block() {
        let pem = Pem::new().unwrap();
        let text = format!("key:\n{KEY}\nthanks");
        let m = pem.find_at(&text, 0).unwrap();
        assert_eq!(&text[m.start..m.end], KEY);
    }

    #[test]
    fn json_escaped_newlines() {
        let pem = Pem::new().unwrap();
        let escaped = KEY.replace('\n', "\\n");
        let text = format!(r#"{{"private_key": "{escaped}\n", "x": 1}}"#);
        let m = pem.find_at(&text, 0).unwrap();
        assert_eq!(&text[m.start..m.end], escaped);
    }

    #[test]
    fn unterminated_block_covers_the_material() {
        let pem = Pem::new().unwrap();
        let cut = &KEY[..KEY.len() - 40];
        let text = format!("{cut}\" and more");
        let m = pem.find_at(&text, 0).unwrap();
        assert_eq!(&text[m.start..m.end], cut);
    }

    #[test]
    fn public_keys_and_certificates_are_not_private_keys() {
        let pem = Pem::new().unwrap();
        assert!(pem
            .find_at(
                "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----",
                0
            )
            .is_none());
        assert!(pem
            .find_at(
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
                0
            )
            .is_none());
    }

    #[test]
    fn a_block_without_key_material_is_left_alone() {
        let pem = Pem::new().unwrap();
        for text in [
            "-----BEGIN PRIVATE KEY-----\nanything\n-----END PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY----------END OPENSSH PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----",
        ] {
            assert!(pem.find_at(text, 0).is_none(), "{text}");
        }
        // Sixteen characters of material are enough, with or without the END line.
        let short = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\n-----END PRIVATE KEY-----";
        assert_eq!(pem.find_at(short, 0).map(|m| m.end), Some(short.len()));
        assert_eq!(pem.find_at(&short[..44], 0).map(|m| m.end), Some(44));
    }

    #[test]
    fn openssh_and_encrypted_headers() {
        let pem = Pem::new().unwrap();
        let ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
        assert_eq!(pem.find_at(ssh, 0).map(|m| m.end), Some(ssh.len()));
        let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        assert_eq!(pem.find_at(enc, 0).map(|m| m.end), Some(enc.len()));
    }
}
