//! Non-streamed body redaction, both directions, every endpoint. A rewritten body must be JSON.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use veilgate::redact::{Endpoint, PolicySpec, Redactor, RequestRedaction};

fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| Redactor::new(&PolicySpec::default()).expect("default policy compiles"))
}

const ENDPOINTS: [Endpoint; 4] = [
    Endpoint::ChatCompletions,
    Endpoint::Completions,
    Endpoint::Embeddings,
    Endpoint::Responses,
];

fuzz_target!(|data: &[u8]| {
    let r = redactor();
    for endpoint in ENDPOINTS {
        let mut cx = RequestRedaction::new();
        if let Ok(Some(out)) = r.redact_request(endpoint, data, &mut cx) {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&out) {
                panic!("redact_request({endpoint:?}) produced invalid JSON: {e}");
            }
        }
        let mut cx = RequestRedaction::new();
        if let Ok(Some(out)) = r.redact_response(endpoint, data, &mut cx) {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&out) {
                panic!("redact_response({endpoint:?}) produced invalid JSON: {e}");
            }
        }
    }
});
