//! Redaction throughput and latency.
//!
//! - `scan/prose`: clean English prose, every built-in detector on (secrets and PII).
//! - `scan/prose_values`: the same prose with a secret or personal value every ~500 bytes.
//! - `scan/dense_lines`: log, config and chat lines — one value per ~90-byte line, among
//!   timestamps, IPs, UUIDs, SHAs, versions and prices.
//! - `scan/dense_values`: nothing but values and filler words (a value every ~40 bytes).
//! - `request/chat_4k_*`: a 4 KB chat request through the whole request side (parse, scan,
//!   rewrite), clean and with values to replace.
//! - `stream/chat_events`: a streamed reply in 4-byte deltas through the stream redactor.
//!
//! Run: `cargo bench --bench redact`.
//!
//! Instruction counts (steadier than wall-clock time on a shared machine): with
//! `REDACT_ONCE=<bench id>` (e.g. `scan/dense_values`) the binary runs that input
//! `REDACT_ITERS` times (default 10) through [`measured`] and exits, so that
//! `valgrind --tool=callgrind --toggle-collect='redact::measured'` counts only the work
//! itself: divide the `Ir` total by the iterations.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use veilgate::redact::{
    Action, CategoryActions, Direction, PolicySpec, Redactor, RequestRedaction,
};
use veilgate::wire::Family;

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

fn dense_values(bytes: usize) -> String {
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

fn prose_values(bytes: usize) -> String {
    let values = values();
    let mut out = String::with_capacity(bytes + 128);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&prose(500));
        out.push_str(" Note: ");
        out.push_str(&values[i % values.len()]);
        out.push_str(". ");
        i += 1;
    }
    out
}

fn dense_lines(bytes: usize) -> String {
    let v = values();
    let lines = [
        "2024-05-01T10:22:33.123Z INFO auth: login ok user=john.doe@example.com ip=10.42.7.19 req=550e8400-e29b-41d4-a716-446655440000".to_owned(),
        format!("export AWS_ACCESS_KEY_ID={}", v[0]),
        "export AWS_SECRET_ACCESS_KEY=9Pu2njHkAm1+5wDr16EpLLJIVGHz4FxFEtKyPiYG".to_owned(),
        "DATABASE_URL=postgres://app:S3cr3tP4ss@db.internal:5432/app?sslmode=require".to_owned(),
        "Please charge card 4111 1111 1111 1111 exp 12/27 for order #88231, thanks!".to_owned(),
        "Call me at +1 (415) 555-2671 or mail jane@example.org before Friday.".to_owned(),
        format!("GITHUB_TOKEN={}", v[1]),
        "curl -H \"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\" https://api.example.com/v1/items".to_owned(),
        format!("{{\"api_key\": \"{}\", \"model\": \"gpt-4o\", \"temperature\": 0.2}}", v[2]),
        "SSN on file: 123-45-6789; IBAN DE89 3704 0044 0532 0130 00.".to_owned(),
        format!("slack bot token {} posted to #ops", v[3]),
        "commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 bumped version 1.4.2 (2024-05-01) price $1,234.56".to_owned(),
    ];
    let mut out = String::with_capacity(bytes + 256);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&lines[i % lines.len()]);
        out.push('\n');
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

/// A chat request of `total` bytes: a system prompt, an assistant turn and a long user turn
/// (optionally ending with a key and an e-mail address).
fn chat_request(total: usize, with_values: bool) -> Vec<u8> {
    let body = |user: &str| {
        serde_json::json!({
            "model": "gpt-4o",
            "temperature": 0.2,
            "stream": true,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
                {"role": "assistant", "content": SENTENCES[0]},
                {"role": "user", "content": user},
            ]
        })
        .to_string()
    };
    let tail = if with_values {
        format!(
            " My key is {} and my email john.doe@example.com.",
            values()[0]
        )
    } else {
        String::new()
    };
    // Prose line breaks are escaped in JSON (2 bytes each): trim until the body fits.
    let mut text = prose(total);
    text.truncate(total.saturating_sub(body("").len() + tail.len()));
    while body(&format!("{text}{tail}")).len() > total {
        text.pop();
    }
    body(&format!("{text}{tail}")).into_bytes()
}

fn scan(c: &mut Criterion) {
    let r = everything_on();
    let mut group = c.benchmark_group("scan");
    let corpora = [
        ("prose", prose(1 << 20)),
        ("prose_values", prose_values(1 << 20)),
        ("dense_lines", dense_lines(1 << 20)),
        ("dense_values", dense_values(1 << 20)),
    ];
    for (name, text) in corpora {
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
        ("chat_4k_clean", chat_request(4096, false)),
        ("chat_4k_values", chat_request(4096, true)),
    ] {
        assert!(
            (4000..=4096).contains(&body.len()),
            "{name}: {}",
            body.len()
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                let mut cx = RequestRedaction::default();
                let out = r.redact_request(Family::ChatCompletions, black_box(body), &mut cx);
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
            let mut s = r.stream(Family::ChatCompletions);
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

/// Runs `f` `iters` times; not inlined, so that callgrind can count only this.
#[inline(never)]
fn measured(iters: usize, mut f: impl FnMut() -> usize) -> usize {
    (0..iters).map(|_| black_box(f())).sum()
}

/// `REDACT_ONCE` mode (see the module docs): false if the variable is not set.
fn once() -> bool {
    let Ok(id) = std::env::var("REDACT_ONCE") else {
        return false;
    };
    let iters: usize = std::env::var("REDACT_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let r = everything_on();
    let text = match id.as_str() {
        "scan/prose" => Some(prose(1 << 20)),
        "scan/prose_values" => Some(prose_values(1 << 20)),
        "scan/dense_lines" => Some(dense_lines(1 << 20)),
        "scan/dense_values" => Some(dense_values(1 << 20)),
        _ => None,
    };
    let body = match id.as_str() {
        "request/chat_4k_clean" => Some(chat_request(4096, false)),
        "request/chat_4k_values" => Some(chat_request(4096, true)),
        _ => None,
    };
    let n = match (text, body) {
        (Some(text), _) => measured(iters, || {
            let mut cx = RequestRedaction::default();
            let out = r.redact_text(Direction::Request, black_box(&text), &mut cx);
            out.map(|o| o.len()).unwrap_or(0)
        }),
        (_, Some(body)) => measured(iters, || {
            let mut cx = RequestRedaction::default();
            let out = r.redact_request(Family::ChatCompletions, black_box(&body), &mut cx);
            out.map(|o| o.map_or(0, |v| v.len())).unwrap_or(0)
        }),
        _ => {
            eprintln!("REDACT_ONCE: unknown bench {id:?}");
            std::process::exit(2);
        }
    };
    println!("{id}: {iters} iterations, {n} output bytes");
    true
}

criterion_group!(benches, scan, request, stream);

fn main() {
    if once() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
