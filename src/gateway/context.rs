//! Per-request state carried through Pingora's hooks.

use std::sync::Arc;
use std::time::Instant;

use crate::shutdown::InflightGuard;
use crate::telemetry::metrics::EnvironmentInflightGuard as EnvInflight;
use crate::telemetry::record::RequestRecord;
use crate::telemetry::TraceIds;

use super::body::Reservation;
use crate::limits::Ticket;
use crate::redact::{Redactor, RequestRedaction};
use crate::runtime::{KeyEntry, Runtime};

/// Per-request context.
pub struct RequestCtx {
    /// The configuration this request runs on, even if a reload happens meanwhile.
    pub runtime: Arc<Runtime>,
    /// `x-request-id`: the client's, or a new one.
    pub request_id: String,
    /// When the request started.
    pub started: Instant,
    /// Counts this request as in flight until the context is dropped.
    pub _inflight: InflightGuard,
    /// Counts it in the in-flight gauge of its environment, once that is known.
    pub env_inflight: Option<EnvInflight>,
    /// What telemetry reports about it at the end.
    pub record: RequestRecord,
    /// The virtual key it carried, when keys are configured.
    pub key: Option<Arc<KeyEntry>>,
    /// Its admission: budgets reserved, reconciled at the end.
    pub ticket: Option<Ticket>,
    /// `x-ratelimit-*` headers for every answer.
    pub rate_headers: Vec<(&'static str, String)>,
    /// The gateway asked the upstream for stream usage the client did not ask for.
    pub strip_usage_chunk: bool,
    /// The endpoint answers with binary media (`/v1/audio/speech`): a successful `audio/*` or
    /// `application/octet-stream` answer is relayed unread even on a redacting route.
    pub binary_answer: bool,
    /// The redaction policy of its route.
    pub redactor: Option<Arc<Redactor>>,
    /// Redaction counts and the pseudonym table, shared by request and response.
    pub redaction: RequestRedaction,
    /// The request body bytes this request holds in the process's buffer pool; given back
    /// when the context is dropped.
    pub buffered: Reservation,
    /// The query string the upstream gets instead of the client's (redacted); `None`: the
    /// client's, as received.
    pub query: Option<String>,
    /// The error shape of the client's API (Anthropic's on `/v1/messages`).
    pub shape: crate::wire::error::ErrorShape,
}

impl RequestCtx {
    /// A context on the given runtime.
    pub fn new(runtime: Arc<Runtime>, inflight: InflightGuard) -> Self {
        RequestCtx {
            _inflight: inflight,
            runtime,
            request_id: String::new(),
            started: Instant::now(),
            env_inflight: None,
            key: None,
            ticket: None,
            rate_headers: Vec::new(),
            strip_usage_chunk: false,
            binary_answer: false,
            redactor: None,
            redaction: RequestRedaction::default(),
            query: None,
            shape: crate::wire::error::ErrorShape::OpenAi,
            buffered: Reservation::default(),
            record: RequestRecord::begin(String::new(), TraceIds::start(None, 0.0)),
        }
    }

    /// Starts the telemetry record once the request id and trace are known.
    pub fn begin_record(&mut self, trace: TraceIds) {
        self.record = RequestRecord::begin(self.request_id.clone(), trace);
    }
}

/// Accepts a client's `x-request-id` when it is short printable ASCII, else makes a new one.
pub fn request_id(client: Option<&[u8]>) -> String {
    match client {
        Some(id)
            if !id.is_empty() && id.len() <= 128 && id.iter().all(|b| b.is_ascii_graphic()) =>
        {
            String::from_utf8_lossy(id).into_owned()
        }
        // A random (v4) UUID from the thread's fast generator: an id needs to be unique, not
        // unguessable, and `Uuid::new_v4` costs a getrandom(2) system call per request.
        _ => uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
            .into_uuid()
            .simple()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        assert_eq!(request_id(Some(b"abc-123")), "abc-123");
        assert_eq!(request_id(None).len(), 32);
        assert_eq!(request_id(Some(b"has space")).len(), 32);
        assert_eq!(request_id(Some(&[b'a'; 200])).len(), 32);
    }
}
