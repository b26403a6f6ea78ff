//! Request inspection: which endpoint, which model, streamed or not.
//!
//! Inspection reads only what routing needs and leaves the body bytes untouched, so a request
//! that needs no rewriting is forwarded byte-identical.

use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{echo, ApiError};
use super::Endpoint;

/// What routing needs from a JSON request body.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRequest {
    /// The requested model, unescaped.
    pub model: String,
    /// Byte range of the `"model"` JSON string (quotes included) in the body; `None` when the
    /// request names no model and is routed by the endpoint's [`Endpoint::default_model`].
    pub model_span: Option<Range<usize>>,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
    /// The output cap it asked for (`max_completion_tokens`, `max_tokens`, `max_output_tokens`).
    pub max_tokens: Option<u64>,
    /// Its sampling temperature.
    pub temperature: Option<f64>,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
    #[serde(borrow)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow)]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow)]
    temperature: Option<&'a RawValue>,
}

/// Checks a JSON request body and extracts the routing fields.
///
/// # Errors
/// A 400 [`ApiError`] when the body is not UTF-8, not a JSON object, has no string `model`,
/// has a non-boolean `stream`, or (chat completions) has no `messages` list.
pub fn inspect_json(endpoint: Endpoint, body: &[u8]) -> Result<JsonRequest, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::invalid_request(format!(
            "The request body is not valid UTF-8 (invalid byte at offset {}).",
            e.valid_up_to()
        ))
        .code("invalid_utf8")
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(not_json("the body must be a JSON object"));
    }
    if exceeds_depth(text.as_bytes(), MAX_DEPTH) {
        return Err(ApiError::invalid_request(format!(
            "The JSON body is nested more than {MAX_DEPTH} levels deep."
        ))
        .code("invalid_json"));
    }
    let probe: Probe<'_> = serde_json::from_str(text).map_err(|e| not_json(&e.to_string()))?;

    let raw_model = match (probe.model, endpoint.default_model()) {
        (Some(raw), _) => raw,
        (None, Some(default)) => {
            return finish(endpoint, &probe, default.to_owned(), None);
        }
        (None, None) => {
            return Err(
                ApiError::invalid_request("You must provide a `model` parameter.")
                    .param("model")
                    .code("missing_required_parameter"),
            )
        }
    };
    let model: String = match serde_json::from_str::<String>(raw_model.get()) {
        Ok(m) if !m.is_empty() => m,
        Ok(_) => {
            return Err(ApiError::invalid_request("`model` must not be empty.")
                .param("model")
                .code("invalid_value"))
        }
        Err(_) => {
            return Err(ApiError::invalid_request(format!(
                "`model` must be a string, got {}.",
                echo(raw_model.get())
            ))
            .param("model")
            .code("invalid_type"))
        }
    };
    let model_span = span_of(text, raw_model.get())
        .ok_or_else(|| ApiError::internal("could not locate `model` in the request body"))?;
    finish(endpoint, &probe, model, Some(model_span))
}

/// The rest of [`inspect_json`], once the model is known.
fn finish(
    endpoint: Endpoint,
    probe: &Probe<'_>,
    model: String,
    model_span: Option<Range<usize>>,
) -> Result<JsonRequest, ApiError> {
    let stream = match probe.stream.map(RawValue::get) {
        None | Some("null") => false,
        Some("true") => true,
        Some("false") => false,
        Some(_) => {
            return Err(ApiError::invalid_request("`stream` must be a boolean.")
                .param("stream")
                .code("invalid_type"))
        }
    };

    if matches!(
        endpoint,
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::MessagesCountTokens
    ) {
        match probe.messages {
            None => {
                return Err(
                    ApiError::invalid_request("You must provide a `messages` parameter.")
                        .param("messages")
                        .code("missing_required_parameter"),
                )
            }
            Some(m) if !m.get().starts_with('[') => {
                return Err(ApiError::invalid_request("`messages` must be a list.")
                    .param("messages")
                    .code("invalid_type"))
            }
            Some(_) => {}
        }
    }

    // Parameters are read leniently: a wrong type is the upstream's to refuse.
    let max_tokens = [
        probe.max_completion_tokens,
        probe.max_tokens,
        probe.max_output_tokens,
    ]
    .into_iter()
    .flatten()
    .find_map(|raw| raw.get().parse::<u64>().ok());
    let temperature = probe
        .temperature
        .and_then(|raw| raw.get().parse::<f64>().ok());

    Ok(JsonRequest {
        model,
        model_span,
        stream,
        max_tokens,
        temperature,
    })
}

/// Deepest JSON nesting accepted: far beyond any real request, and within what every later
/// stage (and serde_json's own recursion limit) handles without risk.
pub const MAX_DEPTH: usize = 100;

/// Whether arrays/objects nest deeper than `max` (brackets inside strings do not count).
fn exceeds_depth(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                // Jump over the string: to the next quote not escaped by a backslash.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &json[i..]) {
                        None => return false,
                        Some(at) if json[i + at] == b'\\' => {
                            i += at + 2;
                            if i >= json.len() {
                                return false;
                            }
                        }
                        Some(at) => {
                            i += at;
                            break;
                        }
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

fn not_json(detail: &str) -> ApiError {
    ApiError::invalid_request(format!(
        "We could not parse the JSON body of your request ({}). The OpenAI API expects a JSON object.",
        echo(detail)
    ))
    .code("invalid_json")
}

/// The byte range of `part` inside `whole`, when `part` is a sub-slice of it.
fn span_of(whole: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

/// Returns `body` with the `model` value at `span` replaced by `model`, as a JSON string; with
/// no span (the request named no model), `"model"` is added as the object's first member.
pub fn replace_model(body: &[u8], span: Option<Range<usize>>, model: &str) -> Vec<u8> {
    let quoted = serde_json::Value::String(model.to_owned()).to_string();
    if let Some(span) = span {
        return splice(body, span, quoted.as_bytes());
    }
    // `inspect_json` accepted the body, so it is an object: `{` after optional whitespace.
    let open = body.iter().position(|&b| b == b'{').unwrap_or(0);
    let empty = body[open + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|&b| b == b'}');
    let member = format!("\"model\":{quoted}{}", if empty { "" } else { "," });
    splice(body, open + 1..open + 1, member.as_bytes())
}

/// Returns `body` with the bytes at `span` replaced by `with`.
pub fn splice(body: &[u8], span: Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() - span.len() + with.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&body[span.end..]);
    out
}

/// Finds the `model` form field of a multipart/form-data upload; `default` when it has none
/// and the endpoint names a default model.
///
/// # Errors
/// A 400 [`ApiError`] when the content type is not multipart/form-data with a boundary, the
/// body is not valid multipart, or it has no `model` field and there is no default.
pub async fn multipart_model(
    content_type: &str,
    body: bytes::Bytes,
    default: Option<&str>,
) -> Result<String, ApiError> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::invalid_request(
            "Uploads to this endpoint must be sent as multipart/form-data with a boundary.",
        )
        .code("invalid_content_type")
    })?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("model") => {
                return field.text().await.map_err(bad_multipart);
            }
            Ok(Some(_)) => continue,
            Ok(None) if default.is_some() => return Ok(default.unwrap_or_default().to_owned()),
            Ok(None) => {
                return Err(
                    ApiError::invalid_request("You must provide a `model` form field.")
                        .param("model")
                        .code("missing_required_parameter"),
                )
            }
            Err(e) => return Err(bad_multipart(e)),
        }
    }
}

fn bad_multipart(e: multer::Error) -> ApiError {
    ApiError::invalid_request(format!("The multipart/form-data body is malformed: {e}."))
        .code("invalid_multipart")
}

/// The byte range of the `model` field's value in a multipart body, for aliasing.
///
/// Only the value bytes are replaced, so the rest of the upload (the audio file) stays
/// byte-identical.
pub fn multipart_model_span(content_type: &str, body: &[u8]) -> Option<Range<usize>> {
    multipart_parts(content_type, body)?
        .into_iter()
        .find(|p| is_model_field(&body[p.headers.clone()]))
        .map(|p| p.value)
}

/// `body` with a `model` form field set to `model`: its value replaced when the form has one,
/// otherwise a new field ahead of the first part. `None` when the body is not multipart.
pub fn multipart_set_model(content_type: &str, body: &[u8], model: &str) -> Option<Vec<u8>> {
    if let Some(span) = multipart_model_span(content_type, body) {
        return Some(splice(body, span, model.as_bytes()));
    }
    let boundary = multer::parse_boundary(content_type).ok()?;
    let delimiter = format!("--{boundary}");
    let first = multipart_parts(content_type, body)?.first()?.headers.start;
    // The delimiter line that opens the first part.
    let at = memchr::memmem::rfind(&body[..first], delimiter.as_bytes())?;
    let field =
        format!("{delimiter}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n");
    Some(splice(body, at..at, field.as_bytes()))
}

/// One part of a multipart/form-data body, as byte ranges of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart {
    /// The part's header lines.
    pub headers: Range<usize>,
    /// The part's value.
    pub value: Range<usize>,
    /// Whether the part is a file (its `Content-Disposition` has a `filename`).
    pub is_file: bool,
}

/// The parts of a multipart/form-data body, found at every occurrence of the boundary
/// delimiter (so a part is never missed: a delimiter inside a file's bytes only splits it
/// further). `None` when the content type has no boundary or a part has no header end.
pub fn multipart_parts(content_type: &str, body: &[u8]) -> Option<Vec<FormPart>> {
    let boundary = multer::parse_boundary(content_type).ok()?;
    let delimiter = format!("--{boundary}");
    let mut starts = memchr::memmem::find_iter(body, delimiter.as_bytes());
    let mut part_start = starts.next()? + delimiter.len();
    let mut parts = Vec::new();
    for next in starts {
        let part = &body[part_start..next];
        // A part is: CRLF headers CRLF CRLF value CRLF
        let head_end = memchr::memmem::find(part, b"\r\n\r\n")?;
        let value_start = part_start + head_end + 4;
        let value_end = next.checked_sub(2)?; // the CRLF before the delimiter
        if value_start > value_end {
            return None;
        }
        let headers = part_start..part_start + head_end;
        parts.push(FormPart {
            is_file: is_file_part(&body[headers.clone()]),
            headers,
            value: value_start..value_end,
        });
        part_start = next + delimiter.len();
    }
    Some(parts)
}

fn is_file_part(headers: &[u8]) -> bool {
    let text = String::from_utf8_lossy(headers).to_ascii_lowercase();
    text.split("\r\n").any(|line| {
        line.starts_with("content-disposition:")
            && line
                .split(';')
                .map(str::trim)
                .any(|p| p.starts_with("filename=") || p.starts_with("filename*="))
    })
}

fn is_model_field(headers: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(headers) else {
        return false;
    };
    text.split("\r\n").any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("content-disposition:")
            && lower
                .split(';')
                .map(str::trim)
                .any(|p| p == "name=\"model\"" || p == "name=model")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fields() {
        let body =
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        let r = inspect_json(Endpoint::ChatCompletions, body).unwrap();
        assert_eq!(r.model, "gpt-4o");
        assert!(r.stream);
        assert_eq!(&body[r.model_span.clone().unwrap()], br#""gpt-4o""#);
    }

    #[test]
    fn escaped_model_is_unescaped() {
        let body = br#"{"model":"gpt\u002d4o","input":"x"}"#;
        let r = inspect_json(Endpoint::Embeddings, body).unwrap();
        assert_eq!(r.model, "gpt-4o");
    }

    #[test]
    fn rejects_bad_shapes() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "invalid_json"),
            (b"[1,2]", "invalid_json"),
            (b"\xff\xfe", "invalid_utf8"),
            (br#"{"messages":[]}"#, "missing_required_parameter"),
            (br#"{"model":7,"messages":[]}"#, "invalid_type"),
            (br#"{"model":"m","messages":"hi"}"#, "invalid_type"),
            (br#"{"model":"m"}"#, "missing_required_parameter"),
            (
                br#"{"model":"m","messages":[],"stream":"yes"}"#,
                "invalid_type",
            ),
        ];
        for (body, code) in cases {
            let e = inspect_json(Endpoint::ChatCompletions, body).unwrap_err();
            assert_eq!(e.status, 400, "{:?}", String::from_utf8_lossy(body));
            assert_eq!(e.code, Some(*code), "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let mut body = String::from(r#"{"model":"m","input":"#);
        body.push_str(&"[".repeat(100_000));
        body.push_str(&"]".repeat(100_000));
        body.push('}');
        let e = inspect_json(Endpoint::Embeddings, body.as_bytes()).unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn depth_counts_brackets_after_escaped_quotes_and_backslashes() {
        // `\\` ends in a backslash that escapes nothing: the string closes at the next quote.
        let body = format!(
            "{{\"a\": \"x\\\\\", \"b\": {}{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(exceeds_depth(body.as_bytes(), 100));
        let body = format!("{{\"a\": \"\\\"{}\"}}", "[".repeat(200));
        assert!(
            !exceeds_depth(body.as_bytes(), 100),
            "brackets after \\\" are in the string"
        );
        for cut in [b"\"abc\\".as_slice(), b"\"abc", b"\"\\", b"[\""] {
            assert!(!exceeds_depth(cut, 100), "truncated input {cut:?}");
        }
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
        assert!(exceeds_depth(deep.as_bytes(), 100));
        let quoted = format!("{{\"a\": \"{}\\\"\"}}", "[".repeat(500));
        assert!(!exceeds_depth(quoted.as_bytes(), 100));
        assert!(inspect_json(
            Endpoint::Embeddings,
            quoted
                .replace("\"a\"", "\"model\": \"m\", \"a\"")
                .as_bytes()
        )
        .is_ok());
    }

    #[test]
    fn replace_model_keeps_the_rest() {
        let body = br#"{"model":"fast","messages":[]}"#;
        let r = inspect_json(Endpoint::ChatCompletions, body).unwrap();
        let out = replace_model(body, r.model_span, "gpt-4o-mini");
        assert_eq!(out, br#"{"model":"gpt-4o-mini","messages":[]}"#.to_vec());
    }

    fn form(model: &str) -> (String, Vec<u8>) {
        let ct = "multipart/form-data; boundary=XyZ".to_owned();
        let body = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\x01\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--XyZ--\r\n"
        );
        (ct, body.into_bytes())
    }

    #[tokio::test]
    async fn finds_multipart_model() {
        let (ct, body) = form("whisper-1");
        assert_eq!(
            multipart_model(&ct, bytes::Bytes::from(body), None)
                .await
                .unwrap(),
            "whisper-1"
        );
    }

    #[tokio::test]
    async fn multipart_without_model_is_400() {
        let ct = "multipart/form-data; boundary=XyZ";
        let body =
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--XyZ--\r\n";
        let e = multipart_model(ct, bytes::Bytes::from(body), None)
            .await
            .unwrap_err();
        assert_eq!(e.code, Some("missing_required_parameter"));
        let e = multipart_model("application/json", bytes::Bytes::from(body), None)
            .await
            .unwrap_err();
        assert_eq!(e.code, Some("invalid_content_type"));
        // Where the endpoint has a default model (image edits), the form needs none.
        assert_eq!(
            multipart_model(ct, bytes::Bytes::from(body), Some("dall-e-2"))
                .await
                .unwrap(),
            "dall-e-2"
        );
    }

    #[test]
    fn multipart_set_model_replaces_or_adds_the_field() {
        let (ct, body) = form("fast");
        let out = multipart_set_model(&ct, &body, "whisper-1").unwrap();
        assert_eq!(
            out,
            String::from_utf8(body.clone())
                .unwrap()
                .replace("\r\nfast\r\n", "\r\nwhisper-1\r\n")
                .into_bytes()
        );
        // No model field: one is added ahead of the first part; the file stays byte for byte.
        let ct = "multipart/form-data; boundary=XyZ";
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG\x00\r\n--XyZ--\r\n";
        let out = multipart_set_model(ct, body, "gpt-image-1").unwrap();
        let parts = multipart_parts(ct, &out).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(is_model_field(&out[parts[0].headers.clone()]));
        assert_eq!(&out[parts[0].value.clone()], b"gpt-image-1");
        assert_eq!(&out[parts[1].value.clone()], b"\x89PNG\x00");
        assert!(out.starts_with(b"preamble\r\n--XyZ\r\n"));
        assert_eq!(multipart_set_model("application/json", body, "m"), None);
    }

    #[test]
    fn endpoints_with_a_default_model_route_a_body_without_one() {
        for (endpoint, default) in [
            (Endpoint::Moderations, "omni-moderation-latest"),
            (Endpoint::ImagesGenerations, "dall-e-2"),
            (Endpoint::ImagesEdits, "dall-e-2"),
        ] {
            let r = inspect_json(endpoint, br#"{"input":"x","prompt":"y"}"#).unwrap();
            assert_eq!((r.model.as_str(), r.model_span), (default, None));
        }
        let e =
            inspect_json(Endpoint::AudioSpeech, br#"{"input":"hi","voice":"alloy"}"#).unwrap_err();
        assert_eq!(e.code, Some("missing_required_parameter"));
    }

    #[test]
    fn replace_model_adds_a_missing_model_as_first_member() {
        assert_eq!(
            replace_model(b"  { \"input\": \"x\" }", None, "omni"),
            b"  {\"model\":\"omni\", \"input\": \"x\" }".to_vec()
        );
        assert_eq!(
            replace_model(b"{ }", None, "m"),
            b"{\"model\":\"m\" }".to_vec()
        );
        let out = replace_model(br#"{"prompt":"a cat"}"#, None, "gpt-image-1");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "gpt-image-1");
        assert_eq!(v["prompt"], "a cat");
    }

    #[test]
    fn which_endpoints_are_multipart() {
        assert!(Endpoint::AudioTranscriptions.is_multipart("application/json"));
        assert!(Endpoint::ImagesEdits.is_multipart("multipart/form-data; boundary=x"));
        assert!(!Endpoint::ImagesEdits.is_multipart("application/json"));
        assert!(!Endpoint::AudioSpeech.is_multipart("multipart/form-data; boundary=x"));
        assert_eq!(
            Endpoint::from_path("/v1/images/generations"),
            Some(Endpoint::ImagesGenerations)
        );
        assert_eq!(
            Endpoint::from_path("/v1/moderations/"),
            Some(Endpoint::Moderations)
        );
        assert!(Endpoint::AudioSpeech.answers_binary() && !Endpoint::ImagesEdits.answers_binary());
    }

    #[test]
    fn multipart_span_points_at_the_value() {
        let (ct, body) = form("fast");
        let span = multipart_model_span(&ct, &body).unwrap();
        assert_eq!(&body[span], b"fast");
    }
}
