//! Incremental SSE parser: arbitrary bytes, split in two chunks at a point chosen by the
//! first byte, with a small cap chosen by the second. The parser must never buffer more than
//! its cap, and no dispatched event's data may exceed it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veilgate::wire::sse::{Item, Parser};

fn check(items: &[Item], max: usize) {
    for item in items {
        if let Item::Event(ev) = item {
            assert!(
                ev.data.len() <= max,
                "event data {} bytes > cap {max}",
                ev.data.len()
            );
        }
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let split_byte = input[0] as usize;
    // Caps 1..=256 bytes, or the default (8 MiB) for 0.
    let max = match input[1] {
        0 => veilgate::wire::sse::DEFAULT_MAX_EVENT_BYTES,
        b => b as usize,
    };
    let data = &input[2..];
    let split = if data.is_empty() { 0 } else { split_byte % (data.len() + 1) };
    let (a, b) = data.split_at(split);

    let mut parser = Parser::new(max);
    let mut out = Vec::new();
    if parser.push(a, &mut out).is_err() {
        return;
    }
    assert!(parser.buffered() <= max, "buffered {} > cap {max}", parser.buffered());
    check(&out, max);
    out.clear();
    if parser.push(b, &mut out).is_err() {
        return;
    }
    assert!(parser.buffered() <= max, "buffered {} > cap {max}", parser.buffered());
    check(&out, max);
    out.clear();
    if parser.finish(&mut out).is_err() {
        return;
    }
    check(&out, max);
    assert_eq!(parser.buffered(), 0, "finish left bytes buffered");
});
