//! Veilgate: an OpenAI-compatible LLM gateway built on Pingora.
//!
//! The request path is a row of plain stages (see `docs/ARCHITECTURE.md`): [`config`] builds the
//! validated configuration, [`runtime`] turns it into what requests run, [`wire`] knows the
//! wire formats (one module per API family), [`redact`], [`limits`] and [`telemetry`] are the
//! policies, and [`gateway`] holds the Pingora adapter and the pipeline that calls the stages
//! in order.

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
