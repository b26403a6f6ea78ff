//! Per-request state: what was found (for telemetry) and the pseudonym table that lets a
//! response restore what its request replaced.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::policy::{Action, Direction};

/// How often one detector fired with one action in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The detector's name.
    pub detector: Arc<str>,
    /// Where it fired.
    pub direction: Direction,
    /// What was done. Restoring a pseudonym in a response counts as
    /// `(detector, Response, Pseudonymize)`.
    pub action: Action,
    /// How many values.
    pub n: u64,
}

/// The redaction state of one request/response pair. Create one per request (it is `Default`),
/// pass it to the request-side call and then to the response side (or the stream).
///
/// `Debug` shows counts only: the pseudonym table holds original values.
#[derive(Default)]
pub struct RequestRedaction {
    counts: Vec<Count>,
    pseudonyms: Pseudonyms,
}

impl RequestRedaction {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every `(detector, direction, action)` that fired, in first-seen order.
    pub fn counts(&self) -> &[Count] {
        &self.counts
    }

    /// Values handled in total (all detectors, both directions).
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.n).sum()
    }

    /// How many distinct values are pseudonymized.
    pub fn pseudonyms(&self) -> usize {
        self.pseudonyms.by_placeholder.len()
    }

    pub(crate) fn record(&mut self, detector: &Arc<str>, direction: Direction, action: Action) {
        // A request sees a handful of distinct detectors: a linear scan beats hashing here.
        if let Some(c) = self.counts.iter_mut().find(|c| {
            c.direction == direction
                && c.action == action
                && (Arc::ptr_eq(&c.detector, detector) || *c.detector == **detector)
        }) {
            c.n += 1;
            return;
        }
        self.counts.push(Count {
            detector: Arc::clone(detector),
            direction,
            action,
            n: 1,
        });
    }

    /// The placeholder for `value`, assigning `<LABEL_n>` on first sight.
    pub(crate) fn pseudonym(&mut self, detector: &Arc<str>, label: &str, value: &str) -> &str {
        self.pseudonyms.assign(detector, label, value)
    }

    /// The original behind `placeholder` and the detector that found it.
    pub(crate) fn original(&self, placeholder: &str) -> Option<(&str, &Arc<str>)> {
        self.pseudonyms
            .by_placeholder
            .get(placeholder)
            .map(|(value, det)| (value.as_str(), det))
    }
}

impl fmt::Debug for RequestRedaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestRedaction")
            .field("counts", &self.counts)
            .field("pseudonyms", &self.pseudonyms.by_placeholder.len())
            .finish()
    }
}

#[derive(Default)]
struct Pseudonyms {
    by_value: HashMap<String, String>,
    by_placeholder: HashMap<String, (String, Arc<str>)>,
    next: HashMap<String, u32>,
}

impl Pseudonyms {
    fn assign(&mut self, detector: &Arc<str>, label: &str, value: &str) -> &str {
        if !self.by_value.contains_key(value) {
            let n = self.next.entry(label.to_owned()).or_insert(0);
            *n += 1;
            let placeholder = format!("<{label}_{n}>");
            self.by_placeholder.insert(
                placeholder.clone(),
                (value.to_owned(), Arc::clone(detector)),
            );
            self.by_value.insert(value.to_owned(), placeholder);
        }
        self.by_value.get(value).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_placeholder_numbered_per_label() {
        let det: Arc<str> = Arc::from("email");
        let mut cx = RequestRedaction::new();
        assert_eq!(cx.pseudonym(&det, "EMAIL", "a@example.com"), "<EMAIL_1>");
        assert_eq!(cx.pseudonym(&det, "EMAIL", "b@example.com"), "<EMAIL_2>");
        assert_eq!(cx.pseudonym(&det, "EMAIL", "a@example.com"), "<EMAIL_1>");
        let phone: Arc<str> = Arc::from("phone");
        assert_eq!(
            cx.pseudonym(&phone, "PHONE", "+1 555 123 4567"),
            "<PHONE_1>"
        );
        assert_eq!(
            cx.original("<EMAIL_2>").map(|(v, _)| v),
            Some("b@example.com")
        );
        assert_eq!(cx.pseudonyms(), 3);
    }

    #[test]
    fn counts_aggregate() {
        let det: Arc<str> = Arc::from("email");
        let mut cx = RequestRedaction::new();
        cx.record(&det, Direction::Request, Action::Redact);
        cx.record(&det, Direction::Request, Action::Redact);
        cx.record(&det, Direction::Response, Action::Redact);
        assert_eq!(cx.counts().len(), 2);
        assert_eq!(cx.counts()[0].n, 2);
        assert_eq!(cx.total(), 3);
    }

    #[test]
    fn debug_hides_pseudonymized_values() {
        let det: Arc<str> = Arc::from("email");
        let mut cx = RequestRedaction::new();
        cx.pseudonym(&det, "EMAIL", "private.person@example.com");
        let dbg = format!("{cx:?}");
        assert!(!dbg.contains("private.person"), "{dbg}");
    }
}
