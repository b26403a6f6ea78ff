//! The admin listener: `/healthz` and `/readyz`.
//!
//! Kept off the public listener so probes and scrapes never compete with, or leak into,
//! client traffic.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use crate::gateway::runtime::SharedRuntime;

/// Answers health probes from the shared runtime.
pub struct Admin {
    runtime: SharedRuntime,
}

impl Admin {
    /// An admin app over the runtime in force.
    pub fn new(runtime: SharedRuntime) -> Self {
        Admin { runtime }
    }

    fn answer(&self, path: &str) -> (StatusCode, String) {
        match path {
            "/healthz" => (StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
            "/readyz" => {
                let rt = self.runtime.load();
                (
                    StatusCode::OK,
                    format!(
                        r#"{{"status":"ready","config_version":{},"routes":{}}}"#,
                        rt.version,
                        rt.config.routes.len()
                    ),
                )
            }
            _ => (
                StatusCode::NOT_FOUND,
                r#"{"error":{"message":"Unknown admin path; try /healthz or /readyz.","type":"invalid_request_error","param":null,"code":"unknown_url"}}"#.to_owned(),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, body) = self.answer(session.req_header().uri.path());
        let body = body.into_bytes();
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}
