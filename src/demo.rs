//! `veilgate demo`: a built-in echo upstream, so that a newcomer sees redaction work with no
//! network and no provider key (`conf/demo.yaml` routes the model `demo` to it).
//!
//! The echo upstream answers every chat completion with the last user message it received —
//! that is, what the gateway forwarded after redaction — in OpenAI's shape, whole or streamed.
//! It is a plain blocking HTTP/1.1 server on its own threads: a demo, not a mock to measure.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

/// The largest request head and body the echo upstream reads.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// How long a kept-alive connection may stay idle before the echo upstream closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Binds the echo upstream on `addr` and serves it on a background thread.
///
/// # Errors
///
/// The bind error, naming `addr`.
pub fn spawn_echo_upstream(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => format!("{addr} (the demo's echo upstream) is already in use"),
        _ => format!("cannot listen on {addr} (the demo's echo upstream): {e}"),
    })?;
    std::thread::Builder::new()
        .name("demo echo".to_owned())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let spawned = std::thread::Builder::new()
                    .name("demo echo connection".to_owned())
                    .spawn(move || {
                        if let Err(e) = serve(stream) {
                            log::debug!("demo echo upstream: {e}");
                        }
                    });
                if let Err(e) = spawned {
                    log::warn!("demo echo upstream: cannot start a thread: {e}");
                }
            }
        })
        .map_err(|e| format!("cannot start the demo's echo upstream: {e}"))?;
    Ok(())
}

/// Serves the requests of one connection until the peer closes it.
fn serve(stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some((path, body)) = read_request(&mut reader)? else {
            return Ok(());
        };
        let (status, content_type, answer) = answer(&path, &body);
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(answer.as_bytes())?;
        writer.flush()?;
    }
}

/// One request's path and body; `None` when the peer closed the connection between requests.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<(String, Vec<u8>)>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut content_length = 0usize;
    let mut head_bytes = line.len();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        head_bytes += n;
        if n == 0 || head_bytes > MAX_REQUEST_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad request head",
            ));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    if content_length > MAX_REQUEST_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    Ok(Some((path, body)))
}

/// The status line, content type and body answering `path` with `body`.
fn answer(path: &str, body: &[u8]) -> (&'static str, &'static str, String) {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if !path.ends_with("/chat/completions") {
        let error = json!({"error": {
            "message": "the demo echo upstream answers only /v1/chat/completions",
            "type": "invalid_request_error", "param": null, "code": "unknown_url"}});
        return ("404 Not Found", "application/json", error.to_string());
    }
    let model = request["model"].as_str().unwrap_or("demo");
    let text = format!("You said: {}", last_user_text(&request));
    let words = text.split_whitespace().count() as u64;
    let usage = json!({"prompt_tokens": words, "completion_tokens": words,
                       "total_tokens": 2 * words});
    if request["stream"] == Value::Bool(true) {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": 0,
                   "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events = vec![
            chunk(json!({"role": "assistant", "content": text}), Value::Null),
            chunk(json!({}), json!("stop")),
        ];
        if request["stream_options"]["include_usage"] == Value::Bool(true) {
            events.push(
                json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk",
                               "created": 0, "model": model, "choices": [], "usage": usage}),
            );
        }
        let mut sse: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        sse.push_str("data: [DONE]\n\n");
        return ("200 OK", "text/event-stream", sse);
    }
    let completion = json!({
        "id": "chatcmpl-demo", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": usage});
    ("200 OK", "application/json", completion.to_string())
}

/// The text of the last user message: a string, or its text parts joined.
fn last_user_text(request: &Value) -> String {
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"));
    match last.map(|m| &m["content"]) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_the_last_user_message_whole_or_streamed() {
        let body = br#"{"model":"demo","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"second"}]}]}"#;
        let (status, ct, reply) = answer("/v1/chat/completions", body);
        assert_eq!((status, ct), ("200 OK", "application/json"));
        let v: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "You said: second");

        let body = br#"{"model":"demo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
        let (_, ct, sse) = answer("/v1/chat/completions", body);
        assert_eq!(ct, "text/event-stream");
        assert!(sse.contains(r#""content":"You said: hi""#) && sse.contains(r#""usage""#));
        assert!(sse.ends_with("data: [DONE]\n\n"));

        assert_eq!(answer("/v1/embeddings", b"{}").0, "404 Not Found");
    }
}
