//! A detector's examples, run: the unit tests written beside its pattern, for built-in
//! detectors (`builtin::tests`) and custom ones alike (whenever a policy is built: `veilgate
//! check`, start and reload).

use std::ops::Range;

use super::builtin::Specific;
use super::detector::Detector;
use super::policy::{Examples, PolicyError};

/// The values `det` replaces in `text` alone, left to right (what its matches' spans cover).
pub(crate) fn values(det: &Detector, text: &str, specific: &Specific) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(m) = det.find_at(text, at, specific) {
        at = m.end.max(m.start + 1);
        out.push(m.span);
        if at > text.len() {
            break;
        }
    }
    out
}

/// Runs `examples` against `det`: every `match` text must hold a value the detector replaces
/// (exactly the example's `value`, or the whole text), every `no_match` text none.
///
/// # Errors
///
/// [`PolicyError::ExampleFailed`] for the first example that fails, named by its place in its
/// list: the message never quotes an example, which may be a real value.
pub(crate) fn run(
    det: &Detector,
    examples: &Examples,
    specific: &Specific,
) -> Result<(), PolicyError> {
    let fail = |example: String, reason: &str| PolicyError::ExampleFailed {
        detector: det.name.to_string(),
        example,
        reason: reason.to_owned(),
    };
    for (i, example) in examples.matches.iter().enumerate() {
        let (text, value) = example.text_and_value();
        let found = values(det, &text, specific);
        if found.is_empty() {
            return Err(fail(format!("match[{i}]"), "is not found"));
        }
        if !found.iter().any(|span| text[span.clone()] == value) {
            return Err(fail(
                format!("match[{i}]"),
                "is found, but not as the whole value (the pattern takes more or less of it)",
            ));
        }
    }
    for (i, text) in examples.no_match.iter().enumerate() {
        if !values(det, &text.joined(), specific).is_empty() {
            return Err(fail(format!("no_match[{i}]"), "is found, and must not be"));
        }
    }
    Ok(())
}
