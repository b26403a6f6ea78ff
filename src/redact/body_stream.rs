//! [`BodyStream`]: a body (or one part of a multipart form) redacted as it arrives, so an upload
//! of any size goes through with bounded memory.
//!
//! The body is JSON Lines when its first non-blank byte is `{` (a batch file): each line is held
//! until its newline (at most `max_line` bytes) and walked like any JSON body; a line that is not
//! JSON is scanned as text. Any other body is UTF-8 text, scanned by the same streaming scanner as
//! a stream's text channels: the output is exactly what redacting the whole text gives, and only
//! text that could still become part of a match is held back. Bytes that are not UTF-8 end the
//! body with [`RedactError::InvalidUtf8`] (fail closed: what cannot be read is not forwarded).

use super::error::RedactError;
use super::policy::Direction;
use super::redactor::Redactor;
use super::request_redaction::RequestRedaction;
use super::scanner::Recorder;
use super::text_stream::TextStream;
use crate::wire::Family;

/// How the body is cut for scanning, decided by its first byte that is not blank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Only blanks so far.
    Undecided,
    /// JSON Lines (it starts with `{`): each line is a JSON document.
    Lines,
    /// Anything else: one text, scanned as if whole.
    Text,
}

/// Redacts one body that arrives in pieces. Create it with [`Redactor::body_stream`].
pub struct BodyStream {
    redactor: Redactor,
    direction: Direction,
    max_line: usize,
    framing: Framing,
    /// Bytes not yet redacted: the current line (JSON Lines), the blanks before the first byte
    /// that decides the framing, or the start of a UTF-8 character cut by a chunk boundary
    /// (text).
    pending: Vec<u8>,
    text: TextStream,
    failed: bool,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("framing", &self.framing)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl BodyStream {
    pub(crate) fn new(redactor: Redactor, direction: Direction, max_line: usize) -> Self {
        BodyStream {
            redactor,
            direction,
            max_line,
            framing: Framing::Undecided,
            pending: Vec::new(),
            text: TextStream::default(),
            failed: false,
        }
    }

    /// Bytes held back right now.
    pub fn held(&self) -> usize {
        self.pending.len() + self.text.held()
    }

    /// The next piece of the body; returns the redacted bytes that can go on now.
    ///
    /// # Errors
    ///
    /// [`RedactError::Blocked`], [`RedactError::InvalidUtf8`], [`RedactError::LineTooLong`];
    /// after an error nothing more may be forwarded ([`RedactError::Finished`]).
    pub fn push(
        &mut self,
        chunk: &[u8],
        cx: &mut RequestRedaction,
    ) -> Result<Vec<u8>, RedactError> {
        self.guard(|this| this.step(chunk, false, cx))
    }

    /// The end of the body: everything held back, redacted.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push); also [`RedactError::InvalidUtf8`] for a character cut off at
    /// the end.
    pub fn finish(&mut self, cx: &mut RequestRedaction) -> Result<Vec<u8>, RedactError> {
        let out = self.guard(|this| this.step(&[], true, cx))?;
        self.failed = true; // spent
        Ok(out)
    }

    fn guard(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<Vec<u8>, RedactError>,
    ) -> Result<Vec<u8>, RedactError> {
        if self.failed {
            return Err(RedactError::Finished);
        }
        f(self).inspect_err(|_| self.failed = true)
    }

    fn step(
        &mut self,
        chunk: &[u8],
        at_end: bool,
        cx: &mut RequestRedaction,
    ) -> Result<Vec<u8>, RedactError> {
        if self.framing == Framing::Undecided {
            self.pending.extend_from_slice(chunk);
            match self.pending.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => self.framing = Framing::Lines,
                Some(_) => self.framing = Framing::Text,
                None if at_end => return Ok(std::mem::take(&mut self.pending)),
                None => return Ok(Vec::new()),
            }
            let first = std::mem::take(&mut self.pending);
            return self.step(&first, at_end, cx);
        }
        match self.framing {
            Framing::Lines => self.lines(chunk, at_end, cx),
            _ => self.text(chunk, at_end, cx),
        }
    }

    fn lines(
        &mut self,
        chunk: &[u8],
        at_end: bool,
        cx: &mut RequestRedaction,
    ) -> Result<Vec<u8>, RedactError> {
        let mut out = Vec::with_capacity(chunk.len() + 64);
        let mut rest = chunk;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            if self.pending.len() + nl > self.max_line {
                return Err(RedactError::LineTooLong {
                    limit: self.max_line,
                });
            }
            self.pending.extend_from_slice(&rest[..=nl]);
            let line = std::mem::take(&mut self.pending);
            self.line(&line, &mut out, cx)?;
            rest = &rest[nl + 1..];
        }
        if self.pending.len() + rest.len() > self.max_line {
            return Err(RedactError::LineTooLong {
                limit: self.max_line,
            });
        }
        self.pending.extend_from_slice(rest);
        if at_end && !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line, &mut out, cx)?;
        }
        Ok(out)
    }

    /// One line with its terminator (if any), redacted into `out`.
    fn line(
        &mut self,
        line: &[u8],
        out: &mut Vec<u8>,
        cx: &mut RequestRedaction,
    ) -> Result<(), RedactError> {
        let text = std::str::from_utf8(line).map_err(|_| RedactError::InvalidUtf8)?;
        let body = text.trim_end_matches(['\r', '\n']);
        if body.trim().is_empty() {
            out.extend_from_slice(line);
            return Ok(());
        }
        let walked = match self.direction {
            Direction::Request => self
                .redactor
                .redact_request(Family::Other, body.as_bytes(), cx),
            Direction::Response => {
                self.redactor
                    .redact_response(Family::Other, body.as_bytes(), cx)
            }
        };
        match walked {
            Ok(None) => out.extend_from_slice(body.as_bytes()),
            Ok(Some(new)) => out.extend_from_slice(&new),
            // Not a JSON line after all: scanned as text.
            Err(RedactError::NotJson { .. } | RedactError::UnexpectedShape { .. }) => out
                .extend_from_slice(
                    self.redactor
                        .redact_text(self.direction, body, cx)?
                        .as_bytes(),
                ),
            Err(e) => return Err(e),
        }
        out.extend_from_slice(&line[body.len()..]);
        Ok(())
    }

    fn text(
        &mut self,
        chunk: &[u8],
        at_end: bool,
        cx: &mut RequestRedaction,
    ) -> Result<Vec<u8>, RedactError> {
        let joined;
        let bytes: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            let mut j = std::mem::take(&mut self.pending);
            j.extend_from_slice(chunk);
            joined = j;
            &joined
        };
        // Whole characters go on; a character cut by the chunk boundary waits for its rest.
        let valid = match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) if e.error_len().is_none() && !at_end => {
                self.pending = bytes[e.valid_up_to()..].to_vec();
                std::str::from_utf8(&bytes[..e.valid_up_to()])
                    .map_err(|_| RedactError::Internal("utf-8 prefix"))?
            }
            Err(_) => return Err(RedactError::InvalidUtf8),
        };
        let scanner = self.redactor.scanner(self.direction);
        let mut rec = Recorder { cx, count: true };
        let mut out = self.text.push(scanner, valid, &mut rec)?;
        if at_end {
            out.push_str(&self.text.finish(scanner, &mut rec)?);
        }
        Ok(out.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::tests::{github_token, redactor};

    fn streamed(body: &[u8], size: usize, max_line: usize) -> Result<Vec<u8>, RedactError> {
        let r = redactor(|_| {});
        let mut s = r.body_stream(Direction::Request, max_line);
        let mut cx = RequestRedaction::default();
        let mut out = Vec::new();
        for piece in body.chunks(size.max(1)) {
            out.extend(s.push(piece, &mut cx)?);
        }
        out.extend(s.finish(&mut cx)?);
        Ok(out)
    }

    #[test]
    fn json_lines_are_walked_line_by_line_in_any_chunking() {
        let t = github_token();
        let body = format!(
            "{{\"custom_id\":\"1\",\"body\":{{\"messages\":[{{\"role\":\"user\",\"content\":\"use {t}\"}}]}}}}\r\n\n{{\"custom_id\":\"2\",\"body\":{{\"input\":\"{t}\"}}}}\nnot json {t}\n{{\"x\":1}}"
        );
        let want = body.replace(&t, "[REDACTED:github_token]");
        for size in [1, 2, 3, 7, 64, body.len()] {
            let out = String::from_utf8(streamed(body.as_bytes(), size, 4096).unwrap()).unwrap();
            assert_eq!(out, want, "chunk size {size}");
        }
    }

    #[test]
    fn text_is_redacted_as_if_whole_in_any_chunking() {
        let t = github_token();
        let body = format!("héllo wörld, the token is {t}\nand again: {t}. Ünïcode ✓ at the end");
        let r = redactor(|_| {});
        let whole = r
            .redact_text(Direction::Request, &body, &mut RequestRedaction::default())
            .unwrap()
            .into_owned();
        assert!(!whole.contains(&t));
        for size in [1, 2, 3, 5, 17, body.len()] {
            let out = String::from_utf8(streamed(body.as_bytes(), size, 16).unwrap()).unwrap();
            assert_eq!(out, whole, "chunk size {size}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        assert!(matches!(
            streamed(b"plain text \xff\xfe more", 4, 1024),
            Err(RedactError::InvalidUtf8)
        ));
        // A character cut off by the end of the body.
        assert!(matches!(
            streamed("text é".as_bytes().split_last().unwrap().1, 3, 1024),
            Err(RedactError::InvalidUtf8)
        ));
        let long = format!("{{\"a\":\"{}\"}}\n", "x".repeat(100));
        assert!(matches!(
            streamed(long.as_bytes(), 7, 64),
            Err(RedactError::LineTooLong { limit: 64 })
        ));
        assert_eq!(streamed(b"  \n ", 1, 8).unwrap(), b"  \n ");
    }

    #[test]
    fn held_back_text_is_bounded() {
        let r = redactor(|_| {});
        let mut s = r.body_stream(Direction::Request, 1 << 20);
        let mut cx = RequestRedaction::default();
        let prose = "the quick brown fox jumps over the lazy dog ".repeat(2000);
        let mut most = 0;
        for piece in prose.as_bytes().chunks(1000) {
            s.push(piece, &mut cx).unwrap();
            most = most.max(s.held());
        }
        assert!(most < 1024, "held {most} bytes");
    }
}
