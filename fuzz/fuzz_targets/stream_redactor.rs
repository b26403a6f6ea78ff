//! Streaming (SSE) response redactor: arbitrary upstream bytes in 1..=3 chunks, then finish.
//! Errors are fine; panics are not.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use veilgate::redact::{Endpoint, PolicySpec, Redactor, RequestRedaction};

fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| Redactor::new(&PolicySpec::default()).expect("default policy compiles"))
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    let endpoint = if input[0] & 1 == 0 {
        Endpoint::ChatCompletions
    } else {
        Endpoint::Responses
    };
    let chunks = 1 + (input[0] >> 1) as usize % 3;
    let data = &input[3..];
    let (p1, p2) = (input[1] as usize, input[2] as usize);
    let s1 = if data.is_empty() { 0 } else { p1 % (data.len() + 1) };
    let s2 = s1 + if data.len() == s1 { 0 } else { p2 % (data.len() - s1 + 1) };
    let parts: Vec<&[u8]> = match chunks {
        1 => vec![data],
        2 => vec![&data[..s1], &data[s1..]],
        _ => vec![&data[..s1], &data[s1..s2], &data[s2..]],
    };

    let mut stream = redactor().stream(endpoint);
    let mut cx = RequestRedaction::new();
    for part in parts {
        if stream.push(part, &mut cx).is_err() {
            return;
        }
    }
    let _ = stream.finish(&mut cx);
});
