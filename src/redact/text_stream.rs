//! One streamed text (a choice's content, one tool call's arguments…): feed deltas, get back
//! what can be sent now.

use super::byteset::floor_boundary;
use super::error::RedactError;
use super::scanner::{Recorder, Scanner};

/// Look-behind kept before the pending text: detectors look one character back (`\b`).
const CONTEXT: usize = 16;

/// The pending (held-back) text of one stream, with a little already-emitted context.
#[derive(Debug, Default)]
pub(crate) struct TextStream {
    /// `buf[..from]` was emitted (context), `buf[from..]` is pending.
    buf: String,
    from: usize,
}

impl TextStream {
    /// Appends `delta`; returns the redacted text that is final now (possibly empty).
    ///
    /// # Errors
    ///
    /// [`RedactError::Blocked`] when a blocking detector matches.
    pub(crate) fn push(
        &mut self,
        scanner: &Scanner,
        delta: &str,
        rec: &mut Recorder<'_>,
    ) -> Result<String, RedactError> {
        self.buf.push_str(delta);
        let mut out = String::new();
        let commit = scanner.redact_step(&self.buf, self.from, false, &mut out, rec)?;
        let keep = floor_boundary(&self.buf, commit.saturating_sub(CONTEXT));
        self.buf.drain(..keep);
        self.from = commit - keep;
        Ok(out)
    }

    /// The stream's end: returns the redacted rest of the pending text.
    ///
    /// # Errors
    ///
    /// [`RedactError::Blocked`] when a blocking detector matches.
    pub(crate) fn finish(
        &mut self,
        scanner: &Scanner,
        rec: &mut Recorder<'_>,
    ) -> Result<String, RedactError> {
        let mut out = String::new();
        scanner.redact_step(&self.buf, self.from, true, &mut out, rec)?;
        self.buf.clear();
        self.from = 0;
        Ok(out)
    }

    /// Bytes held back right now.
    pub(crate) fn held(&self) -> usize {
        self.buf.len() - self.from
    }
}
