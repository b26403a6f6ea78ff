//! Veilgate: an OpenAI-compatible LLM gateway built on Pingora.
//!
//! The request path is a row of plain stages (see `docs/ARCHITECTURE.md`): [`config`] builds the
//! validated runtime model, [`openai`] knows the wire format, [`gateway`] holds the thin
//! Pingora glue that calls the stages in order.

#![deny(missing_docs)]

pub mod admin;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod limits;
pub mod process;
pub mod redact;
pub mod reload;
pub mod runtime;
pub mod shutdown;
pub mod spend;
pub mod telemetry;
pub mod wire;
