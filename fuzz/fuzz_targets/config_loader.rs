//! Config parsing and validation from arbitrary (lossily decoded) text. Errors are fine,
//! panics are not; the error must also render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = veilgate::config::load_str(&text, "fuzz.yaml", &|_| None) {
        let rendered = e.to_string();
        std::hint::black_box(rendered);
        std::hint::black_box(format!("{e:?}"));
    }
});
