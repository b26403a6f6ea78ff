//! [`Redactor`]: a compiled policy, and its entry points for bodies, texts and streams.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use hmac::Mac;

use super::action::HashKey;
use super::body_stream::BodyStream;
use super::builtin::{self, Builtins};
use super::custom;
use super::detector::Detector;
use super::error::RedactError;
use super::policy::{Action, Direction, PolicyError, PolicySpec};
use super::request_redaction::RequestRedaction;
use super::scanner::{Entry, Recorder, Scanner, Treatment};
use super::stream::StreamRedactor;
use super::thinking::{self, Seal, Unsealed};
use super::walk::{self, Logprobs, Mode};
use crate::wire::Family;
use serde_json::Value;

/// A compiled, immutable redaction policy. Build one per configuration; it is `Send + Sync`
/// and cloning it is cheap (an `Arc`).
#[derive(Clone)]
pub struct Redactor {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) request: Scanner,
    pub(crate) response: Scanner,
    /// Seals thinking blocks whose text redaction changes (see `thinking.rs`).
    pub(crate) seal: Seal,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("request", &self.inner.request)
            .field("response", &self.inner.response)
            .finish()
    }
}

impl Redactor {
    /// Compiles `spec`.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`]: an invalid custom detector (the error names it), an unknown name in
    /// `actions`, an empty allow-list entry, or `hash` without a `hash_key`.
    pub fn new(spec: &PolicySpec) -> Result<Redactor, PolicyError> {
        let builtins = builtin::builtins()?;
        let mut detectors: Vec<Arc<Detector>> = builtins.detectors.clone();
        for c in &spec.detectors {
            if detectors.iter().any(|d| *d.name == *c.name) {
                return Err(PolicyError::DuplicateDetector {
                    name: c.name.clone(),
                });
            }
            detectors.push(Arc::new(custom::compile(c)?));
        }
        if let Some(name) = spec
            .actions
            .keys()
            .find(|name| !detectors.iter().any(|d| *d.name == ***name))
        {
            return Err(PolicyError::UnknownDetector { name: name.clone() });
        }
        if spec.allow.iter().any(String::is_empty) {
            return Err(PolicyError::EmptyAllowEntry);
        }
        let hash_key = if spec.hash_key.is_empty() {
            None
        } else {
            // HMAC takes keys of any length; this cannot fail.
            Some(HashKey::new_from_slice(&spec.hash_key).map_err(|_| PolicyError::MissingHashKey)?)
        };
        let allow: Arc<HashSet<String>> = Arc::new(spec.allow.iter().cloned().collect());
        let mut scanners = [Direction::Request, Direction::Response].map(|dir| {
            let entries = entries(spec, dir, &detectors);
            (dir, entries)
        });
        let uses_hash = scanners
            .iter()
            .flat_map(|(_, e)| e)
            .any(|e| e.treatment == Treatment::Apply(Action::Hash));
        if uses_hash && hash_key.is_none() {
            return Err(PolicyError::MissingHashKey);
        }
        let pseudonymizes = scanners[0]
            .1
            .iter()
            .any(|e| e.treatment == Treatment::Apply(Action::Pseudonymize));
        if pseudonymizes {
            scanners[1].1.insert(0, restorer(builtins));
        }
        let [(_, request), (_, response)] = scanners;
        let build = |dir, entries| {
            Scanner::new(
                dir,
                entries,
                &builtins.specific,
                Arc::clone(&allow),
                hash_key.clone(),
            )
        };
        Ok(Redactor {
            inner: Arc::new(Inner {
                request: build(Direction::Request, request),
                response: build(Direction::Response, response),
                seal: Seal::new(&spec.hash_key),
            }),
        })
    }

    /// A Messages API answer, after redaction (`redacted`) and as the upstream sent it
    /// (`original`): the thinking blocks whose text was changed for the client, or would be
    /// changed by the request policy on its way back, get a sealed signature that restores
    /// them (see [`Redactor::unseal_thinking`]). `None` when no block needs one.
    ///
    /// # Errors
    ///
    /// As for redacting a text with the request policy.
    pub fn seal_thinking(
        &self,
        original: &[u8],
        redacted: &[u8],
    ) -> Result<Option<Vec<u8>>, RedactError> {
        if memchr::memmem::find(original, b"\"thinking\"").is_none() {
            return Ok(None);
        }
        let (Ok(before), Ok(mut after)) = (
            serde_json::from_slice::<Value>(original),
            serde_json::from_slice::<Value>(redacted),
        ) else {
            return Ok(None);
        };
        let mut sealed = false;
        for (i, text, signature) in thinking::answer_blocks(&before) {
            let Some(block) = after.pointer_mut(&format!("/content/{i}")) else {
                continue;
            };
            let shown = block.get("thinking").and_then(Value::as_str);
            if shown != Some(text) || self.inner.request.would_change(text)? {
                block["signature"] = Value::String(self.inner.seal.seal(text, signature));
                sealed = true;
            }
        }
        Ok(sealed.then(|| serde_json::to_vec(&after).unwrap_or_default()))
    }

    /// A Messages API request, after redaction: every thinking block with a sealed signature
    /// gets back the text and signature the upstream issued. `Ok(None)` when there is none.
    ///
    /// # Errors
    ///
    /// [`Unsealed`] when a sealed signature does not open with this gateway's key.
    pub fn unseal_thinking(&self, body: &[u8]) -> Result<Option<Vec<u8>>, Unsealed> {
        if memchr::memmem::find(body, thinking::SEALED_PREFIX.as_bytes()).is_none() {
            return Ok(None);
        }
        let Ok(mut request) = serde_json::from_slice::<Value>(body) else {
            return Ok(None);
        };
        let mut restored = false;
        let messages = request.get_mut("messages").and_then(Value::as_array_mut);
        for message in messages.into_iter().flatten() {
            let blocks = message.get_mut("content").and_then(Value::as_array_mut);
            for block in blocks.into_iter().flatten() {
                if block.get("type").and_then(Value::as_str) != Some("thinking") {
                    continue;
                }
                let Some(signature) = block.get("signature").and_then(Value::as_str) else {
                    continue;
                };
                if let Some(opened) = self.inner.seal.open(signature) {
                    let (text, signature) = opened?;
                    block["thinking"] = Value::String(text);
                    block["signature"] = Value::String(signature);
                    restored = true;
                }
            }
        }
        Ok(restored.then(|| serde_json::to_vec(&request).unwrap_or_default()))
    }

    /// The built-in detector names, for validating `actions:` keys in configuration.
    pub fn detector_names() -> impl Iterator<Item = &'static str> + Clone {
        builtin::names()
    }

    /// Whether there is anything to do in `direction`. Pseudonymizing requests implies
    /// restoring responses, so the response side is active then too.
    pub fn is_active(&self, direction: Direction) -> bool {
        !self.scanner(direction).is_empty()
    }

    /// The detectors that run in `direction`, in priority order, with their action
    /// (`Pseudonymize` for the response-side placeholder restorer, named `pseudonym`).
    pub fn detectors(&self, direction: Direction) -> impl Iterator<Item = (&str, Action)> {
        self.scanner(direction).entries().iter().map(|e| {
            let action = match e.treatment {
                Treatment::Apply(a) => a,
                Treatment::Restore => Action::Pseudonymize,
            };
            (&*e.det.name, action)
        })
    }

    /// How many bytes of one streamed text can be held back at most in `direction`.
    pub fn max_hold(&self, direction: Direction) -> usize {
        self.scanner(direction).max_hold()
    }

    /// Redacts a request body of wire family `family`. `Ok(None)`: nothing changed, forward
    /// the original bytes. `Ok(Some(body))`: forward `body` (valid JSON; only the redacted
    /// strings differ from the original).
    ///
    /// # Errors
    ///
    /// [`RedactError::InvalidUtf8`], [`RedactError::NotJson`], [`RedactError::UnexpectedShape`]
    /// when the body cannot be inspected; [`RedactError::Blocked`] when a blocking detector
    /// matched. Never forward the original body after an error.
    pub fn redact_request(
        &self,
        family: Family,
        body: &[u8],
        cx: &mut RequestRedaction,
    ) -> Result<Option<Vec<u8>>, RedactError> {
        self.redact_body(Direction::Request, family, body, cx)
    }

    /// Redacts a (non-streamed) response body, and restores pseudonymized values. Like
    /// [`redact_request`](Redactor::redact_request); `logprobs` are cleared when any text
    /// changed, as they would repeat it.
    ///
    /// # Errors
    ///
    /// As for [`redact_request`](Redactor::redact_request).
    pub fn redact_response(
        &self,
        family: Family,
        body: &[u8],
        cx: &mut RequestRedaction,
    ) -> Result<Option<Vec<u8>>, RedactError> {
        self.redact_body(Direction::Response, family, body, cx)
    }

    /// Redacts one plain text in `direction`.
    ///
    /// # Errors
    ///
    /// [`RedactError::Blocked`] when a blocking detector matched.
    pub fn redact_text<'t>(
        &self,
        direction: Direction,
        text: &'t str,
        cx: &mut RequestRedaction,
    ) -> Result<Cow<'t, str>, RedactError> {
        let mut rec = Recorder { cx, count: true };
        self.scanner(direction).redact_text(text, &mut rec)
    }

    /// A redactor for a body (or one form part) that arrives in pieces: JSON Lines line by line,
    /// any other text exactly as if whole (see [`BodyStream`]).
    pub fn body_stream(&self, direction: Direction, max_line: usize) -> BodyStream {
        BodyStream::new(self.clone(), direction, max_line)
    }

    /// A redactor for a streamed (SSE) response of wire family `family`. It shares this policy
    /// and can live in a per-request context.
    pub fn stream(&self, family: Family) -> StreamRedactor {
        StreamRedactor::new(Arc::clone(&self.inner), family)
    }

    /// This policy without the prefilter (tests compare the two).
    #[cfg(test)]
    pub(crate) fn exhaustive(spec: &PolicySpec) -> Result<Redactor, PolicyError> {
        let r = Redactor::new(spec)?;
        let inner = Arc::into_inner(r.inner).ok_or(PolicyError::Internal {
            reason: "shared".into(),
        })?;
        Ok(Redactor {
            inner: Arc::new(Inner {
                request: inner.request.exhaustive(),
                response: inner.response.exhaustive(),
                seal: inner.seal,
            }),
        })
    }

    pub(crate) fn scanner(&self, direction: Direction) -> &Scanner {
        match direction {
            Direction::Request => &self.inner.request,
            Direction::Response => &self.inner.response,
        }
    }

    fn redact_body(
        &self,
        direction: Direction,
        family: Family,
        body: &[u8],
        cx: &mut RequestRedaction,
    ) -> Result<Option<Vec<u8>>, RedactError> {
        let scanner = self.scanner(direction);
        if scanner.is_empty() {
            return Ok(None);
        }
        let src = std::str::from_utf8(body).map_err(|_| RedactError::InvalidUtf8)?;
        let mut rec = Recorder { cx, count: true };
        // Every string of the body: the walker knows no field list; the family only says
        // which members hold binary payloads (its opaque table).
        let out = walk::document(
            src,
            family,
            scanner,
            &mut rec,
            Mode::Body,
            Logprobs::WhenChanged,
        )?;
        Ok(out.map(String::into_bytes))
    }
}

/// The detectors active in `dir` with their actions, in priority order: a detector's own
/// action for `dir` if the policy names one, else its category's.
fn entries(spec: &PolicySpec, dir: Direction, detectors: &[Arc<Detector>]) -> Vec<Entry> {
    let category_actions = spec.direction(dir);
    detectors
        .iter()
        .filter_map(|det| {
            let action = spec
                .actions
                .get(&*det.name)
                .and_then(|a| a.get(dir))
                .unwrap_or_else(|| category_actions.get(det.category));
            (action != Action::Off).then(|| Entry::new(Arc::clone(det), Treatment::Apply(action)))
        })
        .collect()
}

fn restorer(builtins: &Builtins) -> Entry {
    Entry::new(Arc::clone(&builtins.placeholder), Treatment::Restore)
}
