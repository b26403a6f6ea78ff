//! Deny by default: every string a request or an answer carries is inspected, whatever its
//! field, part type, item type or event type. One case per class of field that an allow-list
//! of "the text fields" missed (issue #16), and the opaque table's exceptions.

use serde_json::{json, Value};

use super::stream::tests::{events, run};
use super::tests::{aws_key, github_token, redactor};
use super::*;
use crate::wire::Family;

const S: &str = "{S}";

/// Puts `secret` where the template says `{S}` (inside a JSON string or as a whole string).
fn fill(template: &Value, secret: &str) -> String {
    template.to_string().replace(S, secret)
}

fn redacted(family: Family, dir: Direction, body: &str) -> String {
    let r = redactor(|_| {});
    let mut cx = RequestRedaction::default();
    let out = match dir {
        Direction::Request => r.redact_request(family, body.as_bytes(), &mut cx),
        Direction::Response => r.redact_response(family, body.as_bytes(), &mut cx),
    }
    .unwrap();
    let out = String::from_utf8(out.unwrap_or_else(|| body.as_bytes().to_vec())).unwrap();
    serde_json::from_str::<Value>(&out).expect("still JSON");
    out
}

#[test]
fn request_fields_an_allow_list_missed() {
    let cases = [
        json!({"model": "m", "messages": [{"role": "user", "name": S, "content": "hi"}]}),
        json!({"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "f", "description": S, "parameters": {"type": "object", "properties": {"a": {"type": "string", "description": S, "enum": [S]}}}}}]}),
        json!({"model": "m", "messages": [], "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"description": S}}}}),
        json!({"model": "m", "messages": [], "prediction": {"type": "content", "content": S}}),
        json!({"model": "m", "prompt": "p", "suffix": S}),
        json!({"model": "m", "messages": [], "stop": [S]}),
        json!({"model": "m", "messages": [], "metadata": {"note": S}}),
        json!({"model": "m", "messages": [], "user": S}),
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"token": S}}}]}]}),
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f", "input": S}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [{"text": S}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "brand_new", "payload": {"deep": [S]}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": {"type": "text", "text": S}}]}),
        json!({"model": "m", "input": [{"type": "shell_call_output", "call_id": "c", "output": [{"stdout": S}]}]}),
        json!({"model": "m", "input": [{"type": "local_shell_call_output", "call_id": "c", "output": S}]}),
        json!({"model": "m", "input": [{"type": "mcp_call", "name": "n", "arguments": S, "output": S}]}),
        json!({"model": "m", "input": [{"type": "code_interpreter_call", "code": S}]}),
        json!({"model": "m", "input": [{"type": "apply_patch_call_output", "output": S}]}),
        json!({"model": "m", "input": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "t", "annotations": [{"type": "url_citation", "url": S}]}]}]}),
        json!({"model": "m", "prompt": {"id": "p", "variables": {"v": S}}}),
        json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {"description": S}}}}),
        json!({"model": "m", "input": {"role": "user", "content": S}}),
    ];
    let secret = github_token();
    for (i, case) in cases.iter().enumerate() {
        let body = fill(case, &secret);
        for family in [Family::ChatCompletions, Family::Responses, Family::Other] {
            let out = redacted(family, Direction::Request, &body);
            assert!(!out.contains(&secret), "case {i}: {out}");
            assert!(out.contains("[REDACTED:github_token]"), "case {i}: {out}");
        }
    }
}

#[test]
fn answer_fields_an_allow_list_missed() {
    let cases = [
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "audio": {"id": "a", "data": "UklGRg==", "transcript": S}}}]}),
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "c", "annotations": [{"type": "url_citation", "url_citation": {"url": S, "title": S}}]}}]}),
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "reasoning": S}}]}),
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [{"type": "custom", "custom": {"name": "f", "input": S}}]}}]}),
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "c"}, "logprobs": {"content": [{"token": S, "logprob": -0.1}]}}]}),
        json!({"output": [{"type": "mcp_call", "arguments": S, "output": S}, {"type": "code_interpreter_call", "code": S, "outputs": [{"type": "logs", "logs": S}]}]}),
        json!({"output": [{"type": "web_search_call", "action": {"query": S}}]}),
        json!({"text": "t", "words": [{"word": S, "start": 0.0, "end": 1.0}], "segments": [{"text": S}]}),
        json!({"error": {"message": S, "type": "invalid_request_error"}}),
    ];
    let secret = aws_key();
    for (i, case) in cases.iter().enumerate() {
        let body = fill(case, &secret);
        let out = redacted(Family::Other, Direction::Response, &body);
        assert!(!out.contains(&secret), "case {i}: {out}");
    }
}

#[test]
fn json_inside_strings_is_walked_with_escapes_decoded() {
    let password = "s3cr3t-Pa55w0rd";
    let args = format!(r#"{{"dsn":"postgres:\/\/app:{password}@db:5432\/x"}}"#);
    let body =
        json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": args}]})
            .to_string();
    let out = redacted(Family::ChatCompletions, Direction::Request, &body);
    assert!(!out.contains(password), "{out}");
    // The inner document is still JSON, redacted in place.
    let v: Value = serde_json::from_str(&out).unwrap();
    let inner: Value = serde_json::from_str(v["messages"][0]["content"].as_str().unwrap()).unwrap();
    assert!(inner["dsn"]
        .as_str()
        .unwrap()
        .starts_with("postgres://app:"));
}

#[test]
fn member_keys_give_their_values_context() {
    let body =
        json!({"model": "m", "messages": [], "metadata": {"db_password": "Tr0ub4dor-and-3"}})
            .to_string();
    let out = redacted(Family::ChatCompletions, Direction::Request, &body);
    assert!(!out.contains("Tr0ub4dor-and-3"), "{out}");
    // Without a secret-sounding key, the same value is left alone.
    let body =
        json!({"model": "m", "messages": [], "metadata": {"note": "Tr0ub4dor-and-3"}}).to_string();
    assert_eq!(
        redacted(Family::ChatCompletions, Direction::Request, &body),
        body
    );
}

#[test]
fn percent_encoded_values_are_read_decoded() {
    let secret = github_token();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": format!("https://x.test/cb?token%3D{secret}%26a%3Db")}]})
        .to_string();
    let out = redacted(Family::ChatCompletions, Direction::Request, &body);
    assert!(!out.contains(&secret), "{out}");
    assert!(
        out.contains("token%3D[REDACTED:github_token]%26a%3Db"),
        "{out}"
    );
}

#[test]
fn keys_and_long_numbers_are_inspected() {
    let secret = github_token();
    let body =
        format!(r#"{{"model":"m","metadata":{{"{secret}":1}},"card":4111111111111111,"n":12}}"#);
    let out = redacted(Family::ChatCompletions, Direction::Request, &body);
    assert!(!out.contains(&secret), "{out}");
    assert!(!out.contains("4111111111111111"), "{out}");
    assert!(out.contains(r#""n":12"#), "{out}");
    // Phone-shaped timestamps and seeds stay numbers: a string there would break the request.
    let body = r#"{"model":"m","created":4155552671,"seed":4111111111111111,"x":[1741569952000]}"#;
    assert_eq!(
        redacted(Family::ChatCompletions, Direction::Request, body),
        body
    );
}

#[test]
fn the_opaque_table_is_all_that_is_skipped() {
    let b64 = "QUtJQUFUSlBVVTVYRk1aS1AyRUM".repeat(4);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}")}},
        {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}},
        {"type": "file", "file": {"file_data": format!("data:application/pdf;base64,{b64}"), "filename": "a.pdf"}}
    ]}]})
    .to_string();
    assert_eq!(
        redacted(Family::ChatCompletions, Direction::Request, &body),
        body
    );
    // A value at an opaque place without the opaque shape is scanned like any other.
    let secret = aws_key();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": format!("data:text/plain,{secret}")}},
        {"type": "input_audio", "input_audio": {"data": format!("key {secret}"), "format": "wav"}}
    ]}]})
    .to_string();
    let out = redacted(Family::ChatCompletions, Direction::Request, &body);
    assert!(!out.contains(&secret), "{out}");
    // The model name is routed, not scanned; a `model` deeper down is text.
    let body = format!(r#"{{"model":"m","messages":[],"metadata":{{"model":"{secret}"}}}}"#);
    let out = redacted(Family::ChatCompletions, Direction::Request, &body);
    assert!(!out.contains(&secret), "{out}");
}

#[test]
fn untouched_bodies_keep_every_byte() {
    let body = "{ \"model\" : \"m\",\n \"messages\": [ {\"role\":\"user\", \"content\":\"caf\\u00e9 \\\"quoted\\\"\"} ], \"n\": 1.50e0, \"x\": [true, false, null] }";
    let r = redactor(|_| {});
    assert_eq!(
        r.redact_request(
            Family::ChatCompletions,
            body.as_bytes(),
            &mut RequestRedaction::default()
        )
        .unwrap(),
        None
    );
}

fn stream_out(family: Family, events_in: &[Value], chunk: usize) -> String {
    let r = redactor(|_| {});
    let mut input = Vec::new();
    for e in events_in {
        input.extend(format!("data: {e}\n\n").bytes());
    }
    let mut s = r.stream(family);
    let out = run(&mut s, &input, chunk, &mut RequestRedaction::default()).unwrap();
    events(&out);
    String::from_utf8(out).unwrap()
}

#[test]
fn every_stream_event_type_is_inspected() {
    let secret = github_token();
    let (a, b) = secret.split_at(9);
    let split = |t: &str| {
        vec![
            json!({"type": t, "item_id": "i", "output_index": 0, "delta": a}),
            json!({"type": t, "item_id": "i", "output_index": 0, "delta": b}),
            json!({"type": t, "item_id": "i", "output_index": 0, "delta": " end"}),
        ]
    };
    for t in [
        "response.mcp_call_arguments.delta",
        "response.code_interpreter_call_code.delta",
        "response.audio_transcript.delta",
        "response.output_text.delta",
        "response.future_kind.delta",
        "transcript.text.delta",
    ] {
        for chunk in [1, 7, 4096] {
            let out = stream_out(Family::Other, &split(t), chunk);
            assert!(!out.contains(b), "{t}: {out}");
            assert!(!out.contains(&secret), "{t}: {out}");
        }
    }
    let whole = [
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "mcp_call", "arguments": secret, "output": secret}}),
        json!({"type": "response.output_text.annotation.added", "annotation": {"url": secret}}),
        json!({"type": "error", "message": secret}),
        json!({"type": "response.failed", "response": {"error": {"message": secret}, "output": []}}),
        json!({"type": "transcript.text.done", "text": secret}),
        json!({"type": "never.seen.before", "payload": {"x": [secret]}}),
    ];
    for e in whole {
        let out = stream_out(Family::Responses, std::slice::from_ref(&e), 5);
        assert!(!out.contains(&secret), "{out}");
    }
    // Chat chunks: content given as parts, audio transcripts, annotations, unknown fields.
    let chunk = |delta: Value| json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
    let cases = [
        vec![
            chunk(json!({"content": [{"type": "text", "text": a}]})),
            chunk(json!({"content": [{"type": "text", "text": b}]})),
        ],
        vec![
            chunk(json!({"audio": {"id": "a", "transcript": a}})),
            chunk(json!({"audio": {"transcript": b}})),
        ],
        vec![chunk(
            json!({"annotations": [{"url_citation": {"url": secret}}]}),
        )],
        vec![chunk(json!({"brand_new": {"deep": secret}}))],
    ];
    for case in cases {
        let out = stream_out(Family::ChatCompletions, &case, 3);
        assert!(!out.contains(&secret), "{out}");
        assert!(!out.contains(b), "{out}");
    }
}

#[test]
fn audio_deltas_are_opaque_base64() {
    let audio = "UklGRiQAAABXQVZFZm10IBAAAAABAAEARKwAAIhYAQACABAAZGF0YQAAAAA=";
    let e = json!({"type": "response.output_audio.delta", "output_index": 0, "delta": audio});
    let out = stream_out(Family::Responses, &[e], 4096);
    assert!(out.contains(audio), "{out}");
}

#[test]
fn a_long_value_under_a_secret_key_is_redacted_whole() {
    // A 400-byte token: the assignment grammar takes at most 128 value bytes, and the rest of
    // the value (the JWT's payload and signature) used to stay in clear.
    let long: String = (0..400)
        .map(|i| {
            char::from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"[i % 64])
        })
        .collect();
    let tail = &long[300..];
    for body in [
        json!({"model": "m", "messages": [], "metadata": {"access_token": long}}),
        json!({"model": "m", "messages": [{"role": "tool", "content": format!("{{\"client_secret\": \"{long}\"}}")}]}),
    ] {
        let out = redacted(
            Family::ChatCompletions,
            Direction::Request,
            &body.to_string(),
        );
        assert!(!out.contains(tail), "{out}");
        assert!(out.contains("[REDACTED:generic_secret]"), "{out}");
    }
    // A value that ends by itself is untouched after it, as before.
    let out = redacted(
        Family::ChatCompletions,
        Direction::Request,
        &json!({"model": "m", "messages": [], "metadata": {"note": "password=Xk9vmP2qvL7qR4tw and more"}}).to_string(),
    );
    assert!(out.contains("[REDACTED:generic_secret] and more"), "{out}");
}
