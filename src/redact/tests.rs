//! Redactor-level tests: actions, policy, allow-list, JSON walkers per endpoint, pseudonyms,
//! failing closed, and never leaking.

use serde_json::Value;

use super::builtin::testing::tok;
use super::*;
use crate::wire::Family;

/// A policy with both categories redacted both ways, adjusted by `f`.
pub(crate) fn redactor(f: impl FnOnce(&mut PolicySpec)) -> Redactor {
    let mut spec = PolicySpec::default();
    let all = CategoryActions {
        secrets: Action::Redact,
        pii: Action::Redact,
    };
    spec.request = all;
    spec.response = all;
    spec.hash_key = b"test hash key".to_vec();
    f(&mut spec);
    Redactor::new(&spec).unwrap()
}

pub(crate) fn aws_key() -> String {
    tok("AKIA", "ATJPUU5XFMZKP2EC")
}

pub(crate) fn github_token() -> String {
    tok("ghp_", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d")
}

/// One true-positive sample per built-in detector (the detector's name, the text, the value).
pub(crate) fn samples() -> Vec<(&'static str, String, String)> {
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----".to_owned();
    let escaped_pem = pem.replace('\n', "\\n");
    let s = |name, text: String, value: &str| (name, text.clone(), value.to_owned());
    let same = |name, value: String| (name, value.clone(), value);
    vec![
        same("private_key", pem),
        (
            "private_key",
            format!(r#"{{"private_key": "{escaped_pem}\n"}}"#),
            escaped_pem,
        ),
        same("aws_access_key", aws_key()),
        s(
            "aws_secret_key",
            "aws_secret_access_key=9Pu2njHkAm1+5wDr16EpLLJIVGHz4FxFEtKyPiYG".into(),
            "9Pu2njHkAm1+5wDr16EpLLJIVGHz4FxFEtKyPiYG",
        ),
        same("github_token", github_token()),
        same("gitlab_token", tok("glpat-", "ORS-6ilI8ihN5KXSc7Tv")),
        same("slack_token", tok("xoxb-", "9170342366-7127684268465-R4y9ojfljoQoaF1LlqsajAIx")),
        same(
            "slack_webhook",
            tok("https://hooks.slack.com/services/", "TUI6D39ZZ/BZZG4ZDME/nCkhvMdgaKjIg8xNbe3nNyjO"),
        ),
        same("stripe_key", tok("sk_live_", "q9wMxEhh2FDEEtfjgVvVqE1S")),
        same(
            "anthropic_key",
            tok("sk-ant-api03-", "Iq2HZt-PlJhx2jIclHkCiHp6bR1IqfEouHgxzNNAL5wIScGebcy8F5n3-YNBDRzrZSgqbjAA"),
        ),
        same("openai_key", tok("sk-proj-", "ucAUsdMlHUvTCQCyEZDz-TddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Z")),
        same("openai_key", format!("sk-{}T3BlbkFJ{}", "TBGzvAmwufUxbvJDCTby", "vHNsG9eh6Yo4gfqrc5Xl")),
        same("google_api_key", tok("AIza", "BTxaQWk8JzFalHlsZfYcMMDktXP-tKsf2rc")),
        s(
            "gcp_private_key_id",
            r#"{"type": "service_account", "private_key_id": "72014b3ce107f80e222f828767efc2f91624a894"}"#.into(),
            "72014b3ce107f80e222f828767efc2f91624a894",
        ),
        same("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c".into()),
        same("sendgrid_key", tok("SG.", "b9h_ImB_LK777pzNk8cL6j.5IXAAjlsHUqJoUD-_Ydua_5ZMs1SWOpQaPRYpzbLGVi")),
        same("npm_token", tok("npm_", "zy3Lex7BWr2drgd1QsO7jprBGumXxY9B4bZW")),
        same(
            "pypi_token",
            tok("pypi-AgEIcHlwaS5vcmc", "ZAkg05rK_gqv81RKMGHZEM9YpvujA-C5Q52ryFlwRlOEVHzc0X0AWIRh-JUqBlIFXZ53Nc"),
        ),
        same("huggingface_token", tok("hf_", "icBTWZELFaezHDCpYgojjHRgUSPWDfJXca")),
        same("shopify_token", tok("shpat_", "471948d33296c87009e8a7f770d9106f")),
        same("twilio_api_key", tok("SK", "d287db7f1adbc60926f6967e7893f57f")),
        same("mailgun_key", tok("key-", "A6Qd8Mj7zdnbMjAdTdlzC5T4uUhf7kvm")),
        same("azure_client_secret", tok("lP78Q~", "7eNWVQ4vnakJkS1pAWTN3lg8zV5yPU8d0F")),
        same("telegram_bot_token", tok("123456789:AA", "ZfWe7ihGyiRUIQfHOJMaidDn87XG3-q-x")),
        same(
            "age_secret_key",
            tok("AGE-SECRET-KEY-1", "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE"),
        ),
        same("sourcegraph_token", tok("sgp_", "d3b07384d113edec49eaa6238ad5ff00a1b2c3d4")),
        s("url_password", "postgres://admin:S3cr3tP4ss@db.example.com/app".into(), "S3cr3tP4ss"),
        s("connection_string_password", "Server=db;User Id=sa;Password=Hunter2!x;".into(), "Hunter2!x"),
        s("generic_secret", r#"password = "Xk9#mP2$vL8q""#.into(), "Xk9#mP2$vL8q"),
        same("email", "john.doe@example.com".into()),
        same("phone", "+1 (415) 555-2671".into()),
        same("phone", "+44 20 7946 0958".into()),
        same("credit_card", "4111 1111 1111 1111".into()),
        same("credit_card", "5555555555554444".into()),
        same("us_ssn", "123-45-6789".into()),
        same("iban", "DE89 3704 0044 0532 0130 00".into()),
    ]
}

/// Text that must survive every detector untouched.
pub(crate) const SURVIVORS: &[&str] = &[
    "550e8400-e29b-41d4-a716-446655440000",
    "commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
    "color: #ff5733; background: #1a2b3c",
    "version 1.2.3 and v10.4.0-beta.2",
    "Order #123456 and order 20240115-0042",
    "price $1,234.56 or €99.99",
    "on 2024-01-15 at 10:30:00Z, 15/01/2024",
    "card 4111 1111 1111 1112 fails Luhn",
    "sk-your-key-here",
    "api_key = \"your-api-key-here\"",
    "the password is strong and the token expired",
    "max_tokens = 4096, temperature: 0.7",
    "AKIA is how AWS key ids start",
    "IP 192.168.100.200 port 8080",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOC\n-----END PUBLIC KEY-----",
];

fn chat(content: &str) -> String {
    serde_json::json!({
        "model": "gpt-4o",
        "temperature": 0.5,
        "messages": [{"role": "user", "content": content}]
    })
    .to_string()
}

fn request(r: &Redactor, family: Family, body: &str) -> Option<String> {
    let mut cx = RequestRedaction::default();
    r.redact_request(family, body.as_bytes(), &mut cx)
        .unwrap()
        .map(|b| String::from_utf8(b).unwrap())
}

fn response(r: &Redactor, family: Family, body: &str) -> Option<String> {
    let mut cx = RequestRedaction::default();
    r.redact_response(family, body.as_bytes(), &mut cx)
        .unwrap()
        .map(|b| String::from_utf8(b).unwrap())
}

fn text(r: &Redactor, t: &str) -> String {
    let mut cx = RequestRedaction::default();
    r.redact_text(Direction::Request, t, &mut cx)
        .unwrap()
        .into_owned()
}

#[test]
fn every_sample_is_redacted_and_named() {
    let r = redactor(|_| {});
    for (name, t, value) in samples() {
        let out = text(&r, &format!("before {t} after"));
        assert!(!out.contains(&value), "{name}: {out}");
        assert!(out.contains(&format!("[REDACTED:{name}]")), "{name}: {out}");
        assert!(
            out.starts_with("before ") && out.ends_with(" after"),
            "{name}: {out}"
        );
    }
}

#[test]
fn survivors_survive() {
    let r = redactor(|_| {});
    for s in SURVIVORS {
        assert_eq!(text(&r, s), *s);
    }
    let all = SURVIVORS.join("\n");
    assert_eq!(text(&r, &all), all);
}

#[test]
fn actions() {
    let t = "mail john.doe@example.com now";
    let with = |action| {
        let r = redactor(|s| {
            s.actions
                .insert("email".into(), DetectorActions::both(action));
        });
        let mut cx = RequestRedaction::default();
        r.redact_text(Direction::Request, t, &mut cx)
            .map(|c| c.into_owned())
    };
    assert_eq!(with(Action::Redact).unwrap(), "mail [REDACTED:email] now");
    assert_eq!(with(Action::Mask).unwrap(), "mail ****************.com now");
    assert_eq!(with(Action::Off).unwrap(), t);
    assert_eq!(with(Action::Pseudonymize).unwrap(), "mail <EMAIL_1> now");
    // HMAC-SHA256 keyed with the policy's `hash_key`, computed elsewhere (Python's hmac).
    assert_eq!(
        with(Action::Hash).unwrap(),
        "mail [HASH:email:db97f4080f64] now"
    );
    assert_eq!(
        with(Action::Block).unwrap_err(),
        RedactError::Blocked {
            detector: "email".into(),
            direction: Direction::Request
        }
    );
}

#[test]
fn category_actions_and_overrides() {
    let r = redactor(|s| {
        s.response.pii = Action::Off;
        s.actions
            .insert("phone".into(), DetectorActions::both(Action::Off));
    });
    let mut cx = RequestRedaction::default();
    let t = "a@example.com +44 20 7946 0958 123-45-6789";
    let req = r.redact_text(Direction::Request, t, &mut cx).unwrap();
    assert_eq!(req, "[REDACTED:email] +44 20 7946 0958 [REDACTED:us_ssn]");
    let resp = r.redact_text(Direction::Response, t, &mut cx).unwrap();
    assert_eq!(resp, t, "pii is off in responses");
    let counts: Vec<_> = cx
        .counts()
        .iter()
        .map(|c| (&*c.detector, c.direction, c.action, c.n))
        .collect();
    assert_eq!(
        counts,
        [
            ("email", Direction::Request, Action::Redact, 1),
            ("us_ssn", Direction::Request, Action::Redact, 1)
        ]
    );
}

/// A detector named in `actions` gets its action where its category is off, and per
/// direction: ops turn one detector on without turning on its whole category.
#[test]
fn a_named_detector_is_on_where_its_category_is_off() {
    let t = "a@example.com +44 20 7946 0958 123-45-6789";
    let run = |actions: DetectorActions| {
        let r = Redactor::new(&PolicySpec {
            actions: [("email".to_owned(), actions)].into(),
            ..PolicySpec::default()
        })
        .unwrap();
        let mut cx = RequestRedaction::default();
        [Direction::Request, Direction::Response]
            .map(|dir| r.redact_text(dir, t, &mut cx).unwrap().into_owned())
    };
    assert_eq!(
        run(DetectorActions::both(Action::Mask)),
        ["*********.com +44 20 7946 0958 123-45-6789"; 2],
        "pii is off by default: only e-mail addresses are masked, both ways"
    );
    let request_only = DetectorActions {
        request: Some(Action::Redact),
        response: None,
    };
    assert_eq!(
        run(request_only),
        ["[REDACTED:email] +44 20 7946 0958 123-45-6789", t],
        "a direction not named keeps its category's action (off)"
    );
    // And off where the category is on.
    let r = Redactor::new(&PolicySpec {
        actions: [(
            "aws_access_key".to_owned(),
            DetectorActions {
                request: None,
                response: Some(Action::Off),
            },
        )]
        .into(),
        ..PolicySpec::default()
    })
    .unwrap();
    let key = aws_key();
    let mut cx = RequestRedaction::default();
    assert_eq!(
        r.redact_text(Direction::Request, &key, &mut cx).unwrap(),
        "[REDACTED:aws_access_key]"
    );
    assert_eq!(
        r.redact_text(Direction::Response, &key, &mut cx).unwrap(),
        key
    );
}

/// Google's public sample keys (the catalogue's `allow:`) pass untouched under every policy;
/// another key of the same shape does not.
#[test]
fn documented_sample_keys_are_left_alone() {
    let r = Redactor::new(&PolicySpec::default()).unwrap();
    let sample = tok("AIza", "SyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs");
    let t = format!("apiKey: \"{sample}\"");
    assert_eq!(text(&r, &t), t);
    let other = tok("AIza", "BTxaQWk8JzFalHlsZfYcMMDktXP-tKsf2rc");
    assert_eq!(text(&r, &other), "[REDACTED:google_api_key]");
}

#[test]
fn default_policy_is_secrets_only() {
    let r = Redactor::new(&PolicySpec::default()).unwrap();
    let t = format!("{} and a@example.com", aws_key());
    assert_eq!(text(&r, &t), "[REDACTED:aws_access_key] and a@example.com");
    assert!(r.is_active(Direction::Request) && r.is_active(Direction::Response));
    let off = Redactor::new(&PolicySpec {
        request: CategoryActions {
            secrets: Action::Off,
            pii: Action::Off,
        },
        ..PolicySpec::default()
    })
    .unwrap();
    assert!(!off.is_active(Direction::Request));
    assert_eq!(
        request(&off, Family::ChatCompletions, "not even json"),
        None
    );
}

#[test]
fn pseudonymize_in_requests_activates_restoring_responses() {
    let r = redactor(|s| {
        s.request.pii = Action::Pseudonymize;
        s.response = CategoryActions {
            secrets: Action::Off,
            pii: Action::Off,
        };
    });
    assert!(r.is_active(Direction::Response));
    assert_eq!(
        r.detectors(Direction::Response).collect::<Vec<_>>(),
        [("pseudonym", Action::Pseudonymize)]
    );
}

#[test]
fn allow_list() {
    let key = aws_key();
    let r = redactor(|s| {
        s.allow = vec![
            key.clone(),
            "postgres://admin:S3cr3tP4ss@localhost/app".into(),
        ];
    });
    assert_eq!(
        text(&r, &format!("use {key} here")),
        format!("use {key} here")
    );
    let conn = "postgres://admin:S3cr3tP4ss@localhost/app";
    assert_eq!(
        text(&r, conn),
        "postgres://admin:[REDACTED:url_password]@localhost/app",
        "only whole-match literals"
    );
    let r = redactor(|s| s.allow = vec!["S3cr3tP4ss".into()]);
    assert_eq!(text(&r, conn), conn);
}

#[test]
fn custom_detectors() {
    let r = redactor(|s| {
        s.detectors.push(CustomDetectorSpec::new(
            "employee_id",
            r"EMP-\d{6}",
            Category::Pii,
        ));
        s.actions.insert(
            "employee_id".into(),
            DetectorActions::both(Action::Pseudonymize),
        );
    });
    let mut cx = RequestRedaction::default();
    let out = r
        .redact_text(
            Direction::Request,
            "EMP-123456 and EMP-654321 and EMP-123456",
            &mut cx,
        )
        .unwrap();
    assert_eq!(
        out,
        "<EMPLOYEE_ID_1> and <EMPLOYEE_ID_2> and <EMPLOYEE_ID_1>"
    );
}

/// A custom pattern longer than the default `max_len` is redacted whole, in a body and in a
/// stream: its bound comes from the pattern (it used to be cut at 64 bytes).
#[test]
fn long_custom_values_are_redacted_whole() {
    let r = redactor(|s| {
        s.detectors.push(CustomDetectorSpec::new(
            "acme_token",
            r"ACME-[A-Z0-9]{100}",
            Category::Secret,
        ));
    });
    let token = format!("ACME-{}", "K7Q2".repeat(25));
    let text = format!("deploy with {token} now");
    let mut cx = RequestRedaction::default();
    let out = r.redact_text(Direction::Response, &text, &mut cx).unwrap();
    assert_eq!(out, "deploy with [REDACTED:acme_token] now");
    let deltas: Vec<String> = text
        .as_bytes()
        .chunks(7)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let mut input = String::new();
    for d in &deltas {
        input.push_str(&crate::redact::stream::tests::chunk_event(
            0,
            serde_json::json!({"content": d}),
            None,
        ));
    }
    input.push_str("data: [DONE]\n\n");
    let out = crate::redact::stream::tests::run(
        &mut r.stream(Family::ChatCompletions),
        input.as_bytes(),
        5,
        &mut cx,
    )
    .unwrap();
    let streamed =
        crate::redact::stream::tests::chat_texts(&crate::redact::stream::tests::events(&out));
    assert_eq!(
        streamed[&(0, "content".into())],
        "deploy with [REDACTED:acme_token] now"
    );
}

#[test]
fn policy_errors() {
    let build = |f: fn(&mut PolicySpec)| {
        let mut spec = PolicySpec::default();
        f(&mut spec);
        Redactor::new(&spec).unwrap_err()
    };
    assert_eq!(
        build(|s| {
            s.actions
                .insert("emial".into(), DetectorActions::both(Action::Mask));
        }),
        PolicyError::UnknownDetector {
            name: "emial".into()
        }
    );
    assert_eq!(
        build(|s| {
            s.actions
                .insert("email".into(), DetectorActions::both(Action::Hash));
            s.request.pii = Action::Redact;
        }),
        PolicyError::MissingHashKey
    );
    assert_eq!(
        build(|s| s
            .detectors
            .push(CustomDetectorSpec::new("email", "x", Category::Pii))),
        PolicyError::DuplicateDetector {
            name: "email".into()
        }
    );
    assert!(matches!(
        build(|s| s.detectors.push(CustomDetectorSpec::new("broken", "(", Category::Pii))),
        PolicyError::InvalidPattern { detector, .. } if detector == "broken"
    ));
    assert_eq!(
        build(|s| s.allow.push(String::new())),
        PolicyError::EmptyAllowEntry
    );
    assert!(Redactor::detector_names().any(|n| n == "email"));
    assert!(!Redactor::detector_names().any(|n| n == "pseudonym"));
}

#[test]
fn chat_request_fields() {
    let r = redactor(|_| {});
    let key = aws_key();
    let b64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let body = serde_json::json!({
        "model": "gpt-4o",
        "stream": true,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [
                {"type": "text", "text": format!("my key {key}")},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}")}},
                {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": format!("{{\"email\":\"john.doe@example.com\",\"key\":\"{key}\"}}")}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "found 123-45-6789"},
            {"role": "assistant", "function_call": {"name": "f", "arguments": "{\"ssn\":\"123-45-6789\"}"}}
        ]
    })
    .to_string();
    let out = request(&r, Family::ChatCompletions, &body).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let m = &v["messages"];
    assert_eq!(m[0]["content"], "You are helpful.");
    assert_eq!(
        m[1]["content"][0]["text"],
        "my key [REDACTED:aws_access_key]"
    );
    assert_eq!(
        m[1]["content"][1]["image_url"]["url"],
        format!("data:image/png;base64,{b64}")
    );
    assert_eq!(m[1]["content"][2]["input_audio"]["data"], b64);
    let args = m[2]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert_eq!(
        args,
        r#"{"email":"[REDACTED:email]","key":"[REDACTED:aws_access_key]"}"#
    );
    assert!(
        serde_json::from_str::<Value>(args).is_ok(),
        "arguments stay JSON"
    );
    assert_eq!(m[3]["content"], "found [REDACTED:us_ssn]");
    assert_eq!(
        m[4]["function_call"]["arguments"],
        r#"{"ssn":"[REDACTED:us_ssn]"}"#
    );
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["stream"], true);
    assert!(!out.contains(&key));
}

#[test]
fn rewriting_keeps_every_other_byte() {
    let r = redactor(|_| {});
    let body = format!(
        "{{ \"model\" : \"m\",\n  \"top_p\": 1.0e0, \"messages\": [ {{\"role\":\"user\", \"content\": \"k {}\" }} ] }}",
        aws_key()
    );
    let out = request(&r, Family::ChatCompletions, &body).unwrap();
    assert_eq!(
        out,
        "{ \"model\" : \"m\",\n  \"top_p\": 1.0e0, \"messages\": [ {\"role\":\"user\", \"content\": \"k [REDACTED:aws_access_key]\" } ] }"
    );
}

#[test]
fn unchanged_bodies_are_none() {
    let r = redactor(|_| {});
    assert_eq!(
        request(&r, Family::ChatCompletions, &chat("hello there")),
        None
    );
    assert_eq!(
        response(
            &r,
            Family::ChatCompletions,
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}"#
        ),
        None
    );
    assert_eq!(
        response(
            &r,
            Family::Embeddings,
            r#"{"data":[{"embedding":[0.1,0.2]}]}"#
        ),
        None
    );
}

#[test]
fn completions_and_embeddings_requests() {
    let r = redactor(|_| {});
    let key = aws_key();
    let out = request(
        &r,
        Family::Completions,
        &format!(r#"{{"model":"m","prompt":"k {key}","max_tokens":5}}"#),
    )
    .unwrap();
    assert_eq!(
        out,
        r#"{"model":"m","prompt":"k [REDACTED:aws_access_key]","max_tokens":5}"#
    );
    let out = request(
        &r,
        Family::Completions,
        &format!(r#"{{"prompt":["a","k {key}"]}}"#),
    )
    .unwrap();
    assert_eq!(out, r#"{"prompt":["a","k [REDACTED:aws_access_key]"]}"#);
    let out = request(
        &r,
        Family::Embeddings,
        &format!(r#"{{"input":"{key}","model":"e"}}"#),
    )
    .unwrap();
    assert_eq!(out, r#"{"input":"[REDACTED:aws_access_key]","model":"e"}"#);
    let out = request(
        &r,
        Family::Embeddings,
        &format!(r#"{{"input":["x","{key}"]}}"#),
    )
    .unwrap();
    assert_eq!(out, r#"{"input":["x","[REDACTED:aws_access_key]"]}"#);
    let tokens = r#"{"input":[[4111,1111,1111,1111],[123,45,6789]],"model":"e"}"#;
    assert_eq!(request(&r, Family::Embeddings, tokens), None);
    assert_eq!(
        request(&r, Family::Completions, r#"{"prompt":[1,2,3]}"#),
        None
    );
}

#[test]
fn responses_requests() {
    let r = redactor(|_| {});
    let key = aws_key();
    let out = request(
        &r,
        Family::Responses,
        &format!(r#"{{"model":"m","input":"k {key}","instructions":"mail a@example.com"}}"#),
    )
    .unwrap();
    assert_eq!(
        out,
        r#"{"model":"m","input":"k [REDACTED:aws_access_key]","instructions":"mail [REDACTED:email]"}"#
    );
    let body = serde_json::json!({
        "model": "m",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": format!("key {key}")},
                {"type": "input_image", "image_url": "data:image/png;base64,QUtJQQ=="}
            ]},
            {"type": "message", "role": "user", "content": "mail a@example.com"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": format!("{{\"k\":\"{key}\"}}")},
            {"type": "function_call_output", "call_id": "c", "output": "ssn 123-45-6789"}
        ]
    })
    .to_string();
    let v: Value = serde_json::from_str(&request(&r, Family::Responses, &body).unwrap()).unwrap();
    assert_eq!(
        v["input"][0]["content"][0]["text"],
        "key [REDACTED:aws_access_key]"
    );
    assert_eq!(
        v["input"][0]["content"][1]["image_url"],
        "data:image/png;base64,QUtJQQ=="
    );
    assert_eq!(v["input"][1]["content"], "mail [REDACTED:email]");
    assert_eq!(
        v["input"][2]["arguments"],
        r#"{"k":"[REDACTED:aws_access_key]"}"#
    );
    assert_eq!(v["input"][3]["output"], "ssn [REDACTED:us_ssn]");
}

#[test]
fn response_bodies() {
    let r = redactor(|_| {});
    let key = aws_key();
    let body = serde_json::json!({
        "id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("k {key}"),
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"e\":\"a@example.com\"}"}}]},
            "logprobs": {"content": [{"token": "AKIA", "logprob": -0.1}]}, "finish_reason": "stop"}],
        "usage": {"total_tokens": 9}
    })
    .to_string();
    let v: Value =
        serde_json::from_str(&response(&r, Family::ChatCompletions, &body).unwrap()).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "k [REDACTED:aws_access_key]"
    );
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"e":"[REDACTED:email]"}"#
    );
    assert!(
        v["choices"][0]["logprobs"].is_null(),
        "logprobs repeat the text"
    );
    assert_eq!(v["usage"]["total_tokens"], 9);

    let body = format!(r#"{{"choices":[{{"index":0,"text":"k {key}","logprobs":null}}]}}"#);
    assert_eq!(
        response(&r, Family::Completions, &body).unwrap(),
        r#"{"choices":[{"index":0,"text":"k [REDACTED:aws_access_key]","logprobs":null}]}"#
    );

    let body = serde_json::json!({
        "id": "resp_1", "object": "response",
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "user gave 123-45-6789"}]},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": format!("k {key}"), "annotations": [], "logprobs": [{"token": "x"}]}]},
            {"type": "function_call", "name": "f", "arguments": "{\"e\":\"a@example.com\"}"}
        ]
    })
    .to_string();
    let v: Value = serde_json::from_str(&response(&r, Family::Responses, &body).unwrap()).unwrap();
    assert_eq!(
        v["output"][0]["summary"][0]["text"],
        "user gave [REDACTED:us_ssn]"
    );
    assert_eq!(
        v["output"][1]["content"][0]["text"],
        "k [REDACTED:aws_access_key]"
    );
    assert_eq!(
        v["output"][1]["content"][0]["logprobs"],
        serde_json::json!([])
    );
    assert_eq!(v["output"][2]["arguments"], r#"{"e":"[REDACTED:email]"}"#);
}

#[test]
fn pseudonym_round_trip() {
    let r = redactor(|s| {
        s.request.pii = Action::Pseudonymize;
        s.request.secrets = Action::Pseudonymize;
    });
    let mut cx = RequestRedaction::default();
    let key = aws_key();
    let body = chat(&format!(
        "from john@example.com to jane@example.com, cc john@example.com, key {key}"
    ));
    let out = r
        .redact_request(Family::ChatCompletions, body.as_bytes(), &mut cx)
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["messages"][0]["content"],
        "from <EMAIL_1> to <EMAIL_2>, cc <EMAIL_1>, key <AWS_ACCESS_KEY_1>"
    );
    let reply = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Wrote to <EMAIL_2> and <EMAIL_1>; <EMAIL_9> is unknown; key <AWS_ACCESS_KEY_1>"}}]}"#;
    let back = r
        .redact_response(Family::ChatCompletions, reply.as_bytes(), &mut cx)
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_slice(&back).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("Wrote to jane@example.com and john@example.com; <EMAIL_9> is unknown; key {key}"),
        "restored values are the client's own and are not scanned again"
    );
    let restored: u64 = cx
        .counts()
        .iter()
        .filter(|c| c.direction == Direction::Response && c.action == Action::Pseudonymize)
        .map(|c| c.n)
        .sum();
    assert_eq!(restored, 3);
}

#[test]
fn fail_closed() {
    let r = redactor(|_| {});
    let mut cx = RequestRedaction::default();
    let e = |body: &[u8]| {
        r.redact_request(
            Family::ChatCompletions,
            body,
            &mut RequestRedaction::default(),
        )
        .unwrap_err()
    };
    assert_eq!(e(b"\xff{}"), RedactError::InvalidUtf8);
    assert!(matches!(
        e(b"{\"messages\": ["),
        RedactError::NotJson { .. }
    ));
    assert!(matches!(e(b"{} trailing"), RedactError::NotJson { .. }));
    // A string that cannot be decoded is not guessed at.
    assert!(matches!(
        e(br#"{"messages": [], "user": "\ud800"}"#),
        RedactError::UnexpectedShape { .. } | RedactError::NotJson { .. }
    ));
    // Shapes no longer matter: whatever the type of a field, its strings are scanned, and both
    // copies of a duplicated key are (an upstream might read either).
    let key = aws_key();
    let out = r
        .redact_request(
            Family::ChatCompletions,
            format!(r#"{{"messages": "{key}"}}"#).as_bytes(),
            &mut cx,
        )
        .unwrap()
        .unwrap();
    assert_eq!(out, br#"{"messages": "[REDACTED:aws_access_key]"}"#);
    let out = r
        .redact_request(
            Family::ChatCompletions,
            format!(r#"{{"messages": [{{"content":"{key}","content":"{key}"}}]}}"#).as_bytes(),
            &mut cx,
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"messages": [{"content":"[REDACTED:aws_access_key]","content":"[REDACTED:aws_access_key]"}]}"#
    );
    assert!(r
        .redact_response(Family::Responses, b"<html>", &mut cx)
        .is_err());
    assert!(r
        .redact_response(Family::Embeddings, b"nope", &mut cx)
        .is_err());
}

#[test]
fn blocked_request_names_detector_not_value() {
    let r = redactor(|s| s.request.secrets = Action::Block);
    let key = aws_key();
    let err = r
        .redact_request(
            Family::ChatCompletions,
            chat(&key).as_bytes(),
            &mut RequestRedaction::default(),
        )
        .unwrap_err();
    assert!(err.is_blocked());
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(
            shown.contains("aws_access_key") && !shown.contains(&key),
            "{shown}"
        );
    }
}

#[test]
fn debug_output_never_shows_values() {
    let r = redactor(|s| {
        s.request.pii = Action::Pseudonymize;
        s.allow = vec!["allowed-literal-xyz".into()];
        s.hash_key = b"hash-key-material".to_vec();
    });
    let mut cx = RequestRedaction::default();
    let key = aws_key();
    r.redact_text(
        Direction::Request,
        &format!("{key} private.person@example.com"),
        &mut cx,
    )
    .unwrap();
    let mut stream = r.stream(Family::ChatCompletions);
    let chunk = format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        &key[..10]
    );
    stream.push(chunk.as_bytes(), &mut cx).unwrap();
    for shown in [format!("{r:?}"), format!("{cx:?}"), format!("{stream:?}")] {
        for secret in [
            &key[..],
            &key[..10],
            "private.person",
            "allowed-literal-xyz",
            "hash-key-material",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

#[test]
fn dense_text_leaks_nothing() {
    let r = redactor(|_| {});
    let all: Vec<_> = samples();
    let dense: String = all
        .iter()
        .map(|(_, t, _)| t.as_str())
        .collect::<Vec<_>>()
        .join(" ; ");
    let out = text(&r, &dense);
    for (name, _, value) in &all {
        assert!(!out.contains(value.as_str()), "{name} leaked in dense text");
    }
}

#[test]
fn shareable_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Redactor>();
    send_sync::<PolicySpec>();
    send::<StreamRedactor>();
    send::<RequestRedaction>();
    send_sync::<RedactError>();
}

#[test]
fn adversarial_inputs_stay_linear() {
    // Dense anchors in long alphabet runs once made walks and rescans quadratic (0.4 MB/s for
    // `eyJeyJ…`). A generous time bound still catches a regression by orders of magnitude.
    let r = redactor(|_| {});
    for unit in [
        "eyJ",
        "a@",
        "://",
        "AB12 ",
        "4111 ",
        "ghp_",
        "password=",
        "+1 ",
        ";pwd=",
    ] {
        let input = unit.repeat((64 << 10) / unit.len());
        let started = std::time::Instant::now();
        let out = text(&r, &input);
        assert!(!out.is_empty());
        assert!(
            started.elapsed().as_secs() < 10,
            "{unit:?} took {:?}",
            started.elapsed()
        );
    }
}

/// A window sized from an earlier anchor (the first card's digits) ended right after the
/// second card, so the truncated text read an end of text where `aws…` follows: the
/// prefilter found a card the whole text does not have, and a stream (which sees the whole
/// text) disagreed with the batch. Found by `interleaved_choices_and_tool_calls`.
#[test]
fn a_window_end_is_not_the_end_of_the_text() {
    let spec = |s: &mut PolicySpec| {
        s.response.pii = Action::Mask;
        s.detectors.push(CustomDetectorSpec::new(
            "employee_id",
            r"EMP-\d{6}",
            Category::Pii,
        ));
    };
    let fast = redactor(spec);
    let mut full = PolicySpec {
        hash_key: b"k".to_vec(),
        ..PolicySpec::default()
    };
    full.request.pii = Action::Redact;
    spec(&mut full);
    let slow = Redactor::exhaustive(&full).unwrap();
    for t in [
        "5555555555554444 4111 1111 1111 1111aws_",
        "5555555555554444 4111 1111 1111 1111 aws_",
        "4111 1111 1111 1111 5555555555554444AKIAATJPUU5XFMZKP2EC",
    ] {
        let a = fast
            .redact_text(Direction::Response, t, &mut RequestRedaction::default())
            .unwrap();
        let b = slow
            .redact_text(Direction::Response, t, &mut RequestRedaction::default())
            .unwrap();
        assert_eq!(a, b, "{t}");
    }
}

/// Each API family has its own opaque table (`crate::wire`): a base64 payload at one of its
/// members is relayed as it is, the same string at a member the family does not declare is
/// scanned like any text.
#[test]
fn opaque_members_are_the_familys_own() {
    let r = Redactor::new(&PolicySpec::default()).unwrap();
    // A GitHub token is made of base64url characters: inside a base64 payload it is bytes of
    // the payload, outside one it is a token.
    let token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
    let payload = format!("{token}{}", "A".repeat(40));
    let embeddings = format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":"{payload}"}}],"model":"text-embedding-3-small"}}"#
    );
    assert_eq!(response(&r, Family::Embeddings, &embeddings), None);
    let out = response(&r, Family::Messages, &embeddings).expect("scanned");
    assert!(!out.contains(token), "{out}");
    let thinking = format!(
        r#"{{"type":"message","content":[{{"type":"thinking","thinking":"hm","signature":"{payload}"}}]}}"#
    );
    assert_eq!(response(&r, Family::Messages, &thinking), None);
    let out = response(&r, Family::ChatCompletions, &thinking).expect("scanned");
    assert!(!out.contains(token), "{out}");
    // An unknown API (a `paths:` route) has every family's table.
    assert_eq!(response(&r, Family::Other, &embeddings), None);
    assert_eq!(response(&r, Family::Other, &thinking), None);
    // Too short, or not base64 only: scanned wherever it is.
    let short = embeddings.replace(&payload, token);
    assert!(!response(&r, Family::Embeddings, &short)
        .expect("scanned")
        .contains(token));
}
