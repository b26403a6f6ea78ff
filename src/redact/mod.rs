//! Redaction: secrets and personal data are replaced before a request leaves for the upstream,
//! and before the client sees a response — whole or streamed.
//!
//! ```
//! use veilgate::wire::Endpoint;
//! use veilgate::redact::{PolicySpec, Redactor, RequestRedaction};
//!
//! let redactor = Redactor::new(&PolicySpec::default())?;
//! let mut cx = RequestRedaction::default();
//! let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"key AKIAATJPUU5XFMZKP2EC"}]}"#;
//! let out = redactor.redact_request(Endpoint::ChatCompletions.family(), body, &mut cx)?.unwrap();
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
//! - The JSON walker (`walk.rs`) visits every string, key and long number of a body, whatever
//!   the endpoint (deny by default: only its reviewed opaque table — binary payloads and the
//!   model — is skipped), and splices replacements into the original bytes; an unchanged body
//!   comes back as `None`.
//! - [`StreamRedactor`] parses SSE, keeps one pending text per choice / tool call / output
//!   item / event type with a text `delta`, emits redacted events at once, and scans every
//!   other string of every event whole.
//! - [`RequestRedaction`] carries per-request counts and the pseudonym table.
//!
//! # Failing closed
//!
//! A body or event that cannot be inspected — not UTF-8, not JSON, a string that cannot be
//! decoded, an oversized event — is a [`RedactError`]: the gateway refuses the request or ends the
//! stream with an error event, and never forwards the original. No error, `Debug` output or
//! log line contains a redacted value.
//!
//! # Streams: exactness and hold-back
//!
//! A streamed text gives the client exactly what redacting the whole text at once gives, for
//! any split into deltas and any TCP chunking (property-tested). The stream redactor holds back
//! only text that could still become part of a match (see `scanner.rs`): a match is decided
//! once `max_len + 4` bytes follow its start, once a byte outside the detector's alphabet
//! follows, or once the text cannot start a match (not a start literal, start byte, or
//! assignment grammar prefix). Bounds, per streamed text:
//!
//! | what may be in progress                       | held back at most                |
//! |-----------------------------------------------|----------------------------------|
//! | anything (any built-in detector)              | the trailing word, ≤ 428 bytes   |
//! | a custom detector without a literal prefix    | its `max_len` + 4 (default 68)   |
//! | a JWT after `eyJ`                             | 8 KiB + 4 (the JWT cap)          |
//! | a PEM block after `-----BEGIN`                | 16 KiB + 4 (the PEM cap)         |
//!
//! PEM blocks longer than 16 KiB are redacted up to the cap, JWTs up to 8 KiB (a token whose
//! dots lie further out is not recognized); no real key or token is that long.
//! [`Redactor::max_hold`] reports the bound of a compiled policy.
//!
//! What is typically held back — about the current word, so that a word reaches the client
//! when the byte after it does, under one token of added latency — is measured by
//! `cargo test --release -- --ignored holdback_report --nocapture` (English prose, and prose
//! with keys, e-mail addresses, phone and card numbers mixed in, streamed in 4-byte deltas,
//! with the default policy and with every built-in detector on); the CPU cost per chat delta
//! event (parse, scan, rewrite, re-frame) by the `stream/chat_events` bench. The figures are in
//! the README's Redaction section.
//!
//! # Speed
//!
//! Measured by `cargo bench --bench redact` (see `benches/redact.rs`); the figures, with the
//! machine and its load, are in the README's Redaction section, not here.

mod action;
mod assignment;
mod body_stream;
mod builtin;
mod byteset;
mod custom;
mod derive;
mod detector;
mod encoded_jwt;
mod error;
mod examples;
mod json;
mod jwt;
mod match_checks;
mod numbers;
mod pem;
mod policy;
mod prefilter;
mod redactor;
mod request_redaction;
mod scanner;
mod stream;
mod text_stream;
mod thinking;
mod token;
mod view;
mod walk;

#[cfg(test)]
mod deny_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use body_stream::BodyStream;
pub use error::{EventProblem, RedactError};
pub use policy::{
    Action, Category, CategoryActions, CustomDetectorSpec, DetectorActions, Direction, Example,
    Examples, PolicyError, PolicySpec, Text,
};
pub use redactor::Redactor;
pub use request_redaction::{Count, RequestRedaction};
pub use stream::{Emit, StreamRedactor, MAX_CHANNELS};
pub use thinking::Unsealed;
