//! Redaction throughput and latency.
//!
//! - `scan/prose`: clean English prose, every built-in detector on (secrets and PII).
//! - `scan/dense`: text dense with secrets and personal data (a value every ~60 bytes).
//! - `request/chat_4k_*`: a 4 KB chat request through the whole request side (parse, scan,
//!   rewrite), clean and with values to replace.
//! - `stream/chat_events`: a streamed reply in 4-byte deltas through the stream redactor.
//!
//! Run: `cargo bench --bench redact`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use veilgate::redact::{
    Action, CategoryActions, Direction, Endpoint, PolicySpec, Redactor, RequestRedaction,
};

const SENTENCES: &[&str] = &[
    "The committee met on a grey morning to review the proposal for the new library wing.",
    "Several members argued that the budget was too optimistic, while others praised its ambition.",
    "After a long discussion, they agreed to ask the architects for a simpler design.",
    "Meanwhile, the volunteers continued to sort donated books into neat stacks by subject.",
    "Children from the nearby school visited in the afternoon and asked endless questions.",
    "One of them wanted to know why the oldest maps showed rivers in the wrong places.",
    "The librarian explained that surveyors worked slowly, walking every mile with chains.",
    "By evening the rain had stopped, and the square outside was full of people again.",
    "Nobody could remember when the clock on the tower had last shown the correct time.",
    "Still, the town was proud of it, and tourists photographed it from every angle.",
    "In the spring, the gardeners planted tulips along the path that leads to the river.",
    "It was, everyone agreed, the most peaceful season the valley had seen in years.",
];

fn prose(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 128);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(SENTENCES[i % SENTENCES.len()]);
        out.push(if i % 5 == 4 { '\n' } else { ' ' });
        i += 7;
    }
    out
}

/// Fake values, split in the source so that secret scanners leave this repository alone.
fn values() -> Vec<String> {
    let t = |a: &str, b: &str| format!("{a}{b}");
    vec![
        t("AKIA", "ATJPUU5XFMZKP2EC"),
        t("ghp_", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"),
        t(
            "sk-proj-",
            "ucAUsdMlHUvTCQCyEZDz-TddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Z",
        ),
        t("xoxb-", "9170342366-7127684268465-R4y9ojfljoQoaF1LlqsajAIx"),
        t("AIza", "BTxaQWk8JzFalHlsZfYcMMDktXP-tKsf2rc"),
        "password = \"Xk9#mP2$vL8q\"".to_owned(),
        "postgres://admin:S3cr3tP4ss@db.example.com/app".to_owned(),
        "john.doe@example.com".to_owned(),
        "+1 (415) 555-2671".to_owned(),
        "4111 1111 1111 1111".to_owned(),
        "123-45-6789".to_owned(),
        "DE89 3704 0044 0532 0130 00".to_owned(),
    ]
}

fn dense(bytes: usize) -> String {
    let values = values();
    let filler = [
        "please use",
        "and also",
        "then send it to",
        "the value is",
        "ok:",
    ];
    let mut out = String::with_capacity(bytes + 128);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(filler[i % filler.len()]);
        out.push(' ');
        out.push_str(&values[i % values.len()]);
        out.push_str(if i % 3 == 0 { ".\n" } else { ", " });
        i += 1;
    }
    out
}

fn everything_on() -> Redactor {
    let all = CategoryActions {
        secrets: Action::Redact,
        pii: Action::Redact,
    };
    let spec = PolicySpec {
        request: all,
        response: all,
        ..PolicySpec::default()
    };
    Redactor::new(&spec).expect("valid policy")
}

fn chat_request(content_bytes: usize, with_values: bool) -> Vec<u8> {
    let mut text = prose(content_bytes / 2);
    text.truncate(content_bytes / 2);
    if with_values {
        text.push_str(" My key is ");
        text.push_str(&values()[0]);
        text.push_str(" and my email john.doe@example.com.");
    }
    let body = serde_json::json!({
        "model": "gpt-4o",
        "temperature": 0.2,
        "stream": true,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": text},
            {"role": "assistant", "content": prose(content_bytes / 4)},
            {"role": "user", "content": prose(content_bytes / 4 - 300)},
        ]
    });
    serde_json::to_vec(&body).expect("serializable")
}

fn scan(c: &mut Criterion) {
    let r = everything_on();
    let mut group = c.benchmark_group("scan");
    for (name, text) in [("prose", prose(1 << 20)), ("dense", dense(1 << 20))] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &text, |b, text| {
            b.iter(|| {
                let mut cx = RequestRedaction::default();
                let out = r.redact_text(Direction::Request, black_box(text), &mut cx);
                black_box(out.map(|o| o.len()).unwrap_or(0))
            })
        });
    }
    group.finish();
}

fn request(c: &mut Criterion) {
    let r = everything_on();
    let mut group = c.benchmark_group("request");
    for (name, body) in [
        ("chat_4k_clean", chat_request(3800, false)),
        ("chat_4k_values", chat_request(3800, true)),
    ] {
        assert!(
            (3900..4300).contains(&body.len()),
            "{name}: {} bytes",
            body.len()
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                let mut cx = RequestRedaction::default();
                let out = r.redact_request(Endpoint::ChatCompletions, black_box(body), &mut cx);
                black_box(out.map(|o| o.map_or(0, |v| v.len())).unwrap_or(0))
            })
        });
    }
    group.finish();
}

fn stream(c: &mut Criterion) {
    let r = everything_on();
    let text = format!("{} {} {}", prose(2000), values().join(" and "), prose(1000));
    let mut sse = Vec::new();
    let mut events = 0u64;
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + 4).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let chunk = serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": &text[at..end]}, "finish_reason": null}]
        });
        sse.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
        events += 1;
        at = end;
    }
    sse.extend_from_slice(b"data: [DONE]\n\n");
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(events));
    group.bench_function("chat_events", |b| {
        b.iter(|| {
            let mut cx = RequestRedaction::default();
            let mut s = r.stream(Endpoint::ChatCompletions);
            let mut n = 0;
            for chunk in sse.chunks(512) {
                n += s.push(black_box(chunk), &mut cx).map_or(0, |o| o.len());
            }
            n += s.finish(&mut cx).map_or(0, |o| o.len());
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, scan, request, stream);
criterion_main!(benches);
