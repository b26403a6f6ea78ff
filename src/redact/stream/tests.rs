//! Stream redactor tests; the properties over random splits are in `redact/proptests.rs`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::redact::tests::{aws_key, redactor};
use crate::redact::*;
use crate::wire::sse::{Event, Item, Parser};
use crate::wire::Family;

/// Feeds `input` in chunks of `chunk` bytes, then finishes.
pub(crate) fn run(
    s: &mut StreamRedactor,
    input: &[u8],
    chunk: usize,
    cx: &mut RequestRedaction,
) -> Result<Vec<u8>, RedactError> {
    let mut out = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        out.extend(s.push(c, cx)?);
    }
    out.extend(s.finish(cx)?);
    Ok(out)
}

/// Parses client output; asserts every event is JSON or `[DONE]`.
pub(crate) fn events(out: &[u8]) -> Vec<Event> {
    let mut p = Parser::default();
    let mut items = Vec::new();
    p.push(out, &mut items).unwrap();
    p.finish(&mut items).unwrap();
    items
        .into_iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e),
            Item::Comment(_) => None,
        })
        .inspect(|e| {
            assert!(
                e.data == "[DONE]" || serde_json::from_str::<Value>(&e.data).is_ok(),
                "not JSON: {}",
                e.data
            )
        })
        .collect()
}

/// Concatenated chat texts per (choice, field): `content`, `args:<tool index>`, `text`.
pub(crate) fn chat_texts(events: &[Event]) -> BTreeMap<(u64, String), String> {
    let mut out: BTreeMap<(u64, String), String> = BTreeMap::new();
    for e in events.iter().filter(|e| e.data != "[DONE]") {
        let v: Value = serde_json::from_str(&e.data).unwrap();
        for c in v["choices"].as_array().into_iter().flatten() {
            let i = c["index"].as_u64().unwrap_or(0);
            let mut add = |field: String, t: &Value| {
                if let Some(t) = t.as_str() {
                    out.entry((i, field)).or_default().push_str(t);
                }
            };
            add("text".into(), &c["text"]);
            add("content".into(), &c["delta"]["content"]);
            for tc in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                add(
                    format!("args:{}", tc["index"]),
                    &tc["function"]["arguments"],
                );
            }
        }
    }
    out
}

pub(crate) fn chunk_event(choice: u64, delta: Value, finish: Option<&str>) -> String {
    let v = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": choice, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    format!("data: {v}\n\n")
}

fn content_stream(deltas: &[&str]) -> String {
    let mut s = chunk_event(0, json!({"role": "assistant", "content": ""}), None);
    for d in deltas {
        s.push_str(&chunk_event(0, json!({ "content": d }), None));
    }
    s.push_str(&chunk_event(0, json!({}), Some("stop")));
    s.push_str("data: [DONE]\n\n");
    s
}

fn batch(r: &Redactor, text: &str) -> String {
    r.redact_text(Direction::Response, text, &mut RequestRedaction::default())
        .unwrap()
        .into_owned()
}

#[test]
fn secret_split_across_deltas_never_reaches_the_client() {
    let r = redactor(|_| {});
    let key = aws_key();
    let text = format!("my key {key} please");
    let input = content_stream(&["my key ", &key[..4], &key[4..12], &key[12..], " please"]);
    let mut cx = RequestRedaction::default();
    let out = run(
        &mut r.stream(Family::ChatCompletions),
        input.as_bytes(),
        7,
        &mut cx,
    )
    .unwrap();
    let evs = events(&out);
    assert_eq!(
        chat_texts(&evs)[&(0, "content".into())],
        "my key [REDACTED:aws_access_key] please"
    );
    assert_eq!(batch(&r, &text), "my key [REDACTED:aws_access_key] please");
    let raw = String::from_utf8(out).unwrap();
    assert!(!raw.contains("AKIA") && !raw.contains(&key[4..12]), "{raw}");
    assert_eq!(evs.last().unwrap().data, "[DONE]");
    assert_eq!(cx.total(), 1, "counted once");
}

#[test]
fn every_two_way_split_of_a_text_gives_the_unstreamed_result() {
    let r = redactor(|_| {});
    let text = format!("key {} mail a.b@example.com ok", aws_key());
    let expected = batch(&r, &text);
    let cuts: Vec<usize> = (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect();
    for &i in &cuts {
        for &j in cuts.iter().filter(|&&j| j >= i) {
            let input = content_stream(&[&text[..i], &text[i..j], &text[j..]]);
            let mut cx = RequestRedaction::default();
            let out = run(
                &mut r.stream(Family::ChatCompletions),
                input.as_bytes(),
                64,
                &mut cx,
            )
            .unwrap();
            assert_eq!(
                chat_texts(&events(&out))[&(0, "content".into())],
                expected,
                "cuts {i} {j}"
            );
        }
    }
}

#[test]
fn held_text_goes_out_before_the_finish_event() {
    let r = redactor(|_| {});
    let input = content_stream(&["Hello wor", "ld"]);
    let out = run(
        &mut r.stream(Family::ChatCompletions),
        input.as_bytes(),
        1000,
        &mut RequestRedaction::default(),
    )
    .unwrap();
    let evs = events(&out);
    let contents: Vec<String> = evs
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            format!(
                "{}|{}",
                v["choices"][0]["delta"]["content"].as_str().unwrap_or("-"),
                v["choices"][0]["finish_reason"]
            )
        })
        .collect();
    // "wor" is held (it could still become an e-mail address); "ld" alone is dropped; the
    // held "world" goes out in a synthesized chunk just before the finish chunk.
    assert_eq!(
        contents,
        ["|null", "Hello |null", "world|null", "-|\"stop\""]
    );
}

#[test]
fn finish_chunk_carrying_text_gets_the_rest() {
    let r = redactor(|_| {});
    let mut input = chunk_event(0, json!({"content": "key "}), None);
    input.push_str(&chunk_event(0, json!({"content": aws_key()}), Some("stop")));
    let out = run(
        &mut r.stream(Family::ChatCompletions),
        input.as_bytes(),
        5,
        &mut RequestRedaction::default(),
    )
    .unwrap();
    let evs = events(&out);
    assert_eq!(evs.len(), 2);
    let last: Value = serde_json::from_str(&evs[1].data).unwrap();
    assert_eq!(
        last["choices"][0]["delta"]["content"],
        "[REDACTED:aws_access_key]"
    );
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
}

#[test]
fn end_without_done_or_finish_flushes() {
    let r = redactor(|_| {});
    let input = chunk_event(0, json!({"content": "mail a@example.com"}), None);
    let out = run(
        &mut r.stream(Family::ChatCompletions),
        input.as_bytes(),
        3,
        &mut RequestRedaction::default(),
    )
    .unwrap();
    assert_eq!(
        chat_texts(&events(&out))[&(0, "content".into())],
        "mail [REDACTED:email]"
    );
}

#[test]
fn tool_call_arguments_per_index() {
    let r = redactor(|_| {});
    let key = aws_key();
    let mut input = chunk_event(
        0,
        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        None,
    );
    input.push_str(&chunk_event(
        0,
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"k\":\"AKIA"}}]}),
        None,
    ));
    input.push_str(&chunk_event(
        0,
        json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{\"m\":\"a@exa"}}]}),
        None,
    ));
    input.push_str(&chunk_event(0, json!({"tool_calls": [{"index": 0, "function": {"arguments": format!("{}\"}}", &key[4..])}}]}), None));
    input.push_str(&chunk_event(
        0,
        json!({"tool_calls": [{"index": 1, "function": {"arguments": "mple.com\"}"}}]}),
        None,
    ));
    input.push_str(&chunk_event(0, json!({}), Some("tool_calls")));
    input.push_str("data: [DONE]\n\n");
    let out = run(
        &mut r.stream(Family::ChatCompletions),
        input.as_bytes(),
        11,
        &mut RequestRedaction::default(),
    )
    .unwrap();
    let texts = chat_texts(&events(&out));
    assert_eq!(
        texts[&(0, "args:0".into())],
        r#"{"k":"[REDACTED:aws_access_key]"}"#
    );
    assert_eq!(texts[&(0, "args:1".into())], r#"{"m":"[REDACTED:email]"}"#);
    let raw = String::from_utf8(out).unwrap();
    assert!(
        raw.contains("call_a") && raw.contains("call_b"),
        "ids and names pass"
    );
}

#[test]
fn completions_stream() {
    let r = redactor(|_| {});
    let ev = |text: &str, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}]})
        )
    };
    let input = [
        ev("call +1 415 ", Value::Null),
        ev("555 2671 now", Value::Null),
        ev("", json!("stop")),
        "data: [DONE]\n\n".into(),
    ]
    .concat();
    let out = run(
        &mut r.stream(Family::Completions),
        input.as_bytes(),
        9,
        &mut RequestRedaction::default(),
    )
    .unwrap();
    assert_eq!(
        chat_texts(&events(&out))[&(0, "text".into())],
        "call [REDACTED:phone] now"
    );
}

#[test]
fn responses_stream() {
    let r = redactor(|_| {});
    let key = aws_key();
    let full = format!("key {key} ok");
    let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let delta = |d: &str, seq: u64| {
        ev(
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d, "sequence_number": seq, "logprobs": []}),
        )
    };
    let input = [
        ev(json!({"type": "response.created", "response": {"id": "resp_1", "output": []}, "sequence_number": 0})),
        delta("key AK", 1),
        delta(&key[2..9], 2),
        delta(&format!("{} ok", &key[9..]), 3),
        ev(json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": full, "sequence_number": 4})),
        ev(json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": "{\"e\":\"a@exam", "sequence_number": 5})),
        ev(json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": "ple.com\"}", "sequence_number": 6})),
        ev(json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "function_call", "arguments": "{\"e\":\"a@example.com\"}"}, "sequence_number": 7})),
        ev(json!({"type": "response.completed", "response": {"id": "resp_1", "output": [
            {"type": "message", "content": [{"type": "output_text", "text": full}]},
            {"type": "function_call", "arguments": "{\"e\":\"a@example.com\"}"}]}, "sequence_number": 8})),
    ]
    .concat();
    let mut cx = RequestRedaction::default();
    let out = run(
        &mut r.stream(Family::Responses),
        input.as_bytes(),
        13,
        &mut cx,
    )
    .unwrap();
    let evs = events(&out);
    let mut deltas: BTreeMap<u64, String> = BTreeMap::new();
    let mut done = Vec::new();
    for e in &evs {
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(e.event.as_deref(), v["type"].as_str(), "event names kept");
        match v["type"].as_str().unwrap() {
            "response.output_text.delta" | "response.function_call_arguments.delta" => deltas
                .entry(v["output_index"].as_u64().unwrap())
                .or_default()
                .push_str(v["delta"].as_str().unwrap()),
            "response.output_text.done" => done.push(v["text"].clone()),
            "response.output_item.done" => done.push(v["item"]["arguments"].clone()),
            "response.completed" => {
                done.push(v["response"]["output"][0]["content"][0]["text"].clone());
                done.push(v["response"]["output"][1]["arguments"].clone());
            }
            _ => {}
        }
    }
    let text = "key [REDACTED:aws_access_key] ok";
    let args = r#"{"e":"[REDACTED:email]"}"#;
    assert_eq!(deltas[&0], text);
    assert_eq!(deltas[&1], args);
    assert_eq!(done, [json!(text), json!(args), json!(text), json!(args)]);
    assert_eq!(
        cx.total(),
        2,
        "whole texts in .done/completed events are not counted again"
    );
    assert!(!String::from_utf8(out).unwrap().contains(&key[2..9]));
    // The delta held back whole (2) is dropped, and the text held at `.done` goes out in an
    // added delta: upstream numbers would read 0 1 3 3 4 …; the client sees them contiguous.
    let numbers: Vec<u64> = evs
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            v["sequence_number"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(numbers, (0..evs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn placeholder_split_across_deltas_is_restored() {
    let r = redactor(|s| s.request.pii = Action::Pseudonymize);
    let mut cx = RequestRedaction::default();
    let body =
        json!({"messages": [{"role": "user", "content": "I am jane.doe@example.com"}]}).to_string();
    let out = r
        .redact_request(Family::ChatCompletions, body.as_bytes(), &mut cx)
        .unwrap()
        .unwrap();
    assert!(String::from_utf8(out).unwrap().contains("<EMAIL_1>"));
    let input = content_stream(&["Hello <EM", "AIL", "_1>, and <EMAIL_", "2> stays."]);
    let out = run(
        &mut r.stream(Family::ChatCompletions),
        input.as_bytes(),
        4,
        &mut cx,
    )
    .unwrap();
    assert_eq!(
        chat_texts(&events(&out))[&(0, "content".into())],
        "Hello jane.doe@example.com, and <EMAIL_2> stays."
    );
}

#[test]
fn blocked_in_a_stream() {
    let r = redactor(|s| s.response.secrets = Action::Block);
    let key = aws_key();
    let input = content_stream(&["fine text, then ", &key[..6], &key[6..], " more"]);
    let mut s = r.stream(Family::ChatCompletions);
    let mut cx = RequestRedaction::default();
    let mut sent = Vec::new();
    let mut err = None;
    for c in input.as_bytes().chunks(10) {
        match s.push(c, &mut cx) {
            Ok(b) => sent.extend(b),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert_eq!(
        err,
        Some(RedactError::Blocked {
            detector: "aws_access_key".into(),
            direction: Direction::Response
        })
    );
    let sent = String::from_utf8(sent).unwrap();
    assert!(
        sent.contains("fine text") && !sent.contains(&key[..4]),
        "{sent}"
    );
    assert_eq!(s.push(b"data: {}\n\n", &mut cx), Err(RedactError::Finished));
}

#[test]
fn uninspectable_events_fail_closed() {
    let r = redactor(|_| {});
    let mut cx = RequestRedaction::default();
    let mut s = r.stream(Family::ChatCompletions);
    let first = chunk_event(0, json!({"content": "ok "}), None);
    let err = s
        .push(format!("{first}data: {{not json\n\n").as_bytes(), &mut cx)
        .unwrap_err();
    assert_eq!(
        err,
        RedactError::BadEvent {
            event: 1,
            problem: EventProblem::NotJson
        }
    );
    let mut s = r.stream(Family::ChatCompletions);
    assert_eq!(
        s.push(b"data: {\"choices\": \"x\"}\n\n", &mut cx)
            .unwrap_err(),
        RedactError::BadEvent {
            event: 0,
            problem: EventProblem::UnexpectedShape
        }
    );
    let mut s = r.stream(Family::Responses);
    assert!(matches!(
        s.push(b"data: \xff\xfe\n\n", &mut cx),
        Err(RedactError::Sse(_))
    ));
    let mut s = r.stream(Family::ChatCompletions).with_max_event_bytes(64);
    assert!(matches!(
        s.push(&[b'x'; 100], &mut cx),
        Err(RedactError::Sse(_))
    ));
}

#[test]
fn comments_keep_alive_without_their_text() {
    let r = redactor(|_| {});
    let out = run(
        &mut r.stream(Family::ChatCompletions),
        b": secret comment text\n\ndata: [DONE]\n\n",
        4,
        &mut RequestRedaction::default(),
    )
    .unwrap();
    assert_eq!(out, b":\n\ndata: [DONE]\n\n");
}

#[test]
fn logprobs_are_cleared_in_streams() {
    let r = redactor(|_| {});
    let input = format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"content": "hi "}, "logprobs": {"content": [{"token": "hi"}]}}]})
    );
    let out = run(
        &mut r.stream(Family::ChatCompletions),
        input.as_bytes(),
        100,
        &mut RequestRedaction::default(),
    )
    .unwrap();
    let v: Value = serde_json::from_str(&events(&out)[0].data).unwrap();
    assert!(v["choices"][0]["logprobs"].is_null());
}

#[test]
fn usage_chunk_and_unknown_fields_pass() {
    let r = redactor(|_| {});
    let usage =
        r#"data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
    let input = format!(
        "{}{usage}\n\ndata: [DONE]\n\n",
        content_stream(&["hi"]).trim_end_matches("data: [DONE]\n\n")
    );
    let out = run(
        &mut r.stream(Family::ChatCompletions),
        input.as_bytes(),
        8,
        &mut RequestRedaction::default(),
    )
    .unwrap();
    let raw = String::from_utf8(out).unwrap();
    assert!(raw.contains(usage), "{raw}");
}

/// Streams `text` as chat deltas of `size` bytes (at char boundaries); returns the client's
/// text and the bytes held back after each event.
fn stream_text(r: &Redactor, text: &str, size: usize) -> (String, Vec<usize>) {
    let mut s = r.stream(Family::ChatCompletions);
    let mut cx = RequestRedaction::default();
    let mut out = Vec::new();
    let mut held = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.extend(
            s.push(
                chunk_event(0, json!({ "content": &text[at..end] }), None).as_bytes(),
                &mut cx,
            )
            .unwrap(),
        );
        held.push(s.held());
        at = end;
    }
    out.extend(s.finish(&mut cx).unwrap());
    let got = chat_texts(&events(&out))
        .remove(&(0, "content".into()))
        .unwrap_or_default();
    (got, held)
}

#[test]
fn long_values_stream_exactly() {
    let r = redactor(|_| {});
    let body: String = (0..400)
        .map(|i| format!("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC{i:013}\n"))
        .collect();
    let pem =
        format!("key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----\nbye");
    assert!(pem.len() > 16 * 1024, "longer than the PEM cap");
    let jwt = format!(
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJ{}.sig_abcdefgh tail",
        "x1Y2".repeat(2500)
    );
    let texts = [
        pem.clone(),
        pem.replace('\n', "\\n"),
        jwt,
        format!("word {} end", "a".repeat(10_000)),
        "1234 ".repeat(3000),
        format!("{}@example.com", "a.b".repeat(500)),
    ];
    for text in &texts {
        let want = r
            .redact_text(Direction::Response, text, &mut RequestRedaction::default())
            .unwrap()
            .into_owned();
        for size in [13, 512, 4096] {
            let (got, held) = stream_text(&r, text, size);
            assert_eq!(
                got,
                want,
                "delta size {size}, text starting {:?}",
                &text[..20]
            );
            let max = held.iter().max().copied().unwrap_or(0);
            assert!(max <= r.max_hold(Direction::Response) + size, "held {max}");
        }
    }
    assert!(
        !texts[0].is_empty()
            && !batch(&r, &texts[0])
                .contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC0000000000000")
    );
}

/// The hold-back figures the README gives (English prose in 4-byte deltas: average, p99 and
/// most), held to bounds just above them; `--nocapture` prints them.
/// Deterministic: bytes, not time. The CPU cost per event is the `stream/chat_events` bench.
#[test]
fn holdback_report() {
    let prose = "The committee met on a grey morning to review the proposal for the new library wing. \
        Several members argued that the budget was too optimistic, while others praised its ambition. \
        After a long discussion, they agreed to ask the architects for a simpler design, and the \
        volunteers continued to sort donated books into neat stacks by subject. "
        .repeat(40);
    let mixed = format!(
        "{prose} Contact jane@example.com or +1 (415) 555-2671; key {} and card 4111 1111 1111 1111. {prose}",
        aws_key()
    );
    let policies = [
        (
            "default policy",
            Redactor::new(&PolicySpec::default()).unwrap(),
        ),
        ("secrets+pii", redactor(|_| {})),
    ];
    for (name, r) in &policies {
        for (tname, text) in [("prose", &prose), ("prose with values", &mixed)] {
            let (_, held) = stream_text(r, text, 4);
            let mut sorted = held.clone();
            sorted.sort_unstable();
            let avg = held.iter().sum::<usize>() as f64 / held.len() as f64;
            let p99 = sorted[sorted.len() * 99 / 100];
            let max = sorted[sorted.len() - 1];
            println!(
                "{name:15} {tname:18} events {:5}  held avg {avg:5.1} B  p99 {p99:3} B  max {max:3} B",
                held.len()
            );
            assert!(
                avg <= 3.5 && p99 <= 10 && max <= 24,
                "{name}, {tname}: avg {avg:.1}, p99 {p99}, max {max}"
            );
        }
    }
}

/// An Anthropic stream: `message_start`, one block per `(kind, deltas)`, `message_delta`,
/// `message_stop`, with `event:` names as Anthropic sends them.
fn messages_stream(blocks: &[(&str, &[&str])]) -> String {
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut s = ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null,
            "usage": {"input_tokens": 20, "output_tokens": 1}}}),
    );
    s.push_str(&ev("ping", json!({"type": "ping"})));
    for (i, (kind, deltas)) in blocks.iter().enumerate() {
        let (block, delta_type, field) = match *kind {
            "text" => (json!({"type": "text", "text": ""}), "text_delta", "text"),
            "tool" => (
                json!({"type": "tool_use", "id": "toolu_1", "name": "run", "input": {}}),
                "input_json_delta",
                "partial_json",
            ),
            _ => (
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                "thinking_delta",
                "thinking",
            ),
        };
        s.push_str(&ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": block}),
        ));
        for d in *deltas {
            s.push_str(&ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta": {"type": delta_type, field: d}}),
            ));
        }
        if *kind == "thinking" {
            s.push_str(&ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i,
                       "delta": {"type": "signature_delta", "signature": "EqQBCkgIARABGAIiQLmZ4s5z0VAaT1c2S0P5"}}),
            ));
        }
        s.push_str(&ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    s.push_str(&ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 15}}),
    ));
    s.push_str(&ev("message_stop", json!({"type": "message_stop"})));
    s
}

/// Concatenated texts per block: `text`, `partial_json`, `thinking`, and the signatures.
fn messages_texts(events: &[Event]) -> BTreeMap<(u64, String), String> {
    let mut out: BTreeMap<(u64, String), String> = BTreeMap::new();
    for e in events {
        let v: Value = serde_json::from_str(&e.data).unwrap();
        if v["type"] != "content_block_delta" {
            continue;
        }
        assert_eq!(e.event.as_deref(), Some("content_block_delta"));
        let i = v["index"].as_u64().unwrap();
        for field in ["text", "partial_json", "thinking", "signature"] {
            if let Some(t) = v["delta"][field].as_str() {
                out.entry((i, field.into())).or_default().push_str(t);
            }
        }
    }
    out
}

#[test]
fn messages_streams_redact_every_delta_type_across_splits() {
    let r = redactor(|_| {});
    let key = aws_key();
    let json_key = format!("{{\"cmd\": \"deploy --key {key}\"}}");
    let input = messages_stream(&[
        (
            "thinking",
            &["The user's key ", &key[..6], &key[6..], " must not leak."],
        ),
        (
            "text",
            &["Here: ", &key[..3], &key[3..10], &key[10..], " done"],
        ),
        (
            "tool",
            &[&json_key[..14], &json_key[14..25], &json_key[25..]],
        ),
    ]);
    for chunk in [1, 7, 64, input.len()] {
        let mut cx = RequestRedaction::default();
        let out = run(
            &mut r.stream(Family::Messages),
            input.as_bytes(),
            chunk,
            &mut cx,
        )
        .unwrap();
        let raw = String::from_utf8(out.clone()).unwrap();
        assert!(
            !raw.contains(&key[..8]) && !raw.contains(&key[6..]),
            "{raw}"
        );
        let evs = events(&out);
        let texts = messages_texts(&evs);
        assert_eq!(
            texts[&(0, "thinking".into())],
            "The user's key [REDACTED:aws_access_key] must not leak."
        );
        assert_eq!(
            texts[&(1, "text".into())],
            "Here: [REDACTED:aws_access_key] done"
        );
        assert_eq!(
            texts[&(2, "partial_json".into())],
            "{\"cmd\": \"deploy --key [REDACTED:aws_access_key]\"}"
        );
        serde_json::from_str::<Value>(&texts[&(2, "partial_json".into())]).unwrap();
        // The thinking was changed: its signature is sealed, and opens to the original.
        let sealed = &texts[&(0, "signature".into())];
        assert!(sealed.starts_with("VkdUM"), "{sealed}");
        let restored = json!({"messages": [{"role": "assistant", "content": [
            {"type": "thinking", "thinking": texts[&(0, "thinking".into())], "signature": sealed}]}]});
        let back = r
            .unseal_thinking(restored.to_string().as_bytes())
            .unwrap()
            .unwrap();
        let back: Value = serde_json::from_slice(&back).unwrap();
        let block = &back["messages"][0]["content"][0];
        assert_eq!(
            block["thinking"],
            format!("The user's key {key} must not leak."),
            "the upstream gets back the block it signed"
        );
        assert_eq!(block["signature"], "EqQBCkgIARABGAIiQLmZ4s5z0VAaT1c2S0P5");
        // Held text goes out before each block's stop; every event keeps its `event:` name.
        let order: Vec<String> = evs
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(&e.data).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        for (e, t) in evs.iter().zip(&order) {
            assert_eq!(e.event.as_deref(), Some(t.as_str()));
        }
        let stops: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, t)| *t == "content_block_stop")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(stops.len(), 3);
        assert_eq!(order.last().unwrap(), "message_stop");
        assert_eq!(cx.total(), 3, "counted once each");
    }
}

#[test]
fn untouched_thinking_keeps_the_upstream_signature() {
    let r = redactor(|_| {});
    let input = messages_stream(&[("thinking", &["Plain ", "reasoning."]), ("text", &["Hi"])]);
    let mut cx = RequestRedaction::default();
    let out = run(
        &mut r.stream(Family::Messages),
        input.as_bytes(),
        5,
        &mut cx,
    )
    .unwrap();
    let texts = messages_texts(&events(&out));
    assert_eq!(
        texts[&(0, "signature".into())],
        "EqQBCkgIARABGAIiQLmZ4s5z0VAaT1c2S0P5"
    );
    assert_eq!(
        out,
        input.as_bytes(),
        "nothing to change: the stream as it came"
    );
    // A policy that would change the thinking on its way back seals it, though the client
    // sees it unchanged.
    let strict = redactor(|p| {
        p.response = CategoryActions {
            secrets: Action::Off,
            pii: Action::Off,
        };
    });
    let input = messages_stream(&[("thinking", &["mail jane.doe@example.com"])]);
    let out = run(
        &mut strict.stream(Family::Messages),
        input.as_bytes(),
        5,
        &mut cx,
    )
    .unwrap();
    let texts = messages_texts(&events(&out));
    assert_eq!(texts[&(0, "thinking".into())], "mail jane.doe@example.com");
    assert!(texts[&(0, "signature".into())].starts_with("VkdUM"));
}

#[test]
fn messages_events_of_unknown_shapes_are_scanned_whole() {
    let r = redactor(|_| {});
    let key = aws_key();
    let input = format!(
        "event: content_block_delta\ndata: {}\n\nevent: future_event\ndata: {}\n\nevent: error\ndata: {}\n\n",
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {"cited_text": format!("key {key}")}}}),
        json!({"type": "future_event", "payload": {"note": format!("{key}")}}),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": format!("echo {key}")}}),
    );
    let mut cx = RequestRedaction::default();
    let out = run(
        &mut r.stream(Family::Messages),
        input.as_bytes(),
        9,
        &mut cx,
    )
    .unwrap();
    let raw = String::from_utf8(out).unwrap();
    assert!(!raw.contains(&key), "{raw}");
    assert_eq!(raw.matches("[REDACTED:aws_access_key]").count(), 3, "{raw}");
}

#[test]
fn whole_answers_seal_changed_thinking_blocks_and_requests_restore_them() {
    let r = redactor(|_| {});
    let key = aws_key();
    let answer = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": format!("use {key}"), "signature": "EqQBCkgIARABGAIiQLmZ"},
            {"type": "thinking", "thinking": "plain", "signature": "EqQBCkgIotherSignature"},
            {"type": "text", "text": format!("done {key}")}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 7}});
    let original = answer.to_string();
    let mut cx = RequestRedaction::default();
    let redacted = r
        .redact_response(Family::Messages, original.as_bytes(), &mut cx)
        .unwrap()
        .unwrap();
    let sealed = r
        .seal_thinking(original.as_bytes(), &redacted)
        .unwrap()
        .unwrap();
    let client: Value = serde_json::from_slice(&sealed).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(&key));
    let blocks = &client["content"];
    assert_eq!(blocks[0]["thinking"], "use [REDACTED:aws_access_key]");
    assert!(blocks[0]["signature"]
        .as_str()
        .unwrap()
        .starts_with("VkdUM"));
    assert_eq!(
        blocks[1]["signature"], "EqQBCkgIotherSignature",
        "untouched"
    );
    assert_eq!(blocks[2]["text"], "done [REDACTED:aws_access_key]");
    // The next turn, after request redaction, gets the signed blocks back.
    let turn = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [blocks[0].clone(), blocks[1].clone()]},
        {"role": "user", "content": "continue"}]});
    let turn = turn.to_string();
    let scanned = r
        .redact_request(Family::Other, turn.as_bytes(), &mut cx)
        .unwrap()
        .unwrap_or_else(|| turn.clone().into_bytes());
    let restored: Value =
        serde_json::from_slice(&r.unseal_thinking(&scanned).unwrap().unwrap()).unwrap();
    let back = &restored["messages"][1]["content"];
    assert_eq!(back[0]["thinking"], format!("use {key}"));
    assert_eq!(back[0]["signature"], "EqQBCkgIARABGAIiQLmZ");
    assert_eq!(back[1], blocks[1]);
    // Nothing sealed, nothing to do; a seal from another key is refused.
    assert_eq!(r.unseal_thinking(original.as_bytes()), Ok(None));
    let other = redactor(|p| p.hash_key = b"another key".to_vec());
    assert_eq!(other.unseal_thinking(&scanned), Err(Unsealed::WrongKey));
    // An answer without thinking costs no parse.
    assert_eq!(r.seal_thinking(b"{\"content\": []}", b"{}").unwrap(), None);
}

#[test]
fn thinking_kept_for_seals_is_bounded_per_stream() {
    let r = redactor(|_| {});
    let mb = "x".repeat(1024 * 1024);
    // Thinking deltas into `blocks` open blocks, 1 MiB each, round robin, never signed.
    let stream = |blocks: u64, deltas: u64| {
        let mut s = String::new();
        for n in 0..deltas {
            let v = json!({"type": "content_block_delta", "index": n % blocks,
                           "delta": {"type": "thinking_delta", "thinking": mb}});
            s.push_str(&format!("event: content_block_delta\ndata: {v}\n\n"));
        }
        s
    };
    let mut cx = RequestRedaction::default();
    let ok = run(
        &mut r.stream(Family::Messages),
        stream(1, 4).as_bytes(),
        1 << 16,
        &mut cx,
    );
    assert!(ok.is_ok(), "4 MiB in one block is within the bound");
    let over = run(
        &mut r.stream(Family::Messages),
        stream(2, 5).as_bytes(),
        1 << 16,
        &mut cx,
    );
    assert_eq!(
        over.map(|_| ()).map_err(|e| e.code()),
        Err("stream_too_complex"),
        "5 MiB over two open blocks"
    );
}

#[test]
fn messages_placeholders_split_across_deltas_are_restored() {
    let r = redactor(|s| s.request.pii = Action::Pseudonymize);
    let mut cx = RequestRedaction::default();
    let body = json!({"model": "claude-x", "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "I am jane.doe@example.com"}]}]})
    .to_string();
    let out = r
        .redact_request(Family::Other, body.as_bytes(), &mut cx)
        .unwrap()
        .unwrap();
    assert!(String::from_utf8(out).unwrap().contains("<EMAIL_1>"));
    let input = messages_stream(&[
        ("thinking", &["The user <EMA", "IL_1> asked."]),
        (
            "text",
            &["Hello <EM", "AIL", "_1>, and <EMAIL_", "2> stays."],
        ),
    ]);
    let out = run(
        &mut r.stream(Family::Messages),
        input.as_bytes(),
        4,
        &mut cx,
    )
    .unwrap();
    let texts = messages_texts(&events(&out));
    assert_eq!(
        texts[&(1, "text".into())],
        "Hello jane.doe@example.com, and <EMAIL_2> stays."
    );
    assert_eq!(
        texts[&(0, "thinking".into())],
        "The user jane.doe@example.com asked."
    );
    // Restored for the client, so changed: the next turn gets the upstream's own block.
    let sealed = &texts[&(0, "signature".into())];
    let turn = json!({"messages": [{"role": "assistant", "content": [
        {"type": "thinking", "thinking": texts[&(0, "thinking".into())], "signature": sealed}]}]})
    .to_string();
    let back: Value =
        serde_json::from_slice(&r.unseal_thinking(turn.as_bytes()).unwrap().unwrap()).unwrap();
    assert_eq!(
        back["messages"][0]["content"][0]["thinking"],
        "The user <EMAIL_1> asked."
    );
}

/// A stream of an API the gateway does not know (a `paths:` route, `Family::Other`) is read
/// in the shape its events show: a key split over two chat chunks, or over two
/// Messages deltas, is redacted whole, as on the family's own endpoint. (Read as typed
/// events, each piece alone would have been scanned, and passed.)
#[test]
fn an_unknown_apis_stream_follows_texts_split_across_events() {
    let r = redactor(|_| {});
    let key = aws_key();
    let chat = [
        chunk_event(0, json!({"role": "assistant", "content": "key "}), None),
        chunk_event(0, json!({"content": &key[..9]}), None),
        chunk_event(0, json!({"content": &key[9..]}), None),
        chunk_event(0, json!({}), Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let messages = messages_stream(&[("text", &["key ", &key[..9], &key[9..], " end"])]);
    // Events that say nothing of the shape come first: the shape is read from the first one
    // that does.
    let quiet = format!(
        "event: ping\ndata: {{\"type\": \"ping\"}}\n\ndata: {{\"status\": \"starting\"}}\n\n{messages}"
    );
    for input in [chat, messages, quiet] {
        for chunk in [1, 13, input.len()] {
            let mut cx = RequestRedaction::default();
            let out = run(
                &mut r.stream(Family::Other),
                input.as_bytes(),
                chunk,
                &mut cx,
            )
            .unwrap();
            let raw = String::from_utf8(out.clone()).unwrap();
            assert!(
                !raw.contains(&key[..9]) && !raw.contains(&key[9..]),
                "{raw}"
            );
            assert!(raw.contains("[REDACTED:aws_access_key]"), "{raw}");
            events(&out);
        }
    }
}
