//! Properties: for random texts with planted values, every split into deltas and every
//! byte-level chunking of the SSE stream gives the client exactly what redacting the whole
//! text at once gives.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::stream::tests::{chat_texts, chunk_event, events, run};
use super::tests::{redactor, samples, SURVIVORS};
use super::*;
use crate::wire::Family;

/// Text made of words, separators, planted values and near misses.
fn text() -> impl Strategy<Value = String> {
    let mut pieces: Vec<String> = samples().into_iter().map(|(_, t, _)| t).collect();
    pieces.extend(SURVIVORS.iter().map(|s| s.to_string()));
    pieces.extend(
        [
            "the",
            "token",
            "password",
            "key",
            "secret",
            "Api_Key",
            "and",
            "mail",
            "call",
            "é",
            "日本語",
            "EMP-",
            "EMP-123456",
            "emp-654321",
            "<EMAIL_1>",
            "<EMAIL_",
            "@",
            "+1",
            "4111",
            "AKIA",
            "sk-",
            "-----BEGIN",
            "eyJ",
            "://",
            "=",
            ": ",
            ";",
            "\"",
            "\\n",
            " ",
            " ",
            " ",
            "\n",
            ", ",
            ". ",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    prop::collection::vec(prop::sample::select(pieces), 0..24).prop_map(|v| v.concat())
}

/// Cut points (as fractions of the length, resolved to char boundaries later).
fn cuts() -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(any::<u16>(), 0..16)
}

/// `text` split at `cuts` (char boundaries; empty pieces allowed).
fn split<'t>(text: &'t str, cuts: &[u16]) -> Vec<&'t str> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| {
            let mut i = usize::from(c) * text.len() / usize::from(u16::MAX);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        })
        .collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for i in at.into_iter().chain([text.len()]) {
        out.push(&text[prev..i]);
        prev = i;
    }
    out
}

/// Secrets redacted, personal data masked or hashed, a custom detector with and one without a
/// literal prefix: stateless actions, so numbering cannot depend on interleaving.
pub(crate) fn policy() -> Redactor {
    redactor(|s| {
        s.response.pii = Action::Mask;
        s.actions
            .insert("email".into(), DetectorActions::both(Action::Hash));
        for (name, pattern) in [
            ("employee_id", r"EMP-\d{6}"),
            ("employee_lower", r"(?i)emp-\d{6}"),
        ] {
            s.detectors
                .push(CustomDetectorSpec::new(name, pattern, Category::Pii));
        }
    })
}

fn batch(r: &Redactor, text: &str) -> String {
    r.redact_text(Direction::Response, text, &mut RequestRedaction::default())
        .unwrap()
        .into_owned()
}

/// `cases` cases per property, unless `PROPTEST_CASES` asks for another number (long runs).
pub(crate) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn chat_content_deltas(text in text(), cuts in cuts(), chunk in 1usize..48) {
        let r = policy();
        let mut input = chunk_event(0, json!({"role": "assistant", "content": ""}), None);
        for d in split(&text, &cuts) {
            input.push_str(&chunk_event(0, json!({ "content": d }), None));
        }
        input.push_str(&chunk_event(0, json!({}), Some("stop")));
        input.push_str("data: [DONE]\n\n");
        let out = run(&mut r.stream(Family::ChatCompletions), input.as_bytes(), chunk, &mut RequestRedaction::default()).unwrap();
        let got = chat_texts(&events(&out)).remove(&(0, "content".into())).unwrap_or_default();
        prop_assert_eq!(got, batch(&r, &text));
    }

    #[test]
    fn interleaved_choices_and_tool_calls(
        a in text(), b in text(), c in text(),
        cuts_a in cuts(), cuts_b in cuts(), cuts_c in cuts(),
        sizes in prop::collection::vec(1usize..97, 1..8),
        crlf in any::<bool>(),
    ) {
        let r = policy();
        let (pa, pb, pc) = (split(&a, &cuts_a), split(&b, &cuts_b), split(&c, &cuts_c));
        let mut input = String::new();
        for i in 0..pa.len().max(pb.len()).max(pc.len()) {
            if let Some(d) = pa.get(i) {
                input.push_str(&chunk_event(0, json!({ "content": d }), None));
            }
            if let Some(d) = pb.get(i) {
                input.push_str(&chunk_event(0, json!({"tool_calls": [{"index": 2, "function": {"arguments": d}}]}), None));
            }
            if let Some(d) = pc.get(i) {
                input.push_str(&chunk_event(1, json!({ "content": d }), None));
            }
        }
        input.push_str(&chunk_event(0, json!({}), Some("tool_calls")));
        input.push_str("data: [DONE]\n\n");
        if crlf {
            input = input.replace('\n', "\r\n");
        }
        // Irregular byte-level chunking: sizes cycle.
        let bytes = input.as_bytes();
        let mut s = r.stream(Family::ChatCompletions);
        let mut cx = RequestRedaction::default();
        let mut out = Vec::new();
        let mut at = 0;
        for size in sizes.iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let end = (at + size).min(bytes.len());
            out.extend(s.push(&bytes[at..end], &mut cx).unwrap());
            at = end;
        }
        out.extend(s.finish(&mut cx).unwrap());
        let texts = chat_texts(&events(&out));
        let get = |k: (u64, &str)| texts.get(&(k.0, k.1.to_owned())).cloned().unwrap_or_default();
        prop_assert_eq!(get((0, "content")), batch(&r, &a));
        prop_assert_eq!(get((0, "args:2")), batch(&r, &b));
        prop_assert_eq!(get((1, "content")), batch(&r, &c));
    }

    #[test]
    fn responses_deltas(text in text(), args in text(), cuts_t in cuts(), cuts_a in cuts(), chunk in 1usize..64) {
        let r = policy();
        let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or(""));
        let mut input = String::new();
        for d in split(&text, &cuts_t) {
            input.push_str(&ev(json!({"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "content_index": 0, "delta": d})));
        }
        input.push_str(&ev(json!({"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": text})));
        for d in split(&args, &cuts_a) {
            input.push_str(&ev(json!({"type": "response.function_call_arguments.delta", "item_id": "f", "output_index": 1, "delta": d})));
        }
        input.push_str(&ev(json!({"type": "response.completed", "response": {"output": [
            {"type": "message", "content": [{"type": "output_text", "text": text}]},
            {"type": "function_call", "arguments": args}]}})));
        let out = run(&mut r.stream(Family::Responses), input.as_bytes(), chunk, &mut RequestRedaction::default()).unwrap();
        let (mut got_text, mut got_args) = (String::new(), String::new());
        let (mut done, mut completed) = (None, None);
        for e in events(&out) {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            match v["type"].as_str().unwrap_or("") {
                "response.output_text.delta" => got_text.push_str(v["delta"].as_str().unwrap()),
                "response.function_call_arguments.delta" => got_args.push_str(v["delta"].as_str().unwrap()),
                "response.output_text.done" => done = Some(v["text"].as_str().unwrap().to_owned()),
                "response.completed" => completed = Some(v),
                _ => {}
            }
        }
        let (want_text, want_args) = (batch(&r, &text), batch(&r, &args));
        prop_assert_eq!(&got_text, &want_text);
        prop_assert_eq!(&got_args, &want_args);
        prop_assert_eq!(done.as_deref(), Some(want_text.as_str()));
        let completed = completed.unwrap();
        prop_assert_eq!(completed["response"]["output"][0]["content"][0]["text"].as_str(), Some(want_text.as_str()));
        prop_assert_eq!(completed["response"]["output"][1]["arguments"].as_str(), Some(want_args.as_str()));
    }

    /// Anthropic Messages streams: a text block, a tool's partial JSON and a thinking block,
    /// each split anywhere and chunked anywhere, reach the client as the batch redaction of
    /// their whole texts, and a changed thinking block's seal opens to the original.
    #[test]
    fn messages_deltas(text in text(), think in text(), cuts_t in cuts(), cuts_j in cuts(), cuts_k in cuts(), chunk in 1usize..64) {
        let r = policy();
        let args = json!({"command": text.clone()}).to_string();
        let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or(""));
        let mut input = ev(json!({"type": "message_start", "message": {"id": "m", "content": [], "usage": {"input_tokens": 1}}}));
        let blocks: [(&str, &str, &str, &Vec<u16>); 3] = [
            ("thinking_delta", "thinking", think.as_str(), &cuts_k),
            ("text_delta", "text", text.as_str(), &cuts_t),
            ("input_json_delta", "partial_json", args.as_str(), &cuts_j),
        ];
        for (i, (kind, field, whole, cuts)) in blocks.iter().enumerate() {
            input.push_str(&ev(json!({"type": "content_block_start", "index": i, "content_block": {"type": "x"}})));
            for d in split(whole, cuts) {
                input.push_str(&ev(json!({"type": "content_block_delta", "index": i, "delta": {"type": kind, *field: d}})));
            }
            if *kind == "thinking_delta" {
                input.push_str(&ev(json!({"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": "EqQBCkgIARABGAIiQLmZ"}})));
            }
            input.push_str(&ev(json!({"type": "content_block_stop", "index": i})));
        }
        input.push_str(&ev(json!({"type": "message_stop"})));
        let out = run(&mut r.stream(Family::Messages), input.as_bytes(), chunk, &mut RequestRedaction::default()).unwrap();
        let mut got = [String::new(), String::new(), String::new()];
        let mut signature = String::new();
        for e in events(&out) {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            if v["type"] != "content_block_delta" {
                continue;
            }
            let i = v["index"].as_u64().unwrap() as usize;
            for field in ["thinking", "text", "partial_json"] {
                if let Some(t) = v["delta"][field].as_str() {
                    got[i].push_str(t);
                }
            }
            if let Some(sig) = v["delta"]["signature"].as_str() {
                signature.push_str(sig);
            }
        }
        let want_think = batch(&r, &think);
        prop_assert_eq!(&got[0], &want_think);
        prop_assert_eq!(&got[1], &batch(&r, &text));
        prop_assert_eq!(&got[2], &batch(&r, &args));
        if want_think != think {
            let turn = json!({"messages": [{"role": "assistant", "content": [
                {"type": "thinking", "thinking": want_think, "signature": signature}]}]}).to_string();
            let back: Value = serde_json::from_slice(&r.unseal_thinking(turn.as_bytes()).unwrap().unwrap()).unwrap();
            prop_assert_eq!(back["messages"][0]["content"][0]["thinking"].as_str(), Some(think.as_str()));
        }
    }

    #[test]
    fn pseudonyms_restored_across_splits(text in text(), cuts in cuts(), chunk in 1usize..32) {
        // The request pseudonymizes two addresses; the reply mentions their placeholders among
        // random text, split anywhere.
        let r = redactor(|s| {
            s.request.pii = Action::Pseudonymize;
            s.response.pii = Action::Pseudonymize;
        });
        let request = json!({"messages": [{"role": "user", "content": "a@example.com b@example.org"}]}).to_string();
        let reply = format!("{text} <EMAIL_2>{text}<EMAIL_1>");
        let mut stream_cx = RequestRedaction::default();
        let mut batch_cx = RequestRedaction::default();
        for cx in [&mut stream_cx, &mut batch_cx] {
            r.redact_request(Family::ChatCompletions, request.as_bytes(), cx).unwrap();
        }
        let mut input = String::new();
        for d in split(&reply, &cuts) {
            input.push_str(&chunk_event(0, json!({ "content": d }), None));
        }
        let out = run(&mut r.stream(Family::ChatCompletions), input.as_bytes(), chunk, &mut stream_cx).unwrap();
        let got = chat_texts(&events(&out)).remove(&(0, "content".into())).unwrap_or_default();
        let want = r.redact_text(Direction::Response, &reply, &mut batch_cx).unwrap().into_owned();
        prop_assert!(want.contains("b@example.org") && want.contains("a@example.com"));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn prefilter_finds_what_exhaustive_search_finds(text in text(), noise in text()) {
        // Every detector over all text, no windows: the prefilter may only skip work.
        let spec = |s: &mut PolicySpec| {
            s.request.pii = Action::Redact;
            s.detectors.push(CustomDetectorSpec::new("employee_id", r"EMP-\d{6}", Category::Pii));
        };
        let fast = redactor(spec);
        let mut full_spec = PolicySpec::default();
        full_spec.request.pii = Action::Redact;
        full_spec.hash_key = b"test hash key".to_vec();
        spec(&mut full_spec);
        let slow = Redactor::exhaustive(&full_spec).unwrap();
        for t in [text.clone(), format!("{noise}{text}"), format!("{text}{noise}")] {
            let a = fast.redact_text(Direction::Request, &t, &mut RequestRedaction::default()).unwrap();
            let b = slow.redact_text(Direction::Request, &t, &mut RequestRedaction::default()).unwrap();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn request_bodies_stay_valid_json(text in text()) {
        let r = policy();
        let body = json!({"model": "m", "n": 1.5, "messages": [
            {"role": "user", "content": text},
            {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": text}}]}
        ]}).to_string();
        let mut cx = RequestRedaction::default();
        let out = r.redact_request(Family::ChatCompletions, body.as_bytes(), &mut cx).unwrap();
        let v: Value = serde_json::from_slice(out.as_deref().unwrap_or(body.as_bytes())).unwrap();
        let want = r.redact_text(Direction::Request, &text, &mut RequestRedaction::default()).unwrap();
        prop_assert_eq!(v["messages"][0]["content"].as_str(), Some(want.as_ref()));
        prop_assert_eq!(v["messages"][1]["content"][0]["text"].as_str(), Some(want.as_ref()));
        // Deny by default: an image URL that is not a base64 data URL is text like any other.
        prop_assert_eq!(v["messages"][1]["content"][1]["image_url"]["url"].as_str(), Some(want.as_ref()));
        prop_assert_eq!(out.is_none(), want == text);
    }
}

/// Words and keys that no detector matches, alone or together.
const SAFE_WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "fox", "golf", "hotel",
];
const SAFE_KEYS: &[&str] = &["a", "items", "note", "x1", "alpha", "echo", "golf", "list"];

/// A random JSON document of safe words: any keys, nesting, arrays, numbers, and JSON
/// documents serialized inside strings.
fn safe_document() -> impl Strategy<Value = Value> {
    let word = proptest::sample::select(SAFE_WORDS).prop_map(Value::from);
    let leaf = prop_oneof![
        4 => word,
        1 => (0i64..1000).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            3 => prop::collection::vec(
                (proptest::sample::select(SAFE_KEYS), inner.clone()),
                0..5
            )
            .prop_map(|members| {
                Value::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
            2 => prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            1 => inner.prop_map(|v| Value::String(v.to_string())),
        ]
    })
}

/// The string leaves of `v` (also inside JSON-in-strings, as paths are not needed: the
/// planting below only replaces one safe word's occurrence in the serialized text).
fn count_words(text: &str) -> usize {
    SAFE_WORDS.iter().map(|w| text.matches(w).count()).sum()
}

proptest! {
    #![proptest_config(config(96))]

    /// A secret planted anywhere in a random document — as a value, inside a value, as a key,
    /// inside JSON inside a string — never leaves; the rest of the document keeps every byte.
    #[test]
    fn planted_secrets_never_leave_random_documents(
        doc in safe_document(),
        pick in any::<prop::sample::Index>(),
        form in 0usize..3,
        family in proptest::sample::select(vec![
            Family::ChatCompletions, Family::Responses, Family::Other
        ]),
    ) {
        let r = policy();
        let body = json!({"model": "m", "payload": doc, "tail": "golf"}).to_string();
        // Nothing to find: the body comes back untouched.
        prop_assert_eq!(
            r.redact_request(family, body.as_bytes(), &mut RequestRedaction::default()).unwrap(),
            None
        );
        let secret = super::tests::github_token();
        let planted = match form {
            0 => secret.clone(),
            1 => format!("see {secret} now"),
            _ => format!("{secret}:{secret}"),
        };
        let n = count_words(&body);
        prop_assume!(n > 0);
        let target = pick.index(n);
        // Replace the target-th safe word occurrence, wherever it is (value, key, nested).
        let mut seen = 0;
        let mut at = None;
        for (i, _) in body.char_indices() {
            if let Some(w) = SAFE_WORDS.iter().find(|w| body[i..].starts_with(**w)) {
                if seen == target {
                    at = Some((i, w.len()));
                    break;
                }
                seen += 1;
            }
        }
        let (i, len) = at.unwrap();
        let with = format!("{}{}{}", &body[..i], planted, &body[i + len..]);
        let out = r.redact_request(family, with.as_bytes(), &mut RequestRedaction::default())
            .unwrap()
            .expect("the secret is found");
        let out = String::from_utf8(out).unwrap();
        prop_assert!(!out.contains(&secret));
        serde_json::from_str::<Value>(&out).unwrap();
        prop_assert_eq!(out, with.replace(&secret, "[REDACTED:github_token]"));
    }

    /// A secret split across the deltas of any event type, between deltas of other channels,
    /// chunked anywhere, never reaches the client whole; the client's text is the redacted one.
    #[test]
    fn split_secrets_never_leave_streams_of_any_event_type(
        stem in "[a-z]{1,8}(\\.[a-z_]{1,10}){0,2}",
        output_index in 0u64..3,
        content_index in 0u64..3,
        cut in 1usize..39,
        chunk in 1usize..64,
        noise in any::<bool>(),
    ) {
        prop_assume!(!stem.ends_with("audio") && !stem.ends_with("output_audio"));
        let secret = super::tests::github_token();
        let (a, b) = secret.split_at(cut.min(secret.len() - 1));
        let kind = format!("{stem}.delta");
        let ev = |delta: &str| json!({"type": kind, "output_index": output_index, "content_index": content_index, "delta": delta});
        let other = json!({"type": "other.channel.delta", "output_index": 9, "delta": "golf "});
        let mut input = String::new();
        for e in [ev("key: "), ev(a)] {
            input.push_str(&format!("data: {e}\n\n"));
        }
        if noise {
            input.push_str(&format!("data: {other}\n\n"));
        }
        for e in [ev(b), ev(" end"), json!({"type": format!("{stem}.done"), "output_index": output_index, "content_index": content_index, "text": format!("key: {secret} end")})] {
            input.push_str(&format!("data: {e}\n\n"));
        }
        let r = policy();
        let mut s = r.stream(Family::Other);
        let out = run(&mut s, input.as_bytes(), chunk, &mut RequestRedaction::default()).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        prop_assert!(!text.contains(&secret));
        let mut streamed = String::new();
        for e in events(&out) {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            if v["type"] == kind.as_str() {
                streamed.push_str(v["delta"].as_str().unwrap());
            }
        }
        prop_assert_eq!(streamed, "key: [REDACTED:github_token] end");
    }
}
