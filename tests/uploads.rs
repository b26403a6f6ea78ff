//! End to end: uploads on an inspected `paths:` route are streamed through redaction — a batch
//! file larger than what the gateway may buffer goes through, redacted line by line, a secret
//! split across the client's writes included; binary files in a form pass untouched; a blocked
//! value ends the upload before it is complete upstream.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::mock::MockUpstream;
use common::{client, expect_error, GatewayProcess};

fn token() -> String {
    format!("ghp_{}", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d")
}

/// 4 MiB per body and 4 MiB buffered in total: three 3 MiB uploads at once could not be read
/// whole side by side.
fn config(upstream: &str, request_secrets: &str) -> String {
    format!(
        "environment: test\nmax_body_bytes: 4194304\nmax_buffered_bytes: 4194304\nupstreams:\n  u: {{url: {upstream}}}\nroutes:\n  - paths: [/v1/files]\n    upstream: u\nredaction:\n  request: {{secrets: {request_secrets}, pii: off}}\n  response: {{secrets: redact, pii: off}}\n"
    )
}

/// A JSON Lines batch file of about `size` bytes; every 50th line carries the token.
fn batch_file(size: usize) -> (String, usize) {
    let t = token();
    let mut out = String::new();
    let mut secrets = 0;
    let mut i = 0;
    while out.len() < size {
        let content = if i % 50 == 0 {
            secrets += 1;
            format!("deploy with {t} please")
        } else {
            format!("summarize chapter {i} of the handbook in three sentences")
        };
        out.push_str(&format!(
            "{{\"custom_id\":\"req-{i}\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"{content}\"}}]}}}}\n"
        ));
        i += 1;
    }
    (out, secrets)
}

/// `body` sent chunked in pieces of `piece` bytes (so values are cut between writes).
fn chunked(body: Vec<u8>, piece: usize) -> reqwest::Body {
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

#[tokio::test]
async fn a_batch_file_larger_than_the_buffer_streams_through_redaction() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url(), "redact")).await;
    let (file, secrets) = batch_file(3 * 1024 * 1024);
    let t = token();
    let send = |body: Vec<u8>| {
        let url = gw.url("/v1/files");
        async move {
            client()
                .post(url)
                .header("content-type", "application/jsonl")
                .body(chunked(body, 7919))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let statuses =
        futures_util::future::join_all((0..3).map(|_| send(file.clone().into_bytes()))).await;
    assert_eq!(statuses, [200, 200, 200], "streamed, not buffered whole");
    let seen = up.requests();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        let text = String::from_utf8(r.body.clone()).unwrap();
        assert!(!text.contains(&t));
        assert_eq!(text.matches("[REDACTED:github_token]").count(), secrets);
        assert_eq!(text, file.replace(&t, "[REDACTED:github_token]"));
    }

    // The same file with a declared length over max_body_bytes is refused at once, before
    // any of the body is sent. (Over a raw socket: an HTTP client still writing the body when
    // the refusal closes the connection reports a broken pipe instead of the answer.)
    let answer = head_only(
        &gw,
        &format!(
            "POST /v1/files HTTP/1.1\r\nhost: gw\r\ncontent-type: application/jsonl\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            2 * file.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
    for key in ["message", "type", "param", "code"] {
        assert!(
            v["error"].get(key).is_some(),
            "error object lacks {key}: {body}"
        );
    }
}

/// Sends a request head without its body and reads the answer to the end.
async fn head_only(gw: &GatewayProcess, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_form_upload_streams_its_text_file_redacted_and_its_binary_file_untouched() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url(), "redact")).await;
    let (file, secrets) = batch_file(2 * 1024 * 1024);
    let t = token();
    let form = |name: &str, content: &[u8]| {
        let mut body = Vec::new();
        body.extend_from_slice(
            b"--XbOuNdArY\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n",
        );
        body.extend_from_slice(
            format!("--XbOuNdArY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n--XbOuNdArY--\r\n");
        body
    };
    let resp = client()
        .post(gw.url("/v1/files"))
        .header("content-type", "multipart/form-data; boundary=XbOuNdArY")
        .body(chunked(form("batch.jsonl", file.as_bytes()), 4093))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(
        seen.header("transfer-encoding"),
        Some("chunked"),
        "streamed"
    );
    let text = String::from_utf8(seen.body.clone()).unwrap();
    assert!(!text.contains(&t));
    assert_eq!(text.matches("[REDACTED:github_token]").count(), secrets);
    assert!(
        text.contains("name=\"purpose\"\r\n\r\nbatch\r\n"),
        "{}",
        &text[..300]
    );
    assert!(text.contains(&file.replace(&t, "[REDACTED:github_token]")));
    assert!(text.ends_with("\r\n--XbOuNdArY--\r\n"));

    // A binary file (a PNG's signature, NUL bytes) is opaque: it arrives byte for byte.
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    png.extend((0..2 * 1024 * 1024).map(|i| (i * 7 % 256) as u8));
    let resp = client()
        .post(gw.url("/v1/files"))
        .header("content-type", "multipart/form-data; boundary=XbOuNdArY")
        .body(chunked(form("cat.png", &png), 65536))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last().body;
    assert!(seen.windows(png.len()).any(|w| w == png.as_slice()));
}

#[tokio::test]
async fn a_blocked_value_ends_a_streamed_upload_before_it_is_complete_upstream() {
    let up = MockUpstream::start().await;
    let gw = GatewayProcess::start(&config(&up.url(), "block")).await;
    // Two clean megabytes, then the token.
    let (mut file, _) = batch_file(0);
    file.clear();
    while file.len() < 2 * 1024 * 1024 {
        file.push_str("{\"custom_id\":\"x\",\"body\":{\"input\":\"a clean line of text\"}}\n");
    }
    file.push_str(&format!(
        "{{\"custom_id\":\"y\",\"body\":{{\"input\":\"{}\"}}}}\n",
        token()
    ));
    let resp = client()
        .post(gw.url("/v1/files"))
        .header("content-type", "application/jsonl")
        .body(chunked(file.into_bytes(), 16384))
        .send()
        .await
        .unwrap();
    let e = expect_error(resp, 400).await;
    assert_eq!(e["code"], "content_blocked");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The upstream got an incomplete chunked body and a closed connection: no request.
    assert_eq!(up.count(), 0);
}
