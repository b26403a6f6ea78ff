//! Fakes for the stages' unit tests: a client ([`Client`], a [`Downstream`]) and upstreams
//! that answer from a script ([`Upstreams`], a [`Transport`]), and a [`Pipeline`] on them built
//! from a YAML configuration. No socket, no Pingora session.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};

use super::context::RequestCtx;
use super::downstream::{Downstream, Gone, ReadError};
use super::forward::{BodySource, ForwardError, Forwarder, UploadError};
use super::pipeline::Pipeline;
use super::transport::{Answer, Transport};
use super::upstream_health::UpstreamHealth;
use super::Shared;
use crate::config::Upstream;
use crate::limits::Limiter;
use crate::runtime;
use crate::shutdown::Inflight;
use crate::telemetry::{AccessLogSink, Telemetry};

/// A client: its request, its body in pieces, and what the gateway wrote back.
pub struct Client {
    pub header: RequestHeader,
    pub body: VecDeque<Result<Bytes, ReadError>>,
    pub ip: Option<IpAddr>,
    /// The client hangs up as soon as the gateway waits on it.
    pub hangs_up: bool,
    pub continued: bool,
    pub written: Option<ResponseHeader>,
    pub answer: Vec<u8>,
    pub ended: bool,
    pub closed: bool,
    pub read_timeout: Option<Duration>,
}

impl Client {
    /// `method path` with `headers` and a whole `body` (sent in one piece).
    pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Client {
        let mut header = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        for (name, value) in headers {
            header.insert_header(name.to_string(), *value).unwrap();
        }
        if !body.is_empty() && !header.headers.contains_key("content-length") {
            header
                .insert_header("content-length", body.len().to_string())
                .unwrap();
        }
        Client {
            header,
            body: [Ok(Bytes::from(body.to_owned()))]
                .into_iter()
                .filter(|b| b.as_ref().is_ok_and(|b| !b.is_empty()))
                .collect(),
            ip: Some("192.0.2.7".parse().unwrap()),
            hangs_up: false,
            continued: false,
            written: None,
            answer: Vec::new(),
            ended: false,
            closed: false,
            read_timeout: None,
        }
    }

    /// A chat completion with `key` (if any) as its bearer token.
    pub fn chat(key: Option<&str>, body: &str) -> Client {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        Client::request("POST", "/v1/chat/completions", &headers, body)
    }

    /// The status the client got.
    pub fn status(&self) -> u16 {
        self.written.as_ref().map_or(0, |h| h.status.as_u16())
    }

    /// A header of the answer.
    pub fn answer_header(&self, name: &str) -> Option<String> {
        self.written
            .as_ref()?
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The answer's body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.answer).into_owned()
    }

    /// The answer's body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.answer).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

impl Downstream for Client {
    fn req_header(&self) -> &RequestHeader {
        &self.header
    }

    fn client_ip(&self) -> Option<IpAddr> {
        self.ip
    }

    fn set_read_timeout(&mut self, timeout: Duration) {
        self.read_timeout = Some(timeout);
    }

    async fn read_body(&mut self) -> Result<Option<Bytes>, ReadError> {
        self.body.pop_front().transpose()
    }

    async fn write_continue(&mut self) -> Result<(), Gone> {
        self.continued = true;
        Ok(())
    }

    async fn write_header(&mut self, header: Box<ResponseHeader>) -> Result<(), Gone> {
        assert!(self.written.is_none(), "two answer headers");
        self.written = Some(*header);
        Ok(())
    }

    async fn write_body(&mut self, body: Option<Bytes>, end: bool) -> Result<(), Gone> {
        assert!(self.written.is_some(), "a body before its header");
        assert!(!self.ended, "a body after the end");
        if let Some(b) = body {
            self.answer.extend_from_slice(&b);
        }
        self.ended = end;
        Ok(())
    }

    fn close_after(&mut self) {
        self.closed = true;
    }

    async fn gone(&mut self) {
        if !self.hangs_up {
            std::future::pending::<()>().await;
        }
    }
}

/// What an upstream does with one request.
pub enum Script {
    /// Never answers (the client's hang-up or a deadline ends the wait).
    Hang,
    /// Fails before an answer.
    Fail(ForwardError),
    /// Answers `status` with `headers` and a body in `chunks` (an `Err` breaks it off).
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        chunks: Vec<Result<Bytes, ForwardError>>,
    },
}

impl Script {
    /// A JSON answer in one piece.
    pub fn json(status: u16, body: &str) -> Script {
        Script::Answer {
            status,
            headers: vec![("content-type", "application/json".into())],
            chunks: vec![Ok(Bytes::from(body.to_owned()))],
        }
    }

    /// An event stream in the given pieces.
    pub fn sse(chunks: &[&str]) -> Script {
        Script::Answer {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into())],
            chunks: chunks
                .iter()
                .map(|c| Ok(Bytes::from((*c).to_owned())))
                .collect(),
        }
    }
}

/// A request an upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub upstream: String,
    pub header: RequestHeader,
    pub body: Vec<u8>,
    pub streamed: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Upstreams answering from per-upstream scripts, in order; an upstream with no script left
/// refuses the connection.
#[derive(Default)]
pub struct Upstreams {
    scripts: Mutex<HashMap<String, VecDeque<Script>>>,
    pub received: Mutex<Vec<Received>>,
    pub finished: Mutex<usize>,
}

impl Upstreams {
    pub fn new() -> Arc<Upstreams> {
        Arc::default()
    }

    /// `upstream` does `script` with its next request.
    pub fn then(&self, upstream: &str, script: Script) -> &Self {
        self.scripts
            .lock()
            .unwrap()
            .entry(upstream.to_owned())
            .or_default()
            .push_back(script);
        self
    }

    /// The requests received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The names of the upstreams asked, in order.
    pub fn asked(&self) -> Vec<String> {
        self.received().into_iter().map(|r| r.upstream).collect()
    }

    async fn answer(&self, upstream: &Upstream) -> Result<Scripted, ForwardError> {
        let next = self
            .scripts
            .lock()
            .unwrap()
            .get_mut(&upstream.name)
            .and_then(VecDeque::pop_front);
        match next {
            None => Err(ForwardError::Connect("Connection refused".into())),
            Some(Script::Hang) => std::future::pending().await,
            Some(Script::Fail(e)) => Err(e),
            Some(Script::Answer {
                status,
                headers,
                chunks,
            }) => {
                let mut header = ResponseHeader::build(status, None).unwrap();
                for (name, value) in headers {
                    header.insert_header(name, value).unwrap();
                }
                Ok(Scripted {
                    header,
                    chunks: chunks.into(),
                })
            }
        }
    }
}

/// An answer from a script.
pub struct Scripted {
    header: ResponseHeader,
    chunks: VecDeque<Result<Bytes, ForwardError>>,
}

impl Answer for Scripted {
    fn header(&self) -> Option<&ResponseHeader> {
        Some(&self.header)
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ForwardError> {
        self.chunks.pop_front().transpose()
    }
}

impl Transport for Upstreams {
    type Answer = Scripted;

    async fn send(
        &self,
        upstream: &Upstream,
        header: RequestHeader,
        body: Bytes,
    ) -> Result<Scripted, ForwardError> {
        self.received.lock().unwrap().push(Received {
            upstream: upstream.name.clone(),
            header,
            body: body.to_vec(),
            streamed: false,
        });
        self.answer(upstream).await
    }

    async fn send_streaming(
        &self,
        upstream: &Upstream,
        header: RequestHeader,
        body: &mut dyn BodySource,
    ) -> Result<Scripted, UploadError> {
        let mut sent = Vec::new();
        // A connection refused before the body is read: nothing of it was asked for.
        let scripted = self.answer(upstream).await;
        if scripted.is_ok() {
            while let Some(piece) = body.next_piece().await.map_err(UploadError::Body)? {
                sent.extend_from_slice(&piece);
            }
        }
        self.received.lock().unwrap().push(Received {
            upstream: upstream.name.clone(),
            header,
            body: sent,
            streamed: true,
        });
        Ok(scripted?)
    }

    async fn finish(&self, _answer: Scripted) {
        *self.finished.lock().unwrap() += 1;
    }
}

/// Environment values the test configurations use.
pub fn env(name: &str) -> Option<String> {
    match name {
        "UPSTREAM_KEY" => Some("sk-upstream-secret-0123456789abcdef".into()),
        "KEY_A" => Some("vg-key-a-0123456789abcdef".into()),
        "KEY_B" => Some("vg-key-b-0123456789abcdef".into()),
        _ => None,
    }
}

/// A pipeline on `yaml` sending to `upstreams`.
pub fn pipeline(yaml: &str, upstreams: &Arc<Upstreams>) -> Pipeline<Upstreams> {
    let config = crate::config::load_str(yaml, "test.yaml", &env).expect("config");
    let telemetry = Telemetry::builder()
        .access_log(AccessLogSink::Disabled)
        .build()
        .expect("telemetry");
    let shared = Shared {
        runtime: runtime::shared(runtime::Runtime::build(config).expect("runtime")),
        forwarder: Arc::new(Forwarder::new()),
        inflight: Inflight::default(),
        health: Arc::new(UpstreamHealth::default()),
        telemetry: Arc::new(telemetry),
        limiter: Limiter::memory(),
    };
    Pipeline::new(&shared, upstreams.clone())
}

/// Serves `client` on `pipeline` to its end (telemetry included); returns the request's
/// context for its record.
pub async fn serve(pipeline: &Pipeline<Upstreams>, client: &mut Client) -> RequestCtx {
    let mut ctx = pipeline.new_ctx();
    pipeline.serve(client, &mut ctx).await;
    let written = client.written.as_ref().map(|h| h.status.as_u16());
    pipeline.finish(&mut ctx, written).await;
    ctx
}
