//! Redaction: secrets and personal data are replaced before a request leaves for the upstream,
//! and before the client sees a response — whole or streamed.
//!
//! ```
//! use veilgate::redact::{Endpoint, PolicySpec, Redactor, RequestRedaction};
//!
//! let redactor = Redactor::new(&PolicySpec::default())?;
//! let mut cx = RequestRedaction::default();
//! let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"key AKIAATJPUU5XFMZKP2EC"}]}"#;
//! let out = redactor.redact_request(Endpoint::ChatCompletions, body, &mut cx)?.unwrap();
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     r#"{"model":"gpt-4o","messages":[{"role":"user","content":"key [REDACTED:aws_access_key]"}]}"#
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Pieces
//!
//! - A [`PolicySpec`] says what to do per direction and category, with per-detector overrides,
//!   custom detectors, an allow-list and the hash key. [`Redactor::new`] compiles it once.
//! - Detectors (`builtin/`) are regexes (plus a hand-written PEM matcher) with checks — Luhn,
//!   mod 97, SSN ranges, entropy, placeholders. A prefilter runs each one only near its
//!   anchors; the scanner resolves overlaps greedily, leftmost first.
//! - The JSON walker (`walk.rs`) visits only text fields of each endpoint and splices
//!   replacements into the original bytes; an unchanged body comes back as `None`.
//! - [`StreamRedactor`] parses SSE, keeps one pending text per choice / tool call / output
//!   item, and emits redacted events at once.
//! - [`RequestRedaction`] carries per-request counts and the pseudonym table.
//!
//! # Failing closed
//!
//! A body or event that cannot be inspected — not UTF-8, not JSON, a text field of the wrong
//! type, an oversized event — is a [`RedactError`]: the gateway refuses the request or ends the
//! stream with an error event, and never forwards the original. No error, `Debug` output or
//! log line contains a redacted value.
//!
//! # Streams: exactness and hold-back
//!
//! A streamed text gives the client exactly what redacting the whole text at once gives, for
//! any split into deltas and any TCP chunking (property-tested). The stream redactor holds back
//! only text that could still become part of a match (see `scanner.rs`): for every detector a
//! match is decided once `max_len + 4` bytes follow its start or a byte outside the detector's
//! alphabet does. Bounds (bytes of one text):
//!
//! | what may be in progress                      | held back at most                |
//! |----------------------------------------------|----------------------------------|
//! | anything (default policy, typical prose)     | the trailing word, ≤ 428 bytes   |
//! | a custom detector without a literal prefix   | its `max_len` + 4 (default 68)   |
//! | a JWT after `eyJ`                            | 8 KiB + 4                        |
//! | a PEM block after `-----BEGIN`               | 16 KiB + 4 (the PEM cap)         |
//!
//! PEM blocks longer than 16 KiB are redacted up to the cap, JWTs up to 8 KiB; no real key or
//! token is that long.
//!
//! Measured (release build, one core of the development machine; `cargo test --release --
//! --ignored holdback_report --nocapture` re-measures): English prose streamed in 4-byte deltas
//! through the default policy holds back on average HOLD_AVG bytes (about HOLD_TOKENS tokens)
//! and at most HOLD_MAX bytes, i.e. each word reaches the client when the space after it does —
//! about one token later than without redaction. The CPU cost is EVENT_US µs per chat delta
//! event (parse, scan, rewrite, re-frame).
//!
//! # Speed
//!
//! Measured with `cargo bench --bench redact` (criterion): clean English prose scans at
//! PROSE_GBS GB/s, text dense with secrets and PII at DENSE_MBS MB/s, and a 4 KB chat request
//! goes through the whole request side (parse, scan, rewrite) in REQ_US µs.

mod action;
mod assignment;
mod builtin;
mod byteset;
mod checks;
mod context;
mod custom;
mod detector;
mod error;
mod json;
mod jwt;
mod numbers;
mod pem;
mod policy;
mod prefilter;
mod redactor;
mod scanner;
mod stream;
mod text_stream;
mod walk;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use context::{Count, RequestRedaction};
pub use error::{EventProblem, RedactError};
pub use policy::{
    Action, Category, CategoryActions, CustomDetectorSpec, Direction, PolicyError, PolicySpec,
};
pub use redactor::{Endpoint, Redactor};
pub use stream::{StreamRedactor, MAX_CHANNELS};
